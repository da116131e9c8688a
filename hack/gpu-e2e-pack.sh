#!/usr/bin/env bash
# Packs everything hack/gpu-e2e.sh needs on a GPU host that has no Go, no Docker and no network
# into one folder (default .gpu-e2e/, which .git/info/exclude should ignore): gpuimg, mkbase,
# mkrealrun (CGO_ENABLED=0, stripped), buildkitd (bin/buildkitd or $BUILDKITD_BIN), Debian's runc and
# static busybox, all xz-compressed; NVIDIA's 580.119.02 nvidia-installer (the newest tagged 580
# release, nearest to a 580.159.04 host); Debian's libglvnd/EGL/Vulkan loader packages and their
# headers; the script itself. On the GPU host, as root:  sh DEST/run.sh OUTDIR
#
# Usage: hack/gpu-e2e-pack.sh [DEST]   (Debian/Ubuntu build machine with Go, xz, apt-get, runc)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=$(mkdir -p "${1:-$repo/.gpu-e2e}" && cd "${1:-$repo/.gpu-e2e}" && pwd)
installer=${NVIDIA_INSTALLER:-$repo/../shared/fixtures/nvidia-installer/580.119.02/nvidia-installer}
buildkitd=${BUILDKITD_BIN:-$repo/bin/buildkitd}
for f in "$buildkitd" "$installer"; do
  [ -x "$f" ] || { echo "gpu-e2e-pack: $f not found: build it (make buildkitd) or set BUILDKITD_BIN / NVIDIA_INSTALLER" >&2; exit 1; }
done
rm -rf "$dest/bin" "$dest/debs" "$dest/hack"
mkdir -p "$dest/bin" "$dest/debs" "$dest/hack" "$dest/tmp"
cd "$repo"
for cmd in cmd/gpuimg internal/cmd/mkbase internal/cmd/mkrealrun; do
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dest/tmp/$(basename "$cmd")" "./$cmd"
done
cp "$buildkitd" "$dest/tmp/buildkitd"
strip "$dest/tmp/buildkitd" 2>/dev/null || true
# NVIDIA's libGLX_nvidia.so.0 (also the Vulkan ICD) links libX11 and libXext even headless.
(cd "$dest/debs" && apt-get download libegl1 libglvnd0 libopengl0 libgles2 libvulkan1 \
  libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 \
  libegl-dev libgl-dev libvulkan-dev runc busybox-static >/dev/null)
tmp=$(mktemp -d)
dpkg -x "$dest"/debs/runc_*.deb "$tmp" && dpkg -x "$dest"/debs/busybox-static_*.deb "$tmp"
cp "$tmp/usr/sbin/runc" "$dest/tmp/runc" && strip "$dest/tmp/runc"
cp "$tmp/bin/busybox" "$dest/tmp/busybox"
rm -rf "$tmp" "$dest"/debs/runc_*.deb "$dest"/debs/busybox-static_*.deb
cp "$installer" "$dest/tmp/nvidia-installer"
for f in "$dest"/tmp/*; do xz -T0 -9 -c "$f" >"$dest/bin/$(basename "$f").xz"; done
rm -rf "$dest/tmp"
cp hack/gpu-e2e.sh "$dest/hack/" && cp -r hack/gpu-e2e "$dest/hack/"
cp hack/gpu-e2e-device.sh "$dest/run.sh"
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo -dirty)" >"$dest/checkout"
du -sh "$dest"
