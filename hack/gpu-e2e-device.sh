#!/bin/sh
# Entry point on the GPU host for a folder packed by hack/gpu-e2e-pack.sh: unpacks the binaries,
# runs hack/gpu-e2e.sh, and leaves the summary, the console log and every result file (one
# tar.gz) in OUTDIR.   Usage: sh run.sh OUTDIR
set -u
pack=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: sh run.sh OUTDIR}
mkdir -p "$out"
bin=$(mktemp -d /tmp/gpu-e2e-bin.XXXXXX)
for f in "$pack"/bin/*.xz; do
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$bin/$(basename "$f" .xz)"
done
chmod 755 "$bin"/*
results=$(mktemp -d /tmp/gpu-e2e-results.XXXXXX)
echo "checkout $(cat "$pack/checkout" 2>/dev/null)" >"$results/checkout.txt"
PATH=$bin:$PATH GPUIMG=$bin/gpuimg RUNC=$bin/runc MKBASE=$bin/mkbase BUSYBOX=$bin/busybox BUILDKITD=$bin/buildkitd \
  MKREALRUN=$bin/mkrealrun NVIDIA_INSTALLER=$bin/nvidia-installer DEBS=$pack/debs \
  bash "$pack/hack/gpu-e2e.sh" "$results" >"$out/console.log" 2>&1
rc=$?
cp "$results/summary.txt" "$out/summary.txt"
tar -C "$results" -czf "$out/results.tar.gz" .
echo "gpu-e2e exit $rc"
exit $rc
