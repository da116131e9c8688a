#!/usr/bin/env bash
# Proves gpuimg on a real NVIDIA GPU host (root, runc, nvcc, python3; no Docker, no network, no
# nvidia-container-toolkit needed):
#   1. `gpuimg host --json` agrees with nvidia-smi, /proc and stat on driver, UUID, bus id, minor, majors;
#   2. a container whose root filesystem holds a CUDA program (nvcc -cudart static) and the host's
#      exact driver userspace runs CUDA under runc with only the nodes `gpuimg flags --format oci`
#      lists, and fails without them;
#   3. gpuimg's driver guard refuses an image recorded for another driver version;
#   4. `gpuimg host` and `gpuimg flags` whole-process times (median of several runs);
#   5. the whole path: a .run in NVIDIA's format assembled from the host's real userspace with
#      NVIDIA's nvidia-installer inside (mkrealrun), `gpuimg build` on a buildkitd started here from
#      a glibc base packed here (full and --components compute, OCI layouts), each image's root
#      filesystem run under runc with only `gpuimg flags --format oci IMAGE`'s nodes: vecadd,
#      nvidia-smi -L and nvidia-smi's driver version, failing without the nodes; in the full image
#      a headless EGL context and a Vulkan device on the GPU (vendor and renderer printed).
#
# Usage: hack/gpu-e2e.sh [OUTDIR]
#   GPUIMG   gpuimg binary (default: gpuimg on PATH)     RUNC    runc binary (default: runc on PATH)
#   MKBASE   internal/cmd/mkbase binary (packs a rootfs into a labelled OCI layout)
#   BUSYBOX  optional static busybox for `ls /dev` inside
#   DRIVER_LIBDIR  where the host's libcuda.so.<version> lives (default: found through ldconfig -p)
#   Whole path (5; FAIL when one is missing):
#   BUILDKITD  buildkitd binary (runc must be on PATH for it)   MKREALRUN  internal/cmd/mkrealrun binary
#   NVIDIA_INSTALLER  NVIDIA's nvidia-installer to put in the .run (../shared/fixtures/nvidia-installer)
#   DEBS     directory of Debian packages: the loaders (libegl1 libglvnd0 libopengl0 libvulkan1 ...)
#            and the X client libraries NVIDIA's Vulkan ICD links (libx11-6 libxext6 and theirs) go
#            into the base; the -dev packages' headers compile the graphics self-test
#   DRIVER_ROOT  the host's driver directory mkrealrun searches (default: the parent of DRIVER_LIBDIR)
# Build the Go pieces on any x86_64 machine (hack/gpu-e2e-pack.sh packs all of it for a GPU host):
#   CGO_ENABLED=0 go build -o .gpu/gpuimg ./cmd/gpuimg
#   CGO_ENABLED=0 go build -o .gpu/mkbase ./internal/cmd/mkbase
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$PWD/gpu-e2e-results}}
mkdir -p "$out"
GPUIMG=${GPUIMG:-gpuimg} RUNC=${RUNC:-runc} MKBASE=${MKBASE:-mkbase}
BUILDKITD=${BUILDKITD:-} MKREALRUN=${MKREALRUN:-} NVIDIA_INSTALLER=${NVIDIA_INSTALLER:-} DEBS=${DEBS:-}
work=$(mktemp -d /tmp/gpu-e2e.XXXXXX)
summary=$out/summary.txt
: >"$summary"
failures=0
say() { echo "$*" | tee -a "$summary"; }
check() { # check NAME CONDITION-COMMAND...
  local what=$1; shift
  if "$@"; then say "PASS  $what"; else say "FAIL  $what"; failures=$((failures + 1)); fi
}

say "gpu-e2e on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r)"
version=$(cat /sys/module/nvidia/version)
say "driver $version; $(nvidia-smi -L | head -1)"

# 1. The launcher's view of the host against nvidia-smi, /proc and stat.
"$GPUIMG" host --json >"$out/host.json" 2>"$out/host.stderr"
nvidia-smi --query-gpu=index,driver_version,uuid,pci.bus_id,name --format=csv,noheader >"$out/nvidia-smi-query.csv"
for n in /dev/nvidia*  /dev/nvidia-caps/*; do [ -c "$n" ] && stat -c '%n %t %T %a' "$n"; done >"$out/stat.txt"
cat /proc/driver/nvidia/gpus/*/information >"$out/proc-information.txt"
python3 - "$out" <<'PY' | tee -a "$summary"
import json, sys
out = sys.argv[1]
h = json.load(open(f"{out}/host.json"))
smi = [l.split(", ") for l in open(f"{out}/nvidia-smi-query.csv").read().strip().splitlines()]
info = {}
for line in open(f"{out}/proc-information.txt"):
    k, _, v = line.partition(":")
    info.setdefault(k.strip(), []).append(v.strip())
stat = {p: (int(a, 16), int(b, 16)) for p, a, b, _ in (l.split() for l in open(f"{out}/stat.txt"))}
ok = True
def expect(what, got, want):
    global ok
    good = got == want
    ok &= good
    print(f"{'PASS' if good else 'FAIL'}  host: {what}: gpuimg {got!r}, reference {want!r}")
expect("driver version vs nvidia-smi", h["driver"]["version"], smi[0][1])
expect("GPU count vs nvidia-smi", len(h["gpus"]), len(smi))
for g, s in zip(h["gpus"], smi):
    expect(f"GPU {g['index']} UUID vs nvidia-smi", g["uuid"], s[2])
    expect(f"GPU {g['index']} bus id vs nvidia-smi", g["busId"].lower(), s[3].lower()[4:])  # nvidia-smi pads the domain to 8 digits
    expect(f"GPU {g['index']} model vs nvidia-smi", g["model"], s[4])
    i = info["Bus Location"].index(g["busId"])
    expect(f"GPU {g['index']} minor vs /proc information", g["minor"], int(info["Device Minor"][i]))
for n in h["nodes"]:
    if n.get("exists") and n["path"] in stat:
        expect(f"{n['path']} major:minor vs stat", (n["major"], n["minor"]), stat[n["path"]])
missing = [p for p in stat if p not in {n["path"] for n in h["nodes"]}]
expect("every /dev/nvidia* node is known to gpuimg", missing, [])
sys.exit(0 if ok else 1)
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || failures=$((failures + 1))

# 2. A root filesystem with the CUDA program and the host's exact driver userspace.
libdir=${DRIVER_LIBDIR:-$(dirname "$(readlink -f "$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')")")}
[ -e "$libdir/libcuda.so.$version" ] || { say "FAIL  no libcuda.so.$version in $libdir (set DRIVER_LIBDIR)"; exit 1; }
smi=$(command -v nvidia-smi)
nvcc -O2 -cudart static -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
  -o "$work/vecadd" "$here/gpu-e2e/vecadd.cu" || { say "FAIL  nvcc"; exit 1; }
bundle=$work/bundle rootfs=$work/bundle/rootfs lib=$work/bundle/rootfs/usr/lib/x86_64-linux-gnu
mkdir -p "$lib" "$rootfs"/{usr/bin,lib64,etc,proc,sys,dev,tmp}
for bin in "$work/vecadd" "$smi"; do
  cp "$bin" "$rootfs/usr/bin/"
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r so; do
    case $so in */ld-linux*) cp -L "$so" "$rootfs/lib64/" ;; *) cp -L "$so" "$lib/" ;; esac
  done
done
driver_files=0
for so in "$libdir"/*.so."$version"; do
  cp "$so" "$lib/"
  soname=$(objdump -p "$so" 2>/dev/null | awk '/SONAME/{print $2}')
  [ -n "$soname" ] && [ "$soname" != "$(basename "$so")" ] && ln -sf "$(basename "$so")" "$lib/$soname"
  driver_files=$((driver_files + 1))
done
[ -n "${BUSYBOX:-}" ] && cp "$BUSYBOX" "$rootfs/usr/bin/busybox"
echo /usr/lib/x86_64-linux-gnu >"$rootfs/etc/ld.so.conf"
ldconfig -r "$rootfs"
say "rootfs: $driver_files driver libraries of $version from $libdir, nvidia-smi, vecadd ($(du -sh "$rootfs" | cut -f1))"
ldconfig -r "$rootfs" -p 2>/dev/null | grep -E 'libcuda.so.1|libnvidia-ml.so.1' | tee -a "$summary" ||
  chroot "$rootfs" /sbin/ldconfig -p 2>/dev/null | grep libcuda

# Images recording the host's driver and another one, for the guard.
other=580.95.05; [ "$version" = "$other" ] && other=580.65.06
for v in "$version" "$other"; do
  "$MKBASE" --rootfs "$rootfs" --out "$work/image-$v" --ref "gpu-e2e:$v" --created-by "hack/gpu-e2e.sh" \
    --label io.gpuimg.driver.version="$v" || { say "FAIL  packing the image for $v"; exit 1; }
done

# 3. The driver guard.
"$GPUIMG" flags --format oci "$work/image-$version" >"$out/oci-fragment.json" 2>"$out/flags-match.stderr"
rc=$?
check "guard accepts the image recorded for $version (exit $rc)" test "$rc" -eq 0 -a -s "$out/oci-fragment.json"
"$GPUIMG" flags --format oci "$work/image-$other" >/dev/null 2>"$out/guard-mismatch.stderr"
rc=$?
check "guard refuses the image recorded for $other (exit $rc)" test "$rc" -ne 0
check "guard message names both versions and the fix" \
  sh -c "grep -q '$other' '$out/guard-mismatch.stderr' && grep -q '$version' '$out/guard-mismatch.stderr' && grep -q 'gpuimg build --driver' '$out/guard-mismatch.stderr'"
sed 's/^/    /' "$out/guard-mismatch.stderr" | tee -a "$summary"

# 4. runc with and without the nodes gpuimg lists.
(cd "$bundle" && "$RUNC" spec && mv config.json spec.json)
# The bundle and the fragment container() uses; section 5 points them at each built image.
fragment=$out/oci-fragment.json extra_nodes=
patch_config() { # patch_config WITH_NODES ARGS...
  python3 - "$bundle/spec.json" "$bundle/config.json" "$fragment" "$extra_nodes" "$@" <<'PY'
import json, os, sys
spec, path, frag_path, extra, with_nodes, *args = sys.argv[1:]
cfg = json.load(open(spec))  # always from runc's pristine spec, so "without" really has no GPU nodes
cfg["process"]["terminal"] = False
cfg["process"]["args"] = args
cfg["process"]["env"] = ["PATH=/usr/bin:/bin", "HOME=/tmp", "VK_LOADER_DEBUG=error,warn"]
cfg["root"]["readonly"] = False  # EGL/Vulkan write shader caches under $HOME
for node in extra.split():  # nodes beyond gpuimg's, to find out which ones graphics needs
    st = os.stat(node)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    cfg["linux"].setdefault("devices", []).append({"path": node, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0})
    cfg["linux"].setdefault("resources", {}).setdefault("devices", []).append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
if with_nodes == "yes":
    frag = json.load(open(frag_path))
    cfg["process"]["env"] += frag.get("process", {}).get("env", [])
    cfg["linux"].setdefault("devices", []).extend(frag["linux"].get("devices", []))
    cfg["linux"].setdefault("resources", {}).setdefault("devices", []).extend(frag["linux"].get("resources", {}).get("devices", []))
json.dump(cfg, open(path, "w"), indent=1)
PY
}
n=0
container() { # container WITH_NODES LOGNAME ARGS... ; prints the exit status
  local with=$1 name=$2; shift 2
  patch_config "$with" "$@"
  n=$((n + 1))
  (cd "$bundle" && "$RUNC" run "gpu-e2e-$$-$n") >"$out/$name.txt" 2>&1
  echo $?
}
rc=$(container yes with-nodes-vecadd /usr/bin/vecadd)
check "vecadd with gpuimg's nodes (exit $rc): $(head -1 "$out/with-nodes-vecadd.txt")" grep -q '^PASS' "$out/with-nodes-vecadd.txt"
rc=$(container yes with-nodes-nvidia-smi /usr/bin/nvidia-smi -L)
check "nvidia-smi -L with gpuimg's nodes (exit $rc): $(head -1 "$out/with-nodes-nvidia-smi.txt")" grep -q 'H200' "$out/with-nodes-nvidia-smi.txt"
if [ -n "${BUSYBOX:-}" ]; then
  container yes with-nodes-dev /usr/bin/busybox ls -l /dev >/dev/null
  sed 's/^/    /' "$out/with-nodes-dev.txt" | grep nvidia | tee -a "$summary"
fi
rc=$(container no without-nodes-vecadd /usr/bin/vecadd)
check "vecadd without the nodes fails (exit $rc): $(head -1 "$out/without-nodes-vecadd.txt")" test "$rc" -ne 0
rc=$(container no without-nodes-nvidia-smi /usr/bin/nvidia-smi -L)
check "nvidia-smi -L without the nodes fails (exit $rc): $(head -1 "$out/without-nodes-nvidia-smi.txt")" test "$rc" -ne 0

# 5. Launcher timings on this host.
python3 - "$GPUIMG" "$work/image-$version" <<'PY' | tee -a "$summary"
import statistics, subprocess, sys, time
gpuimg, image = sys.argv[1:]
def median_ms(args, runs=30):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), max(times)
for label, args in [("gpuimg host --json", [gpuimg, "host", "--json"]),
                    ("gpuimg flags", [gpuimg, "flags"]),
                    ("gpuimg flags --format oci", [gpuimg, "flags", "--format", "oci"]),
                    ("gpuimg flags --format oci IMAGE-LAYOUT (guard reads the label)", [gpuimg, "flags", "--format", "oci", image])]:
    med, lo, hi = median_ms(args)
    print(f"TIME  {label}: median {med:.1f} ms (min {lo:.1f}, max {hi:.1f}, 30 runs)")
PY

# The whole path (5 above): a .run made from the host's real userspace, built by gpuimg on BuildKit, run under runc.
whole_path_tools_ok() {
  local missing=
  for v in BUILDKITD MKREALRUN NVIDIA_INSTALLER DEBS; do [ -n "${!v}" ] && [ -e "${!v}" ] || missing="$missing $v"; done
  [ -z "$missing" ] && return 0
  say "FAIL  whole path: not run, missing:$missing (see the usage at the top)"
  failures=$((failures + 1))
  return 1
}

# minimal_root DIR PROGRAM...: a usr-merged glibc root holding PROGRAMs from this host and every
# library they load (ldd), the loaders and test programs added by the caller beforehand.
minimal_root() {
  local root=$1 p src; shift
  mkdir -p "$root"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$root"/{etc/ld.so.conf.d,tmp,proc,sys,dev,root,var/lib,var/log,var/cache/ldconfig}
  for d in bin sbin lib lib64; do ln -sfn usr/$d "$root/$d"; done
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  printf 'include /etc/ld.so.conf.d/*.conf\n' >"$root/etc/ld.so.conf"
  printf '/usr/local/lib\n/usr/lib/x86_64-linux-gnu\n' >"$root/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
  for p in "$@"; do
    src=$(type -P "$p") || { echo "minimal root: no $p on this host" >&2; continue; }
    case $src in */sbin/*) cp -L "$src" "$root/usr/sbin/$p" ;; *) cp -L "$src" "$root/usr/bin/$p" ;; esac
  done
  # Ubuntu's ldconfig is a wrapper around ldconfig.real.
  [ -e /sbin/ldconfig.real ] && cp -L /sbin/ldconfig.real "$root/usr/sbin/"
  [ -e /bin/bash ] && cp -L /bin/bash "$root/usr/bin/bash"
  # The whole C library (glibc's and libgcc's shared objects), as any glibc distribution base has:
  # the driver's libraries load libpthread, libdl, librt and libm that no base program needs.
  { dpkg -L libc6 libgcc-s1 2>/dev/null || ls /usr/lib/x86_64-linux-gnu/lib{c,m,dl,pthread,rt,resolv,util,anl,mvec,nss_files,nss_dns,gcc_s}.so.*; } |
    grep -E '^/(usr/)?lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*$' | while read -r so; do cp -L "$so" "$root/usr/lib/x86_64-linux-gnu/"; done
  for f in "$root"/usr/bin/* "$root"/usr/sbin/*; do
    LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}'
  done | sort -u | while read -r so; do
    case $so in "$root"/*) continue ;; esac
    case $so in
    */ld-linux*) cp -L "$so" "$root/usr/lib64/" && cp -L "$so" "$root/usr/lib/x86_64-linux-gnu/" ;;
    *) cp -L "$so" "$root/usr/lib/x86_64-linux-gnu/" ;;
    esac
  done
  ldconfig -r "$root"
  rm -f "$root/var/cache/ldconfig/aux-cache"  # gpuimg's install step drops it: keep the base free of it
}

# unpack_image LAYOUT ROOTFS LISTING: apply the image's layers (whiteouts honoured); prints what the
# image adds to its base: the last layer's compressed and unpacked bytes and its file count, and
# writes that layer's entries (type, mode, size, path, link target) to LISTING.
unpack_image() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, os, shutil, sys, tarfile
layout, root, listing = sys.argv[1:]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
os.makedirs(root, exist_ok=True)
def remove(p):
    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
unpacked = files = 0
for layer in manifest["layers"]:
    unpacked = files = 0
    entries = []
    with tarfile.open(blob(layer["digest"]), "r:*") as t:
        for m in t:
            entries.append(f"{m.type.decode() or '0'} {m.mode:04o} {m.size:>10} /{os.path.normpath(m.name)}" + (f" -> {m.linkname}" if m.linkname else ""))
            name = os.path.normpath(m.name)
            base, parent = os.path.basename(name), os.path.dirname(name)
            if base == ".wh..wh..opq":
                for e in os.listdir(os.path.join(root, parent)):
                    remove(os.path.join(root, parent, e))
                continue
            if base.startswith(".wh."):
                if os.path.lexists(os.path.join(root, parent, base[4:])):
                    remove(os.path.join(root, parent, base[4:]))
                continue
            p = os.path.join(root, name)
            if os.path.lexists(p) and not (m.isdir() and os.path.isdir(p)):
                remove(p)
            t.extract(m, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")
            if m.isfile():
                unpacked += m.size
                files += 1
open(listing, "w").write("\n".join(entries) + "\n")
labels = config.get("config", {}).get("Labels", {})
print(f'{len(manifest["layers"])} layers; the driver layer: {manifest["layers"][-1]["size"]} bytes compressed, '
      f'{unpacked} bytes in {files} files unpacked; label io.gpuimg.driver.version={labels.get("io.gpuimg.driver.version")}, '
      f'components={labels.get("io.gpuimg.driver.components")}')
PY
}

# run_image NAME: runs the checks in the unpacked image $bundle with $fragment's nodes and without.
run_image() {
  local name=$1 rc
  rc=$(container yes "$name-vecadd" /usr/bin/vecadd)
  check "$name image: vecadd with gpuimg's nodes (exit $rc): $(head -1 "$out/$name-vecadd.txt")" grep -q '^PASS' "$out/$name-vecadd.txt"
  rc=$(container yes "$name-nvidia-smi-L" /usr/bin/nvidia-smi -L)
  check "$name image: nvidia-smi -L with gpuimg's nodes (exit $rc): $(head -1 "$out/$name-nvidia-smi-L.txt")" grep -q 'NVIDIA H200' "$out/$name-nvidia-smi-L.txt"
  rc=$(container yes "$name-nvidia-smi" /usr/bin/nvidia-smi)
  check "$name image: nvidia-smi reports driver $version (exit $rc): $(grep -o 'Driver Version: [0-9.]*' "$out/$name-nvidia-smi.txt")" grep -q "Driver Version: $version" "$out/$name-nvidia-smi.txt"
  rc=$(container no "$name-without-vecadd" /usr/bin/vecadd)
  check "$name image: vecadd without the nodes fails (exit $rc): $(head -1 "$out/$name-without-vecadd.txt")" test "$rc" -ne 0
  rc=$(container no "$name-without-nvidia-smi" /usr/bin/nvidia-smi -L)
  check "$name image: nvidia-smi -L without the nodes fails (exit $rc): $(head -1 "$out/$name-without-nvidia-smi.txt")" test "$rc" -ne 0
}

# graphics_checks: EGL and Vulkan in the full image with gpuimg's nodes; when one fails, again with
# each further /dev/nvidia* node the host has, to name what graphics needs beyond compute.
graphics_checks() {
  local prog rc node more lib=$bundle/rootfs/usr/lib/x86_64-linux-gnu
  container no full-ldd-glx /usr/bin/ldd /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 >/dev/null
  for prog in egl-info vk-info; do
    rc=$(container yes "full-$prog" /usr/bin/$prog)
    check "full image: $prog with gpuimg's nodes (exit $rc): $(grep -E '^(PASS|FAIL)' "$out/full-$prog.txt" | head -1)" grep -q '^PASS' "$out/full-$prog.txt"
    if [ "$rc" -ne 0 ]; then
      more=$(for node in /dev/nvidia-modeset /dev/dri/card* /dev/dri/renderD*; do [ -c "$node" ] && echo "$node"; done)
      say "    $prog failed with gpuimg's nodes; the host's other GPU nodes: ${more:-none}"
      if [ -n "$more" ]; then
        extra_nodes=$more rc=$(container yes "full-$prog-extra" /usr/bin/$prog)
        extra_nodes=
        say "    $prog with those added (exit $rc): $(grep -E '^(PASS|FAIL)' "$out/full-$prog-extra.txt" | head -1)"
      fi
    fi
    rc=$(container no "full-$prog-without" /usr/bin/$prog)
    check "full image: $prog without the nodes fails (exit $rc): $(grep -E '^(PASS|FAIL)' "$out/full-$prog-without.txt" | head -1)" test "$rc" -ne 0
  done
  # Control: NVIDIA's Vulkan ICD (libGLX_nvidia.so.0) links libX11 and libXext, which the base
  # carries for it; hidden, the loader finds no driver although nothing GPU-side changed.
  if [ -e "$lib/libX11.so.6" ]; then
    mv "$lib/libX11.so.6" "$lib/libX11.so.6.hidden"
    rc=$(container yes full-vk-info-no-libx11 /usr/bin/vk-info)
    mv "$lib/libX11.so.6.hidden" "$lib/libX11.so.6"
    say "INFO  full image: vk-info with gpuimg's nodes but libX11.so.6 hidden (exit $rc): $(grep -E '^(PASS|FAIL)' "$out/full-vk-info-no-libx11.txt" | head -1)"
  fi
}

# graphics_programs: the graphics self-test, compiled here against the carried EGL/GL/Vulkan
# headers and loaders.
graphics_programs() {
  local sysroot=$work/sysroot L=$work/sysroot/usr/lib/x86_64-linux-gnu cc
  mkdir -p "$sysroot"
  cc=$(type -P cc || type -P gcc)
  for deb in "$DEBS"/*.deb; do dpkg -x "$deb" "$sysroot"; done
  "$cc" -O2 -I"$sysroot/usr/include" -o "$work/egl-info" "$here/gpu-e2e/egl-info.c" -L"$L" -Wl,-rpath-link,"$L" -l:libEGL.so.1 -l:libOpenGL.so.0 &&
    "$cc" -O2 -I"$sysroot/usr/include" -o "$work/vk-info" "$here/gpu-e2e/vk-info.c" -L"$L" -Wl,-rpath-link,"$L" -l:libvulkan.so.1 ||
    { say "FAIL  compiling the graphics self-test with ${cc:-no C compiler}"; failures=$((failures + 1)); return 1; }
}

# make_base: a glibc base made here: this host's shell and tools, the loaders' runtime packages,
# the test programs, packed by mkbase into the OCI layout $work/base (tag glibc).
make_base() {
  local base_root=$work/base-root deb
  mkdir -p "$base_root/usr/bin"
  for deb in "$DEBS"/*.deb; do case $deb in *-dev_*) ;; *) dpkg -x "$deb" "$base_root" ;; esac; done
  cp "$work/vecadd" "$work/egl-info" "$work/vk-info" "$base_root/usr/bin/"
  minimal_root "$base_root" sh cat cp mv rm ln mkdir rmdir chmod chown touch ls find xargs grep sed awk cut tr \
    tail head sort uniq wc uname id dmesg tar gzip mktemp md5sum cksum dd stat readlink basename dirname env expr \
    sleep true false printf test ldconfig ldd 2>"$out/base-root.stderr"
  "$MKBASE" --rootfs "$base_root" --out "$work/base" --ref gpu-e2e/base:glibc --created-by "hack/gpu-e2e.sh minimal_root" ||
    { say "FAIL  packing the glibc base"; failures=$((failures + 1)); return 1; }
  say "base: $(ls "$base_root/usr/bin" | wc -l) programs, $(du -sh "$base_root" | cut -f1), from $(. /etc/os-release && echo "$PRETTY_NAME") and Debian's $(cd "$DEBS" && ls | grep -v -- -dev_ | sed 's/_.*//' | tr '\n' ' ')"
}

# make_realrun: the .run ($run) in NVIDIA's format from the host's files, NVIDIA's installer inside.
make_realrun() {
  local droot gen rc
  droot=${DRIVER_ROOT:-$(dirname "$libdir")}
  gen=$work/generated
  mkdir -p "$gen"
  # The ICD files gpuimg's install step insists on for graphics: the host's, else NVIDIA's
  # content written here (and said so), so the package still has what a real .run has. A host
  # file naming its library by absolute path is rewritten to the bare SONAME, as NVIDIA ships it.
  local icd found
  for icd in 'nvidia.icd|libnvidia-opencl.so.1' \
    'nvidia_icd.json|{ "file_format_version" : "1.0.1", "ICD": { "library_path": "libGLX_nvidia.so.0", "api_version" : "1.4.312" } }' \
    '10_nvidia.json|{ "file_format_version" : "1.0.0", "ICD" : { "library_path" : "libEGL_nvidia.so.0" } }'; do
    found=$(find "$droot" /etc/OpenCL/vendors -name "${icd%%|*}" 2>/dev/null | head -1)
    if [ -z "$found" ]; then
      echo "${icd#*|}" >"$gen/${icd%%|*}"
      say "note: the host has no ${icd%%|*}; the .run carries one written here with NVIDIA's content: ${icd#*|}"
    else
      say "host's ${icd%%|*} ($found): $(tr -s ' \n' ' ' <"$found")"
      if grep -q '"library_path" *: *"/' "$found"; then
        sed -E 's#("library_path" *: *")/[^"]*/#\1#' "$found" >"$gen/${icd%%|*}"
        say "note: it names its library by absolute path; the .run carries it with the bare name: $(tr -s ' \n' ' ' <"$gen/${icd%%|*}")"
      fi
    fi
  done
  local search=()
  [ -n "$(ls "$gen")" ] && search+=(-search "$gen")
  search+=(-search "$droot")
  [ -d /etc/OpenCL/vendors ] && search+=(-search /etc/OpenCL/vendors)
  run=$("$MKREALRUN" -version "$version" -installer "$NVIDIA_INSTALLER" "${search[@]}" -o "$work/run" -report "$out/realrun-files.tsv" 2>"$out/realrun.txt")
  rc=$?
  check "mkrealrun assembled $(basename "${run:-none}") from $droot ($(head -1 "$out/realrun.txt" | sed 's/^mkrealrun: //'))" test "$rc" -eq 0 -a -s "${run:-/nonexistent}"
  [ "$rc" -eq 0 ] || return 1
  say "    $(ls -l "$run" | awk '{print $5}') bytes; NVIDIA's installer $("$NVIDIA_INSTALLER" --version 2>/dev/null | grep -o 'version [0-9.]*' | head -1) inside"
  sh "$run" --info >"$out/realrun-info.txt" 2>&1
  python3 - "$run" >"$out/realrun-manifest.txt" <<'PY'
import sys, tarfile
f = open(sys.argv[1], "rb")
skip = int(next(l for l in f if l.startswith(b"skip=")).split(b"=")[1])
f.seek(0)
for _ in range(skip - 1):
    f.readline()
payload = tarfile.open(fileobj=f, mode="r|gz")
for m in payload:
    if m.name.endswith("/.manifest"):
        sys.stdout.write(payload.extractfile(m).read().decode())
        break
PY
}

whole_path() {
  local bk=$work/buildkit img start rc
  graphics_programs && make_base && make_realrun || return
  # buildkitd here, on overlayfs, with this runc.
  mkdir -p "$bk"
  PATH=$(dirname "$(command -v "$RUNC")"):$PATH "$BUILDKITD" --oci-worker=true --containerd-worker=false --oci-worker-gc=false \
    --root "$bk/root" --addr "unix://$bk/buildkitd.sock" >"$out/buildkitd.log" 2>&1 &
  local bkpid=$!
  for _ in $(seq 60); do [ -S "$bk/buildkitd.sock" ] && break; sleep 0.5; done
  sleep 1
  for img in full compute; do
    local comp=() ; [ "$img" = compute ] && comp=(--components compute)
    start=$(date +%s.%N)
    "$GPUIMG" build --addr "unix://$bk/buildkitd.sock" --driver-file "$run" --allow-unverified --offline \
      --base "oci-layout://$work/base:glibc" "${comp[@]}" --progress plain \
      --output "type=oci,dest=$work/image-$img,tar=false" >"$out/build-$img.stdout" 2>"$out/build-$img.log"
    rc=$?
    check "gpuimg build ${comp[*]:---components all} (exit $rc, $(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.0f} s')" "$start")): $(tail -1 "$out/build-$img.stdout")" test "$rc" -eq 0
    [ "$rc" -eq 0 ] || { tail -30 "$out/build-$img.log" | sed 's/^/    /' | tee -a "$summary"; continue; }
    bundle=$work/bundle-$img
    mkdir -p "$bundle"
    say "$img image: $(unpack_image "$work/image-$img" "$bundle/rootfs" "$out/$img-layer.txt")"
    (cd "$bundle" && "$RUNC" spec && mv config.json spec.json)
    container no "$img-ldconfig" /sbin/ldconfig -p >/dev/null
    say "    ldconfig -p in the image: $(grep -cE 'libcuda.so.1 |libnvidia-ml.so.1 |libEGL_nvidia.so.0 |libGLX_nvidia.so.0 ' "$out/$img-ldconfig.txt") of libcuda.so.1, libnvidia-ml.so.1, libEGL_nvidia.so.0, libGLX_nvidia.so.0 resolve"
    fragment=$out/oci-fragment-$img.json
    "$GPUIMG" flags --format oci "$work/image-$img" >"$fragment" 2>"$out/flags-$img.stderr"
    rc=$?
    check "$img image: gpuimg flags --format oci IMAGE (exit $rc): nodes $(python3 -c 'import json,sys; print(" ".join(d["path"] for d in json.load(open(sys.argv[1]))["linux"]["devices"]))' "$fragment" 2>/dev/null)" test "$rc" -eq 0
    [ -s "$out/flags-$img.stderr" ] && sed 's/^/    flags: /' "$out/flags-$img.stderr" | tee -a "$summary"
    run_image "$img"
    if [ "$img" = full ]; then graphics_checks; else
      rc=$(container yes compute-egl-info /usr/bin/egl-info)
      say "INFO  compute image: egl-info with gpuimg's nodes (exit $rc): $(grep -E '^(PASS|FAIL)' "$out/compute-egl-info.txt" | head -1) (no graphics files in it)"
    fi
  done
  kill "$bkpid" 2>/dev/null; wait "$bkpid" 2>/dev/null
}
whole_path_tools_ok && whole_path

say "$failures failure(s)"
rm -rf "$work"
[ "$failures" -eq 0 ]
