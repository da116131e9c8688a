package standin

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Options select the stand-in package to generate.
type Options struct {
	Version           string // e.g. "580.159.04" (2 or 3 parts); required
	Arch              string // "x86_64" (default) or "aarch64": names, manifest, and every ELF file and the embedded decompressor built for it (cross-compiled on another host)
	Compression       string // "gzip" (default), "xz" (no integrity check, like NVIDIA's), "zstd"
	Scale             string // "tiny" (default: each file a few KiB, whole .run well under 1 MB) or "realistic" (real sizes from the TSV, ~675 MB unpacked)
	EmbedDecompressor bool   // add the skip_decompress/size_decompress section; forced on for xz/zstd so the stub can extract anywhere
	NoCompat32        bool   // the -no-compat32 variant (no 32/ directory)
	// Installer, when set, is the path of an nvidia-installer binary to ship
	// instead of the stand-in script: NVIDIA's own, built from its source,
	// for the tests that check the stand-in against it.
	Installer string
	// For bad-input tests: EmptyArchLine leaves .manifest's line 3 (the
	// architecture) empty, and ExtraEntries are raw lines appended to it.
	EmptyArchLine bool
	ExtraEntries  []string
}

// Scales and compressions the generator knows.
const (
	ScaleTiny      = "tiny"
	ScaleRealistic = "realistic"
)

var versionPattern = regexp.MustCompile(`^\d{2,3}\.\d{1,3}(\.\d{2,3})?$`)

// normalized validates opts and fills in the defaults, so that equal packages
// have equal options (the cache key depends on it).
func (o Options) normalized() (Options, error) {
	if o.Version == "" {
		return o, fmt.Errorf("stand-in driver: no version given: pass one such as 580.159.04")
	}
	if !versionPattern.MatchString(o.Version) {
		return o, fmt.Errorf("stand-in driver: version %q is not a driver version: use 2 or 3 numeric parts such as 470.94 or 580.159.04", o.Version)
	}
	if o.Arch == "" {
		o.Arch = "x86_64"
	}
	if o.Arch != "x86_64" && o.Arch != "aarch64" {
		return o, fmt.Errorf("stand-in driver: arch %q is not supported: use x86_64 or aarch64", o.Arch)
	}
	if o.Compression == "" {
		o.Compression = "gzip"
	}
	switch o.Compression {
	case "gzip":
	case "xz", "zstd":
		o.EmbedDecompressor = true // a Debian base has no xz or zstd binary
	default:
		return o, fmt.Errorf("stand-in driver: compression %q is not supported: use gzip, xz or zstd", o.Compression)
	}
	if o.Scale == "" {
		o.Scale = ScaleTiny
	}
	if o.Scale != ScaleTiny && o.Scale != ScaleRealistic {
		return o, fmt.Errorf("stand-in driver: scale %q is not supported: use tiny or realistic", o.Scale)
	}
	if o.Arch != "x86_64" {
		o.NoCompat32 = true // only x86_64 packages carry 32-bit compat libraries
	}
	return o, nil
}

// hasCompat32 reports whether the package carries the 32/ directory.
func (o Options) hasCompat32() bool { return !o.NoCompat32 }

// targetDir is the directory name inside the payload, NVIDIA-Linux-<arch>-<v>.
func (o Options) targetDir() string { return "NVIDIA-Linux-" + o.Arch + "-" + o.Version }

// runName is the package's file name.
func (o Options) runName() string {
	name := o.targetDir()
	if o.NoCompat32 && o.Arch == "x86_64" {
		name += "-no-compat32"
	}
	return name + ".run"
}

// Generate writes NVIDIA-Linux-<arch>-<v>[-no-compat32].run into dir and
// returns its path. The same options always give the same bytes.
func Generate(dir string, opts Options) (runPath string, err error) {
	opts, err = opts.normalized()
	if err != nil {
		return "", err
	}
	// gcc is run from the work directory with -L paths under dir: keep them absolute.
	if dir, err = filepath.Abs(dir); err != nil {
		return "", fmt.Errorf("stand-in driver: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("stand-in driver: create output directory: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".standin-work-")
	if err != nil {
		return "", fmt.Errorf("stand-in driver: create work directory in %s: %w", dir, err)
	}
	defer os.RemoveAll(work)

	pkg, err := newPackage(opts)
	if err != nil {
		return "", err
	}
	if err := buildBinaries(work, pkg); err != nil {
		return "", err
	}
	return publishRun(dir, work, pkg)
}

// versionAtLeast compares dotted numeric versions segment by segment
// ("515.43.04" >= "515.43.4"); missing segments count as zero.
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := 0; i < len(a) || i < len(b); i++ {
		x, y := segment(a, i), segment(b, i)
		if x != y {
			return x > y
		}
	}
	return true
}

func segment(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	n, _ := strconv.Atoi(parts[i]) // callers pass validated versions
	return n
}
