package imagebuild_test

import (
	"archive/tar"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
)

// TestBuildWithNVIDIAsInstaller builds each of the six releases on BuildKit
// from a stand-in package that carries NVIDIA's own nvidia-installer (built
// from its source) instead of the stand-in one: what the image holds is what
// NVIDIA's installer placed in the Debian base under gpuimg's install step.
func TestBuildWithNVIDIAsInstaller(t *testing.T) {
	testenv.NVIDIAInstaller(t, manifesttypes.Releases()[0]) // skip before starting buildkitd
	e := setup(t)
	for _, release := range manifesttypes.Releases() {
		installer := testenv.NVIDIAInstaller(t, release)
		t.Run(release, func(t *testing.T) {
			run, err := standin.Cached(standin.Options{Version: release, Installer: installer})
			if err != nil {
				t.Fatal(err)
			}
			// The stand-in is not NVIDIA's package, so its sha256 is not the catalog's.
			build := func(extra ...string) (v1.Image, map[string]*tar.Header, string) {
				dest := filepath.Join(t.TempDir(), "image.tar")
				args := append([]string{"build", "--driver-file", run, "--allow-unverified", "--base", e.base,
					"--output", "type=oci,dest=" + dest}, extra...)
				_, stderr, err := e.gpuimg(t, args...)
				if err != nil {
					t.Fatalf("gpuimg %s: %v\n%s", strings.Join(args, " "), err, tailLines(stderr, 60))
				}
				img := ociTarImage(t, dest)
				return img, e.addedLayer(t, img), stderr
			}
			full, fullLayer, _ := build()
			checkNVIDIAInstall(t, fullLayer, release, true)
			if releases := manifesttypes.Releases(); release == releases[0] || release == releases[len(releases)-1] {
				checkExtractionStepWithNVIDIAsInstaller(t, e, run, release)
			}
			linked := ldconfigP(t, full)
			for _, soname := range []string{"libcuda.so.1", "libnvidia-ml.so.1", "libGLX_nvidia.so.0", "libEGL_nvidia.so.0"} {
				if !regexpMatch(`\t`+regexpQuote(soname)+` \(libc6,x86-64\) => (/usr)?/lib/x86_64-linux-gnu/`+regexpQuote(soname)+`\n`, linked) {
					t.Errorf("ldconfig -p in the image does not resolve %s:\n%s", soname, linked)
				}
			}

			if release == manifesttypes.For("999").Release {
				// --compat32: NVIDIA's installer puts the 32-bit libraries into
				// Debian's 32-bit directory, and the base's lack of a 32-bit C
				// library is said.
				_, layer32, stderr := build("--compat32")
				for _, p := range []string{"usr/lib/i386-linux-gnu/libcuda.so." + release, "usr/lib/i386-linux-gnu/libGLX_nvidia.so." + release} {
					if layer32[p] == nil {
						t.Errorf("--compat32: the driver layer lacks %s", p)
					}
				}
				if !strings.Contains(stderr, "the base has no 32-bit C library (ld-linux.so.2)") {
					t.Errorf("--compat32 on a base without libc6:i386: no warning:\n%s", tailLines(stderr, 30))
				}
			}

			_, computeLayer, _ := build("--components", "compute")
			checkNVIDIAInstall(t, computeLayer, release, false)
			// The compute image holds exactly the full install's files minus
			// those of the groups compute drops.
			m, err := drivers.ReadManifest(run)
			if err != nil {
				t.Fatal(err)
			}
			files := make([]llb.ManifestFile, len(m.Entries))
			for i, e := range m.Entries {
				files[i] = llb.ManifestFile{Name: e.Path, Group: string(e.Group)}
			}
			compute, _ := llb.ParseComponents("compute")
			dropped := map[string]bool{}
			for _, name := range llb.PruneNames(compute, files) {
				dropped[name] = true
			}
			for p, h := range fullLayer {
				if h.Typeflag == tar.TypeDir {
					continue
				}
				if _, kept := computeLayer[p]; kept == dropped[path.Base(p)] {
					t.Errorf("%s: in the compute image %v, but its group is dropped %v", p, kept, dropped[path.Base(p)])
				}
			}
			for p, h := range computeLayer {
				if _, inFull := fullLayer[p]; !inFull && h.Typeflag != tar.TypeDir {
					t.Errorf("the compute image holds %s, which the full install did not place", p)
				}
			}
		})
	}
}

// checkNVIDIAInstall asserts where NVIDIA's installer put the files under
// gpuimg's flags on a Debian base, and that nothing of the installer itself
// is left.
func checkNVIDIAInstall(t *testing.T, layer map[string]*tar.Header, version string, graphics bool) {
	t.Helper()
	present := []string{libdir + "libcuda.so." + version, libdir + "libnvidia-ml.so." + version, "usr/bin/nvidia-smi",
		"etc/OpenCL/vendors/nvidia.icd", "etc/ld.so.cache"}
	absent := []string{"usr/bin/nvidia-installer", "usr/bin/nvidia-uninstall", "usr/share/man/man1/nvidia-installer.1.gz",
		"var/lib/nvidia", "var/log/nvidia-installer.log", "var/log/nvidia-uninstall.log", "usr/lib/i386-linux-gnu",
		"usr/bin/nvidia-modprobe", "usr/lib64/xorg", "tmp"}
	graphicsFiles := []string{
		// Where the loaders look: the Vulkan loader, libglvnd's EGL, and Debian's Xorg.
		"etc/vulkan/icd.d/nvidia_icd.json", "usr/share/glvnd/egl_vendor.d/10_nvidia.json",
		"usr/lib/xorg/modules/drivers/nvidia_drv.so", "usr/lib/xorg/modules/extensions/libglxserver_nvidia.so." + version,
		libdir + "libGLX_nvidia.so." + version, libdir + "libEGL_nvidia.so." + version,
	}
	if graphics {
		present = append(present, graphicsFiles...)
	} else {
		absent = append(absent, graphicsFiles...)
	}
	for _, p := range present {
		if layer[p] == nil {
			t.Errorf("the driver layer lacks %s", p)
		}
	}
	for _, p := range absent {
		if layer[p] != nil {
			t.Errorf("the driver layer holds %s", p)
		}
	}
	for p := range layer {
		if strings.HasPrefix(p, "var/lib/nvidia/") || strings.HasPrefix(p, "tmp/") || strings.HasPrefix(p, "gpuimg") {
			t.Errorf("the driver layer holds %s", p)
		}
	}
}

// ldconfigP runs the image's own ldconfig -p in its root file system (all
// its layers, unpacked), as a container would see it.
func ldconfigP(t *testing.T, img v1.Image) string {
	t.Helper()
	testenv.RequireRoot(t)
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	untar := exec.Command("tar", "-x", "-C", root)
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack the image: %v\n%s", err, out)
	}
	out, err := exec.Command("chroot", root, "/sbin/ldconfig", "-p").CombinedOutput()
	if err != nil {
		t.Fatalf("ldconfig -p in the image: %v\n%s", err, out)
	}
	return string(out)
}

// Packages NVIDIA's installer refuses or misreads fail the build, naming the
// package and the installer's own words, and leave no output behind.
func TestBuildRefusesWhatNVIDIAsInstallerRefuses(t *testing.T) {
	const release = "580.119.02"
	installer := testenv.NVIDIAInstaller(t, release)
	e := setup(t)
	for name, tc := range map[string]struct {
		opts standin.Options
		want []string
	}{
		"a type the release does not know": {
			standin.Options{ExtraEntries: []string{"libfuture.so.1 0755 QUANTUM_LIB NATIVE / MODULE:gpgpu"}},
			[]string{"nvidia-installer failed", "Invalid .manifest file; error on line"}},
		"an empty line 3": {
			standin.Options{EmptyArchLine: true},
			[]string{`where the architecture (x86_64) belongs, so NVIDIA's installer would misread the package`}},
	} {
		t.Run(name, func(t *testing.T) {
			tc.opts.Version, tc.opts.Installer = release, installer
			run, err := standin.Generate(t.TempDir(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			outDir := filepath.Join(t.TempDir(), "out")
			dest := filepath.Join(outDir, "image.tar")
			stdout, stderr, err := e.gpuimg(t, "build", "--driver-file", run, "--allow-unverified", "--base", e.base, "--output", "type=oci,dest="+dest)
			if err == nil {
				t.Fatalf("the build succeeded:\n%s", stdout)
			}
			for _, want := range append(tc.want, filepath.Base(run)) {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, tailLines(stderr, 30))
				}
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if entries, err := os.ReadDir(outDir); err == nil && len(entries) > 0 {
				t.Errorf("the failed build left %v in %s", entries, outDir)
			}
		})
	}
}

// checkExtractionStepWithNVIDIAsInstaller: NVIDIA's installer run from the
// tree the extraction step unpacked installs exactly what it installs when
// the .run unpacks itself: with --driver-layers 1 the two images have the
// same digest, and by default the same files spread over several layers.
func checkExtractionStepWithNVIDIAsInstaller(t *testing.T, e *e2e, run, version string) {
	t.Helper()
	sum, _, err := drivers.FileSHA256(run)
	if err != nil {
		t.Fatal(err)
	}
	withExtractor := *e
	withExtractor.bin = testenv.GpuimgWithExtractor(t)
	var images []v1.Image
	for _, x := range []*e2e{e, &withExtractor} {
		dest := filepath.Join(t.TempDir(), "image.tar")
		_, stderr, err := x.gpuimg(t, "build", "--driver-file", run, "--sha256", sum, "--base", e.base, "--driver-layers", "1", "--output", "type=oci,dest="+dest)
		if err != nil {
			t.Fatalf("gpuimg build: %v\n%s", err, tailLines(stderr, 60))
		}
		if got := strings.Contains(stderr, "(once per package"); got != (x == &withExtractor) {
			t.Errorf("extraction step in the progress: %v", got)
		}
		images = append(images, ociTarImage(t, dest))
	}
	if a, b := digestOf(t, images[0]), digestOf(t, images[1]); a != b {
		t.Errorf("NVIDIA's installer from the extracted tree gave another image: %s, the .run's own unpacking %s", b, a)
	}
	checkSplitLayers(t, e, images[0], version, func(args ...string) (string, error) {
		_, stderr, err := withExtractor.gpuimg(t, append([]string{"build", "--driver-file", run, "--sha256", sum, "--base", e.base}, args...)...)
		return stderr, err
	})
}
