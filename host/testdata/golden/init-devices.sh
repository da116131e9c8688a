#!/bin/sh
# Creates the NVIDIA device nodes and /dev/char links that containers started
# with `gpuimg run` / `gpuimg flags` (plain --device, no nvidia-container-toolkit)
# need. Written by `gpuimg host init-devices --print-script`; equivalent to
# `gpuimg host init-devices --load-modules --imex-channels 0,1`. Majors are read from /proc/devices and
# minors from /proc/driver/nvidia/gpus/*/information and the MIG capability files at run time, so the script
# stays right across reboots and driver upgrades. Idempotent; needs root.
# GPUIMG_ROOT (default empty) prefixes every path, for trying it on a scratch tree.
set -eu
R="${GPUIMG_ROOT:-}"
[ "$(id -u)" -eq 0 ] || { echo "init-devices: creating device nodes needs root: run it with sudo" >&2; exit 1; }
modprobe nvidia
modprobe nvidia-uvm

major() { awk -v name="$1" '/^Character devices:/ {c=1; next} /devices:$/ {c=0} c && $2 == name {print $1; exit}' "$R/proc/devices"; }
param() { awk -F': *' -v key="$1" '$1 == key {print $2}' "$R/proc/driver/nvidia/params" 2>/dev/null; }

frontend=$(major nvidia)
[ -n "$frontend" ] || frontend=$(major nvidia-frontend)
[ -n "$frontend" ] || { echo "init-devices: no NVIDIA driver in /proc/devices: load it with modprobe nvidia" >&2; exit 1; }
uvm=$(major nvidia-uvm)
[ -n "$uvm" ] || { echo "init-devices: nvidia-uvm is not loaded: run modprobe nvidia-uvm first" >&2; exit 1; }
mode=$(param DeviceFileMode); mode=$(printf '%o' "${mode:-438}")
owner="$(param DeviceFileUID | sed 's/^$/0/'):$(param DeviceFileGID | sed 's/^$/0/')"

# node PATH MAJOR MINOR MODE OWNER: make the node if absent, replace whatever else is
# there (a stale node, a regular file, a symlink), then make its /dev/char link.
node() {
  if [ -d "$R$1" ] && [ ! -L "$R$1" ]; then
    echo "init-devices: $1 is a directory, not a device node: remove it and run again" >&2; exit 1
  fi
  if [ -L "$R$1" ] || [ ! -c "$R$1" ] || [ "$(stat -c %t:%T "$R$1")" != "$(printf %x:%x "$2" "$3")" ]; then
    mkdir -p "$(dirname "$R$1")"
    mknod -m "$4" "$R$1.gpuimg-tmp" c "$2" "$3"
    chown "$5" "$R$1.gpuimg-tmp"
    mv -f "$R$1.gpuimg-tmp" "$R$1"
    echo "created $1 c $2:$3"
  fi
  link="/dev/char/$2:$3"
  target="..${1#/dev}"
  if [ "$(readlink "$R$link" 2>/dev/null)" != "$target" ]; then
    mkdir -p "$R/dev/char"
    ln -sfn "$target" "$R$link"
    echo "linked $link -> $target"
  fi
}

node /dev/nvidiactl "$frontend" 255 "$mode" "$owner"
for info in "$R"/proc/driver/nvidia/gpus/*/information; do
  [ -e "$info" ] || continue
  minor=$(awk -F': *' '$1 == "Device Minor" {gsub(/[ \t]/, "", $2); print $2}' "$info")
  node "/dev/nvidia$minor" "$frontend" "$minor" "$mode" "$owner"
done
node /dev/nvidia-uvm "$uvm" 0 666 0:0
node /dev/nvidia-uvm-tools "$uvm" 1 666 0:0

# MIG: the GI and CI access caps that exist (those of GIs/CIs that were created).
caps=$(major nvidia-caps)
for access in "$R"/proc/driver/nvidia/capabilities/gpu*/mig/gi*/access "$R"/proc/driver/nvidia/capabilities/gpu*/mig/gi*/ci*/access; do
  [ -e "$access" ] && [ -n "$caps" ] || continue
  minor=$(awk -F': *' '$1 == "DeviceFileMinor" {print $2}' "$access")
  node "/dev/nvidia-caps/nvidia-cap$minor" "$caps" "$minor" 444 0:0
done

# IMEX channels asked for with --imex-channels (never all: each grants access
# to memory other nodes export).
imex=$(major nvidia-caps-imex-channels)
[ -n "$imex" ] || { echo "init-devices: no nvidia-caps-imex-channels in /proc/devices: the loaded driver offers no IMEX channels" >&2; exit 1; }
node /dev/nvidia-caps-imex-channels/channel0 "$imex" 0 666 0:0
node /dev/nvidia-caps-imex-channels/channel1 "$imex" 1 666 0:0
