#!/usr/bin/env bash
# Makes the Debian base image for the demo and the end-to-end tests: one
# debootstrap --variant=minbase tree per architecture (amd64 natively, arm64
# under QEMU user emulation), cleaned of apt lists and caches, each packed by
# internal/cmd/mkbase into its own OCI layout (deterministic: fixed mtimes,
# sorted), then joined into DEST as one multi-platform index tagged bookworm.
#
# Cached and keyed by inputs: each architecture's layout records the suite,
# mirror, architecture and recipe it was made from (DEST.parts/ARCH/gpuimg-base.key)
# and is remade only when one of them changes; DEST is re-joined only when a
# part changed. Needs root and Debian's apt mirror; arm64 needs `make deps`
# (qemu-user-static registered with binfmt_misc).
#
#   hack/mkbase.sh DEST            GPUIMG_BASE_ARCHES="amd64 arm64" (default)
set -euo pipefail
dest=${1:?usage: hack/mkbase.sh DEST-OCI-LAYOUT-DIR}
suite=${GPUIMG_BASE_SUITE:-bookworm}
mirror=${GPUIMG_BASE_MIRROR:-http://deb.debian.org/debian}
read -r -a arches <<<"${GPUIMG_BASE_ARCHES:-amd64 arm64}"
# Bump when the tree or its packing changes (what debootstrap installs, what is
# removed, how internal/cmd/mkbase writes a layer): every cached part is remade.
recipe=1
ref="docker.io/library/debian:$suite"
parts="$dest.parts"
cd "$(dirname "$0")/.."

part_key() { printf 'suite=%s mirror=%s arch=%s variant=minbase recipe=%s\n' "$suite" "$mirror" "$1" "$recipe"; }

# An amd64 layout made before bases were multi-platform (a single amd64 image,
# no key) came from this same recipe: adopt it rather than debootstrap again.
adopt_single_platform() {
  local dir="$parts/amd64"
  [ -f "$dest/index.json" ] && [ ! -f "$dest/gpuimg-base.key" ] && [ ! -e "$dir" ] || return 0
  grep -q '"application/vnd.oci.image.manifest.v1+json"' "$dest/index.json" || return 0
  mkdir -p "$parts"
  cp -a "$dest" "$dir.tmp"
  part_key amd64 >"$dir.tmp/gpuimg-base.key"
  mv "$dir.tmp" "$dir"
  echo "mkbase: kept the existing amd64 base as $dir" >&2
}

make_part() {
  local arch=$1 dir="$parts/$1" work
  if [ "$(cat "$dir/gpuimg-base.key" 2>/dev/null)" = "$(part_key "$arch")" ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "mkbase: debootstrap needs root; run 'sudo make base'" >&2
    exit 1
  fi
  if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    hack/binfmt.sh check "$arch"
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpuimg-mkbase.XXXXXX")
  # shellcheck disable=SC2064 # expand now: each part has its own work dir
  trap "rm -rf '$work'" EXIT
  echo "mkbase: debootstrap --variant=minbase --arch=$arch $suite from $mirror (native: a minute or two; emulated: 10-30 minutes)" >&2
  if ! debootstrap --variant=minbase --arch="$arch" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    echo "mkbase: debootstrap --arch=$arch failed (log above); check that $mirror is reachable or set GPUIMG_BASE_MIRROR" >&2
    exit 1
  fi
  # An image needs none of these: package lists and caches, host-specific files, logs.
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/* \
    "$work"/rootfs/var/cache/debconf/*-old "$work"/rootfs/var/log/* "$work"/rootfs/tmp/* \
    "$work"/rootfs/etc/resolv.conf "$work"/rootfs/etc/hostname
  mkdir -p "$parts"
  rm -rf "$dir"
  go run ./internal/cmd/mkbase --rootfs "$work/rootfs" --out "$dir" --ref "$ref" --arch "$arch" \
    --created-by "debootstrap --variant=minbase --arch=$arch $suite (gpuimg mkbase)"
  part_key "$arch" >"$dir/gpuimg-base.key"
  rm -rf "$work"
  trap - EXIT
}

adopt_single_platform
for arch in "${arches[@]}"; do
  make_part "$arch"
done
# DEST's key: every part's key and index, so a remade part re-joins DEST.
key=$(for arch in "${arches[@]}"; do cat "$parts/$arch/gpuimg-base.key" "$parts/$arch/index.json"; done | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dest/gpuimg-base.key" 2>/dev/null)" = "$key" ]; then
  exit 0
fi
from=()
for arch in "${arches[@]}"; do from+=(--from "$parts/$arch"); done
rm -rf "$dest.new"
go run ./internal/cmd/mkbase --join --out "$dest.new" --ref "$ref" "${from[@]}"
echo "$key" >"$dest.new/gpuimg-base.key"
rm -rf "$dest.old"
if [ -e "$dest" ]; then mv "$dest" "$dest.old"; fi
mv "$dest.new" "$dest"
rm -rf "$dest.old"
echo "mkbase: wrote $dest ($ref: ${arches[*]})" >&2
