package llb

import (
	"fmt"
	"path"
	"strings"

	"github.com/gpuimg/gpuimg/drivers"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Paths of the extraction and linker-cache steps.
const (
	// PackageDir is the extracted package tree inside the install step.
	PackageDir = "/gpuimg/package"
	// ExtractorDir holds the static extractor inside the extraction step.
	ExtractorDir = "/gpuimg/extractor"
	// fitDir holds the fingerprints the linker-cache step compares.
	fitDir = "/gpuimg/fit"
)

// ExitBaseDoesNotFit is the linker-cache step's exit status when a base
// differs from the one the driver layer was installed on in something
// NVIDIA's installer looks at; that base must be built the full way.
const ExitBaseDoesNotFit = 45

// Extractor is the static gpuimg-unpack binary the extraction step runs.
type Extractor struct {
	// LocalName is the SolveOpt.LocalMounts key of the directory holding it
	// (synced from the client, so remote builders get it too).
	LocalName string
	FileName  string
	// Platform is the binary's own (the client's); the tree it writes is the
	// same on any platform.
	Platform ocispecs.Platform
}

// Extract is the package's tree: the payload unpacked once by a step of
// its own, with an empty root (no base: the step's cache key is the .run's
// and the extractor's contents, so every base, component set and rebuild
// after a cache trim of the install reuses it) and no network.
func Extract(d drivers.Resolved, e Extractor) bk.State {
	tool := extractorState(e)
	st := bk.Scratch().Run(
		bk.Args([]string{path.Join(ExtractorDir, e.FileName), path.Join(DriverDir, d.FileName()), PackageDir}),
		bk.AddEnv("TMPDIR", TmpDir),
		bk.Dir("/"),
		bk.User("0:0"),
		bk.Network(pb.NetMode_NONE),
		bk.AddMount(TmpDir, bk.Scratch(), bk.Tmpfs(bk.TmpfsSize(64<<20))),
		bk.AddMount(DriverDir, driverState(d), bk.Readonly),
		bk.AddMount(ExtractorDir, tool, bk.Readonly),
		bk.Platform(e.Platform),
		bk.WithCustomNamef("extract %s (once per package, for every base)", d.FileName()))
	return st.AddMount(PackageDir, bk.Scratch())
}

// extractorState is the directory holding the static gpuimg-unpack.
func extractorState(e Extractor) bk.State {
	return bk.Local(e.LocalName,
		bk.IncludePatterns([]string{e.FileName}),
		bk.SharedKeyHint(e.LocalName),
		// The same definition for every base and build: one extraction op.
		bk.LocalUniqueID(e.LocalName),
		bk.WithCustomName("load the static gpuimg-unpack"))
}

// LdconfigWrapper stands in for ldconfig in the install step of a split
// plan: NVIDIA's installer reads the base's cache (ldconfig -p) as usual,
// but the cache it rebuilds goes to the tmpfs, so the driver layer holds no
// /etc/ld.so.cache and is the same bytes on every base of the family.
const LdconfigWrapper = `#!/bin/sh
# gpuimg: the linker cache goes into a layer of its own, built per base
real=
for d in /sbin /usr/sbin /bin /usr/bin; do [ -x "$d/ldconfig" ] && real=$d/ldconfig && break; done
[ -n "$real" ] || { echo "gpuimg: the base has no ldconfig" >&2; exit 127; }
for a in "$@"; do case "$a" in -p|--print-cache|-C*) exec "$real" "$@" ;; esac; done
exec "$real" -C "${TMPDIR:-/tmp}/ld.so.cache" "$@"
`

// FitScript prints what NVIDIA's installer looks at in a base under
// gpuimg's flags: the C library, the family's directories (and whether /lib
// and /bin are links into /usr), the library directories the linker cache
// names, libglvnd and X.Org SDK presence, the 32-bit loader, and the
// ownership and modes of the directories the driver layer writes into. Two
// bases with the same output get the same files from the installer.
const FitScript = `set -u
ls /lib/ld-musl-* /usr/lib/ld-musl-* /etc/alpine-release 2>/dev/null
for p in /lib /lib64 /bin /sbin /usr/lib64 /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib/i386-linux-gnu /usr/lib32 \
  /usr/bin /usr/share /usr/share/doc /usr/share/man /usr/share/man/man1 /usr/share/glvnd /usr/share/vulkan /usr/share/egl \
  /usr/lib/xorg /usr/lib64/xorg /etc /etc/OpenCL /etc/vulkan /lib/firmware /usr/lib/firmware /lib/ld-linux.so.2 /usr/lib/ld-linux.so.2 /usr/lib/i386-linux-gnu/ld-linux.so.2; do
  if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"
  elif [ -e "$p" ]; then echo "$p $(stat -c '%F %a %u %g' "$p")"
  else echo "$p absent"; fi
done
ldconfig -p 2>/dev/null | sed -n 's|.* => \(.*\)/[^/]*$|dir \1|p' | sort -u
ldconfig -p 2>/dev/null | grep -oE '^\s*lib(GL|EGL|GLX|GLdispatch|OpenGL|GLESv1_CM|GLESv2)\.so\.[0-9]+ ' | sort -u | sed 's/^ */glvnd /'
command -v pkg-config >/dev/null 2>&1 && pkg-config --exists xorg-server 2>/dev/null && echo "xorg-server sdk"
true
`

// FitFile is the fingerprint's file name in Fingerprint's output.
const FitFile = "fit"

// Fingerprint is a state holding FitFile, what NVIDIA's installer looks at
// in base b: the very step OnBase's check mounts, so a caller that solves it
// first, to group bases by family, pays nothing for it again.
func Fingerprint(b Base, p ocispecs.Platform) bk.State {
	return fit(baseState(b, p), p)
}

// fit is the fingerprint file of base: FitScript's output, made by a tiny
// step with no network.
func fit(base bk.State, platform ocispecs.Platform) bk.State {
	return base.Run(
		// exec: the whole script's output, not only its last command's.
		bk.Args([]string{"/bin/sh", "-c", "exec > " + fitDir + "/" + FitFile + "\n" + FitScript}),
		bk.Dir("/"),
		bk.User("0:0"),
		bk.Network(pb.NetMode_NONE),
		bk.Platform(platform),
		bk.WithCustomName("what NVIDIA's installer looks at in this base"),
	).AddMount(fitDir, bk.Scratch())
}

// OnBase puts installed's driver layer on base without installing again: the
// base, the same driver layer (one blob for every base of the family, stored
// and pulled once), and a small layer with the base's own linker cache,
// made by ldconfig on the merge. The step first checks that base shows
// NVIDIA's installer what installed's base showed it, and otherwise fails with
// ExitBaseDoesNotFit: the caller then builds that base the full way.
func OnBase(installed Graph, spec Spec, base bk.State) Graph {
	platform := bk.Platform(spec.Platform)
	withDriver := bk.Merge([]bk.State{base, installed.DriverLayer}, platform,
		bk.WithCustomNamef("base + driver %s layer", spec.Driver.Version))
	script := LinkerCacheScript(spec.Epoch)
	cached := withDriver.Run(
		bk.Args([]string{"/bin/sh", "-c", script}),
		bk.Dir("/"),
		bk.User("0:0"),
		bk.Network(pb.NetMode_NONE),
		// ldconfig's aux-cache records inodes and ctimes: kept off the layer.
		bk.AddMount("/var/cache/ldconfig", bk.Scratch(), bk.Tmpfs()),
		bk.AddMount(fitDir+"/reference", fit(installed.Base, spec.Platform), bk.Readonly),
		bk.AddMount(fitDir+"/this", fit(base, spec.Platform), bk.Readonly),
		platform,
		bk.WithCustomNamef("linker cache for driver %s on this base", spec.Driver.Version),
	).Root()
	cacheLayer := bk.Diff(withDriver, cached, platform)
	result := bk.Merge([]bk.State{base, installed.DriverLayer, cacheLayer}, platform,
		bk.WithCustomNamef("base + driver %s layer + linker cache layer", spec.Driver.Version))
	return Graph{Base: base, Extracted: installed.Extracted, Installed: installed.Installed, DriverLayer: installed.DriverLayer, Result: result}
}

// LinkerCacheScript is the linker-cache step's script: refuse a base whose
// fingerprint differs from the one the driver layer was installed on (exit
// ExitBaseDoesNotFit, both fingerprints on stderr), else run ldconfig and
// give what it changed (the cache and /etc itself) the build's epoch.
func LinkerCacheScript(epoch int64) string {
	return fmt.Sprintf(`set -u
# cat and test only: a base need not have cmp or diff.
if [ "$(cat %[1]s/reference/fit)" != "$(cat %[1]s/this/fit)" ]; then
  echo "gpuimg: this base differs from the one the driver layer was installed on, in what NVIDIA's installer looks at; it needs an install of its own. The first base showed:" >&2
  cat %[1]s/reference/fit >&2
  echo "this base shows:" >&2
  cat %[1]s/this/fit >&2
  exit %[2]d
fi
# On the step's tmpfs, so it is not in the layer.
stamp=/var/cache/ldconfig/gpuimg.stamp
touch "$stamp"
ldconfig
# What ldconfig changed (the cache, /etc's times, any link it made) gets the
# build's epoch, as the install step's files do: the layer is the same bytes
# on every build.
find / -xdev -cnewer "$stamp" -exec touch -h -d @%[3]d {} +
`, fitDir, ExitBaseDoesNotFit, epoch)
}

// Fleet plans one driver on several bases of one family: a single
// extraction and install, on the first base, and for each base the shared
// driver layer plus its own linker cache layer (OnBase). The graphs are in
// the order of bases.
func Fleet(spec Spec, bases []Base) ([]Graph, error) {
	if len(bases) == 0 {
		return nil, fmt.Errorf("no base image in the fleet")
	}
	spec.Base = bases[0]
	spec.SplitLinkerCache = true
	first, err := Build(spec)
	if err != nil {
		return nil, err
	}
	graphs := []Graph{first}
	for _, b := range bases[1:] {
		if strings.TrimSpace(b.Ref) == "" {
			return nil, fmt.Errorf("no base image in the fleet")
		}
		graphs = append(graphs, OnBase(first, spec, baseState(b, spec.Platform)))
	}
	return graphs, nil
}
