#!/usr/bin/env bash
# Regenerates the host fixture roots in this directory: a copy of the real H200
# snapshot (../shared/fixtures/h200-580.159.04) and synthetic variants that
# each exercise one thing the launcher must get right. Device nodes cannot
# live in git, so every root lists its nodes in dev-nodes.tsv (read by the
# tests through host/hosttest, never by gpuimg itself: path, type,
# major, minor, octal mode[, uid, gid]); /dev/char links are real symlinks.
# Run from anywhere: testdata/hosts/generate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../../shared" && pwd)
cd "$here"

reset() { rm -rf "$1"; mkdir -p "$1"; }

# proc_devices ROOT FRONTEND_NAME UVM CAPS [extra lines...]
proc_devices() {
  local root=$1 frontend=$2 uvm=$3 caps=$4; shift 4
  mkdir -p "$root/proc"
  {
    echo "Character devices:"
    printf '  1 mem\n  4 tty\n  5 /dev/tty\n 10 misc\n136 pts\n'
    [ -n "$frontend" ] && echo "195 $frontend"
    [ -n "$uvm" ] && echo "$uvm nvidia-uvm"
    [ -n "$caps" ] && echo "$caps nvidia-caps"
    for l in "$@"; do echo "$l"; done
    printf '\nBlock devices:\n  7 loop\n259 blkext\n'
  } >"$root/proc/devices"
}

# gpu ROOT BDF MINOR UUID MODEL
gpu() {
  local d="$1/proc/driver/nvidia/gpus/$2"
  mkdir -p "$d"
  printf 'Model: \t\t %s\nIRQ:   \t\t 41\nGPU UUID: \t %s\nVideo BIOS: \t 96.00.a5.00.1a\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t %s\nDevice Minor: \t %s\nGPU Excluded:\t No\n' \
    "$5" "$4" "$2" "$3" >"$d/information"
}

# version ROOT VERSION open|proprietary [ARCH]
version() {
  local arch=${4:-x86_64}
  mkdir -p "$1/sys/module/nvidia" "$1/proc/driver/nvidia"
  echo "$2" >"$1/sys/module/nvidia/version"
  if [ "$3" = open ]; then
    printf 'NVRM version: NVIDIA UNIX Open Kernel Module for %s  %s  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Oct  8 03:22:07 UTC 2024\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n' "$arch" "$2"
  else
    printf 'NVRM version: NVIDIA UNIX %s Kernel Module  %s  Thu May  2 14:50:40 UTC 2024\nGCC version:  gcc version 9.4.0 (Ubuntu 9.4.0-1ubuntu1~20.04.2) \n' "$arch" "$2"
  fi >"$1/proc/driver/nvidia/version"
}

# params ROOT GID MODE_DECIMAL
params() {
  printf 'ModifyDeviceFiles: 1\nDeviceFileUID: 0\nDeviceFileGID: %s\nDeviceFileMode: %s\n' "$2" "$3" >"$1/proc/driver/nvidia/params"
}

# nodes ROOT < rows ; links ROOT : /dev/char links for every c row
nodes() { { echo "# path	type	major	minor	mode	uid	gid"; cat; } >"$1/dev-nodes.tsv"; }
links() {
  mkdir -p "$1/dev/char"
  grep -v '^#' "$1/dev-nodes.tsv" | while IFS=$'\t' read -r path type major minor _; do
    [ "$type" = c ] && ln -sfn "..${path#/dev}" "$1/dev/char/$major:$minor"
  done
}

# 1. The real H200 snapshot, as captured.
reset h200-580.159.04
cp -r "$shared/fixtures/h200-580.159.04/." h200-580.159.04/

# 1b. The H200 host hack/gpu-e2e.sh ran on (2026-11-28, docs/GPU-E2E.md): the same
# formats as the snapshot, plus the /proc/driver/nvidia/capabilities tree a
# live driver exposes with MIG off (mig/config, mig/monitor, fabric-imex-mgmt;
# its empty gpu0/mig/ directory cannot live in git) and no /dev/char at all.
r=h200-580.159.04-capabilities; reset $r
cp -r "$shared/fixtures/h200-580.159.04/." $r/
rm -f $r/README.md $r/nvidia-smi-L.txt
capfile() { # capfile ROOT RELPATH MINOR MODE_DECIMAL
  mkdir -p "$(dirname "$1/proc/driver/nvidia/capabilities/$2")"
  printf 'DeviceFileMinor: %s\nDeviceFileMode: %s\nDeviceFileModify: 1\n' "$3" "$4" >"$1/proc/driver/nvidia/capabilities/$2"
}
capfile $r mig/config 1 256; capfile $r mig/monitor 2 292; capfile $r fabric-imex-mgmt 4323 256

# 2. Eight GPUs whose Device Minor is not their index (bus order).
r=8gpu-550.127.05; reset $r
version $r 550.127.05 open; params $r 0 438
proc_devices $r nvidia 511 508 "509 nvidia-nvswitch"
bdfs=(0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0 0000:9a:00.0 0000:ab:00.0 0000:ba:00.0 0000:db:00.0)
minors=(2 3 0 1 6 7 4 5)
for i in "${!bdfs[@]}"; do
  gpu $r "${bdfs[$i]}" "${minors[$i]}" "GPU-0000000$i-1111-2222-3333-44444444444$i" "NVIDIA H100 80GB HBM3"
done
{
  printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n'
  for m in 0 1 2 3 4 5 6 7; do printf '/dev/nvidia%s\tc\t195\t%s\t666\t0\t0\n' $m $m; done
  printf '/dev/nvidia-uvm\tc\t511\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t511\t1\t666\t0\t0\n'
  printf '/dev/nvidia-modeset\tc\t195\t254\t666\t0\t0\n'
} | nodes $r
links $r

# 3. A pre-550 proprietary module: "Kernel Module  470.256.02", 195 nvidia-frontend.
r=pre550-470.256.02; reset $r
version $r 470.256.02 proprietary; params $r 0 438
proc_devices $r nvidia-frontend 510 235 "234 nvidia-nvlink"
gpu $r 0000:3b:00.0 0 GPU-5a1b2c3d-0e0f-4a4b-8c8d-9e9f0a0b0c0d "Tesla V100-PCIE-32GB"
printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n/dev/nvidia-uvm\tc\t510\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t510\t1\t666\t0\t0\n' | nodes $r
links $r

# 4. MIG enabled on GPU 0 (minor 0): GI 1 with CIs 0 and 1, GI 2 with CI 0.
r=mig-535.183.01; reset $r
version $r 535.183.01 open; params $r 0 438
proc_devices $r nvidia 508 509
gpu $r 0000:07:00.0 0 GPU-9f7e6d5c-4b3a-2918-0706-a5b4c3d2e1f0 "NVIDIA A100-SXM4-40GB"
gpu $r 0000:0f:00.0 1 GPU-1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809 "NVIDIA A100-SXM4-40GB"
mkdir -p $r/proc/driver/nvidia-caps
cp "$shared/fixtures/h200-580.159.04/proc/driver/nvidia-caps/mig-minors" $r/proc/driver/nvidia-caps/
cap() { # cap ROOT RELPATH MINOR
  mkdir -p "$(dirname "$1/proc/driver/nvidia/capabilities/$2")"
  printf 'DeviceFileMinor: %s\nDeviceFileMode: 292\nDeviceFileModify: 1\n' "$3" >"$1/proc/driver/nvidia/capabilities/$2"
}
cap $r mig/config 1; cap $r mig/monitor 2
cap $r gpu0/mig/gi1/access 12; cap $r gpu0/mig/gi1/ci0/access 13; cap $r gpu0/mig/gi1/ci1/access 14
cap $r gpu0/mig/gi2/access 21; cap $r gpu0/mig/gi2/ci0/access 22
{
  printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n/dev/nvidia1\tc\t195\t1\t666\t0\t0\n'
  printf '/dev/nvidia-uvm\tc\t508\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t508\t1\t666\t0\t0\n/dev/nvidia-caps\td\t0\t0\t755\t0\t0\n'
  printf '/dev/nvidia-caps/nvidia-cap1\tc\t509\t1\t400\t0\t0\n/dev/nvidia-caps/nvidia-cap2\tc\t509\t2\t444\t0\t0\n'
  for m in 12 13 14 21 22; do printf '/dev/nvidia-caps/nvidia-cap%s\tc\t509\t%s\t444\t0\t0\n' $m $m; done
} | nodes $r
links $r

# 5. nvidia-uvm loaded (major 511) but its nodes never made (a fresh host).
r=no-uvm-550.54.15; reset $r
version $r 550.54.15 open; params $r 0 438
proc_devices $r nvidia 511 ""
gpu $r 0000:65:00.0 0 GPU-77777777-6666-5555-4444-333333333333 "NVIDIA L4"
printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n' | nodes $r
links $r

# 6. Nodes 0660 root:video (gid 44), as DeviceFileGID/DeviceFileMode set them.
r=video-0660-550.54.15; reset $r
version $r 550.54.15 proprietary; params $r 44 432
proc_devices $r nvidia 511 ""
gpu $r 0000:01:00.0 0 GPU-abcdefab-cdef-abcd-efab-cdefabcdef01 "NVIDIA GeForce RTX 4090"
mkdir -p $r/etc; printf 'root:x:0:\nvideo:x:44:\nrender:x:105:\n' >$r/etc/group
printf '/dev/nvidiactl\tc\t195\t255\t660\t0\t44\n/dev/nvidia0\tc\t195\t0\t660\t0\t44\n/dev/nvidia-uvm\tc\t511\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t511\t1\t666\t0\t0\n/dev/nvidia-modeset\tc\t195\t254\t660\t0\t44\n' | nodes $r
links $r

# 7. Every node present, no /dev/char links (systemd's daemon-reload revokes access).
r=no-char-links-550.54.15; reset $r
version $r 550.54.15 open; params $r 0 438
proc_devices $r nvidia 511 ""
gpu $r 0000:65:00.0 0 GPU-88888888-6666-5555-4444-333333333333 "NVIDIA L4"
printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n/dev/nvidia-uvm\tc\t511\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t511\t1\t666\t0\t0\n' | nodes $r

# 7b. A Grace Hopper (GH200) host: aarch64, the open module built for aarch64,
# the GPU on PCI domain 0009; device nodes and /proc formats as on x86_64.
# Its kernel (Ubuntu 22.04's 5.15) predates /proc/sys/kernel/arch, so the
# architecture comes from the NVRM line.
r=gh200-580.159.04; reset $r
version $r 580.159.04 open aarch64; params $r 0 438
proc_devices $r nvidia 508 509
gpu $r 0009:01:00.0 0 GPU-3c2b1a09-8f7e-4d6c-9b5a-493827160504 "NVIDIA GH200 480GB"
printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n/dev/nvidia-uvm\tc\t508\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t508\t1\t666\t0\t0\n' | nodes $r
links $r

# 8. No NVIDIA driver at all.
r=no-driver; reset $r
proc_devices $r "" "" ""
printf '# path\ttype\tmajor\tminor\tmode\n' >$r/dev-nodes.tsv

# 9. An HGX-style host: NVSwitch and NVLink nodes, IMEX channels 0 and 1 made
# (of the driver's 2048), majors as on the real H200 host (239, 240, 242).
r=hgx-imex-570.124.06; reset $r
version $r 570.124.06 open
printf 'ModifyDeviceFiles: 1\nDeviceFileUID: 0\nDeviceFileGID: 0\nDeviceFileMode: 438\nImexChannelCount: 2048\nCreateImexChannel0: 0\n' >$r/proc/driver/nvidia/params
proc_devices $r nvidia 238 241 "239 nvidia-nvswitch" "240 nvidia-nvlink" "242 nvidia-caps-imex-channels"
gpu $r 0000:19:00.0 0 GPU-a0000000-1111-2222-3333-444444444440 "NVIDIA H100 80GB HBM3"
gpu $r 0000:3b:00.0 1 GPU-a0000001-1111-2222-3333-444444444441 "NVIDIA H100 80GB HBM3"
{
  printf '/dev/nvidiactl\tc\t195\t255\t666\t0\t0\n/dev/nvidia0\tc\t195\t0\t666\t0\t0\n/dev/nvidia1\tc\t195\t1\t666\t0\t0\n'
  printf '/dev/nvidia-uvm\tc\t238\t0\t666\t0\t0\n/dev/nvidia-uvm-tools\tc\t238\t1\t666\t0\t0\n'
  printf '/dev/nvidia-nvswitchctl\tc\t239\t255\t666\t0\t0\n/dev/nvidia-nvswitch0\tc\t239\t0\t666\t0\t0\n/dev/nvidia-nvswitch1\tc\t239\t1\t666\t0\t0\n'
  printf '/dev/nvidia-nvlink\tc\t240\t0\t666\t0\t0\n/dev/nvidia-caps-imex-channels\td\t0\t0\t755\t0\t0\n'
  printf '/dev/nvidia-caps-imex-channels/channel0\tc\t242\t0\t666\t0\t0\n/dev/nvidia-caps-imex-channels/channel1\tc\t242\t1\t666\t0\t0\n'
} | nodes $r
links $r
