# shellcheck shell=bash
# A NetworkPolicy-enforcing CNI for minikube in the offline kit, sourced by scripts/airgap/kit.sh:
# sigs.k8s.io/kube-network-policies (the SIG Network agent kind uses) from the Go module proxy,
# with kube-network-policies.patch applied, and install-cni/ (writes the bridge conflist), packed
# into one image; cni.yaml rendered with that image is what `minikube start --cni=<file>` applies.
#   build_netpol     binaries, image and manifest into $KIT (stamped, a warm run is instant)
#   install_netpol   the image into minikube's image cache, recorded so that every start loads
#                    it (kit.sh's cache_image); the manifest to <minikube home>/kube-face/netpol-cni.yaml
# The patch: kube-network-policies queues packets with nftables' `queue` expression, which a
# kernel built without CONFIG_NFT_QUEUE rejects (`nft add rule ... queue num 100` fails with
# "Could not process rule: No such file or directory"); the patched agent queues with the xtables
# NFQUEUE target through nft_compat (CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_TARGET_NFQUEUE), in the
# same inet table, which such kernels have.
NETPOL_DIR="$HERE/netpol"
NETPOL_VERSION=${KUBE_FACE_NETPOL_VERSION:-v0.8.0}
NETPOL_IMAGE="kube-face.local/kube-network-policies:$NETPOL_VERSION-xt"
NETPOL_OUT="$KIT/netpol"

build_netpol() {
  local key
  key="kube-network-policies=$NETPOL_VERSION go=$GOVER $(cat "$NETPOL_DIR/kube-network-policies.patch" \
    "$NETPOL_DIR/install-cni/go.mod" "$NETPOL_DIR/install-cni/main.go" "$NETPOL_DIR/cni.yaml" | sha256sum | cut -c1-16)"
  if [ -f "$NETPOL_OUT/cni.yaml" ] && [ -f "$(image_file "$NETPOL_IMAGE")" ] \
     && [ "$(cat "$NETPOL_OUT/.stamp" 2>/dev/null)" = "$key" ]; then
    log "kube-network-policies $NETPOL_VERSION: up to date"; return
  fi
  local t; t=$(now)
  local src="$KIT/src/kube-network-policies" tmp="$KIT/.tmp-netpol" mod
  mod=$("$GO" mod download -json "sigs.k8s.io/kube-network-policies@$NETPOL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$mod" ] || { log "could not fetch sigs.k8s.io/kube-network-policies@$NETPOL_VERSION"; exit 1; }
  rm -rf "$src" "$tmp"; mkdir -p "$tmp/root/bin" "$NETPOL_OUT"
  cp -r "$mod" "$src"; chmod -R u+w "$src"
  patch -s -p1 -d "$src" < "$NETPOL_DIR/kube-network-policies.patch"
  log "kube-network-policies $NETPOL_VERSION: compiling (go build -p $JOBS, nice $NICE)"
  # The module's own go.mod and go.sum pin every dependency.
  (cd "$src" && GOFLAGS="$GOFLAGS -mod=mod" gobuild -ldflags "-s -w" -o "$tmp/root/bin/kube-network-policies" ./cmd)
  (cd "$NETPOL_DIR/install-cni" && gobuild -ldflags "-s -w" -o "$tmp/root/bin/install-cni" .)
  local f; f=$(image_file "$NETPOL_IMAGE"); mkdir -p "$(dirname "$f")"
  pack_dir "$NETPOL_IMAGE" "$tmp/root" "$f" '["/bin/kube-network-policies"]'
  sed "s#@IMAGE@#$NETPOL_IMAGE#g" "$NETPOL_DIR/cni.yaml" > "$NETPOL_OUT/cni.yaml"
  printf '%s' "$key" > "$NETPOL_OUT/.stamp"
  rm -rf "$tmp" "$src"
  log "kube-network-policies $NETPOL_VERSION: image $NETPOL_IMAGE and $NETPOL_OUT/cni.yaml in $(( $(now) - t ))s"
}

install_netpol() {
  local mh; mh=$(minikube_home)
  cache_image "$NETPOL_IMAGE" "$(image_file "$NETPOL_IMAGE")"
  mkdir -p "$mh/kube-face"
  cp -f "$NETPOL_OUT/cni.yaml" "$mh/kube-face/netpol-cni.yaml"
  log "installed: $NETPOL_IMAGE in minikube's image cache, CNI manifest $mh/kube-face/netpol-cni.yaml"
}
