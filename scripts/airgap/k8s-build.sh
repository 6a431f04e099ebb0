# shellcheck shell=bash
# The Kubernetes part of the offline kit, sourced by kit.sh (it runs nothing itself): the
# Kubernetes commands, etcd, CoreDNS and the pause binary, built from the Go module proxy into a
# cache that later runs reuse, and the packing of binaries as one-layer images.
# A component whose binaries exist and whose stamp (versions, Go version, source hash) matches is
# skipped, so a warm build takes well under a second.
#
# Environment (all optional):
#   KUBE_FACE_CACHE           cache root (default ~/.cache/kube-face)
#   KUBE_FACE_K8S_VERSION     k8s.io/kubernetes version (default v1.34.12)
#   KUBE_FACE_ETCD_VERSION    go.etcd.io/etcd/server/v3 version (default v3.6.16)
#   KUBE_FACE_COREDNS_VERSION github.com/coredns/coredns version (default v1.14.7)
#   KUBE_FACE_BUILD_JOBS      go build -p (default 1: a 2-core machine stays usable)
#   KUBE_FACE_NICE            nice level for the compiler (default 19)
#   GOMODCACHE / GOCACHE      default to $KUBE_FACE_CACHE/go/{mod,build}

K8S_VERSION=${KUBE_FACE_K8S_VERSION:-v1.34.12}
ETCD_VERSION=${KUBE_FACE_ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${KUBE_FACE_COREDNS_VERSION:-v1.14.7}
CACHE=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
JOBS=${KUBE_FACE_BUILD_JOBS:-1}
NICE=${KUBE_FACE_NICE:-19}
K8S_BUILD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ROOT="$CACHE/k8s/$K8S_VERSION"
BIN="$ROOT/bin"
SRC="$ROOT/src"

if command -v go >/dev/null 2>&1; then GO=$(command -v go)
elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
else echo "k8s-build.sh: no go toolchain found (need Go >= 1.26)" >&2; exit 1; fi

export GOMODCACHE=${GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE:-$CACHE/go/build}
export GOTOOLCHAIN=local          # never download a toolchain
export CGO_ENABLED=0              # static binaries, as upstream builds its server binaries
export GOFLAGS="-buildvcs=false -trimpath -modcacherw"
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

mkdir -p "$BIN" "$SRC"
log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s; }

# One build at a time per cache (two builds, or CI and a person, may race). Released when
# the process exits.
build_lock() {
  exec 9>"$ROOT/.build.lock"
  if ! flock -n 9; then log "another build holds $ROOT/.build.lock; waiting"; flock 9; fi
}

GOVER=$("$GO" env GOVERSION)
gobuild() { nice -n "$NICE" "$GO" build -p "$JOBS" "$@"; }

# up_to_date STAMP_NAME KEY BIN...: true when every binary exists and the stamp matches.
up_to_date() {
  local name=$1 key=$2; shift 2
  [ -f "$BIN/.stamp-$name" ] && [ "$(cat "$BIN/.stamp-$name")" = "$key" ] || return 1
  local b; for b in "$@"; do [ -x "$BIN/$b" ] || return 1; done
}
# install_bins NAME KEY TMPDIR BIN...: move freshly built binaries in, then stamp.
install_bins() {
  local name=$1 key=$2 tmp=$3; shift 3
  local b; for b in "$@"; do mv -f "$tmp/$b" "$BIN/$b"; done
  printf '%s' "$key" > "$BIN/.stamp-$name"
  rm -rf "$tmp"
}

# ---------------------------------------------------------------- Kubernetes
# k8s_wrapper DIR PKG...: write a wrapper module in DIR (emptied first) that requires
# k8s.io/kubernetes $K8S_VERSION with one replace per staging module, resolve PKG...
# and set K8S_LDFLAGS (version stamping).
k8s_wrapper() {
  local dir=$1; shift
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local staging_version="v0.${K8S_VERSION#v1.}"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir" || exit 1
  log "kubernetes $K8S_VERSION: reading k8s.io/kubernetes go.mod from the module proxy"
  local dl kk_mod kk_info
  # Also fetches the k/k module zip, which the build needs anyway.
  dl=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  kk_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$dl")
  kk_info=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"$dl")
  [ -f "$kk_mod" ] || { log "could not fetch k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
  # Staging modules: required at v0.0.0 and replaced by ./staging/src/... in k/k's go.mod. Its
  # replace block also names staging modules it does not require (sample-cli-plugin,
  # sample-controller), which the proxy does not serve at the staging version.
  local staging
  staging=$(awk '/=> \.\/staging\/src\//{print $1}' "$kk_mod" | sort -u)
  local required
  required=$(awk '$2=="v0.0.0"{print $1}' "$kk_mod" | sort -u)
  staging=$(comm -12 <(echo "$staging") <(echo "$required"))
  local kk_go kk_godebug
  kk_go=$(awk '$1=="go"{print $2; exit}' "$kk_mod")
  kk_godebug=$(awk '$1=="godebug"{print $2; exit}' "$kk_mod")
  {
    echo "module kube-face.local/build/kubernetes"
    echo
    echo "go $kk_go"
    [ -n "$kk_godebug" ] && { echo; echo "godebug $kk_godebug"; }
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    local m; for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } > go.mod
  log "kubernetes: wrapper go.mod with $(echo "$staging" | wc -w) staging replaces ($staging_version)"
  log "kubernetes: resolving modules (go get)"
  # Every package is named with its version: a bare `go get` would upgrade k/k to the newest release.
  nice -n "$NICE" "$GO" get "${@/%/@$K8S_VERSION}" >&2
  local commit="" date=""
  [ -f "$kk_info" ] && commit=$(sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p' "$kk_info" | head -1)
  [ -f "$kk_info" ] && date=$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$kk_info" | head -1)
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean"
    [ -n "$commit" ] && ld+=" -X $pkg.gitCommit=$commit"
    [ -n "$date" ] && ld+=" -X $pkg.buildDate=${date%%.*}"
  done
  K8S_LDFLAGS=$ld
}

# build_k8s_bins STAMP WRAPPER LABEL BIN...: the Kubernetes commands BIN... from the wrapper
# module in $SRC/WRAPPER, stamped as STAMP (one dir each, so one set never invalidates the other).
build_k8s_bins() {
  local stamp=$1 wrapper=$2 label=$3; shift 3
  local bins=("$@")
  local staging_version="v0.${K8S_VERSION#v1.}"
  local key="$stamp=$K8S_VERSION staging=$staging_version go=$GOVER"
  if up_to_date "$stamp" "$key" "${bins[@]}"; then log "$label $K8S_VERSION: up to date"; return; fi
  local t; t=$(now)
  local pkgs=() b; for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  k8s_wrapper "$SRC/$wrapper" "${pkgs[@]}"
  local tmp="$ROOT/.tmp-$stamp"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "kubernetes: compiling ${bins[*]} (go build -p $JOBS, nice $NICE; cold: minutes to tens of minutes)"
  gobuild -ldflags "$K8S_LDFLAGS" -o "$tmp/" "${pkgs[@]}"
  install_bins "$stamp" "$key" "$tmp" "${bins[@]}"
  log "$label $K8S_VERSION: built in $(( $(now) - t ))s"
}

# The control plane (and kubectl).
build_k8s() { build_k8s_bins k8s kubernetes kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl; }

# The node's commands, kubelet and kube-proxy, from the same k8s.io/kubernetes version.
build_k8s_node() { build_k8s_bins k8s-node kubernetes-node kubelet/kube-proxy kubelet kube-proxy; }

# ---------------------------------------------------------------- packing
# pack_dir REF DIR OUT.tar ENTRYPOINT_JSON: a one-layer image of DIR's contents, as a
# docker-archive tar (what `docker load` and minikube's image cache read). Deterministic
# (sorted, mtime 0), so the same inputs give the same image ID. Written under another name and
# then renamed: a reader (kit.sh install) never copies half a file.
pack_dir() {
  local ref=$1 root=$2 out=$3 entrypoint=$4 work; work=$(mktemp -d)
  mkdir -p "$work/img"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .
  local diff; diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir -p "$work/img/$diff"; mv "$work/layer.tar" "$work/img/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"kube-face scripts/airgap/k8s-build.sh"}]}' \
    "$entrypoint" "$diff" > "$work/img/config.json"
  local cfg; cfg=$(sha256sum "$work/img/config.json" | cut -d' ' -f1)
  mv "$work/img/config.json" "$work/img/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$ref" "$diff" > "$work/img/manifest.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/img" -cf "$out.tmp" .
  mv -f "$out.tmp" "$out"
  rm -rf "$work"
}
# pack_image REF BINARY OUT.tar [DIR]: one-layer image holding only BINARY, in DIR (default /),
# which is also its entrypoint.
pack_image() {
  local ref=$1 binary=$2 out=$3 dir=${4:-} work; work=$(mktemp -d)
  local name; name=$(basename "$binary")
  mkdir -p "$work/$dir"
  cp "$binary" "$work/$dir/$name"
  pack_dir "$ref" "$work" "$out" "[\"$dir/$name\"]"
  rm -rf "$work"
}

# ------------------------------------------------------------------- pause
# The sandbox image's binary (pause/main.go: only the standard library), packed by kit.sh under
# kubeadm's pause tag.
build_pause() {
  local src_sum; src_sum=$(cat "$K8S_BUILD_SRC/pause/go.mod" "$K8S_BUILD_SRC/pause/main.go" | sha256sum | cut -c1-16)
  local key="pause src=$src_sum go=$GOVER"
  if up_to_date pause "$key" pause; then log "pause: up to date"; return; fi
  local t tmp="$ROOT/.tmp-pause"; t=$(now); rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$K8S_BUILD_SRC/pause" && gobuild -ldflags "-s -w" -o "$tmp/pause" .)
  install_bins pause "$key" "$tmp" pause
  log "pause: built in $(( $(now) - t ))s"
}

# ------------------------------------------------------------------- CoreDNS
# CoreDNS with only the plugins kubeadm's and minikube's Corefile use (coredns/main.go).
build_coredns() {
  local main="$K8S_BUILD_SRC/coredns/main.go"
  local src_sum; src_sum=$(sha256sum "$main" | cut -c1-16)
  # The key's text, image= included, is what warm caches hold: any change to it recompiles CoreDNS.
  local key="coredns=$COREDNS_VERSION src=$src_sum image=kube-face.local/coredns:${COREDNS_VERSION#v} go=$GOVER"
  if up_to_date coredns "$key" coredns; then log "coredns $COREDNS_VERSION: up to date"; return; fi
  local t dir="$SRC/coredns"; t=$(now)
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir" || exit 1
  printf 'module kube-face.local/build/coredns\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > go.mod
  cp "$main" main.go
  log "coredns $COREDNS_VERSION: resolving modules"
  local pkgs; pkgs=$(sed -n 's/^[[:space:]]*\(_ \)\{0,1\}"\(github.com\/coredns\/coredns\/[^"]*\)"$/\2/p' main.go)
  # shellcheck disable=SC2046  # one argument per package
  nice -n "$NICE" "$GO" get $(for p in $pkgs; do echo "$p@$COREDNS_VERSION"; done) >&2
  local tmp="$ROOT/.tmp-coredns"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "coredns: compiling"
  gobuild -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$tmp/coredns" .
  install_bins coredns "$key" "$tmp" coredns
  log "coredns $COREDNS_VERSION: built in $(( $(now) - t ))s"
}

# ---------------------------------------------------------------------- etcd
# The wrapper requires go.etcd.io/etcd/server/v3, whose root package is etcd's main.
build_etcd() {
  local key="etcd=$ETCD_VERSION go=$GOVER"
  if up_to_date etcd "$key" etcd; then log "etcd $ETCD_VERSION: up to date"; return; fi
  local t dir="$SRC/etcd"; t=$(now)
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir" || exit 1
  printf 'module kube-face.local/build/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  log "etcd $ETCD_VERSION: resolving modules"
  nice -n "$NICE" "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  local tmp="$ROOT/.tmp-etcd"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "etcd: compiling"
  gobuild -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  install_bins etcd "$key" "$tmp" etcd
  log "etcd $ETCD_VERSION: built in $(( $(now) - t ))s"
}
