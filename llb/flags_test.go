package llb

import (
	"slices"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
)

func TestInstallerFlagsByVersion(t *testing.T) {
	compute, err := ParseComponents("compute")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version string
		c       Components
		has     []string
		hasNot  []string
	}{
		// 340.108 predates the libglvnd options: --install-libglvnd there
		// aborts with "Invalid commandline" (f4exb/sdrangel-docker#23).
		{"340.108", All, []string{"--silent", "--no-kernel-module", "--no-nvidia-modprobe", "--no-check-for-alternate-installs"},
			[]string{"--install-libglvnd", "--no-install-libglvnd", "--no-systemd"}},
		{"450.102.04", All, []string{"--install-libglvnd", "--no-kernel-module-source"}, []string{"--no-systemd", "--no-install-libglvnd"}},
		{"465.19.01", All, []string{"--no-systemd"}, nil},
		{"580.159.04", compute, []string{"--no-install-libglvnd", "--no-systemd", "--no-opengl-files", "--no-install-compat32-libs"}, []string{"--install-libglvnd"}},
		{"580.159.04", All, []string{"--install-libglvnd", "--no-install-compat32-libs"}, []string{"--no-opengl-files"}},
		{"340.108", compute, []string{"--no-opengl-files"}, []string{"--no-install-libglvnd", "--no-install-compat32-libs"}},
		{"304.137", All, []string{"--no-kernel-module-source"}, []string{"--no-nvidia-modprobe"}},
	} {
		flags := InstallerFlags(drivers.MustParseVersion(tc.version), drivers.ArchX86_64, tc.c, false)
		for _, f := range tc.has {
			if !slices.Contains(flags, f) {
				t.Errorf("%s: missing %s in %v", tc.version, f, flags)
			}
		}
		for _, f := range tc.hasNot {
			if slices.Contains(flags, f) {
				t.Errorf("%s: must not pass %s: %v", tc.version, f, flags)
			}
		}
		for _, f := range flags {
			if strings.HasPrefix(f, "--x-") || f == "--no-kernel-modules" || (f == "--no-opengl-files" && tc.c.Has(Graphics)) {
				t.Errorf("%s: %s must never be passed", tc.version, f)
			}
		}
	}
}

func TestInstallerFlagsCompat32(t *testing.T) {
	v := drivers.MustParseVersion("580.159.04")
	if flags := InstallerFlags(v, drivers.ArchX86_64, All, true); slices.Contains(flags, "--no-install-compat32-libs") {
		t.Errorf("with 32-bit libraries wanted: %v", flags)
	}
	if flags := InstallerFlags(drivers.MustParseVersion("340.108"), drivers.ArchX86_64, All, false); slices.Contains(flags, "--no-install-compat32-libs") {
		t.Errorf("340.108 predates --no-install-compat32-libs (346.16): %v", flags)
	}
	// NVIDIA's aarch64 installer has no 32-bit options and refuses them
	// (internal/standin's TestStandinInstallerMatchesNVIDIAsOnAarch64).
	if flags := InstallerFlags(v, drivers.ArchAarch64, All, false); slices.ContainsFunc(flags, func(f string) bool { return strings.Contains(f, "compat32") }) {
		t.Errorf("aarch64: %v", flags)
	}
}

func TestParseComponents(t *testing.T) {
	c, err := ParseComponents("compute")
	if err != nil || c.String() != "compute,utility" || c.Has(Graphics) || !c.Has(Utility) {
		t.Errorf("compute = %v, %v", c, err)
	}
	if c, err := ParseComponents(""); err != nil || !c.IsAll() || c.String() != "all" {
		t.Errorf("default = %v, %v", c, err)
	}
	if _, err := ParseComponents("compute,cuda"); err == nil || !strings.Contains(err.Error(), "utility, compute") {
		t.Errorf("unknown group error = %v", err)
	}
}

func TestPruneNames(t *testing.T) {
	compute, _ := ParseComponents("compute")
	files := []ManifestFile{
		{"libcuda.so.580.159.04", "compute"},
		{"libcuda.so.1", "compute"},
		{"./32/libcuda.so.580.159.04", "compute"},
		{"libnvidia-ml.so.580.159.04", "utility"},
		{"libGLX_nvidia.so.580.159.04", "graphics"},
		{"nvidia_drv.so", "display"},
		{"firmware/gsp_ga10x.bin", "host-only"},
		{"NVIDIA_Changelog", "other"},
		{"libnvcuvid.so.580.159.04", "video"},
	}
	got := PruneNames(compute, files)
	want := []string{"NVIDIA_Changelog", "gsp_ga10x.bin", "libGLX_nvidia.so.580.159.04", "libnvcuvid.so.580.159.04", "nvidia_drv.so"}
	if !slices.Equal(got, want) {
		t.Errorf("PruneNames = %v, want %v", got, want)
	}
	if PruneNames(All, files) != nil {
		t.Error("all prunes nothing")
	}
}
