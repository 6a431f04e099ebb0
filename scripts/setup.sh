#!/usr/bin/env bash
# Installs what kube-face needs to run on a fresh Debian 12 machine: MariaDB and acl (setfacl, for
# the service user) from Debian's packages, NSQ built from the Go module proxy, and the Python 3.12
# environment (.venv) from uv.lock with the generated gRPC code. `--tests` adds what only the tests use: Chromium and its driver, and
# docker.io, debootstrap and rsync for the container images. Idempotent: a second run checks and
# skips in a few seconds. Builds are cached under $KUBE_FACE_CACHE (default ~/.cache/kube-face).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
nsq_version=v1.3.0
apt_packages=(mariadb-server mariadb-client acl)
case "${1:-}" in
  "") ;;
  --tests) apt_packages+=(chromium chromium-driver docker.io debootstrap rsync) ;;
  *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
esac

step() { printf '==> %s\n' "$*"; }

# --- Python 3.12 (first: without it nothing else is worth installing) ------------------------
python=""
# (pyenv's shim named python3.12 exists even where 3.12 is not selected: try each for real)
for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 \
    /usr/bin/python3.12 python3.12; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
[ -n "$python" ] || {
  echo "setup: kube-face needs Python 3.12 (Debian 12 has 3.11): install it, e.g. with pyenv, then run this again" >&2
  exit 1
}

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

# --- The virtual environment, from uv.lock ---------------------------------------------------
venv=$root/.venv
stamp_want=$(cat "$root/uv.lock" "$root/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.kubeface-stamp" 2>/dev/null)" != "$stamp_want" ]; then
  step "python: building $venv with $python from uv.lock"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # uv installs the locked set and checks every file's hash; uv itself comes from the lock too.
  "$venv/bin/python" -c '
import sys, tomllib
uv = next(p for p in tomllib.load(open(sys.argv[1], "rb"))["package"] if p["name"] == "uv")
files = uv.get("wheels", []) + ([uv["sdist"]] if "sdist" in uv else [])
print("uv==" + uv["version"], *("--hash=" + f["hash"] for f in files))
' "$root/uv.lock" >"$venv/uv-requirement.txt"
  "$venv/bin/pip" install -q --require-hashes -r "$venv/uv-requirement.txt"
  # --locked: stop when uv.lock does not match pyproject.toml (`uv lock` updates it).
  UV_PROJECT_ENVIRONMENT="$venv" UV_PYTHON_DOWNLOADS=never "$venv/bin/uv" sync --quiet \
    --locked --extra dev --extra face --project "$root" --python "$venv/bin/python"
  echo "$stamp_want" >"$venv/.kubeface-stamp"
fi
"$root/scripts/genproto.sh" "$venv/bin/python"
# setuptools >= 82 makes `import face_recognition` exit(0) silently: prove the import works.
"$venv/bin/python" -W ignore -c "import face_recognition, dlib; print('ok')" 2>/dev/null \
  | grep -qx ok || { echo "setup: face_recognition does not import in $venv" >&2; exit 1; }
step "setup: ready (venv $venv, tools $root/.tools/bin)"
