#!/usr/bin/env bash
# Makes the Debian 13 (trixie) root the newer-runtime end-to-end tests start
# their daemons from (docker.io 26.1, containerd 1.7, podman 5.4, crun) and
# the user the rootless podman test runs as: debootstrap --variant=minbase
# trixie, then apt-get and useradd inside it.
# This machine's own system is never upgraded: everything lives in the root.
# Cached outside the clone's sources under DEST-PARENT/<key>, where the key
# hashes this script (suite, mirror, package list): a changed input makes a
# new root. Prints the root's path on stdout (crictl is in ../bin beside it).
# Needs root, Debian's mirror and the Go module proxy.
set -euo pipefail
parent=${1:?usage: hack/mktrixie.sh CACHE-DIR   (prints the trixie root)}
suite=trixie
mirror=${GPUIMG_TRIXIE_MIRROR:-http://deb.debian.org/debian}
packages=(
  docker.io docker-cli containerd runc crun podman uidmap passt slirp4netns
  fuse-overlayfs iptables busybox-static ca-certificates
)
# crictl, which no Debian release packages: built from the Go module proxy.
crictl_version=v1.37.0
# The unprivileged user the rootless podman test runs as (in group video, so
# it may open 0660 root:video nodes), with subordinate ids.
rootless_user=gpuimg-rootless rootless_uid=1500
key=$( { cat "$0"; echo "$mirror"; } | sha256sum | cut -c1-12)
dest="$parent/$suite-$key"
if [ -f "$dest/.complete" ]; then
  echo "$dest/rootfs"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "mktrixie: debootstrap needs root; run as root" >&2
  exit 1
fi
mkdir -p "$parent"
work=$(mktemp -d "$parent/.$suite-$key.XXXXXX")
cleanup() {
  for m in proc sys dev; do umount -l "$work/rootfs/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
echo "mktrixie: debootstrap --variant=minbase $suite from $mirror" >&2
if ! debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  echo "mktrixie: debootstrap failed (log above); check that $mirror is reachable or set GPUIMG_TRIXIE_MIRROR" >&2
  exit 1
fi
echo "mktrixie: debootstrap took $(( $(date +%s) - start ))s; installing ${packages[*]}" >&2
mount -t proc proc "$work/rootfs/proc"
mount --rbind /sys "$work/rootfs/sys"
mount --rbind /dev "$work/rootfs/dev"
cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
# No daemons started inside the chroot while installing.
printf '#!/bin/sh\nexit 101\n' >"$work/rootfs/usr/sbin/policy-rc.d"
chmod 755 "$work/rootfs/usr/sbin/policy-rc.d"
if ! chroot "$work/rootfs" env DEBIAN_FRONTEND=noninteractive sh -c \
  "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages[*]}" >"$work/apt.log" 2>&1; then
  tail -n 30 "$work/apt.log" >&2
  echo "mktrixie: apt-get install inside the trixie root failed (log above)" >&2
  exit 1
fi
chroot "$work/rootfs" apt-get clean
chroot "$work/rootfs" useradd --create-home --uid "$rootless_uid" --groups video --shell /bin/sh "$rootless_user"
# pivot_root's put-old: the tests pivot into this root (a chroot cannot make
# user namespaces, which rootless podman needs).
mkdir -p "$work/rootfs/.oldroot"
echo "$rootless_user:200000:65536" >"$work/rootfs/etc/subuid"
echo "$rootless_user:200000:65536" >"$work/rootfs/etc/subgid"
for m in proc sys dev; do umount -l "$work/rootfs/$m"; done
echo "mktrixie: go install sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version" >&2
mkdir -p "$work/bin"
if ! GOBIN="$work/bin" GOFLAGS=-mod=mod go install "sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version" >"$work/go.log" 2>&1; then
  tail -n 20 "$work/go.log" >&2
  echo "mktrixie: building crictl failed (log above)" >&2
  exit 1
fi
rm -rf "$dest"
mv "$work/rootfs" "$dest.tmp" 2>/dev/null || true
mkdir -p "$dest"
mv "$dest.tmp" "$dest/rootfs"
mv "$work/bin" "$dest/bin"
echo "$(( $(date +%s) - start ))" >"$dest/.seconds"
touch "$dest/.complete"
# Roots made from other inputs are stale: remove them (hundreds of MB each).
for old in "$parent/$suite"-*; do
  [ "$old" = "$dest" ] || rm -rf "$old"
done
echo "mktrixie: made $dest/rootfs in $(cat "$dest/.seconds")s" >&2
echo "$dest/rootfs"
