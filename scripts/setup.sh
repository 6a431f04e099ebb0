#!/usr/bin/env bash
# Installs everything kube-face needs on a fresh Debian 12 machine: Debian packages (MariaDB,
# Chromium), NSQ built from the Go module proxy, and the Python environment (.venv) with the
# generated gRPC code. Idempotent: a second run checks and skips in a few seconds.
# Builds are cached under $KUBE_FACE_CACHE (default ~/.cache/kube-face) for later clones.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
nsq_version=v1.3.0
apt_packages=(mariadb-server mariadb-client chromium chromium-driver docker.io debootstrap rsync)

step() { printf '==> %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# --- NSQ from the Go module proxy ------------------------------------------------------------
nsq_bin=$cache/nsq-$nsq_version/bin
if [ ! -x "$nsq_bin/nsqd" ] || [ ! -x "$nsq_bin/nsqlookupd" ]; then
  command -v go >/dev/null || { echo "setup: Go is needed to build NSQ (apt-get install golang-go)" >&2; exit 1; }
  step "go: building nsqd, nsqlookupd, nsq_tail $nsq_version (scripts/nsq/go.mod)"
  (cd "$root/scripts/nsq" && go build -o "$nsq_bin/" \
    github.com/nsqio/nsq/apps/nsqd github.com/nsqio/nsq/apps/nsqlookupd \
    github.com/nsqio/nsq/apps/nsq_tail)
fi
mkdir -p "$root/.tools/bin"
for b in "$nsq_bin"/*; do ln -sfn "$b" "$root/.tools/bin/$(basename "$b")"; done
for b in mariadbd mariadb-install-db; do
  p=$(command -v "$b" || echo "/usr/sbin/$b"); [ -x "$p" ] && ln -sfn "$p" "$root/.tools/bin/$b"
done

# --- Python 3.12 virtual environment ---------------------------------------------------------
python=""
# (pyenv's shim named python3.12 exists even where 3.12 is not selected: try each for real)
for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 python3.12; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
[ -n "$python" ] || { echo "setup: Python 3.12 not found (pyenv install 3.12)" >&2; exit 1; }

venv=$root/.venv
stamp_want=$(cat "$root/requirements.lock" "$root/requirements-face.txt" "$root/pyproject.toml" \
  | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.kubeface-stamp" 2>/dev/null)" != "$stamp_want" ]; then
  step "python: building $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade "pip==25.3"
  "$venv/bin/pip" install -q -r "$root/requirements.lock"
  "$venv/bin/pip" install -q --no-deps -r "$root/requirements-face.txt"
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root"
  echo "$stamp_want" >"$venv/.kubeface-stamp"
fi
"$root/scripts/genproto.sh" "$venv/bin/python"
# setuptools >= 82 makes `import face_recognition` exit(0) silently: prove the import works.
"$venv/bin/python" -W ignore -c "import face_recognition, dlib; print('ok')" 2>/dev/null \
  | grep -qx ok || { echo "setup: face_recognition does not import in $venv" >&2; exit 1; }
step "setup: ready (venv $venv, tools $root/.tools/bin)"
