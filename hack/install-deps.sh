#!/usr/bin/env bash
# Installs the Debian packages gpuimg's demo, tests and benchmarks need, when missing.
# Safe to run again: packages already present are not touched. Then registers
# QEMU's arm64 handler with binfmt_misc (hack/binfmt.sh), for arm64 builds here.
set -euo pipefail

packages=(
  runc         # the OCI runtime buildkitd's OCI worker drives
  debootstrap  # makes the Debian base image (no Docker Hub here)
  docker.io    # dockerd: `docker load` and `docker run --device` end-to-end tests
  podman       # the CDI end-to-end test
  uidmap       # podman's user-namespace helpers
  iptables     # dockerd refuses to start without the binary, even with --iptables=false
  gcc libc6-dev # compiles the stand-in driver's ELF libraries and nvidia-smi
  liblzma-dev libzstd-dev # static liblzma.a and libzstd.a: the stand-in's embedded C decompressor
  curl zstd xz-utils # benchmarks compare against curl; payload codecs for fixtures
  busybox-static # a static busybox: the tiny image the launcher end-to-end tests run (no Docker Hub)
  qemu-user-static binfmt-support # run arm64 programs here: the arm64 base, arm64 builds and tests
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross # cross-compiles the aarch64 stand-in's libraries and tools
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}; run 'sudo make deps'" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ]; then
  "$(dirname "$0")/binfmt.sh" setup
else
  "$(dirname "$0")/binfmt.sh" check arm64 || true
fi
