#!/usr/bin/env bash
# Makes the local base images when no registry can be reached (test infrastructure):
#   kube-face/debian:bookworm       debootstrap --variant=minbase from this machine's Debian mirror,
#                                   `docker import`ed: the stand-in for debian:bookworm-slim
#   kube-face/python:3.12-bookworm  that plus the project's Python 3.12 in /usr/local: the
#                                   stand-in for python:3.12-slim (same layout, same glibc)
# Real users build FROM python:3.12-slim (roles/container_images, container_images_python_base).
# Idempotent: an image already in the engine is kept, the debootstrap tree is cached under
# $KUBE_FACE_CACHE/images, so a second run takes about a second. --refresh remakes both.
#   DOCKER_HOST=unix://... scripts/images/base.sh [--refresh]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
work=$cache/images
suite=bookworm
debian_image=kube-face/debian:$suite
python_image=kube-face/python:3.12-$suite
docker_cli=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker)
docker() { "$docker_cli" "$@"; }
refresh=false; [ "${1:-}" = "--refresh" ] && refresh=true
step() { printf '==> %s\n' "$*"; }
# An image is kept while its label says it was made by this recipe (this script's contents,
# plus for the Python image the Debian image and Python it was made from).
have() {
  ! $refresh && [ "$(docker image inspect -f '{{ index .Config.Labels "kube-face.recipe" }}' "$1" \
    2>/dev/null)" = "$2" ]
}
recipe=$(sha256sum "$0" | cut -c1-16)

# Libraries the Python build links against (ldd of libpython and lib-dynload), plus what a
# service needs at run time: CA certificates, /etc/services, time zones.
packages=ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g
packages+=,libreadline8,libncursesw6,libuuid1,libexpat1,libcrypt1,libtirpc3,libnsl2

# The mirror this machine's apt already uses (deb822 or one-line sources).
mirror() {
  local m
  m=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list \
      | grep -v security | head -n1 | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//')
  echo "${m:-http://deb.debian.org/debian}"
}

if ! have "$debian_image" "$recipe"; then
  tarball=$work/debian-$suite-$recipe.tar
  if $refresh || [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
      echo "base.sh: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
    m=$(mirror)
    step "debootstrap $suite (minbase) from $m"
    rootfs=$work/debian-$suite.rootfs
    rm -rf "$rootfs"; mkdir -p "$rootfs"
    nice debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$m" \
      >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
      "$m" "$suite" "$m" "$suite" "${m%/debian}/debian" "$suite" >"$rootfs/etc/apt/sources.list"
    # What debian:*-slim leaves out too: downloaded packages, package lists, docs, translations,
    # logs; and the same for packages installed later (the MariaDB stand-in's).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
      "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
    printf 'path-exclude %s\n' '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' \
      '/usr/share/locale/*' >"$rootfs/etc/dpkg/dpkg.cfg.d/kube-face-slim"
    rm -f "$work"/debian-"$suite"*.tar
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  step "docker import $debian_image"
  docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
    --change "LABEL kube-face.recipe=$recipe" "$tarball" "$debian_image" >/dev/null
fi

# The Python 3.12 that scripts/setup.sh built .venv from (or the one named by PYTHON).
python=${PYTHON:-$root/.venv/bin/python}
prefix=$("$python" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.base_prefix)')
py_recipe=$(printf '%s %s %s' "$recipe" "$(docker image inspect -f '{{.Id}}' "$debian_image")" \
  "$("$python" -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)
if ! have "$python_image" "$py_recipe"; then
  ctx=$work/python-3.12.context
  step "python: $prefix -> /usr/local in $python_image"
  mkdir -p "$ctx/usr/local"
  # Leave out what python:3.12-slim leaves out: tests, tkinter/idle, the static library, headers
  # and the global site-packages (the images build their own venv).
  rsync -a --delete --exclude '/lib/python3.12/test/' --exclude '/lib/python3.12/idlelib/' \
    --exclude '/lib/python3.12/tkinter/' --exclude '/lib/python3.12/turtledemo/' \
    --exclude '/lib/python3.12/site-packages/*' --exclude '/lib/python3.12/config-3.12-*/*.a' \
    --exclude '/lib/python3.12/lib-dynload/_test*' --exclude '/lib/python3.12/lib-dynload/_tkinter*' \
    --exclude '/include/' --exclude '/share/' --exclude '/lib/pkgconfig/' \
    --exclude '/bin/idle*' --exclude '/bin/pip*' --exclude '/bin/2to3*' \
    --exclude '__pycache__/' "$prefix/" "$ctx/usr/local/"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $debian_image
COPY usr/local /usr/local
# ldconfig: libpython3.12.so lives in /usr/local/lib now, not where its rpath says. compileall:
# the bytecode the rsync left out, so no process ever writes it (the images run as non-root).
RUN ldconfig && python3.12 -m compileall -q /usr/local/lib/python3.12 >/dev/null \\
    && python3 -c 'import ssl, sqlite3, ctypes, zlib, lzma, bz2, uuid, venv' \\
    && python3 --version
ENV LANG=C.UTF-8
LABEL kube-face.recipe=$py_recipe
CMD ["python3"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q --network none -t "$python_image" "$ctx" >/dev/null
fi
echo "$debian_image $python_image"
