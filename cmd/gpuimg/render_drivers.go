package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gpuimg/gpuimg/drivers"
)

// What `gpuimg drivers list|show|inspect` print: package drivers returns the
// values, these render them.

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writePackageList writes packages as a table.
func writePackageList(w io.Writer, pkgs []drivers.Package) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tARCH\tVARIANT\tBRANCH\tSIZE\tCUDA")
	for _, p := range pkgs {
		cuda, _ := drivers.MaxCUDA(p.Version)
		if cuda == "" {
			cuda = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Version, p.Arch, p.Variant, p.Branch, megabytes(p.Size), cuda)
	}
	return tw.Flush()
}

// writeDriver writes what Show found.
func writeDriver(w io.Writer, d drivers.Driver) error {
	cuda := d.MaxCUDA
	if cuda == "" {
		cuda = "none (older than CUDA 10.0's minimum driver)"
	}
	fmt.Fprintf(w, "driver    %s (branch R%d)\nmax CUDA  %s\n", d.Version, d.Version.Major(), cuda)
	for _, p := range d.Packages {
		fmt.Fprintf(w, "\n%s (%s, %s)\n  size    %d bytes (%s)\n  sha256  %s\n  url     %s\n", p.FileName(), p.Variant, p.Branch, p.Size, megabytes(p.Size), p.SHA256, p.URL)
	}
	return nil
}

// writeRunInfo writes an Inspect report.
func writeRunInfo(w io.Writer, info drivers.Info) error {
	h := info.Header
	fmt.Fprintf(w, "file        %s (%s)\n", info.Path, megabytes(info.Size))
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
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// runInfoWarnings are what an Inspect report warns about, for stderr.
func runInfoWarnings(info drivers.Info) []string {
	var warnings []string
	if info.ManifestVersion != info.Version {
		warnings = append(warnings, fmt.Sprintf("%s: the header says %s but .manifest says %s", info.Path, info.Version, info.ManifestVersion))
	}
	for _, w := range info.ManifestWarnings {
		warnings = append(warnings, info.Path+": .manifest "+w)
	}
	return warnings
}
