package manifesttypes

import (
	"slices"
	"testing"
)

func TestForPicksTheNewestReleaseNotNewer(t *testing.T) {
	if got := Releases(); !slices.Equal(got, []string{"450.102.04", "470.256.02", "535.216.01", "550.127.05", "580.119.02", "590.48.01"}) {
		t.Fatalf("releases = %v", got)
	}
	for v, want := range map[string]string{
		"390.48": "450.102.04", "450.102.04": "450.102.04", "470.82.00": "450.102.04", "470.256.02": "470.256.02", "535.261.03": "535.216.01",
		"580.159.04": "580.119.02", "580.119.01": "550.127.05", "595.84": "590.48.01",
	} {
		if got := For(v).Release; got != want {
			t.Errorf("For(%s) = %s, want %s", v, got, want)
		}
	}
}

func TestTablesReadAsManifestCDeclaresThem(t *testing.T) {
	old, cur := For("450.102.04"), For("590.48.01")
	if c, ok := cur.Caps("CUDA_SYMLINK"); !ok || !c.HasArch || !c.HasPath || !c.IsSymlink || c.InheritPath {
		t.Errorf("CUDA_SYMLINK = %+v, %v", c, ok)
	}
	if c, ok := cur.Caps("OPENGL_SYMLINK"); !ok || !c.HasArch || c.HasPath || !c.IsSymlink || !c.IsOpenGL {
		t.Errorf("OPENGL_SYMLINK = %+v, %v", c, ok)
	}
	if c, ok := cur.Caps("FIRMWARE"); !ok || !c.InheritPath || c.HasPath {
		t.Errorf("FIRMWARE = %+v, %v", c, ok)
	}
	for _, typ := range []string{"FIRMWARE", "SYSTEMD_UNIT", "WINE_LIB", "VULKANSC_ICD_JSON"} {
		if _, ok := old.Caps(typ); ok {
			t.Errorf("450.102.04 knows %s", typ)
		}
	}
	if _, ok := cur.Caps("NVIFR_LIB"); ok {
		t.Error("590.48.01 knows NVIFR_LIB")
	}
	if len(old.Types()) != 57 || len(cur.Types()) != 65 {
		t.Errorf("%d and %d types, want 57 and 65", len(old.Types()), len(cur.Types()))
	}
}

func TestLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{{"470.82", "470.256.02", true}, {"470.256.02", "470.82", false}, {"515.43.04", "515.43.4", false}, {"99", "450", true}} {
		if got := Less(tc.a, tc.b); got != tc.less {
			t.Errorf("Less(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}
