#!/usr/bin/env bash
# `make bench`: the driver package micro-benchmarks against curl, sha256sum and
# tail|gzip|tar (bench/drivers); gpuimg build against the classic Dockerfile
# recipe on one private buildkitd (bench/build) for each of NVIDIA's payload
# formats, zstd (today's drivers) and xz (450.102.04's era), which prints the
# tables and writes bench/results/<format>-payload/{latest.json,latest.md,chart.svg};
# the issue-11 plans (bench/fleet: extraction once, one driver layer for many
# bases, a fleet of 3 drivers x 2 bases) for both formats; the layer
# compressors (bench/compress); and, for both formats, the designs that put
# every core on the driver layer's compression end to end (bench/cores:
# BuildKit compressing, a packer step handing BuildKit the blob, the
# tarball and push as concurrent solves, and --cache-to with them). The Makefile has already run deps, build
# (bin/gpuimg, bin/gpuimg-unpack), buildkitd and base. BENCH_RUNS=1 for a quick
# look (default 3 rounds). The recipe's `apt install` needs Debian's mirror
# from inside the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: buildkitd runs as root here; run 'sudo make bench'" >&2
  exit 1
fi
go run ./bench/drivers -runs "${BENCH_DRIVER_RUNS:-9}"
go run ./bench/build -bin bin/gpuimg -runs "${BENCH_RUNS:-3}" -payload zstd \
  -results bench/results/zstd-payload "$@"
go run ./bench/build -bin bin/gpuimg -runs "${BENCH_RUNS:-3}" -payload xz -skip-arm64 \
  -results bench/results/xz-payload "$@"
for payload in zstd xz; do
  go run ./bench/fleet -payload "$payload" | tee "bench/results/fleet-$payload-payload.txt"
done
run=$(go run ./internal/standin/cmd/mkstandin -version 999.10.01 -compression zstd -scale realistic)
go run ./bench/compress "$run" | tee bench/results/compress.txt
for payload in zstd xz; do
  go run ./bench/cores -runs "${BENCH_RUNS:-3}" -payload "$payload" | tee "bench/results/cores-$payload-payload.txt"
done
