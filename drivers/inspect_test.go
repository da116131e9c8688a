package drivers

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gpuimg/gpuimg/drivers/driverstest"
)

func TestInspectCountsGroups(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			p := writeRun(t, driverstest.Run{Version: "580.159.04", Compression: comp})
			info, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if info.Version != "580.159.04" || info.ManifestVersion != "580.159.04" || info.Arch != "x86_64" || info.Header.Compression != comp {
				t.Errorf("info = %+v", info)
			}
			// DefaultManifest: 12 entries; byte sizes chosen per group in DefaultFiles.
			want := map[Component]GroupStats{
				ComponentCompute:    {Group: ComponentCompute, Files: 2, Bytes: 1000},
				ComponentUtility:    {Group: ComponentUtility, Files: 2, Bytes: 500},
				ComponentVideo:      {Group: ComponentVideo, Files: 1, Bytes: 400},
				ComponentGraphics:   {Group: ComponentGraphics, Files: 2, Bytes: 550},
				ComponentDisplay:    {Group: ComponentDisplay, Files: 1, Bytes: 600},
				ComponentNGX:        {Group: ComponentNGX},
				ComponentKernelOnly: {Group: ComponentKernelOnly, Files: 1, Bytes: 700},
				ComponentHostOnly:   {Group: ComponentHostOnly, Files: 2, Bytes: 890},
				ComponentOther:      {Group: ComponentOther, Files: 1, Bytes: 10},
			}
			for c, w := range want {
				if got := info.Group(c); got != w {
					t.Errorf("group %s = %+v, want %+v", c, got, w)
				}
			}
			if info.Files != 12 || info.Bytes != 4650 {
				t.Errorf("totals = %d files, %d bytes; want 12, 4650", info.Files, info.Bytes)
			}
			// .manifest and nvidia-installer are in the payload but not listed.
			if info.Unlisted.Files != 2 || info.Unlisted.Bytes != 123+int64(len(driverstest.DefaultManifest("580.159.04", "x86_64"))) {
				t.Errorf("unlisted = %+v", info.Unlisted)
			}
			if len(info.Missing) != 0 || len(info.UnknownTypes) != 0 {
				t.Errorf("missing %v unknown %v", info.Missing, info.UnknownTypes)
			}
		})
	}
}

func TestInspectToleratesUnknownTypesAndReportsMissing(t *testing.T) {
	manifest := "d\n390.157\nx86_64\nnvidia\n5\n6\n7\n8\n" +
		"libcuda.so.390.157 0755 CUDA_LIB NATIVE / MODULE:gpgpu\n" +
		"libnew.so.390.157 0755 HYPER_LIB NATIVE / MODULE:opengl\n" +
		"libgone.so.390.157 0755 OPENGL_LIB NATIVE / MODULE:opengl\n" +
		"libnvidia-tls.so.390.157 0644 TLS_LIB NATIVE NEW / MODULE:opengl\n"
	p := writeRun(t, driverstest.Run{Version: "390.157", Manifest: manifest, Files: map[string][]byte{
		"libcuda.so.390.157":       make([]byte, 10),
		"libnew.so.390.157":        make([]byte, 20),
		"libnvidia-tls.so.390.157": make([]byte, 30),
	}})
	info, err := Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.UnknownTypes, []string{"HYPER_LIB"}) || !reflect.DeepEqual(info.Missing, []string{"libgone.so.390.157"}) {
		t.Errorf("unknown %v missing %v", info.UnknownTypes, info.Missing)
	}
	if g := info.Group(ComponentGraphics); g.Files != 3 || g.Bytes != 50 {
		t.Errorf("graphics = %+v, want 3 files (HYPER_LIB by its module) and 50 bytes", g)
	}
}

func TestInspectDamagedPayload(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		p := writeRun(t, driverstest.Run{Version: "470.256.02", Compression: comp})
		data, _ := os.ReadFile(p)
		cut := p + ".cut"
		os.WriteFile(cut, data[:len(data)-40], 0o644)
		if _, err := Inspect(cut); err == nil {
			t.Errorf("%s: a truncated payload was inspected without error", comp)
		}
	}
	noManifest := writeRun(t, driverstest.Run{Version: "470.256.02", Manifest: "x", Files: map[string][]byte{"a": []byte("b")}})
	// Manifest "x" is written as the .manifest file, so it is present but too
	// short to parse.
	if _, err := Inspect(noManifest); err == nil {
		t.Errorf("a one-line .manifest was accepted")
	}
	if _, err := Inspect(os.Args[0]); !errors.Is(err, ErrNotRun) {
		t.Errorf("inspecting the test binary: %v, want ErrNotRun", err)
	}
}

func TestReadManifestMatchesInspect(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			p := writeRun(t, driverstest.Run{Version: "580.159.04", Compression: comp})
			info, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ReadManifest(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, info.Manifest) {
				t.Errorf("ReadManifest = %+v\nInspect's manifest = %+v", m, info.Manifest)
			}
		})
	}
	notRun := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notRun, []byte("not a driver package\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(notRun); err == nil {
		t.Error("a text file was read as a driver package")
	}
}
