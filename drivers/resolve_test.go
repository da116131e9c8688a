package drivers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers/driverstest"
)

// One decision for every command: a local .run is judged the same way
// whether it is built from, imported or verified.
func TestResolveJudgesALocalFile(t *testing.T) {
	file := writeRun(t, driverstest.Run{Version: "998.10.01"})
	sum, size, err := FileSHA256(file)
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	for name, tc := range map[string]struct {
		catalog    string // the catalog's sha256 for 998.10.01 x86_64 ("" = not listed)
		flag       string
		allow      bool
		verifiedBy string
		warns      string // a warning containing this
		refusal    error
	}{
		"catalog vouches":           {catalog: sum, verifiedBy: VerifiedByCatalog},
		"catalog disagrees":         {catalog: other, refusal: ErrChecksumMismatch},
		"catalog disagrees, allow":  {catalog: other, allow: true, warns: "UNVERIFIED"},
		"--sha256 vouches":          {flag: sum, verifiedBy: VerifiedByFlag},
		"--sha256 wins the catalog": {catalog: other, flag: sum, verifiedBy: VerifiedByFlag, warns: "differs from the catalog's"},
		"--sha256 disagrees":        {flag: other, refusal: ErrChecksumMismatch},
		"no checksum":               {refusal: ErrUnverifiable},
		"no checksum, allow":        {allow: true, warns: "cannot be verified"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.catalog != "" {
				useCatalog(t, Package{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, Variant: VariantFull, SHA256: tc.catalog, Size: size})
			}
			for _, download := range []bool{false, true} {
				w := Want{File: file, SHA256: tc.flag, AllowUnverified: tc.allow, CacheDir: t.TempDir(), Download: download}
				r, warnings, err := Resolve(context.Background(), w)
				if tc.refusal != nil {
					if !errors.Is(err, tc.refusal) {
						t.Errorf("download=%v: err = %v, want %v", download, err, tc.refusal)
					}
					continue
				}
				if err != nil {
					t.Fatalf("download=%v: %v", download, err)
				}
				if r.VerifiedBy != tc.verifiedBy || r.SHA256 != sum || r.Version.String() != "998.10.01" || r.Arch != ArchX86_64 {
					t.Errorf("download=%v: resolved %+v", download, r)
				}
				if got := strings.Join(warnings, "\n"); (tc.warns == "") != (got == "") || !strings.Contains(got, tc.warns) {
					t.Errorf("download=%v: warnings %q, want one saying %q", download, got, tc.warns)
				}
				if download == strings.HasPrefix(r.Path, file) {
					t.Errorf("download=%v: path %s", download, r.Path)
				}
			}
		})
	}
}

// The cache remembers whether a package was verified when it was stored: a
// copy found by name is trusted only then.
func TestResolveTrustsTheCacheAsStored(t *testing.T) {
	cache := t.TempDir()
	verified := writeRun(t, driverstest.Run{Version: "998.10.01"})
	sum, _, _ := FileSHA256(verified)
	if _, _, err := Resolve(context.Background(), Want{File: verified, SHA256: sum, CacheDir: cache, Download: true}); err != nil {
		t.Fatal(err)
	}
	r, _, err := Resolve(context.Background(), Want{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, CacheDir: cache, Offline: true})
	if err != nil || r.VerifiedBy != VerifiedByCache || !r.Verified() {
		t.Errorf("a copy verified when imported: %+v, %v", r, err)
	}

	unverified := writeRun(t, driverstest.Run{Version: "998.20.01"})
	if _, _, err := Resolve(context.Background(), Want{File: unverified, AllowUnverified: true, CacheDir: cache, Download: true}); err != nil {
		t.Fatal(err)
	}
	want := Want{Version: MustParseVersion("998.20.01"), Arch: ArchX86_64, CacheDir: cache, Offline: true}
	if _, _, err := Resolve(context.Background(), want); !errors.Is(err, ErrUnverifiable) {
		t.Errorf("a copy imported unverified, without --allow-unverified: err = %v", err)
	}
	want.AllowUnverified = true
	r, warnings, err := Resolve(context.Background(), want)
	if err != nil || r.Verified() || len(warnings) == 0 {
		t.Errorf("a copy imported unverified, with --allow-unverified: %+v, %q, %v", r, warnings, err)
	}
	if found, err := FindCached(cache, MustParseVersion("998.20.01"), ArchX86_64, ""); err != nil || found.Path != r.Path || found.Verified() {
		t.Errorf("FindCached of the unverified copy: %+v, %v", found, err)
	}

	// A link an older gpuimg wrote in names/ does not say whether the copy
	// was verified: it is treated as unverified.
	file := RunFileName(MustParseVersion("998.10.01"), ArchX86_64, VariantFull)
	if err := os.MkdirAll(filepath.Join(cache, "names"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cache, "verified", file), filepath.Join(cache, "names", file)); err != nil {
		t.Fatal(err)
	}
	legacy := Want{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, CacheDir: cache, Offline: true}
	if _, _, err := Resolve(context.Background(), legacy); !errors.Is(err, ErrUnverifiable) {
		t.Errorf("a copy an older gpuimg linked in names/: err = %v", err)
	}
}

// Without Download, a package that is not cached resolves to its URLs,
// pinned by the checksum, and its local name is given once, by content.
func TestResolveLeavesTheDownloadToTheBuilder(t *testing.T) {
	sha := strings.Repeat("cd", 32)
	r, _, err := Resolve(context.Background(), Want{Version: MustParseVersion("998.30.01"), Arch: ArchX86_64, SHA256: sha,
		CacheDir: t.TempDir(), Mirror: "http://127.0.0.1:1/{file}"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != "" || len(r.URLs) != 1 || r.URLs[0] != "http://127.0.0.1:1/NVIDIA-Linux-x86_64-998.30.01.run" || r.SHA256 != sha || !r.Verified() || r.LocalName() != "" {
		t.Errorf("resolved %+v", r)
	}
	local := Resolved{Path: "/c/x.run", SHA256: sha}
	if local.LocalName() != "driver-"+sha[:16] {
		t.Errorf("LocalName = %q", local.LocalName())
	}
}

// A package the builder downloads (no Download) is pinned before the build
// by the .sha256sum its mirror publishes, one per arch; without one it is
// refused, naming the arch and the sidecar looked for.
func TestResolveForBuilderUsesTheSidecarPerArch(t *testing.T) {
	s := newRunServer(t)
	sums := map[string]string{ArchX86_64: strings.Repeat("1a", 32), ArchAarch64: strings.Repeat("2b", 32)}
	for arch, sum := range sums {
		file := RunFileName(MustParseVersion("998.30.01"), arch, VariantFull)
		s.mu.Lock()
		s.files[file+".sha256sum"] = []byte(sum + "  " + file + "\n")
		s.mu.Unlock()
	}
	for arch, sum := range sums {
		w := testOptions(s, "998.30.01", "", t.TempDir())
		w.Arch = arch
		r, _, err := Resolve(context.Background(), w)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if r.SHA256 != sum || r.VerifiedBy != VerifiedBySidecar || r.Path != "" || r.URLs[0] != s.URL+"/"+RunFileName(w.Version, arch, VariantFull) {
			t.Errorf("%s: resolved %+v, want the builder to download it pinned to %s", arch, r, sum)
		}
	}
	w := testOptions(s, "998.40.01", "", t.TempDir())
	w.Arch = ArchAarch64
	_, _, err := Resolve(context.Background(), w)
	if err == nil || !strings.Contains(err.Error(), "NVIDIA-Linux-aarch64-998.40.01.run.sha256sum") || !strings.Contains(err.Error(), "--sha256 aarch64=HEX") {
		t.Errorf("no sidecar: err = %v", err)
	}
}
