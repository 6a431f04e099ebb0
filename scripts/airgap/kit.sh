#!/usr/bin/env bash
# The offline kit: everything `minikube start --driver=docker` needs without a network, built
# from the Go module proxy and Debian's mirror into a cache that later runs reuse (a warm run
# takes seconds). Build it where there is a network, carry the cache, install it offline.
#   scripts/airgap/kit.sh build     # build what is missing into $KUBE_FACE_CACHE/airgap
#   scripts/airgap/kit.sh install   # put it where minikube looks (needs DOCKER_HOST's engine)
#   scripts/airgap/kit.sh images    # list the images of the kit (ref and file)
#   scripts/airgap/kit.sh cache-image REF ARCHIVE   # an image of your own (`docker save`) for the node
#   scripts/airgap/kit.sh tools     # only the Go tools (minikube, cri-dockerd, crictl, metrics-server)
# What it holds:
#   minikube and storage-provisioner   built from k8s.io/minikube (the provisioner's main is
#                                      storage-provisioner/main.go: no leader election)
#   kubeadm, kubelet, kubectl          for minikube's binary cache ($MINIKUBE_HOME/cache/linux/amd64/V)
#                                      (k8s-build.sh, with etcd, CoreDNS, pause and the image packing)
#   the control-plane and add-on images, tagged as kubeadm and minikube ask for them, for
#                                      minikube's image cache ($MINIKUBE_HOME/cache/images/amd64)
#   the node image                     kicbase-compatible, Debian bookworm, `docker import`ed
#   a NetworkPolicy CNI                kube-network-policies + minikube's bridge, for
#                                      `minikube start --cni=<minikube home>/kube-face/netpol-cni.yaml`
#                                      (scripts/airgap/netpol/)
# Environment (all optional): KUBE_FACE_CACHE, KUBE_FACE_K8S_VERSION (default v1.34.12),
# KUBE_FACE_ETCD_VERSION (v3.6.16), KUBE_FACE_COREDNS_VERSION (v1.14.7),
# KUBE_FACE_MINIKUBE_VERSION (v1.37.0), KUBE_FACE_BUILD_JOBS (1), KUBE_FACE_NICE (19),
# KUBE_FACE_BIN_DIR (install: where minikube and kubectl go, ~/.local/bin), MINIKUBE_HOME
# (install: ~/.minikube), KUBE_FACE_DEBIAN_MIRROR (the machine's apt mirror).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ACTION=${1:-build}
MINIKUBE_VERSION=${KUBE_FACE_MINIKUBE_VERSION:-v1.37.0}
# v0.4 needs Docker API 1.42 (Docker 23+); Debian bookworm's docker.io 20.10 speaks 1.41, which
# v0.3.14 (the newest v0.3 the Go module proxy serves) accepts.
CRI_DOCKERD_VERSION=v0.3.14
CRICTL_VERSION=v1.34.0
METRICS_SERVER_VERSION=v0.8.0
# The node image's name in the engine (minikube start --base-image).
KICBASE_IMAGE=${KUBE_FACE_KICBASE_IMAGE:-kube-face.local/kicbase:$MINIKUBE_VERSION}

# The Kubernetes build: binaries, etcd, CoreDNS, pause, the images' packing.
# shellcheck source=k8s-build.sh
. "$HERE/k8s-build.sh"
T0=$(now)
KIT="$CACHE/airgap"
KBIN="$KIT/bin"
KIMG="$KIT/images"
mkdir -p "$KBIN" "$KIMG"
# The NetworkPolicy CNI (build_netpol, install_netpol).
# shellcheck source=netpol/netpol.sh
. "$HERE/netpol/netpol.sh"
# minikube's release is not in the checksum database; the wrapper's go.sum pins it instead.
export GONOSUMDB=${GONOSUMDB:+$GONOSUMDB,}k8s.io/minikube

# ------------------------------------------------------------------- Go tools
# go_tool NAME MODULE VERSION LDFLAGS PKG...: build PKG... of MODULE@VERSION into $KBIN in a
# wrapper module that copies the module's own replace directives (without them some module
# graphs do not resolve). A PKG ./DIR is a main of this folder's own ($HERE/DIR), built in the
# wrapper module against MODULE@VERSION. One stamp per NAME.
go_tool() {
  local name=$1 module=$2 version=$3 ldflags=$4; shift 4
  local key="$name=$module@$version go=$GOVER" bins=() gets=() p
  for p in "$@"; do
    bins+=("$(basename "$p")")
    case $p in
      ./*) key+=" $p=$(cat "$HERE/${p#./}"/*.go | sha256sum | cut -c1-16)"; gets+=("$p") ;;
      *) gets+=("$p@$version") ;;
    esac
  done
  local ok=1 b
  for b in "${bins[@]}"; do [ -x "$KBIN/$b" ] || ok=0; done
  if [ "$ok" = 1 ] && [ "$(cat "$KBIN/.stamp-$name" 2>/dev/null)" = "$key" ]; then
    log "$name $version: up to date"; return
  fi
  local t; t=$(now)
  local dir="$KIT/src/$name"; rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  local dl gomod
  dl=$("$GO" mod download -json "$module@$version")
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$dl")
  {
    printf 'module kube-face.local/build/%s\n\ngo %s\n\nrequire %s %s\n\n' \
      "$name" "$(awk '$1=="go"{print $2; exit}' "$gomod")" "$module" "$version"
    # replace blocks and single replace lines, except those to local paths
    awk '/^replace \(/{b=1; print; next} b&&/^\)/{b=0; print; next}
         b&&$0!~/=> \.\.?\//{print} !b&&/^replace .*=>/&&$0!~/=> \.\.?\//{print}' "$gomod"
  } > go.mod
  for p in "$@"; do case $p in ./*) cp -r "$HERE/${p#./}" "$dir/${p#./}" ;; esac; done
  log "$name $version: resolving modules"
  nice -n "$NICE" "$GO" get "${gets[@]}" >&2
  local tmp="$KIT/.tmp-$name"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "$name: compiling (go build -p $JOBS, nice $NICE)"
  for p in "$@"; do gobuild -ldflags "-s -w $ldflags" -o "$tmp/$(basename "$p")" "$p"; done
  for b in "${bins[@]}"; do mv -f "$tmp/$b" "$KBIN/$b"; done
  printf '%s' "$key" > "$KBIN/.stamp-$name"
  rm -rf "$tmp"
  log "$name $version: built in $(( $(now) - t ))s"
}

minikube_dir() { "$GO" mod download -json "k8s.io/minikube@$MINIKUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }

build_tools() {
  local mk v=k8s.io/minikube/pkg/version commit sp iso
  mk=$(minikube_dir)
  commit=$(sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p' \
    "$GOMODCACHE/cache/download/k8s.io/minikube/@v/$MINIKUBE_VERSION.info" | head -1)
  # The -X flags of minikube's Makefile (MINIKUBE_LDFLAGS, PROVISIONER_LDFLAGS).
  iso=$(sed -n 's/^ISO_VERSION ?= *//p' "$mk/Makefile")
  sp=$(sed -n 's/^STORAGE_PROVISIONER_TAG ?= *//p' "$mk/Makefile")
  STORAGE_PROVISIONER_TAG=$sp
  go_tool minikube k8s.io/minikube "$MINIKUBE_VERSION" \
    "-X $v.version=$MINIKUBE_VERSION -X $v.isoVersion=$iso -X $v.gitCommitID=$commit -X $v.storageProvisionerVersion=$sp -X k8s.io/minikube/pkg/storage.version=$sp" \
    k8s.io/minikube/cmd/minikube
  go_tool storage-provisioner k8s.io/minikube "$MINIKUBE_VERSION" \
    "-X k8s.io/minikube/pkg/storage.version=$sp" ./storage-provisioner
  go_tool cri-dockerd github.com/Mirantis/cri-dockerd "$CRI_DOCKERD_VERSION" \
    "-X github.com/Mirantis/cri-dockerd/cmd/version.Version=${CRI_DOCKERD_VERSION#v}" \
    github.com/Mirantis/cri-dockerd
  go_tool crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
  go_tool metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" \
    "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" \
    sigs.k8s.io/metrics-server/cmd/metrics-server
}

# ------------------------------------------------------------ Debian rootfs
mirror() {
  local m=${KUBE_FACE_DEBIAN_MIRROR:-}
  [ -n "$m" ] || m=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list \
      | grep -v security | head -n1 | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//')
  echo "${m:-http://deb.debian.org/debian}"
}
# rootfs NAME PACKAGES: a debootstrap (minbase) tree with PACKAGES (comma-separated), kept in
# $KIT/rootfs/NAME-<hash> until the package list changes; prints its path.
rootfs() {
  local name=$1 pkgs=$2 key; key=$(printf '%s' "$pkgs" | sha256sum | cut -c1-12)
  local dir="$KIT/rootfs/$name-$key"
  if [ ! -f "$dir/.done" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap not found (apt-get install debootstrap)"; exit 1; }
    local t; t=$(now); rm -rf "$dir.tmp" "$dir"; mkdir -p "$KIT/rootfs"
    log "$name rootfs: debootstrap bookworm from $(mirror) (minutes)"
    nice -n "$NICE" debootstrap --variant=minbase --include="$pkgs" bookworm "$dir.tmp" "$(mirror)" >"$KIT/rootfs/$name.log" 2>&1 \
      || { tail -n 20 "$KIT/rootfs/$name.log" >&2; log "debootstrap failed"; exit 1; }
    mv "$dir.tmp" "$dir"; touch "$dir/.done"
    log "$name rootfs: $(( $(now) - t ))s"
  fi
  echo "$dir"
}
# tar_rootfs DIR OUT: a deterministic tar of DIR for a layer or `docker import`.
tar_rootfs() {
  tar --sort=name --numeric-owner --mtime=@0 --xattrs --exclude=./.done \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' \
    --exclude='./var/cache/apt/*' --exclude='./var/lib/apt/lists/*' -C "$1" -cf "$2" .
}

# ------------------------------------------------------------ the node image
# minikube's deploy/kicbase recipe on Debian: systemd, docker.io + containerd, cri-dockerd and
# crictl (built above), the CNI plugins, sshd and the user `docker`, minikube's entrypoint.
build_kicbase() {
  local pkgs; pkgs=$(grep -v '^#' "$HERE/kicbase/packages.txt" | paste -sd, -)
  local mk; mk=$(minikube_dir)
  local key; key=$(cat "$HERE/kicbase/packages.txt" "$HERE/kicbase/setup.sh" "$KBIN/.stamp-cri-dockerd" \
    "$KBIN/.stamp-crictl" "$mk/deploy/kicbase/entrypoint" | sha256sum | cut -c1-16)
  local out="$KIT/kicbase.tar"
  if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$key" ]; then log "node image: up to date"; return; fi
  local t; t=$(now)
  local base; base=$(rootfs kicbase "$pkgs")
  local dir="$KIT/.tmp-kicbase"; rm -rf "$dir"
  cp -a "$base" "$dir"
  local kb="$mk/deploy/kicbase"
  install -D -m 0755 "$kb/entrypoint" "$dir/usr/local/bin/entrypoint"
  install -D -m 0644 "$kb/containerd.toml" "$dir/etc/containerd/config.toml"
  install -D -m 0644 "$kb/10-network-security.conf" "$dir/etc/sysctl.d/10-network-security.conf"
  install -D -m 0644 "$kb/11-tcp-mtu-probing.conf" "$dir/etc/sysctl.d/11-tcp-mtu-probing.conf"
  install -D -m 0755 "$KBIN/cri-dockerd" "$dir/usr/bin/cri-dockerd"
  install -D -m 0755 "$KBIN/crictl" "$dir/usr/local/bin/crictl"
  local cd; cd=$("$GO" mod download -json "github.com/Mirantis/cri-dockerd@$CRI_DOCKERD_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  install -D -m 0644 "$cd/packaging/systemd/cri-docker.service" "$dir/usr/lib/systemd/system/cri-docker.service"
  install -D -m 0644 "$cd/packaging/systemd/cri-docker.socket" "$dir/usr/lib/systemd/system/cri-docker.socket"
  install -m 0755 "$HERE/kicbase/setup.sh" "$dir/setup.sh"
  chroot "$dir" /setup.sh >"$KIT/kicbase-setup.log" 2>&1 || { tail -n 20 "$KIT/kicbase-setup.log" >&2; log "node image setup failed"; exit 1; }
  rm -f "$dir/setup.sh"
  printf '{"iso_version": "%s", "kicbase_version": "%s", "minikube_version": "%s", "commit": "kube-face %s"}\n' \
    "$MINIKUBE_VERSION" "$(sed -n 's/.*Version = "\(v[^"]*\)".*/\1/p' "$mk/pkg/drivers/kic/types.go" | head -1)" \
    "$MINIKUBE_VERSION" "$key" > "$dir/version.json"
  tar_rootfs "$dir" "$out.tmp"
  mv -f "$out.tmp" "$out"; printf '%s' "$key" > "$out.stamp"
  rm -rf "$dir"
  log "node image: $(du -h "$out" | cut -f1) in $(( $(now) - t ))s"
}

# ---------------------------------------------------------------- the images
# The tags kubeadm asks for (its `config images list`, offline) and minikube's add-ons.
image_list() {
  "$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null
  echo "gcr.io/k8s-minikube/storage-provisioner:${STORAGE_PROVISIONER_TAG:-v5}"
  echo "registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"
}
# The file of an image in the kit, named as minikube's image cache names it.
image_file() { local r=$1; echo "$KIMG/${r//:/_}"; }

build_kit_images() {
  local key="images k8s=$K8S_VERSION $(cat "$BIN/.stamp-k8s" "$BIN/.stamp-k8s-node" "$BIN/.stamp-etcd" \
    "$BIN/.stamp-coredns" "$KBIN/.stamp-storage-provisioner" "$KBIN/.stamp-metrics-server" "$BIN/.stamp-pause" \
    | sha256sum | cut -c1-16)"
  if [ -f "$KIMG/.stamp" ] && [ "$(cat "$KIMG/.stamp")" = "$key" ]; then log "images: up to date"; return; fi
  local t ref proxy_root; t=$(now)
  proxy_root=$(rootfs kube-proxy "iptables,conntrack,ipset,kmod,ca-certificates")
  while read -r ref; do
    local f; f=$(image_file "$ref"); mkdir -p "$(dirname "$f")"
    case $ref in
      */kube-apiserver:*|*/kube-controller-manager:*|*/kube-scheduler:*|*/etcd:*)
        local b=${ref##*/}; b=${b%%:*}
        pack_image "$ref" "$BIN/$b" "$f" /usr/local/bin ;;
      */kube-proxy:*)
        local d="$KIT/.tmp-kube-proxy"; rm -rf "$d"; cp -a "$proxy_root" "$d"
        rm -rf "$d"/var/cache/apt/* "$d"/var/lib/apt/lists/* "$d"/usr/share/doc/* "$d"/usr/share/man/* \
          "$d"/usr/share/locale/* "$d"/dev/* "$d"/.done
        install -D -m 0755 "$BIN/kube-proxy" "$d/usr/local/bin/kube-proxy"
        pack_dir "$ref" "$d" "$f" '["/usr/local/bin/kube-proxy"]'; rm -rf "$d" ;;
      */coredns:*) pack_image "$ref" "$BIN/coredns" "$f" ;;
      */pause:*) pack_image "$ref" "$BIN/pause" "$f" ;;
      */storage-provisioner:*) pack_image "$ref" "$KBIN/storage-provisioner" "$f" ;;
      */metrics-server:*) pack_image "$ref" "$KBIN/metrics-server" "$f" ;;
      *) log "no recipe for image $ref"; exit 1 ;;
    esac
    log "image $ref"
  done < <(image_list)
  printf '%s' "$key" > "$KIMG/.stamp"
  log "images: built in $(( $(now) - t ))s"
}

# ------------------------------------------------------------------- install
minikube_home() {
  local mh=${MINIKUBE_HOME:-$HOME/.minikube}
  # minikube's home is MINIKUBE_HOME itself when it ends in .minikube, else MINIKUBE_HOME/.minikube.
  [ "$(basename "$mh")" = .minikube ] || mh="$mh/.minikube"
  echo "$mh"
}
# Record images in minikube's config under "cache", as `minikube cache add` does (which needs a
# running profile): every `minikube start` loads them into the node from minikube's image cache.
record_cached() {
  local mh; mh=$(minikube_home); mkdir -p "$mh/config"
  python3 - "$mh/config/config.json" "$@" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
config = json.loads(path.read_text() or "{}") if path.exists() else {}
config.setdefault("cache", {}).update({ref: None for ref in sys.argv[2:]})
path.write_text(json.dumps(config, indent=4) + "\n")
PY
}
# cache_image REF ARCHIVE: an image saved with `docker save`, put into minikube's image cache and
# recorded, for images of your own that the node should have without a registry.
cache_image() {
  local ref=$1 archive=$2 f; f="$(minikube_home)/cache/images/amd64/${1//:/_}"
  mkdir -p "$(dirname "$f")"; cp -f "$archive" "$f"
  record_cached "$ref"
}

install_kit() {
  local bindir=${KUBE_FACE_BIN_DIR:-$HOME/.local/bin} mh; mh=$(minikube_home)
  local bins="$mh/cache/linux/amd64/$K8S_VERSION" cache="$mh/cache/images/amd64" ref
  mkdir -p "$bindir" "$bins" "$cache"
  install -m 0755 "$KBIN/minikube" "$BIN/kubectl" "$bindir/"
  install -m 0755 "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$bins/"
  while read -r ref; do
    mkdir -p "$(dirname "$cache/${ref//:/_}")"
    cp -f "$(image_file "$ref")" "$cache/${ref//:/_}"
  done < <(image_list)
  # Images minikube does not load by itself (add-ons').
  record_cached "registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"
  local key; key=$(cat "$KIT/kicbase.tar.stamp")
  local docker_cli; docker_cli=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker)
  if [ "$("$docker_cli" image inspect -f '{{ index .Config.Labels "kube-face.kit" }}' "$KICBASE_IMAGE" 2>/dev/null)" != "$key" ]; then
    log "importing the node image as $KICBASE_IMAGE"
    local rootfs_ref="kube-face.local/kicbase-rootfs:$key"
    "$docker_cli" import -c 'ENV container=docker' -c 'EXPOSE 22' \
      -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$KIT/kicbase.tar" "$rootfs_ref" >/dev/null
    # `docker import` cannot set STOPSIGNAL (systemd stops cleanly on SIGRTMIN+3): a one-line build.
    printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL kube-face.kit=%s\n' "$rootfs_ref" "$key" \
      | DOCKER_BUILDKIT=0 "$docker_cli" build -q -t "$KICBASE_IMAGE" - >/dev/null
    "$docker_cli" rmi "$rootfs_ref" >/dev/null
  fi
  log "installed: minikube and kubectl in $bindir, Kubernetes $K8S_VERSION binaries and images in $mh/cache, node image $KICBASE_IMAGE"
}

case $ACTION in
  build)
    build_tools
    build_lock
    build_etcd
    build_k8s
    build_k8s_node
    build_k8s_bins k8s-kubeadm kubernetes-kubeadm kubeadm kubeadm
    build_pause
    build_coredns
    build_kicbase
    build_kit_images
    build_netpol
    log "kit ready in $KIT (total $(( $(now) - T0 ))s)"
    ;;
  tools) build_tools ;;
  install) STORAGE_PROVISIONER_TAG=$(sed -n 's/^STORAGE_PROVISIONER_TAG ?= *//p' "$(minikube_dir)/Makefile"); install_kit; install_netpol ;;
  cache-image) [ $# = 3 ] || { echo "usage: $0 cache-image REF ARCHIVE" >&2; exit 2; }; cache_image "$2" "$3" ;;
  images) while read -r ref; do echo "$ref $(image_file "$ref")"; done < <(image_list) ;;
  *) echo "usage: $0 build|install|images|tools|cache-image" >&2; exit 2 ;;
esac
