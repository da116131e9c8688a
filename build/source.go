package build

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/llb"
)

// driverInput is one verified driver package for one NVIDIA arch.
type driverInput struct {
	Version drivers.Version
	Arch    string // x86_64, aarch64
	Source  llb.DriverSource
	// LocalPath is the .run on this machine, when it is used from here.
	LocalPath string
	SHA256    string
	Verified  bool
}

// nvidiaArch maps an OCI architecture to NVIDIA's package arch.
func nvidiaArch(ociArch string) (string, error) {
	switch ociArch {
	case "amd64":
		return "x86_64", nil
	case "arm64":
		return "aarch64", nil
	}
	return "", fmt.Errorf("platform architecture %q has no NVIDIA driver package: use linux/amd64 or linux/arm64", ociArch)
}

// warnf prints a warning on stderr.
func (o *Options) warnf(format string, args ...any) {
	fmt.Fprintf(o.Stderr, "gpuimg: WARNING: "+format+"\n", args...)
}

// resolveDriverFile verifies --driver-file: its header must name version v
// (when given) and arch, and its sha256 must match the catalog's (when the
// catalog knows the version) or --sha256; --allow-unverified is the only way
// past a mismatch or a missing checksum.
func (o *Options) resolveDriverFile(v drivers.Version, arch string) (driverInput, error) {
	path := o.DriverFile
	hdr, err := drivers.ReadHeaderFile(path)
	if err != nil {
		return driverInput{}, fmt.Errorf("--driver-file %s: %w", path, err)
	}
	hv, err := hdr.Version()
	if err != nil {
		return driverInput{}, fmt.Errorf("--driver-file %s: %w", path, err)
	}
	if !v.IsZero() && !hv.Equal(v) {
		return driverInput{}, fmt.Errorf("--driver-file %s is driver %s, not --driver %s: pass the matching file or version", path, hv, v)
	}
	if hdr.TargetArch != "" && hdr.TargetArch != arch {
		return driverInput{}, fmt.Errorf("--driver-file %s is for %s, but the build is for %s: pass --platform %s or the %s package", path, hdr.TargetArch, arch, ociPlatformFor(hdr.TargetArch), arch)
	}
	sum, _, err := drivers.FileSHA256(path)
	if err != nil {
		return driverInput{}, fmt.Errorf("--driver-file %s: %w", path, err)
	}
	in := driverInput{
		Version:   hv,
		Arch:      arch,
		LocalPath: path,
		SHA256:    sum,
		Source:    llb.DriverSource{FileName: filepath.Base(path), SHA256: sum, LocalName: "driver-" + sum[:16]},
	}
	var known []string
	for _, variant := range []string{drivers.VariantFull, drivers.VariantNoCompat32} {
		if p, ok := drivers.LookupPackage(hv, arch, variant); ok {
			known = append(known, p.SHA256)
		}
	}
	want := o.sha256For(hv)
	hint := " (or pass --allow-unverified to build it anyway, labelled unverified)"
	if o.AllowUnverified {
		hint = ""
	}
	switch {
	case len(known) > 0 && contains(known, sum):
		in.Verified = true
	case len(known) > 0:
		err = fmt.Errorf("--driver-file %s has sha256 %s, but the catalog's %s %s package has %s: the file is corrupt or not NVIDIA's; download it again%s", path, sum, hv, arch, strings.Join(known, " or "), hint)
	case want == sum:
		in.Verified = true
	case want != "":
		err = fmt.Errorf("--driver-file %s has sha256 %s, not the --sha256 %s given: check the file or the checksum%s", path, sum, want, hint)
	default:
		err = fmt.Errorf("driver %s (%s) is not in gpuimg's catalog, so --driver-file %s cannot be verified: pass its published --sha256%s", hv, arch, path, hint)
	}
	if err != nil {
		if !o.AllowUnverified {
			return driverInput{}, err
		}
		o.warnf("%v", err)
		o.warnf("building with an UNVERIFIED driver package because of --allow-unverified; the image is labelled io.gpuimg.driver.verified=false")
	}
	return in, nil
}

// resolveCatalog plans a driver from the catalog (or --sha256 for versions
// it lacks): a verified copy in gpuimg's driver cache when there is one
// (always, with --offline), else a checksum-pinned download that BuildKit
// performs and caches itself, so a remote builder never needs this machine.
func (o *Options) resolveCatalog(ctx context.Context, v drivers.Version, arch string) (driverInput, error) {
	variant := drivers.VariantFull
	pkg, ok := drivers.LookupPackage(v, arch, variant)
	if !ok {
		if p, found := drivers.LookupPackage(v, arch, drivers.VariantNoCompat32); found {
			pkg, ok, variant = p, true, drivers.VariantNoCompat32
		}
	}
	sum := o.sha256For(v)
	if ok && sum != "" && sum != pkg.SHA256 {
		return driverInput{}, fmt.Errorf("--sha256 %s differs from the catalog's %s for driver %s (%s): drop --sha256 or check it", sum, pkg.SHA256, v, arch)
	}
	if ok {
		sum = pkg.SHA256
	}
	if sum == "" {
		return o.resolveUnknown(ctx, v, arch, variant)
	}
	fileName := drivers.RunFileName(v, arch, variant)
	in := driverInput{Version: v, Arch: arch, SHA256: sum, Verified: true}
	cached, err := drivers.FetchRun(ctx, drivers.FetchOptions{
		Version: v, Arch: arch, Variant: variant, SHA256: sum, CacheDir: o.CacheDir, Offline: true,
	})
	if err == nil {
		in.LocalPath = cached.Path
		in.Source = llb.DriverSource{FileName: filepath.Base(cached.Path), SHA256: sum, LocalName: "driver-" + sum[:16]}
		return in, nil
	}
	if o.Offline {
		return driverInput{}, err
	}
	urls, err := drivers.Resolve(v, arch, variant, o.Mirror)
	if err != nil {
		return driverInput{}, err
	}
	if len(urls) == 0 {
		return driverInput{}, fmt.Errorf("driver %s (%s): no download URL: pass --mirror with a URL template, or --driver-file", v, arch)
	}
	// BuildKit tries one URL; the first is the catalog's own (or the mirror's).
	in.Source = llb.DriverSource{FileName: fileName, SHA256: sum, URL: urls[0]}
	return in, nil
}

// resolveUnknown handles a version neither the catalog nor --sha256 pins:
// only a copy imported into the cache earlier (`gpuimg drivers import`) can
// be used, and only with --allow-unverified, since nothing here checks it.
func (o *Options) resolveUnknown(ctx context.Context, v drivers.Version, arch, variant string) (driverInput, error) {
	missing := fmt.Errorf("driver %s (%s) is not in gpuimg's catalog: pass --sha256 with its published checksum (and --mirror if NVIDIA's hosts lack it), or --driver-file", v, arch)
	cached, err := drivers.FetchRun(ctx, drivers.FetchOptions{Version: v, Arch: arch, Variant: variant, CacheDir: o.CacheDir, Offline: true})
	if err != nil {
		return driverInput{}, missing
	}
	if !o.AllowUnverified {
		return driverInput{}, fmt.Errorf("%w; the cached copy %s cannot be verified without it (or pass --allow-unverified)", missing, cached.Path)
	}
	o.warnf("driver %s (%s): using the cached %s UNVERIFIED (--allow-unverified; no checksum is known for it); the image is labelled io.gpuimg.driver.verified=false", v, arch, cached.Path)
	return driverInput{
		Version: v, Arch: arch, LocalPath: cached.Path, SHA256: cached.SHA256,
		Source: llb.DriverSource{FileName: filepath.Base(cached.Path), SHA256: cached.SHA256, LocalName: "driver-" + cached.SHA256[:16]},
	}, nil
}

// sha256For is the --sha256 given for driver v: the single value, or the
// one at v's position in --driver when several are given (checked by
// parseSHA256s).
func (o *Options) sha256For(v drivers.Version) string {
	if sum, ok := o.sha256s[v.String()]; ok {
		return sum
	}
	// --driver-file alone: the version comes from the file's header later.
	if sum, ok := o.sha256s[""]; ok {
		return sum
	}
	return ""
}

// parseSHA256s pairs --sha256 values with the drivers: one value for one
// driver (or for --driver-file), or one per driver, in --driver's order.
func (o *Options) parseSHA256s(versions []drivers.Version) error {
	o.sha256s = map[string]string{}
	if o.SHA256 == "" {
		return nil
	}
	sums := strings.Split(strings.ToLower(o.SHA256), ",")
	for _, s := range sums {
		if _, err := drivers.NormalizeSHA256(s); err != nil {
			return fmt.Errorf("--sha256 %q: %w", s, err)
		}
	}
	if len(sums) != len(versions) {
		return fmt.Errorf("--sha256 has %d values for %d drivers: give one per --driver, in the same order", len(sums), len(versions))
	}
	for i, v := range versions {
		o.sha256s[v.String()] = sums[i]
	}
	return nil
}

func ociPlatformFor(nvArch string) string {
	if nvArch == "aarch64" {
		return "linux/arm64"
	}
	return "linux/amd64"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
