#!/usr/bin/env bash
# Builds a small OCI image from the host's static busybox and pushes it to a registry with the
# distribution API (curl, monolithic uploads). Used by the demo and the benchmark; the tests
# build their own images in Rust.
#
#   scripts/make-image.sh REGISTRY_URL REPO TAG [FILLER_LAYERS] [FILLER_MB]
#
# FILLER_LAYERS extra gzip layers of FILLER_MB MB each (half random, half host libraries, so
# they compress like real toolchain layers) make a bigger image for benchmarks.
set -euo pipefail
registry=${1:?registry URL, e.g. http://127.0.0.1:5000}
repo=${2:?repository, e.g. library/busybox}
tag=${3:?tag}
filler_layers=${4:-0}
filler_mb=${5:-0}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "error: $busybox is missing; install busybox-static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layers=()

# add_layer DIR: tars DIR as a gzip layer; appends "digest diff_id size" to layers.
add_layer() {
    local dir=$1 n=${#layers[@]}
    tar --numeric-owner --owner=0 --group=0 --mtime=@1600000000 --sort=name -C "$dir" -cf "$work/layer$n.tar" .
    local diff_id; diff_id=sha256:$(sha256sum "$work/layer$n.tar" | cut -d' ' -f1)
    gzip -1 -n -c "$work/layer$n.tar" >"$work/layer$n.tgz"
    rm "$work/layer$n.tar"
    local digest; digest=sha256:$(sha256sum "$work/layer$n.tgz" | cut -d' ' -f1)
    layers+=("$digest $diff_id $(stat -c %s "$work/layer$n.tgz") $work/layer$n.tgz")
}

# ROOTFS_TAR: a root file system as a tar (bench/debian-images.sh's) instead of busybox.
if [ -n "${ROOTFS_TAR:-}" ]; then
    diff_id=sha256:$(sha256sum "$ROOTFS_TAR" | cut -d' ' -f1)
    gzip -1 -n -c "$ROOTFS_TAR" >"$work/layer0.tgz"
    digest=sha256:$(sha256sum "$work/layer0.tgz" | cut -d' ' -f1)
    layers+=("$digest $diff_id $(stat -c %s "$work/layer0.tgz") $work/layer0.tgz")
else
    root=$work/root
    mkdir -p "$root"/{bin,etc,tmp,root,home,dev,proc,sys}
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    for applet in sh ash ls cat id true false echo env pwd stat touch mkdir rm cp mv grep sed head tail wc sleep ps kill uname hostname; do
        ln -s busybox "$root/bin/$applet"
    done
    # Where a merged-/usr host keeps its libraries, so that the host's /usr mounted with
    # `-v /usr:/usr:ro` runs inside (the benchmarks' python3, pip and curl).
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
    add_layer "$root"
fi

for ((i = 1; i <= filler_layers; i++)); do
    dir=$work/filler$i
    mkdir -p "$dir/opt/filler$i"
    half=$((filler_mb * 1024 * 1024 / 2))
    head -c "$half" /dev/urandom >"$dir/opt/filler$i/random.bin"
    find /usr/lib /usr/share -type f -size +64k 2>/dev/null | sort | tail -n +$((i * 200)) | head -n 4000 \
        | xargs cat 2>/dev/null | head -c "$half" >"$dir/opt/filler$i/libs.bin" || true
    add_layer "$dir"
    rm -rf "$dir"
done

push_blob() { # FILE DIGEST
    local location sep
    location=$(curl -fsS -X POST -D - -o /dev/null "$registry/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    case $location in http*) ;; *) location=$registry$location ;; esac
    sep='?'; [[ $location == *\?* ]] && sep='&'
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -T "$1" -o /dev/null "$location${sep}digest=$2"
}

diff_ids=() layer_json=()
for entry in "${layers[@]}"; do
    read -r digest diff_id size file <<<"$entry"
    push_blob "$file" "$digest"
    diff_ids+=("\"$diff_id\"")
    layer_json+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$digest\",\"size\":$size}")
done
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
join() { local IFS=,; echo "$*"; }
# A history entry per layer: builders (podman build) match them against the layers.
history=()
for _ in "${layers[@]}"; do history+=('{"created_by":"scripts/make-image.sh"}'); done
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
    "$arch" "$(join "${diff_ids[@]}")" "$(join "${history[@]}")" >"$work/config.json"
config_digest=sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)
push_blob "$work/config.json" "$config_digest"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$config_digest" "$(stat -c %s "$work/config.json")" "$(join "${layer_json[@]}")" >"$work/manifest.json"
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' -T "$work/manifest.json" -o /dev/null \
    "$registry/v2/$repo/manifests/$tag"
echo "pushed ${registry#*://}/$repo:$tag (${#layers[@]} layers)"
