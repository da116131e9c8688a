#!/usr/bin/env bash
# Proves gpuimg's manual-mount path on a real NVIDIA GPU host (root, runc, nvcc, python3;
# no Docker, no network, no nvidia-container-toolkit needed):
#   1. `gpuimg host --json` agrees with nvidia-smi, /proc and stat on driver, UUID, bus id, minor, majors;
#   2. a container whose root filesystem holds a CUDA program (nvcc -cudart static) and the host's
#      exact driver userspace runs CUDA under runc with only the nodes `gpuimg flags --format oci`
#      lists, and fails without them;
#   3. gpuimg's driver guard refuses an image recorded for another driver version;
#   4. `gpuimg host` and `gpuimg flags` whole-process times (median of several runs).
#
# Usage: hack/gpu-e2e.sh [OUTDIR]
#   GPUIMG   gpuimg binary (default: gpuimg on PATH)     RUNC    runc binary (default: runc on PATH)
#   MKBASE   internal/cmd/mkbase binary (packs a rootfs into a labelled OCI layout)
#   BUSYBOX  optional static busybox for `ls /dev` inside
#   DRIVER_LIBDIR  where the host's libcuda.so.<version> lives (default: found through ldconfig -p)
# Build the Go pieces on any x86_64 machine:
#   CGO_ENABLED=0 go build -o .gpu/gpuimg ./cmd/gpuimg
#   CGO_ENABLED=0 go build -o .gpu/mkbase ./internal/cmd/mkbase
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$PWD/gpu-e2e-results}}
mkdir -p "$out"
GPUIMG=${GPUIMG:-gpuimg} RUNC=${RUNC:-runc} MKBASE=${MKBASE:-mkbase}
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
patch_config() { # patch_config WITH_NODES ARGS...
  python3 - "$bundle/spec.json" "$bundle/config.json" "$out/oci-fragment.json" "$@" <<'PY'
import json, sys
spec, path, frag_path, with_nodes, *args = sys.argv[1:]
cfg = json.load(open(spec))  # always from runc's pristine spec, so "without" really has no GPU nodes
cfg["process"]["terminal"] = False
cfg["process"]["args"] = args
cfg["process"]["env"] = ["PATH=/usr/bin:/bin"]
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

say "$failures failure(s)"
rm -rf "$work"
[ "$failures" -eq 0 ]
