package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// Want names a driver package and says how far to trust it: the input of
// Resolve, which `gpuimg drivers fetch|import|verify` and `gpuimg build` all
// go through.
type Want struct {
	// Version is the driver; with File it may be zero (the file's header says).
	Version Version
	// Arch is x86_64 or aarch64; with File it may be "" (the header says).
	Arch string
	// Variant is full or no-compat32. "" is full, or no-compat32 where the
	// catalog has only that; for a File, whichever the catalog's checksum
	// matches (else what the file name says).
	Variant string
	// File is a .run on this machine, used instead of the cache.
	File string
	// SHA256 pins the expected checksum (--sha256); it wins over the
	// catalog's, with a warning.
	SHA256 string
	// AllowUnverified accepts a package no checksum is known for, and a local
	// File whose checksum is wrong, with a loud warning; the result is then
	// not Verified. A download that does not match its checksum is always
	// refused (it was damaged on the way; another URL or a retry fixes that).
	AllowUnverified bool
	CacheDir        string // "" → DefaultCacheDir()
	// Mirror is "", a name from MirrorHosts, or a URL template (see URLs).
	Mirror string
	// Offline answers from File or the cache only and never opens a connection.
	Offline bool
	// Download makes sure the package ends up in the cache: a File is copied
	// in (import), a package not cached is downloaded (fetch). Without it a
	// package not cached resolves to its URLs, for BuildKit to download.
	Download bool

	// Client makes the requests; nil uses one with connect and header timeouts.
	Client *http.Client
	// StallTimeout aborts a request that receives no bytes for this long
	// (default 30s); the download then resumes where it stopped.
	StallTimeout time.Duration
	// Attempts per URL for interrupted downloads (default 3), RetryDelay
	// before each new attempt (default 1s).
	Attempts   int
	RetryDelay time.Duration
	// KeepPartial keeps a verified partial download when the disk is full
	// (to resume after freeing space); by default it is removed, so it does
	// not keep the disk full.
	KeepPartial bool
	// Progress receives progress lines (nil: none); ProgressBar redraws one
	// line in place, for a terminal.
	Progress    io.Writer
	ProgressBar bool
}

// Resolved is a package Resolve found and judged: on this machine (Path), or
// for a builder to download (URLs), with the checksum it must have.
type Resolved struct {
	// Path is the .run on this machine: in the cache, or Want.File.
	Path string `json:"path,omitempty"`
	// URLs are where to download it from, best first, when Path is "".
	URLs    []string `json:"urls,omitempty"`
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size,omitempty"`
	Version Version  `json:"version"`
	Arch    string   `json:"arch"`
	Variant string   `json:"variant"`
	// Source is the URL it came from, "cache", or the local file.
	Source string `json:"source"`
	// VerifiedBy names the checksum's origin: catalog, --sha256,
	// .sha256sum, "cache" for a copy found by name (its checksum was checked
	// when it was stored), or "" when accepted unverified.
	VerifiedBy string `json:"verified_by"`
}

// Checksum origins reported in Resolved.VerifiedBy.
const (
	VerifiedByCatalog = "catalog"
	VerifiedByFlag    = "--sha256"
	VerifiedBySidecar = ".sha256sum"
	VerifiedByCache   = "cache"
)

// Verified reports whether the package's checksum was confirmed.
func (r Resolved) Verified() bool { return r.VerifiedBy != "" }

// FileName is the .run's file name: the local file's, else NVIDIA's.
func (r Resolved) FileName() string {
	if r.Path != "" {
		return filepath.Base(r.Path)
	}
	return RunFileName(r.Version, r.Arch, r.Variant)
}

// LocalName names the directory holding a local .run when it is handed to a
// builder (BuildKit's local mount): one name per content, so two builds of
// the same file share it.
func (r Resolved) LocalName() string {
	if r.Path == "" || len(r.SHA256) < 16 {
		return ""
	}
	return "driver-" + r.SHA256[:16]
}

// CatalogFile is the catalog package's file name when the catalog vouched
// for the package, else "".
func (r Resolved) CatalogFile() string {
	if r.VerifiedBy != VerifiedByCatalog {
		return ""
	}
	return RunFileName(r.Version, r.Arch, r.Variant)
}

// Resolve finds the package w names and decides whether it is trusted: the
// one place that weighs the catalog, --sha256, a mirror's .sha256sum and
// --allow-unverified. A local File is checked (header, then checksum) and
// copied into the cache with Download; otherwise the cache answers, then a
// download (Download) or the URLs a builder downloads from (pinned by the
// checksum). Warnings are for the user's stderr.
//
// An unverified package on this machine is also walked whole (as `drivers
// inspect` does) before it is accepted: no checksum vouches for it, and a
// truncated one would otherwise fail only inside the installer ("Error in
// check sums"). A cached one that fails is removed.
func Resolve(ctx context.Context, w Want) (Resolved, []string, error) {
	r, warnings, err := resolve(ctx, w)
	if err != nil || r.Verified() || r.Path == "" {
		return r, warnings, err
	}
	if _, err := Inspect(r.Path); err != nil {
		what := "fix or replace the file"
		if r.Path != w.File {
			if dir, _ := cacheDirOrDefault(w.CacheDir); removeBlob(dir, r.SHA256, filepath.Base(r.Path)) == nil {
				what = "it was removed from the cache: fetch or import a whole copy"
			}
		}
		return Resolved{}, warnings, fmt.Errorf("the unverified driver package is not whole: %w (%s)", err, what)
	}
	return r, warnings, nil
}

func resolve(ctx context.Context, w Want) (Resolved, []string, error) {
	w, err := w.normalize()
	if err != nil {
		return Resolved{}, nil, err
	}
	if w.File != "" {
		return resolveFile(ctx, w)
	}
	p, warnings := pinFor(w, []string{w.Variant})
	dir, err := cacheDirOrDefault(w.CacheDir)
	if err != nil {
		return Resolved{}, warnings, err
	}
	file := RunFileName(w.Version, w.Arch, w.Variant)
	r, ok, damaged := findCached(dir, file, p)
	if ok {
		return w.judgeCached(r, warnings)
	}
	if damaged != nil {
		if w.Offline {
			return Resolved{}, warnings, fmt.Errorf("%w; --offline forbids downloading it again: fetch it on a connected machine with the same --cache-dir, or `gpuimg drivers import FILE`", damaged)
		}
		warnings = append(warnings, damaged.Error()+"; downloading it again")
	}
	if w.Offline {
		return Resolved{}, warnings, fmt.Errorf("%w: %s (%s) is not in the driver cache %s and --offline forbids downloading it: fetch it on a connected machine with the same --cache-dir, or `gpuimg drivers import FILE`", ErrNotCached, file, p.note(), dir)
	}
	urls, err := URLs(w.Version, w.Arch, w.Variant, w.Mirror)
	if err != nil {
		return Resolved{}, warnings, err
	}
	f := &fetcher{w: w, dir: dir, file: file, pin: p, urls: urls, client: w.Client}
	if f.client == nil {
		f.client = newHTTPClient(w.StallTimeout)
	}
	if !w.Download {
		// The builder downloads it: pin it here, by the catalog, --sha256,
		// or the .sha256sum the mirror publishes beside it.
		if !f.verified() {
			if err := f.findSidecar(ctx); err != nil {
				return Resolved{}, warnings, err
			}
		}
		if !f.verified() {
			return Resolved{}, warnings, fmt.Errorf("driver %s (%s) is not in gpuimg's catalog and no %s.sha256sum was found beside %s: pass --sha256 with its published checksum (--sha256 %s=HEX when building several platforms; and --mirror if NVIDIA's hosts lack it), or a local copy of the .run", w.Version, w.Arch, file, strings.Join(urls, " or "), w.Arch)
		}
		r := w.resolved(f.pin.sha256, f.pin.size, f.pin.by)
		r.URLs, r.Source = urls, urls[0]
		return r, warnings, nil
	}
	r, more, err := f.fetch(ctx)
	return r, append(warnings, more...), err
}

func (w Want) normalize() (Want, error) {
	if w.File == "" && w.Version.IsZero() {
		return w, fmt.Errorf("no driver version given: %s", versionExample)
	}
	if w.File == "" || w.Arch != "" {
		if err := CheckArch(w.Arch); err != nil {
			return w, err
		}
	}
	if err := CheckVariant(w.Variant); err != nil {
		return w, err
	}
	if w.SHA256 != "" {
		sha, err := NormalizeSHA256(w.SHA256)
		if err != nil {
			return w, err
		}
		w.SHA256 = sha
	}
	if w.File == "" && w.Variant == "" {
		w.Variant = VariantFull
		_, full := LookupPackage(w.Version, w.Arch, VariantFull)
		if _, only := LookupPackage(w.Version, w.Arch, VariantNoCompat32); !full && only {
			w.Variant = VariantNoCompat32
		}
	}
	if w.StallTimeout <= 0 {
		w.StallTimeout = 30 * time.Second
	}
	if w.Attempts <= 0 {
		w.Attempts = 3
	}
	if w.RetryDelay <= 0 {
		w.RetryDelay = time.Second
	}
	if w.Progress == nil {
		w.Progress = io.Discard
	}
	return w, nil
}

func (w Want) resolved(sha string, size int64, by string) Resolved {
	return Resolved{SHA256: sha, Size: size, Version: w.Version, Arch: w.Arch, Variant: w.Variant, VerifiedBy: by}
}

// pin is the checksum a package must have and who says so.
type pin struct {
	sha256 string // "" when none is known
	by     string // VerifiedByCatalog, VerifiedByFlag or VerifiedBySidecar
	// size is the catalog's when its checksum is the one in force, else -1.
	size int64
	// catalog lists the catalog's packages the file may be.
	catalog []Package
}

// pinFor is what the catalog (for any of variants) and --sha256 say a
// package's checksum is; --sha256 wins, with a warning when it differs.
func pinFor(w Want, variants []string) (pin, []string) {
	p := pin{size: -1}
	for _, variant := range variants {
		if pkg, ok := LookupPackage(w.Version, w.Arch, variant); ok {
			p.catalog = append(p.catalog, pkg)
		}
	}
	if len(p.catalog) == 1 {
		p.sha256, p.by, p.size = p.catalog[0].SHA256, VerifiedByCatalog, p.catalog[0].Size
	}
	if w.SHA256 == "" {
		return p, nil
	}
	var warnings []string
	if len(p.catalog) > 0 && !p.listed(w.SHA256) {
		warnings = append(warnings, fmt.Sprintf("--sha256 %s differs from the catalog's %s for driver %s (%s); using --sha256", w.SHA256, p.catalogSums(), w.Version, w.Arch))
	}
	p.sha256, p.by, p.size = w.SHA256, VerifiedByFlag, -1
	return p, warnings
}

func (p pin) listed(sha string) bool {
	_, ok := p.match(sha)
	return ok
}

func (p pin) match(sha string) (Package, bool) {
	for _, pkg := range p.catalog {
		if pkg.SHA256 == sha {
			return pkg, true
		}
	}
	return Package{}, false
}

func (p pin) catalogSums() string {
	sums := make([]string, len(p.catalog))
	for i, pkg := range p.catalog {
		sums[i] = pkg.SHA256
	}
	return strings.Join(sums, " or ")
}

func (p pin) note() string {
	if p.sha256 != "" {
		return "sha256 " + p.sha256
	}
	return "no known checksum"
}

// noChecksum is the refusal of a package no checksum is known for.
type noChecksum struct{ error }

// ErrUnverifiable marks a refusal that Want.AllowUnverified would have let
// through: no checksum is known, or a local file does not match it. The
// commands that have --allow-unverified say so.
var ErrUnverifiable = errors.New("unverifiable driver package")

// unverifiableError is a refusal that is also ErrUnverifiable.
type unverifiableError struct{ error }

func (e unverifiableError) Unwrap() []error { return []error{e.error, ErrUnverifiable} }

// judge compares the sha256 a file has with the pin: the catalog package
// it is, when the catalog vouches, and the origin of the checksum.
func (p pin) judge(w Want, name, got string) (Package, string, error) {
	pkg, inCatalog := p.match(got)
	switch {
	case p.by == VerifiedByFlag || p.by == VerifiedBySidecar:
		if got != p.sha256 {
			return pkg, "", fmt.Errorf("%w: %s has sha256 %s, not the %s %s: the file is damaged or another package; check the file or the checksum", ErrChecksumMismatch, name, got, p.by, p.sha256)
		}
		return pkg, p.by, nil
	case inCatalog:
		return pkg, VerifiedByCatalog, nil
	case len(p.catalog) > 0:
		return pkg, "", fmt.Errorf("%w: %s has sha256 %s, but the catalog's %s %s package has %s: the file is damaged or not NVIDIA's; fetch or copy it again", ErrChecksumMismatch, name, got, w.Version, w.Arch, p.catalogSums())
	}
	return pkg, "", noChecksum{fmt.Errorf("%s holds driver %s (%s), which gpuimg's catalog lacks, so it cannot be verified: pass its published --sha256 HEX from a source you trust", name, w.Version, w.Arch)}
}

// allowUnverified turns a verification failure into warnings when the user
// accepted unverified packages (and the failure is one they may accept).
func (w Want) allowUnverified(err error, local bool) ([]string, error) {
	mayAccept := errors.As(err, new(noChecksum)) || (local && errors.Is(err, ErrChecksumMismatch))
	if !mayAccept {
		return nil, err
	}
	if !w.AllowUnverified {
		return nil, unverifiableError{err}
	}
	return []string{err.Error(), "using an UNVERIFIED driver package because of --allow-unverified; an image built from it is labelled io.gpuimg.driver.verified=false"}, nil
}

// judgeCached accepts a cache hit: one found by checksum or recorded as
// verified is trusted; one stored unverified needs --allow-unverified again.
func (w Want) judgeCached(r Resolved, warnings []string) (Resolved, []string, error) {
	if r.Verified() {
		return r, warnings, nil
	}
	refusal := noChecksum{fmt.Errorf("driver %s (%s): the cached %s was stored unverified and no checksum is known for it now: pass --sha256 HEX from a source you trust", w.Version, w.Arch, r.Path)}
	more, err := w.allowUnverified(refusal, true)
	if err != nil {
		return Resolved{}, warnings, err
	}
	return r, append(warnings, more...), nil
}

// resolveFile checks a local .run: its header must be the version and arch
// asked for, and its checksum the pinned one; with Download it is copied
// into the cache as it is hashed.
func resolveFile(ctx context.Context, w Want) (Resolved, []string, error) {
	h, err := ReadHeaderFile(w.File)
	if err != nil {
		return Resolved{}, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	hv, err := h.Version()
	if err != nil {
		return Resolved{}, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	if w.Version.IsZero() {
		w.Version = hv
	}
	if w.Arch == "" {
		if err := CheckArch(h.TargetArch); err != nil {
			return Resolved{}, nil, fmt.Errorf("%s: the header's TARGET_ARCH: %w", w.File, err)
		}
		w.Arch = h.TargetArch
	}
	if err := CheckRun(h, w.Version, w.Arch); err != nil {
		return Resolved{}, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	variants := []string{VariantFull, VariantNoCompat32}
	if w.Variant != "" {
		variants = []string{w.Variant}
	}
	p, warnings := pinFor(w, variants)
	var local localCopy
	if w.Download {
		local, err = copyIntoCache(ctx, w.File, w.CacheDir)
	} else {
		local, err = hashInPlace(w.File)
	}
	if err != nil {
		return Resolved{}, warnings, err
	}
	defer local.discard()
	pkg, by, err := p.judge(w, w.File, local.sha256)
	if err != nil {
		more, err := w.allowUnverified(err, true)
		if err != nil {
			return Resolved{}, warnings, err
		}
		warnings = append(warnings, more...)
	}
	w.Variant = pkg.Variant
	if w.Variant == "" {
		w.Variant = variantFromName(w.File)
	}
	r := w.resolved(local.sha256, local.size, by)
	r.Path, r.Source = w.File, w.File
	if w.Download {
		if r.Path, err = local.store(RunFileName(w.Version, w.Arch, w.Variant), r.Verified()); err != nil {
			return Resolved{}, warnings, err
		}
	}
	return r, warnings, nil
}

// variantFromName guesses the variant of a package the catalog lacks from
// NVIDIA's file naming.
func variantFromName(path string) string {
	if strings.HasSuffix(filepath.Base(path), "-"+VariantNoCompat32+".run") {
		return VariantNoCompat32
	}
	return VariantFull
}
