#!/usr/bin/env bash
# `make bench`: the driver package micro-benchmarks against curl, sha256sum and
# tail|gzip|tar (bench/drivers), then gpuimg build against the classic Dockerfile
# recipe on one private buildkitd (bench/build), which prints the table and writes
# bench/results/{latest.json,latest.md,chart.svg}. The Makefile has already
# run deps, build (bin/gpuimg), buildkitd and base. BENCH_RUNS=1 for a quick
# look (default 3 rounds: about 20 minutes on 2 cores). The recipe's
# `apt install` needs Debian's mirror from inside the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: buildkitd runs as root here; run 'sudo make bench'" >&2
  exit 1
fi
go run ./bench/drivers -runs "${BENCH_DRIVER_RUNS:-9}"
exec go run ./bench/build -bin bin/gpuimg -runs "${BENCH_RUNS:-3}" "$@"
