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
dockerd_pid=
cleanup() {
  for pid in $bk_pid $dockerd_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # dockerd leaves overlay and netns mounts below its roots
  awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
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

step "launching it: the H200 host's /proc and /sys under a scratch root, its device nodes made by gpuimg host init-devices"
host_root="$work/host"
mkdir -p "$host_root"
cp -r testdata/hosts/h200-580.159.04/. "$host_root/"
(set -x; bin/gpuimg host init-devices --root "$host_root")
bin/gpuimg host --root "$host_root" 2>/dev/null | sed -n '/^device nodes/,/^$/p'

step "a private dockerd (Debian's 20.10, no toolkit) and docker load"
export DOCKER_HOST="unix://$work/docker.sock" PATH="/usr/bin:/usr/sbin:$PATH"
dockerd --iptables=false --ip-masq=false --bridge=none --data-root "$work/docker" --exec-root "$work/docker-exec" \
  --host "$DOCKER_HOST" --pidfile "$work/docker.pid" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 300); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version --format 'dockerd {{.Server.Version}} at {{.Server.Os}}/{{.Server.Arch}}' || { tail -n 20 "$work/dockerd.log" >&2; exit 1; }
docker load -i "$dest"

step "gpuimg flags: exactly the nodes to pass (never --gpus)"
(set -x; bin/gpuimg flags --root "$host_root")

step "gpuimg run: the driver guard passes (image $driver = host $driver), then docker run --device ..."
(set -x; bin/gpuimg run --root "$host_root" -- --rm "gpuimg-demo:$driver" nvidia-smi)

step "the driver guard on a host that runs another driver (the 8-GPU 550.127.05 fixture) refuses, with the fix"
if bin/gpuimg run --dry-run --root testdata/hosts/8gpu-550.127.05 "gpuimg-demo:$driver"; then
  echo "demo: the guard should have refused" >&2
  exit 1
fi
echo "demo: done" >&2
