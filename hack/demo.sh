#!/usr/bin/env bash
# `make demo`: build a driver image end to end on a private buildkitd, from the
# debootstrap Debian base (an OCI layout: no registry, no network), with a
# generated stand-in .run in NVIDIA's real format, then show what the image holds.
# The Makefile has already run deps, build (bin/gpuimg), buildkitd and base.
set -euo pipefail
cd "$(dirname "$0")/.."
driver=${GPUIMG_DEMO_DRIVER:-580.159.04}
base_dir=${GPUIMG_TEST_BASE:-$PWD/.cache/base/debian-bookworm}
out=${GPUIMG_DEMO_OUT:-$PWD/.cache/demo}
buildkitd=${GPUIMG_BUILDKITD:-$PWD/bin/buildkitd}
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: buildkitd runs as root here; run 'sudo make demo'" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*" >&2; }

work=$(mktemp -d /tmp/gpuimg-demo.XXXXXX)
bk_pid=
cleanup() {
  if [ -n "$bk_pid" ]; then
    kill "$bk_pid" 2>/dev/null || true
    wait "$bk_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
addr="unix://$work/buildkitd.sock"

step "starting a private buildkitd ($addr)"
"$buildkitd" --oci-worker=true --containerd-worker=false --oci-worker-gc=false \
  --root "$work/root" --addr "$addr" >"$work/buildkitd.log" 2>&1 &
bk_pid=$!
for _ in $(seq 1 100); do
  [ -S "$work/buildkitd.sock" ] && break
  if ! kill -0 "$bk_pid" 2>/dev/null; then
    tail -n 20 "$work/buildkitd.log" >&2
    echo "demo: buildkitd exited (log above)" >&2
    exit 1
  fi
  sleep 0.1
done

step "generating a stand-in NVIDIA-Linux-x86_64-$driver.run (real makeself format, installer that mimics NVIDIA's)"
run=$(go run ./internal/standin/cmd/mkstandin -version "$driver")
ls -l "$run" >&2

mkdir -p "$out"
dest="$out/gpuimg-demo-$driver.tar"
step "gpuimg build (the stand-in is not NVIDIA's file, so its checksum cannot match the catalog's: --allow-unverified, and the image says so)"
(set -x; bin/gpuimg build --addr "$addr" --progress plain \
  --driver "$driver" --driver-file "$run" --allow-unverified \
  --base "oci-layout://$base_dir:bookworm" \
  -t "gpuimg-demo:{driver}" --output "type=docker,dest=$dest")

step "rebuilding unchanged (cached)"
start=$(date +%s%N)
bin/gpuimg build --addr "$addr" --progress quiet --driver "$driver" --driver-file "$run" --allow-unverified \
  --base "oci-layout://$base_dir:bookworm" -t "gpuimg-demo:{driver}" --output "type=docker,dest=$dest" 2>/dev/null
echo "rebuild took $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2

step "the image ($dest; docker load -i it on a GPU host)"
go run ./internal/cmd/imgshow "$dest"
