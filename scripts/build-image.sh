#!/usr/bin/env bash
# `make image`: the OCI image IMAGE (localhost/weir:VERSION) from Containerfile, FROM scratch, with buildah (vfs
# storage, as root). The context's rootfs/ gets the binary, the shared libraries `ldd` names and the loader, the
# configuration and the profiles. Then it writes the image as an OCI archive, $WEIR_DIST/weir-image-VERSION.tar (the
# file to load into each node's runtime), and $WEIR_DIST/kubernetes/{daemonset,cleanup}.yaml: deploy/kubernetes/ with
# every image: line set to IMAGE pinned by the digest of that archive's manifest (IMAGE@sha256:...). WEIR_DIST defaults to .build/dist.
# Usage: scripts/build-image.sh BIN IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: build-image.sh BIN IMAGE}
image=${2:?usage: build-image.sh BIN IMAGE}
[ -x "$bin" ] || { echo "build-image: $bin is not an executable" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "build-image: buildah needs root here" >&2; exit 1; }
ctx=$(mktemp -d /tmp/weir-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs

install -D -m 0755 "$bin" "$rootfs/usr/bin/weir"
# Libraries at the paths the loader looks them up (ldd's "=>" targets), the loader at its ELF interpreter path;
# symlinks resolved so each is a plain file.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "build-image: ldd named no libraries for $bin" >&2; exit 1; }
for lib in $libs; do
  install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
done
interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -e "$rootfs$interp" ] || install -D -m 0755 "$(readlink -f "$interp")" "$rootfs$interp"
chmod 0755 "$rootfs$interp"

install -d "$rootfs/etc/weir/profiles" "$rootfs/var/lib/weir" "$rootfs/run"
install -d -m 1777 "$rootfs/tmp"
install -m 0644 packaging/weir.conf "$rootfs/etc/weir/weir.conf"
install -m 0644 profiles/*.profile profiles/README.md "$rootfs/etc/weir/profiles/"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
  > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
cp Containerfile "$ctx/Containerfile"

version=$(cat VERSION)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
buildah --storage-driver vfs rmi "$image" >/dev/null 2>&1 || true
buildah --storage-driver vfs bud --quiet --layers=false --build-arg WEIR_VERSION="$version" \
  --build-arg WEIR_COMMIT="$commit" -f "$ctx/Containerfile" -t "$image" "$ctx" >/dev/null

# The archive's manifest is what a runtime imports, byte for byte, so its digest is the one to pin; checked against
# the archive's own index.json rather than trusted.
dist=${WEIR_DIST:-.build/dist}
mkdir -p "$dist/kubernetes"
archive=$dist/weir-image-$version.tar
rm -f "$archive"
buildah --storage-driver vfs push --quiet --digestfile "$ctx/digest" "$image" "oci-archive:$archive:$image" >/dev/null
digest=$(cat "$ctx/digest")
indexed=$(tar -xOf "$archive" index.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')
[ "$indexed" = "$digest" ] || { echo "build-image: $archive names $indexed, buildah reported $digest" >&2; exit 1; }
for f in deploy/kubernetes/daemonset.yaml deploy/kubernetes/cleanup.yaml; do
  out=$dist/kubernetes/$(basename "$f")
  sed "s|^\( *image: \).*\$|\1$image@$digest|" "$f" > "$out"
  ! grep -E '^ *image: ' "$out" | grep -vq "@$digest\$" || { echo "build-image: $out has an image not pinned to $digest" >&2; exit 1; }
done
echo "$archive: load it into each node's runtime; $dist/kubernetes/ runs $image@$digest"
buildah --storage-driver vfs images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
