package drivers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ImportOptions says how to check a .run carried in from elsewhere.
type ImportOptions struct {
	CacheDir string
	// SHA256 pins the expected checksum; otherwise the catalog's is used.
	SHA256          string
	AllowUnverified bool
	// Arch, when set, must match the package's header.
	Arch string
}

// Import copies a local .run into the cache after reading its header (it
// must be a driver package) and verifying it against --sha256 or the catalog:
// the air-gapped way in.
func Import(ctx context.Context, path string, opts ImportOptions) (Run, error) {
	h, err := ReadHeaderFile(path)
	if err != nil {
		return Run{}, err
	}
	v, err := h.Version()
	if err != nil {
		return Run{}, fmt.Errorf("%s: %w", path, err)
	}
	if opts.Arch != "" && h.TargetArch != opts.Arch {
		return Run{}, CheckRun(h, v, opts.Arch)
	}
	if err := CheckArch(h.TargetArch); err != nil {
		return Run{}, fmt.Errorf("%s: the header's TARGET_ARCH: %w", path, err)
	}
	want := ""
	if opts.SHA256 != "" {
		if want, err = NormalizeSHA256(opts.SHA256); err != nil {
			return Run{}, err
		}
	}
	candidates := List(WithVersion(v), WithArch(h.TargetArch))
	if want == "" && len(candidates) == 0 && !opts.AllowUnverified {
		return Run{}, fmt.Errorf("%s holds driver %s (%s), which the catalog lacks: pass --sha256 HEX from a source you trust, or --allow-unverified", path, v, h.TargetArch)
	}
	dir, err := cacheDirOrDefault(opts.CacheDir)
	if err != nil {
		return Run{}, err
	}
	if err := prepareCache(dir); err != nil {
		return Run{}, err
	}

	src, err := os.Open(path)
	if err != nil {
		return Run{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Join(dir, cachePartials), "import-*.part")
	if err != nil {
		return Run{}, unwritableCache(dir, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once it has been renamed into place
	defer tmp.Close()
	hasher := sha256.New()
	size, err := copyHashing(tmp, hasher, &ctxReader{ctx: ctx, r: src}, nil)
	if err == nil {
		err = tmp.Sync()
	}
	if err != nil {
		return Run{}, fmt.Errorf("copy %s into the cache: %w", path, err)
	}
	got := hex.EncodeToString(hasher.Sum(nil))

	run := Run{SHA256: got, Size: size, Version: v, Arch: h.TargetArch, Source: path}
	switch {
	case want != "":
		if got != want {
			return Run{}, fmt.Errorf("%w: %s has sha256 %s, want %s (--sha256): the copy is damaged or another file", ErrChecksumMismatch, path, got, want)
		}
		run.VerifiedBy = VerifiedByFlag
		run.Variant = variantFromName(path)
		if p, ok := matchCatalog(candidates, got); ok {
			run.Variant = p.Variant
		}
	case len(candidates) > 0:
		p, ok := matchCatalog(candidates, got)
		if !ok {
			listed := make([]string, len(candidates))
			for i, c := range candidates {
				listed[i] = c.FileName() + " " + c.SHA256
			}
			return Run{}, fmt.Errorf("%w: %s has sha256 %s, but the catalog lists %s: the copy is damaged or modified; copy it again", ErrChecksumMismatch, path, got, strings.Join(listed, ", "))
		}
		run.Variant, run.VerifiedBy = p.Variant, VerifiedByCatalog
	default:
		run.Variant = variantFromName(path)
	}
	if err := tmp.Close(); err != nil {
		return Run{}, err
	}
	run.Path, err = storeBlob(dir, tmp.Name(), got, RunFileName(v, run.Arch, run.Variant))
	return run, err
}

func matchCatalog(pkgs []Package, sha string) (Package, bool) {
	for _, p := range pkgs {
		if p.SHA256 == sha {
			return p, true
		}
	}
	return Package{}, false
}

// variantFromName guesses the variant of a package the catalog lacks from
// NVIDIA's file naming.
func variantFromName(path string) string {
	if strings.HasSuffix(filepath.Base(path), "-"+VariantNoCompat32+".run") {
		return VariantNoCompat32
	}
	return VariantFull
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
