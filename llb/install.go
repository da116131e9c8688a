// Package llb plans a driver image as BuildKit LLB: the base, an install step
// that runs NVIDIA's .run with --no-kernel-module in isolation (the .run and
// stub module utilities mounted read-only, temp space on tmpfs, no network),
// and a result that adds the installer's changes to the base, in one layer or
// spread over several (DriverLayers); for bases of one family that share the
// driver's layers (Fleet, OnBase), without the linker cache, plus a layer
// with each base's own. Everything here is pure: specs in, llb.State and
// image config out.
package llb

import (
	"fmt"
	"path"
	"strings"

	"github.com/gpuimg/gpuimg/drivers"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Paths inside the install step. All are mounts for that step only; BuildKit
// removes the mount points it created, so none of them lands in the layer.
const (
	DriverDir = "/gpuimg/driver" // the .run, read-only
	ToolsDir  = "/gpuimg/bin"    // stub modprobe & co. and the install script, read-only
	TmpDir    = "/tmp"           // tmpfs, executable: the stub extracts and runs there
	// InstallerLog is where --log-file-name points: on the tmpfs, so it never
	// lands in the image; the step prints its tail when the installer fails.
	InstallerLog = TmpDir + "/nvidia-installer.log"
	// tmpfsSize bounds the tmpfs; the payload of a 600 MB .run unpacks to ~1.5 GB.
	tmpfsSize = 8 << 30
)

// InstallScriptName is the install step's script inside ToolsDir.
const InstallScriptName = "gpuimg-install"

// stubUtilities are the module utilities nvidia-installer insists on finding
// even with --no-kernel-module; they do nothing here (there is no kernel
// module to load in an image build). ldconfig, grep, tail and dmesg stay real.
var stubUtilities = []string{"depmod", "insmod", "lsmod", "modprobe", "rmmod"}

// ExitNotGlibc is the install step's exit status when the base is not a glibc
// system (Alpine/musl); the message is on the step's stderr.
const ExitNotGlibc = 42

// ExitNothingInstalled is the install step's exit status when the installer
// reported success but installed no driver library: NVIDIA's installer does
// that for a package whose .manifest it misreads (an empty header line).
const ExitNothingInstalled = 44

// ExitMissingICDs is the install step's exit status when graphics were asked
// for but the Vulkan/EGL/OpenCL ICD files did not land (the --x-prefix pitfall
// and friends, REFERENCE 4.5): an image without them fails only at run time.
const ExitMissingICDs = 43

// icdFiles are the vendor files GL/Vulkan/OpenCL loaders need; each entry
// lists the places the installer may put it.
var icdFiles = [][]string{
	{"/etc/vulkan/icd.d/nvidia_icd.json", "/usr/share/vulkan/icd.d/nvidia_icd.json"},
	{"/usr/share/glvnd/egl_vendor.d/10_nvidia.json", "/etc/glvnd/egl_vendor.d/10_nvidia.json"},
	{"/etc/OpenCL/vendors/nvidia.icd"},
}

// Base is the image the driver is installed into.
type Base struct {
	// Ref is a registry reference pinned by digest (name@sha256:…), or for an
	// OCI layout the layout-local name@sha256:… that BuildKit reads from OCIStore.
	Ref string
	// OCIStoreID names the SolveOpt.OCIStores entry holding the layout; empty
	// for a registry image.
	OCIStoreID string
	// Name is the base as labels show it (org.opencontainers.image.base.name).
	Name string
}

// Digest is the base's manifest digest when Ref is pinned, else "".
func (b Base) Digest() string {
	if _, d, ok := strings.Cut(b.Ref, "@"); ok {
		return d
	}
	return ""
}

// Spec is one driver image to plan.
type Spec struct {
	// Driver is the package drivers.Resolve found: its version, file name
	// and checksum; a local file (synced from the client) or URLs (BuildKit
	// downloads the first, pinned by the checksum, and caches it); and
	// whether it was verified: the makeself stub's own CRC/MD5 pass over the
	// whole file (seconds for a 400 MB package) is then skipped
	// (SETUP_NOCHECK=1), and the labels say so.
	Driver     drivers.Resolved
	Platform   ocispecs.Platform
	Base       Base
	Components Components
	// Prune lists base names of installed files to delete (PruneNames).
	Prune []string
	// Compat32 installs the package's 32-bit libraries into the base
	// family's 32-bit library directory (Steam, Wine); off, none are.
	Compat32 bool
	// Extractor, when set, unpacks the payload in a step of its own (see
	// Extract) and the install step runs NVIDIA's installer from that tree.
	// The stub's CRC/MD5 self-check does not run then, so it needs Verified.
	Extractor *Extractor
	// DriverLayers spreads the driver's files over this many layers of about
	// equal size (1 or 0: one layer). BuildKit compresses one layer per core,
	// so a big driver layer split N ways compresses on N cores. Splitter, the
	// static gpuimg-unpack (the Extractor's binary), does it inside the
	// install step; it needs no verified package.
	DriverLayers int
	Splitter     *Extractor
	// SplitLinkerCache keeps /etc/ld.so.cache, the one file whose contents
	// depend on the base, out of the driver layer: the result is the base, the
	// driver files (the same blob on every base of the family, see OnBase) and
	// a small layer with the base's linker cache.
	SplitLinkerCache bool
	// Epoch (SOURCE_DATE_EPOCH, Unix seconds) becomes the mtime of every file
	// and directory the step changes, so the layer is the same bytes on every
	// builder without the exporter rewriting (and recompressing) it.
	Epoch int64
}

// Graph is the planned LLB of one image.
type Graph struct {
	Base      bk.State
	Extracted bk.State // the package's tree (with an Extractor; else unset)
	Installed bk.State // the base after the install step (build-time only)
	// DriverLayer is every file the installer added: the install's diff,
	// merged with the step's other layer outputs when DriverLayers > 1.
	DriverLayer bk.State
	// Result is base + DriverLayer, and with SplitLinkerCache + the base's
	// linker cache layer.
	Result bk.State
}

// Build plans the LLB for spec. The result is llb.Merge([base, llb.Diff(base,
// installed)]): the base's own layers, unchanged, plus one layer; with
// DriverLayers N, the diff is merged with the install step's N-1 extra
// outputs, the files the splitter moved there.
func Build(spec Spec) (Graph, error) {
	if err := spec.validate(); err != nil {
		return Graph{}, err
	}
	platform := bk.Platform(spec.Platform)
	base := baseState(spec.Base, spec.Platform)
	run := driverState(spec.Driver)
	tools := toolsState(InstallScript(spec), spec.SplitLinkerCache)
	runOpts := []bk.RunOption{
		bk.Args([]string{"/bin/sh", ToolsDir + "/" + InstallScriptName}),
		bk.AddEnv("PATH", ToolsDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		bk.AddEnv("TMPDIR", TmpDir),
		bk.Dir("/"),
		bk.User("0:0"),
		bk.Network(pb.NetMode_NONE),
		bk.AddMount(TmpDir, bk.Scratch(), bk.Tmpfs(bk.TmpfsSize(tmpfsSize))),
		bk.AddMount(ToolsDir, tools, bk.Readonly),
		platform,
		bk.WithCustomNamef("install NVIDIA driver %s userspace (%s, components %s)",
			spec.Driver.Version, platformString(spec.Platform), spec.Components),
	}
	var extracted bk.State
	if spec.Extractor != nil {
		extracted = Extract(spec.Driver, *spec.Extractor)
		// Not read-only: NVIDIA's installer works from a read-only tree too,
		// but BuildKit would then key the step by a checksum of the tree's
		// contents (700 MB read and hashed on every cold build); writable,
		// the key is the extraction step's, and writes are thrown away.
		runOpts = append(runOpts, bk.AddMount(PackageDir, extracted))
	} else {
		runOpts = append(runOpts, bk.AddMount(DriverDir, run, bk.Readonly))
	}
	if spec.Driver.Verified() {
		runOpts = append(runOpts, bk.AddEnv("SETUP_NOCHECK", "1"))
	}
	if spec.SplitLinkerCache {
		// ldconfig's aux-cache (inodes and ctimes) stays off the layer.
		runOpts = append(runOpts, bk.AddMount("/var/cache/ldconfig", bk.Scratch(), bk.Tmpfs()))
	}
	if spec.driverLayers() > 1 {
		runOpts = append(runOpts, bk.AddMount(ExtractorDir, extractorState(*spec.Splitter), bk.Readonly))
	}
	exec := base.Run(runOpts...)
	installed := exec.Root()
	diff := bk.Diff(base, installed, platform)
	if parts := layerDirs(spec); len(parts) > 0 {
		layers := []bk.State{diff}
		for _, dir := range parts {
			layers = append(layers, exec.AddMount(dir, bk.Scratch()))
		}
		diff = bk.Merge(layers, platform, bk.WithCustomNamef("driver %s files in %d layers", spec.Driver.Version, len(layers)))
	}
	graph := Graph{Base: base, Extracted: extracted, Installed: installed, DriverLayer: diff}
	if spec.SplitLinkerCache {
		return OnBase(graph, spec, base), nil
	}
	graph.Result = bk.Merge([]bk.State{base, diff}, platform,
		bk.WithCustomNamef("base + driver %s layer", spec.Driver.Version))
	return graph, nil
}

// MaxDriverLayers bounds DriverLayers: past the cores of most builders
// more parts only add per-layer overhead.
const MaxDriverLayers = 16

// LayersDir holds the install step's extra layer outputs, one per driver
// layer after the first.
const LayersDir = "/gpuimg/layers"

func (s Spec) driverLayers() int { return max(s.DriverLayers, 1) }

// layerDirs are the install step's extra layer outputs.
func layerDirs(s Spec) []string {
	var dirs []string
	for i := 2; i <= s.driverLayers(); i++ {
		dirs = append(dirs, fmt.Sprintf("%s/%d", LayersDir, i))
	}
	return dirs
}

// baseState is the base image from its registry or OCI layout.
func baseState(b Base, p ocispecs.Platform) bk.State {
	platform := bk.Platform(p)
	if b.OCIStoreID != "" {
		return bk.OCILayout(b.Ref, bk.OCIStore("", b.OCIStoreID), platform,
			bk.WithCustomNamef("base %s", b.Ref))
	}
	return bk.Image(b.Ref, platform, bk.WithCustomNamef("base %s", b.Ref))
}

func (s Spec) validate() error {
	switch d := s.Driver; {
	case d.Version.IsZero():
		return fmt.Errorf("no driver version in the build spec")
	case s.Base.Ref == "":
		return fmt.Errorf("no base image in the build spec")
	case d.Path == "" && len(d.URLs) == 0:
		return fmt.Errorf("driver %s has neither a URL nor a local file", d.Version)
	case d.SHA256 == "":
		return fmt.Errorf("driver %s: no sha256 to pin it", d.Version)
	case s.Platform.OS == "" || s.Platform.Architecture == "":
		return fmt.Errorf("no platform in the build spec")
	case s.DriverLayers > 1 && s.Splitter == nil:
		return fmt.Errorf("driver %s: %d driver layers need the static gpuimg-unpack, which splits the files inside the install step", d.Version, s.DriverLayers)
	case s.DriverLayers > MaxDriverLayers:
		return fmt.Errorf("driver %s: %d driver layers: at most %d", d.Version, s.DriverLayers, MaxDriverLayers)
	case s.Extractor != nil && !d.Verified():
		return fmt.Errorf("driver %s: extracting the payload outside the .run's stub needs a verified package (its sha256 pinned): the stub's own integrity check would not run", d.Version)
	}
	return nil
}

// driverState is the directory holding the .run: a checksum-pinned download,
// or the file synced from the client.
func driverState(d drivers.Resolved) bk.State {
	if d.Path == "" {
		return bk.HTTP(d.URLs[0],
			bk.Checksum(digest.NewDigestFromEncoded(digest.SHA256, d.SHA256)),
			bk.Filename(d.FileName()),
			bk.Chmod(0o644),
			bk.WithCustomNamef("download %s", d.FileName()))
	}
	return bk.Local(d.LocalName(),
		bk.IncludePatterns([]string{d.FileName()}),
		bk.SharedKeyHint(d.LocalName()),
		bk.WithCustomNamef("load %s", d.FileName()))
}

// StubScript is the body of every stub module utility.
const StubScript = "#!/bin/sh\n# gpuimg: no kernel modules in an image build\nexit 0\n"

// toolsState is a scratch filesystem with one do-nothing script per module
// utility and the install script; it is mounted only into the install step.
func toolsState(script string, splitLinkerCache bool) bk.State {
	fa := bk.Mkfile(InstallScriptName, 0o644, []byte(script), bk.WithCreatedTime(stubTime))
	for _, name := range stubUtilities {
		fa = fa.Mkfile(name, 0o755, []byte(StubScript), bk.WithCreatedTime(stubTime))
	}
	if splitLinkerCache {
		fa = fa.Mkfile("ldconfig", 0o755, []byte(LdconfigWrapper), bk.WithCreatedTime(stubTime))
	}
	return bk.Scratch().File(fa, bk.WithCustomName("install script and stub module utilities"))
}

// StubUtilities lists the module utilities the install step stubs out.
func StubUtilities() []string { return append([]string(nil), stubUtilities...) }

// InstallScript is the install step's shell script: refuse a non-glibc base,
// choose the family's X module and 32-bit paths, run the installer with the
// version's flags (log on the tmpfs; its tail on failure), check that it
// installed the driver, drop unselected components, refresh the linker
// cache, and remove the installer itself and its records so the layer holds
// only driver files.
func InstallScript(spec Spec) string {
	flags := InstallerFlags(spec.Driver.Version, spec.Driver.Arch, spec.Components, spec.Compat32)
	flags = append(flags, "--log-file-name="+InstallerLog)
	run := "sh " + path.Join(DriverDir, spec.Driver.FileName())
	if spec.Extractor != nil {
		// What the .run's stub does after unpacking: cd into the tree and
		// start the installer there.
		run = "cd " + PackageDir + " && ./nvidia-installer"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `set -u
if [ -e /etc/alpine-release ] || ls /lib/ld-musl-* /usr/lib/ld-musl-* >/dev/null 2>&1; then
  echo "gpuimg: the base image uses musl libc (Alpine): NVIDIA's driver libraries are linked against glibc and cannot load there; use a glibc base such as debian:bookworm, ubuntu:22.04 or ubi9" >&2
  exit %[1]d
fi
if ! (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; command -v ldconfig >/dev/null 2>&1); then
  echo "gpuimg: the base image has no ldconfig (glibc's), which nvidia-installer needs to place and register the libraries; use a glibc distribution base (debian, ubuntu, ubi) rather than a distroless or scratch image" >&2
  exit %[1]d
fi
%[6]s%[9]shad_nvidia_state=0; [ -e /var/lib/nvidia ] && had_nvidia_state=1
touch %[2]s/gpuimg-install.stamp
if ! (%[3]s %[4]s $family_flags); then
  echo "gpuimg: nvidia-installer failed; the last lines of its log:" >&2
  if [ ! -s %[5]s ]; then echo "(the installer wrote no log)" >&2
  elif command -v tail >/dev/null 2>&1; then tail -n 40 %[5]s >&2
  else cat %[5]s >&2; fi
  exit 1
fi
if [ -z "$(find / -xdev -cnewer %[2]s/gpuimg-install.stamp -type f -name '*.so.%[7]s' 2>/dev/null | head -n 1)" ]; then
  echo "gpuimg: nvidia-installer reported success but installed no driver library (*.so.%[7]s): it misread the package's .manifest (NVIDIA's installer does so when a header line, such as line 3, the architecture, is empty); the last lines of its log:" >&2
  tail -n 20 %[5]s >&2
  exit %[8]d
fi
`, ExitNotGlibc, TmpDir, run, strings.Join(flags, " "), InstallerLog, familyScript(spec), spec.Driver.Version, ExitNothingInstalled, listBefore(spec))
	// Drivers from 390 on ship all three; only a full or graphics image needs them.
	if spec.Components.Has(Graphics) && spec.Driver.Version.AtLeast("390") {
		for _, alternatives := range icdFiles {
			var tests []string
			for _, p := range alternatives {
				tests = append(tests, "[ -e "+p+" ]")
			}
			fmt.Fprintf(&b, "%s || { echo \"gpuimg: the install left no %s: graphics and Vulkan/EGL/OpenCL users would fail at run time; check the installer log above\" >&2; exit %d; }\n",
				strings.Join(tests, " || "), alternatives[0], ExitMissingICDs)
		}
	}
	if len(spec.Prune) > 0 {
		var names []string
		for _, n := range spec.Prune {
			names = append(names, "-name "+shellQuote(n))
		}
		// Only files this step created (-cnewer the stamp) are candidates, so
		// a base's own libGL.so.1 and the like are never touched.
		fmt.Fprintf(&b, "find / -xdev -cnewer %s/gpuimg-install.stamp ! -type d \\( %s \\) -exec rm -f {} +\n",
			TmpDir, strings.Join(names, " -o "))
		b.WriteString("ldconfig\n")
	}
	// The installer copies itself into the image (INSTALLER_BINARY, and the
	// nvidia-uninstall link): neither can do anything useful there. Its
	// uninstall records are not driver files, and ldconfig's aux-cache
	// records inode numbers and ctimes: it would make every build's layer
	// differ (ld.so.cache itself is kept: it resolves libcuda.so.1).
	fmt.Fprintf(&b, `find /usr/bin /usr/share/man/man1 -xdev -cnewer %s/gpuimg-install.stamp \( -name nvidia-installer -o -name nvidia-uninstall -o -name 'nvidia-installer.1*' \) -exec rm -f {} + 2>/dev/null
[ "$had_nvidia_state" = 1 ] || rm -rf /var/lib/nvidia
rm -f /var/log/nvidia-installer.log /var/log/nvidia-uninstall.log /var/cache/ldconfig/aux-cache
`, TmpDir)
	if dirs := layerDirs(spec); len(dirs) > 0 {
		// The moved files get the epoch from the splitter; the root's
		// directories they left, from the touch below.
		fmt.Fprintf(&b, "%s split %s %d %s || exit 1\n", splitterPath(spec), splitList, spec.Epoch, strings.Join(dirs, " "))
	}
	// Last, so that the removals above are covered too.
	fmt.Fprintf(&b, "find / -xdev -cnewer %s/gpuimg-install.stamp -exec touch -h -d @%d {} +\n", TmpDir, spec.Epoch)
	return b.String()
}

// splitList is where the install step lists the base's files before the
// install, so the split moves only files the install created.
const splitList = TmpDir + "/gpuimg-base-files"

func splitterPath(s Spec) string { return path.Join(ExtractorDir, s.Splitter.FileName) }

// listBefore is the script line listing the base's files, when the step
// splits the driver's files into several layers.
func listBefore(s Spec) string {
	if len(layerDirs(s)) == 0 {
		return ""
	}
	return fmt.Sprintf("%s list %s || exit 1\n", splitterPath(s), splitList)
}

// familyScript sets $family_flags: where the base's family keeps what the
// installer cannot find out in an image without an X server or pkg-config.
// Debian and Ubuntu (a multiarch lib/<triplet>) load X modules from
// /usr/lib/xorg/modules and 32-bit libraries from lib/i386-linux-gnu; the
// RHEL family (lib64) from /usr/lib64/xorg/modules and lib. Left alone,
// NVIDIA's installer guesses /usr/lib64/xorg/modules on every base. A base
// with the X.Org SDK (pkg-config xorg-server) answers the installer itself.
func familyScript(spec Spec) string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[spec.Platform.Architecture]
	var b strings.Builder
	fmt.Fprintf(&b, `if [ -d /usr/lib/%[1]s ]; then
  x_libdir=/usr/lib/%[1]s x_moduledir=/usr/lib/xorg/modules compat32_libdir=lib/i386-linux-gnu
else
  x_libdir=/usr/lib64 x_moduledir=/usr/lib64/xorg/modules compat32_libdir=lib
fi
family_flags="--x-library-path=$x_libdir --x-module-path=$x_moduledir"
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists xorg-server 2>/dev/null; then family_flags=; fi
`, triplet)
	if spec.Compat32 {
		b.WriteString(`family_flags="$family_flags --install-compat32-libs --compat32-libdir=$compat32_libdir"
if [ ! -e /lib/ld-linux.so.2 ] && [ ! -e /usr/lib/ld-linux.so.2 ] && [ ! -e /usr/lib/i386-linux-gnu/ld-linux.so.2 ]; then
  echo "gpuimg: warning: the base has no 32-bit C library (ld-linux.so.2), so 32-bit programs cannot load the 32-bit driver libraries; add libc6:i386 (Debian, Ubuntu) or glibc.i686 (RHEL) to the base" >&2
fi
`)
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func platformString(p ocispecs.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
