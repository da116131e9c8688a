#!/usr/bin/env bash
# Makes the Debian base image for the demo and the end-to-end tests: debootstrap
# --variant=minbase bookworm, cleaned of apt lists and caches, packed by
# internal/cmd/mkbase into an OCI layout (deterministic: fixed mtimes, sorted).
# Cached: does nothing when DEST/index.json exists. Needs root and Debian's apt mirror.
set -euo pipefail
dest=${1:?usage: hack/mkbase.sh DEST-OCI-LAYOUT-DIR}
suite=${GPUIMG_BASE_SUITE:-bookworm}
mirror=${GPUIMG_BASE_MIRROR:-http://deb.debian.org/debian}
if [ -f "$dest/index.json" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "mkbase: debootstrap needs root; run 'sudo make base'" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/gpuimg-mkbase.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "mkbase: debootstrap --variant=minbase $suite from $mirror (a minute or two)" >&2
if ! debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  echo "mkbase: debootstrap failed (log above); check that $mirror is reachable or set GPUIMG_BASE_MIRROR" >&2
  exit 1
fi
# An image needs none of these: package lists and caches, host-specific files, logs.
rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/* \
  "$work"/rootfs/var/cache/debconf/*-old "$work"/rootfs/var/log/* "$work"/rootfs/tmp/* \
  "$work"/rootfs/etc/resolv.conf "$work"/rootfs/etc/hostname
mkdir -p "$(dirname "$dest")"
go run ./internal/cmd/mkbase --rootfs "$work/rootfs" --out "$dest" --ref "docker.io/library/debian:$suite"
echo "mkbase: wrote $dest (docker.io/library/debian:$suite)" >&2
