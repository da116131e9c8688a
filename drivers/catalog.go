package drivers

import (
	_ "embed"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// catalogTSV is a copy of ../shared/data/nvidia-driver-runs.tsv (REFERENCE
// 1.6): version, arch, variant, branch, sha256, size, url.
//
//go:embed nvidia-driver-runs.tsv
var catalogTSV string

// Architectures NVIDIA publishes .run packages for.
const (
	ArchX86_64  = "x86_64"
	ArchAarch64 = "aarch64"
)

// Package variants: the full package, or x86_64 without the 32-bit libraries.
const (
	VariantFull       = "full"
	VariantNoCompat32 = "no-compat32"
)

// Package is one .run file NVIDIA published, as the catalog records it.
type Package struct {
	Version Version `json:"version"`
	Arch    string  `json:"arch"`
	Variant string  `json:"variant"`
	// Branch is informative only: production, new-feature, beta, legacy,
	// unsupported, or tesla/cuda for the download tree it lives in.
	Branch string `json:"branch"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	URL    string `json:"url"`
}

// FileName is the package's file name, NVIDIA-Linux-<arch>-<v>[-no-compat32].run.
func (p Package) FileName() string { return RunFileName(p.Version, p.Arch, p.Variant) }

// RunFileName is NVIDIA's file name for a version, arch and variant.
func RunFileName(v Version, arch, variant string) string {
	name := "NVIDIA-Linux-" + arch + "-" + v.String()
	if variant == VariantNoCompat32 {
		name += "-" + VariantNoCompat32
	}
	return name + ".run"
}

var (
	catalogOnce sync.Once
	catalog     []Package
	catalogErr  error
)

// loadCatalog parses the embedded catalog once. A malformed row is a defect in
// the repository, reported by every lookup (and by the catalog's unit test).
func loadCatalog() ([]Package, error) {
	catalogOnce.Do(func() { catalog, catalogErr = parseCatalog(catalogTSV) })
	return catalog, catalogErr
}

func parseCatalog(text string) ([]Package, error) {
	var pkgs []Package
	sawHeader := false
	for i, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !sawHeader {
			sawHeader = true
			if !strings.HasPrefix(line, "version\t") {
				return nil, fmt.Errorf("catalog line %d: want the header line \"version\\tarch...\", got %q", i+1, line)
			}
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("catalog line %d: want 7 tab-separated columns, got %d", i+1, len(f))
		}
		v, err := ParseVersion(f[0])
		if err != nil {
			return nil, fmt.Errorf("catalog line %d: %w", i+1, err)
		}
		size, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil || size <= 0 {
			return nil, fmt.Errorf("catalog line %d: size %q is not a positive integer", i+1, f[5])
		}
		if !isSHA256Hex(f[4]) {
			return nil, fmt.Errorf("catalog line %d: sha256 %q is not 64 lowercase hex digits", i+1, f[4])
		}
		pkgs = append(pkgs, Package{Version: v, Arch: f[1], Variant: f[2], Branch: f[3], SHA256: f[4], Size: size, URL: f[6]})
	}
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if c := a.Version.Compare(b.Version); c != 0 {
			return c < 0
		}
		if a.Version.String() != b.Version.String() {
			return a.Version.String() < b.Version.String()
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return a.Variant < b.Variant
	})
	return pkgs, nil
}

// LookupPackage finds a package in the embedded catalog; variant "" means the
// full package. The version must match as written (470.82 is not 470.82.00).
func LookupPackage(v Version, arch, variant string) (Package, bool) {
	if variant == "" {
		variant = VariantFull
	}
	pkgs, err := loadCatalog()
	if err != nil {
		return Package{}, false
	}
	for _, p := range pkgs {
		if p.Version.Equal(v) && p.Arch == arch && p.Variant == variant {
			return p, true
		}
	}
	return Package{}, false
}

// Filter selects catalog packages for List.
type Filter func(Package) bool

// WithArch keeps packages for one architecture.
func WithArch(arch string) Filter { return func(p Package) bool { return p.Arch == arch } }

// WithBranch keeps packages of one branch (production, tesla, ...).
func WithBranch(branch string) Filter { return func(p Package) bool { return p.Branch == branch } }

// WithVariant keeps one variant (full, no-compat32).
func WithVariant(variant string) Filter { return func(p Package) bool { return p.Variant == variant } }

// WithVersion keeps the packages of one version (every arch and variant).
func WithVersion(v Version) Filter { return func(p Package) bool { return p.Version.Equal(v) } }

// List returns the catalog's packages that pass every filter, oldest version
// first.
func List(filters ...Filter) []Package {
	pkgs, err := loadCatalog()
	if err != nil {
		return nil
	}
	var out []Package
next:
	for _, p := range pkgs {
		for _, keep := range filters {
			if !keep(p) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// CatalogError reports a defect in the embedded catalog (nil when it parses).
func CatalogError() error {
	_, err := loadCatalog()
	return err
}

// Branches lists the branch names the catalog uses, sorted.
func Branches() []string {
	seen := map[string]bool{}
	for _, p := range List() {
		seen[p.Branch] = true
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// CheckArch validates an architecture name, with the fix in the error.
func CheckArch(arch string) error {
	if arch == ArchX86_64 || arch == ArchAarch64 {
		return nil
	}
	return fmt.Errorf("architecture %q is not one NVIDIA publishes .run packages for: use %s or %s", arch, ArchX86_64, ArchAarch64)
}

// CheckVariant validates a variant name ("" means full).
func CheckVariant(variant string) error {
	if variant == "" || variant == VariantFull || variant == VariantNoCompat32 {
		return nil
	}
	return fmt.Errorf("variant %q is unknown: use %s or %s", variant, VariantFull, VariantNoCompat32)
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ListFiltered is List for command-line filters, validating each ("" = any).
func ListFiltered(arch, branch, variant string) ([]Package, error) {
	var filters []Filter
	if arch != "" {
		if err := CheckArch(arch); err != nil {
			return nil, err
		}
		filters = append(filters, WithArch(arch))
	}
	if branch != "" {
		known := Branches()
		found := false
		for _, b := range known {
			found = found || b == branch
		}
		if !found {
			return nil, fmt.Errorf("branch %q is not in the catalog: use one of %s", branch, strings.Join(known, ", "))
		}
		filters = append(filters, WithBranch(branch))
	}
	if variant != "" {
		if err := CheckVariant(variant); err != nil {
			return nil, err
		}
		filters = append(filters, WithVariant(variant))
	}
	return List(filters...), nil
}
