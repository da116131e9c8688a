#!/usr/bin/env bash
# QEMU user emulation for foreign-architecture builds (arm64 on x86_64 and back):
# Debian's qemu-user-static registers its handlers with binfmt_misc (flag F: the
# kernel opens the interpreter at registration, so it also runs inside chroots
# and BuildKit's runc containers, where /usr/libexec/qemu-binfmt is absent).
#
#   hack/binfmt.sh setup        mount binfmt_misc if needed and enable qemu-aarch64
#                               (make deps); says why when it cannot, exits 0
#   hack/binfmt.sh check ARCH   exit 1 with the fix when ARCH (Debian or kernel
#                               name) cannot run here
set -euo pipefail
mnt=${GPUIMG_BINFMT_MISC:-/proc/sys/fs/binfmt_misc} # overridable for a dry check of the messages

qemu_name() {
  case "$1" in
    arm64 | aarch64) echo aarch64 ;;
    amd64 | x86_64) echo x86_64 ;;
    *) echo "$1" ;;
  esac
}

native() { [ "$(qemu_name "$1")" = "$(uname -m)" ]; }

enabled() { grep -qx enabled "$mnt/qemu-$1" 2>/dev/null; }

setup() {
  local name
  name=$(qemu_name arm64)
  native arm64 && return 0
  if [ ! -f "$mnt/status" ] && ! mount -t binfmt_misc binfmt_misc "$mnt" 2>/dev/null; then
    echo "install-deps: binfmt_misc is not mounted at $mnt and cannot be mounted here (needs root on the host, or a privileged container):" >&2
    echo "  arm64 builds, the arm64 base and the arm64 tests need it; on the host run" >&2
    echo "  'mount -t binfmt_misc binfmt_misc $mnt && update-binfmts --enable qemu-$name'" >&2
    return 0
  fi
  if ! enabled "$name"; then
    update-binfmts --enable "qemu-$name" >/dev/null 2>&1 || true
  fi
  if ! enabled "$name"; then
    echo "install-deps: qemu-$name is not registered with binfmt_misc ($(update-binfmts --display "qemu-$name" 2>&1 | head -n 2 | tr '\n' ' '))" >&2
    echo "  run 'update-binfmts --enable qemu-$name' as root; arm64 builds and tests need it" >&2
  fi
}

check() {
  local name
  name=$(qemu_name "${1:?usage: hack/binfmt.sh check ARCH}")
  native "$1" && return 0
  if enabled "$name"; then return 0; fi
  echo "binfmt: $1 programs cannot run on this $(uname -m) machine: no QEMU handler for $name in $mnt." >&2
  echo "  fix: 'make deps' (installs qemu-user-static and binfmt-support and registers them), or by hand:" >&2
  echo "  'apt-get install qemu-user-static binfmt-support && mount -t binfmt_misc binfmt_misc $mnt; update-binfmts --enable qemu-$name'" >&2
  exit 1
}

case "${1:-}" in
  setup) setup ;;
  check) check "${2:-}" ;;
  *) echo "usage: hack/binfmt.sh setup | check ARCH" >&2; exit 2 ;;
esac
