#!/bin/bash
# Runs inside the node image's root filesystem (chroot) after debootstrap: the same steps as
# minikube's deploy/kicbase/Dockerfile, for Debian.
set -euo pipefail
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> /etc/systemd/journald.conf
mkdir -p /etc/kubernetes/manifests /kind /var/run/sshd
sed -i /usr/lib/systemd/system/systemd-tmpfiles-clean.timer -e 's#OnBootSec=.*#OnBootSec=1min#'
sed -i /etc/nsswitch.conf -re 's#^(hosts:\s*).*#\1files dns#'
# minikube expects the CNI plugins in /opt/cni/bin; Debian installs them in /usr/lib/cni.
mkdir -p /opt/cni
ln -sfn /usr/lib/cni /opt/cni/bin
# minikube's docker.service runs /usr/bin/dockerd (docker-ce's path); Debian's is in /usr/sbin.
ln -sfn /usr/sbin/dockerd /usr/bin/dockerd
# Host keys are made at first boot, so that no two nodes share them.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
  > /etc/systemd/system/ssh.service.d/10-host-keys.conf
sed -ri 's/^#?UsePAM yes/#UsePAM yes/' /etc/ssh/sshd_config
# minikube runs `sudo env PATH=...:$PATH kubeadm` over SSH, and kubeadm looks for losetup, iptables
# and others in that PATH: Debian gives non-root users no sbin directories (Ubuntu's
# /etc/environment does, which needs PAM).
echo 'SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' >> /etc/ssh/sshd_config
systemctl enable ssh.service docker.service cri-docker.socket
systemctl disable containerd.service || true
adduser --ingroup docker --disabled-password --gecos '' docker
adduser docker sudo
# Locked ('!') accounts cannot log in with a key when sshd runs without PAM: no password instead.
usermod -p '*' docker
echo '%sudo ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers
install -d -m 0700 -o docker -g docker /home/docker/.ssh
: > /etc/machine-id
rm -rf /usr/share/doc/* /usr/share/man/* /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
