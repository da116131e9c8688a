package drivers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
)

// Driver is what `gpuimg drivers show` reports about one version.
type Driver struct {
	Version Version `json:"version"`
	// MaxCUDA is the newest CUDA toolkit whose minimum driver this meets.
	MaxCUDA  string    `json:"max_cuda,omitempty"`
	Packages []Package `json:"packages"`
}

// Show collects the catalog's packages of v (for arch, or every arch when
// arch is ""), with the newest CUDA it supports.
func Show(v Version, arch string) (Driver, error) {
	filters := []Filter{WithVersion(v)}
	if arch != "" {
		if err := CheckArch(arch); err != nil {
			return Driver{}, err
		}
		filters = append(filters, WithArch(arch))
	}
	d := Driver{Version: v, Packages: List(filters...)}
	d.MaxCUDA, _ = MaxCUDA(v)
	if len(d.Packages) == 0 {
		where := ""
		if arch != "" {
			where = " for " + arch
		}
		return d, fmt.Errorf("driver %s%s is not in the catalog: `gpuimg drivers list` shows the known versions; `gpuimg drivers fetch %s --sha256 HEX` fetches another one", v, where, v)
	}
	return d, nil
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteList writes packages as a table.
func WriteList(w io.Writer, pkgs []Package) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tARCH\tVARIANT\tBRANCH\tSIZE\tCUDA")
	for _, p := range pkgs {
		cuda, _ := MaxCUDA(p.Version)
		if cuda == "" {
			cuda = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Version, p.Arch, p.Variant, p.Branch, mb(p.Size), cuda)
	}
	return tw.Flush()
}

// WriteDriver writes what Show found.
func WriteDriver(w io.Writer, d Driver) error {
	cuda := d.MaxCUDA
	if cuda == "" {
		cuda = "none (older than CUDA 10.0's minimum driver)"
	}
	fmt.Fprintf(w, "driver    %s (branch R%d)\nmax CUDA  %s\n", d.Version, d.Version.Major(), cuda)
	for _, p := range d.Packages {
		fmt.Fprintf(w, "\n%s (%s, %s)\n  size    %d bytes (%s)\n  sha256  %s\n  url     %s\n", p.FileName(), p.Variant, p.Branch, p.Size, mb(p.Size), p.SHA256, p.URL)
	}
	return nil
}

// WriteInfo writes an Inspect report.
func WriteInfo(w io.Writer, info Info) error {
	h := info.Header
	fmt.Fprintf(w, "file        %s (%s)\n", info.Path, mb(info.Size))
	fmt.Fprintf(w, "driver      %s %s\n", info.Version, info.Arch)
	fmt.Fprintf(w, "label       %s\n", h.Label)
	fmt.Fprintf(w, "makeself    %s; payload %s from line %d (byte %d)", orDash(h.Makeself), h.Compression, h.Skip, h.PayloadOffset)
	if h.SizeDecompress > 0 {
		fmt.Fprintf(w, "; embedded decompressor lines %d-%d", h.SkipDecompress, h.SkipDecompress+h.SizeDecompress-1)
	}
	fmt.Fprintf(w, "\nchecksums   CRCsum %s, MD5 %s\n", orDash(h.CRCSum), orDash(h.MD5))
	fmt.Fprintf(w, "manifest    %s %s %s; kernel modules: %s\n", info.Description, info.ManifestVersion, orDash(info.ManifestArch), orDash(strings.Join(info.KernelModules, " ")))
	if info.TypeTable != "" {
		fmt.Fprintf(w, "read as     nvidia-installer %s reads it (that release's manifest type table)\n", info.TypeTable)
	}
	fmt.Fprintln(w)
	row := func(name string, files int, bytes int64) {
		fmt.Fprintf(w, "%-16s %6d %12d\n", name, files, bytes)
	}
	fmt.Fprintf(w, "%-16s %6s %12s\n", "GROUP", "FILES", "BYTES")
	for _, g := range info.Groups {
		row(string(g.Group), g.Files, g.Bytes)
	}
	row("total", info.Files, info.Bytes)
	row("not in manifest", info.Unlisted.Files, info.Unlisted.Bytes)
	if len(info.UnknownTypes) > 0 {
		fmt.Fprintf(w, "\nunknown manifest types (grouped by name or module): %s\n", strings.Join(info.UnknownTypes, " "))
	}
	if len(info.Missing) > 0 {
		fmt.Fprintf(w, "\nlisted in .manifest but absent from the payload: %s\n", strings.Join(info.Missing, " "))
	}
	for _, warning := range info.ManifestWarnings {
		fmt.Fprintf(w, "\nwarning: .manifest %s\n", warning)
	}
	if info.ManifestVersion != info.Version {
		fmt.Fprintf(w, "\nwarning: the header says %s but .manifest says %s\n", info.Version, info.ManifestVersion)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RunPathFor turns a FILE|VERSION argument into a .run path: an existing file
// is used as is, a version is looked up in the cache (never the network).
func RunPathFor(arg, cacheDir, arch, variant string) (string, error) {
	st, statErr := os.Stat(arg)
	if statErr == nil {
		if st.IsDir() {
			return "", fmt.Errorf("%s is a directory: give a .run file or a driver version", arg)
		}
		return arg, nil
	}
	v, verr := ParseVersion(arg)
	if verr != nil {
		if errors.Is(statErr, fs.ErrNotExist) {
			return "", fmt.Errorf("no file %q, and %w", arg, verr)
		}
		return "", fmt.Errorf("%s: %w", arg, statErr)
	}
	return FindCached(cacheDir, v, arch, variant)
}

// VerifyResult says what a .run was checked against.
type VerifyResult struct {
	Path       string `json:"path"`
	SHA256     string `json:"sha256"`
	Version    string `json:"version"`
	Arch       string `json:"arch"`
	VerifiedBy string `json:"verified_by"`
	// Package is the catalog's file name when the catalog vouched for it.
	Package string `json:"package,omitempty"`
}

// VerifyRun checks that path is a .run and that its sha256 is sha (when
// given) or one the catalog lists for the header's version and arch.
func VerifyRun(path, sha string) (VerifyResult, error) {
	h, err := ReadHeaderFile(path)
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{Path: path, Version: h.VersionString, Arch: h.TargetArch}
	if sha != "" {
		if err := VerifyFile(path, sha); err != nil {
			return VerifyResult{}, err
		}
		res.SHA256, _ = NormalizeSHA256(sha)
		res.VerifiedBy = VerifiedByFlag
		return res, nil
	}
	v, err := h.Version()
	if err != nil {
		return VerifyResult{}, fmt.Errorf("%s: %w", path, err)
	}
	candidates := List(WithVersion(v), WithArch(h.TargetArch))
	if len(candidates) == 0 {
		return VerifyResult{}, fmt.Errorf("%s holds driver %s (%s), which the catalog lacks, so there is nothing to verify against: pass --sha256 HEX", path, v, h.TargetArch)
	}
	got, _, err := FileSHA256(path)
	if err != nil {
		return VerifyResult{}, err
	}
	p, ok := matchCatalog(candidates, got)
	if !ok {
		return VerifyResult{}, fmt.Errorf("%w: %s has sha256 %s, which is none of the catalog's %s packages: the file is damaged or modified; fetch it again", ErrChecksumMismatch, path, got, v)
	}
	res.SHA256, res.VerifiedBy, res.Package = got, VerifiedByCatalog, p.FileName()
	return res, nil
}
