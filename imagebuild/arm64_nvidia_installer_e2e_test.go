package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// TestBuildArm64WithNVIDIAsInstaller builds linux/arm64 on this machine's
// builder (under QEMU) from an aarch64 stand-in package that carries
// NVIDIA's own aarch64 nvidia-installer: gpuimg's install step, its flags
// and its clean-up work with the real installer on the arm64 Debian base.
func TestBuildArm64WithNVIDIAsInstaller(t *testing.T) {
	const release = "590.48.01"
	installer := testenv.NVIDIAInstallerFor(t, release, "aarch64") // skip before starting buildkitd
	testenv.RequireEmulator(t, "arm64")
	testenv.BaseLayoutFor(t, "arm64")
	e := setup(t)
	if !builderRuns(t, e.bk.Addr, "arm64") {
		testenv.SkipOrFail(t, "the builder at %s lists no linux/arm64 worker platform: QEMU registered after it started?", e.bk.Addr)
	}
	run, err := standin.Cached(standin.Options{Version: release, Arch: "aarch64", Installer: installer})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "image.tar")
	_, stderr, err := e.gpuimg(t, "build", "--driver-file", run, "--allow-unverified", "--platform", "linux/arm64",
		"--base", e.base, "--output", "type=oci,dest="+dest)
	if err != nil {
		t.Fatalf("gpuimg build --platform linux/arm64: %v\n%s", err, tailLines(stderr, 60))
	}
	img := ociTarImage(t, dest)
	if cfg, err := img.ConfigFile(); err != nil || cfg.Architecture != "arm64" {
		t.Fatalf("image config: %v %+v", err, cfg)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const lib = "usr/lib/aarch64-linux-gnu/"
	present := map[string]bool{lib + "libcuda.so." + release: false, lib + "libnvidia-ml.so." + release: false, "usr/bin/nvidia-smi": false,
		"usr/lib/xorg/modules/drivers/nvidia_drv.so": false, "etc/ld.so.cache": false}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		if _, want := present[name]; want {
			present[name] = true
		}
		switch {
		case name == "usr/bin/nvidia-installer" || strings.HasPrefix(name, "var/lib/nvidia") || strings.HasPrefix(name, "usr/lib/x86_64-linux-gnu/") || strings.HasPrefix(name, "usr/lib/i386-linux-gnu"):
			t.Errorf("the arm64 driver layer holds %s", name)
		case name == lib+"libcuda.so."+release:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := elf.NewFile(bytes.NewReader(data)); err != nil || f.Machine != elf.EM_AARCH64 {
				t.Errorf("%s is not an aarch64 ELF file: %v", name, err)
			}
		}
	}
	for p, found := range present {
		if !found {
			t.Errorf("NVIDIA's aarch64 installer did not place %s", p)
		}
	}
	if linked := ldconfigP(t, img); !strings.Contains(linked, "libcuda.so.1 (libc6,AArch64) => ") {
		t.Errorf("ldconfig -p in the arm64 image does not resolve libcuda.so.1:\n%s", linked)
	}
}
