package drivers

import (
	"strings"
	"testing"
)

func TestCatalogParses(t *testing.T) {
	if err := CatalogError(); err != nil {
		t.Fatal(err)
	}
	all := List()
	versions := map[string]bool{}
	for _, p := range all {
		versions[p.Version.String()] = true
	}
	// REFERENCE 1.6: 516 rows covering 301 versions; x86_64 363, aarch64 153.
	if len(all) != 516 || len(versions) != 301 {
		t.Errorf("catalog has %d rows and %d versions, want 516 and 301", len(all), len(versions))
	}
	if n := len(List(WithArch(ArchX86_64))); n != 363 {
		t.Errorf("x86_64 rows = %d, want 363", n)
	}
	if n := len(List(WithArch(ArchAarch64))); n != 153 {
		t.Errorf("aarch64 rows = %d, want 153", n)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Version.Compare(all[i].Version) > 0 {
			t.Fatalf("List is not sorted: %s before %s", all[i-1].Version, all[i].Version)
		}
	}
}

func TestLookupPackage(t *testing.T) {
	v := MustParseVersion("450.102.04")
	full, ok := LookupPackage(v, ArchX86_64, "")
	if !ok || full.Variant != VariantFull {
		t.Fatalf("450.102.04 x86_64 full not found: %+v", full)
	}
	nc, ok := LookupPackage(v, ArchX86_64, VariantNoCompat32)
	if !ok || nc.SHA256 == full.SHA256 || !strings.HasSuffix(nc.URL, "-no-compat32.run") || nc.FileName() != "NVIDIA-Linux-x86_64-450.102.04-no-compat32.run" {
		t.Errorf("no-compat32 variant wrong: %+v", nc)
	}
	if _, ok := LookupPackage(MustParseVersion("470.82.00"), ArchX86_64, ""); !ok {
		t.Errorf("470.82.00 not found")
	}
	if _, ok := LookupPackage(MustParseVersion("470.82"), ArchX86_64, ""); ok {
		t.Errorf("470.82 found though the catalog only has 470.82.00; versions must match as written")
	}
	p, ok := LookupPackage(MustParseVersion("580.159.04"), ArchX86_64, "")
	if !ok || p.Branch != "tesla" || !strings.Contains(p.URL, "/tesla/") || p.Size <= 0 || len(p.SHA256) != 64 {
		t.Errorf("580.159.04 should be a tesla-tree package: %+v", p)
	}
	if got := List(WithBranch("cuda"), WithArch(ArchX86_64)); len(got) == 0 || !strings.HasPrefix(got[0].URL, "https://github.com/") {
		t.Errorf("cuda rows should point at the GitHub re-hosts: %+v", got)
	}
}

func TestMaxCUDA(t *testing.T) {
	for _, tc := range []struct{ driver, cuda string }{
		{"450.102.04", "11.0.3"},
		{"470.256.02", "11.4.4"},
		{"535.261.03", "12.2.2"},
		{"580.159.04", "13.0.2"},
		{"570.26", "12.8.0"},
		{"610.43.02", "13.3"},
	} {
		got, ok := MaxCUDA(MustParseVersion(tc.driver))
		if !ok || got != tc.cuda {
			t.Errorf("MaxCUDA(%s) = %q, want %q", tc.driver, got, tc.cuda)
		}
	}
	if got, ok := MaxCUDA(MustParseVersion("390.157")); ok {
		t.Errorf("MaxCUDA(390.157) = %q, want none (older than CUDA 10.0)", got)
	}
}
