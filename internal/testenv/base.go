package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/internal/ocilayout"
)

// BaseRef is the reference the Debian base layout's index.json carries.
const BaseRef = "docker.io/library/debian:bookworm"

// BaseLayout returns the Debian base image's OCI layout directory:
// $GPUIMG_TEST_BASE (the Makefile sets it), else .cache/base/debian-bookworm.
// `make base` creates it with debootstrap: one index with linux/amd64 and
// linux/arm64 (an older layout holds one amd64 image).
func BaseLayout(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("GPUIMG_TEST_BASE")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), ".cache", "base", "debian-bookworm")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		SkipOrFail(t, "Debian base layout not found at %s (`make base` makes it with debootstrap)", dir)
	}
	return dir
}

// BaseLayoutFor returns the base layout when it holds an image for
// linux/arch (Debian's names: amd64, arm64), and that image.
func BaseLayoutFor(t testing.TB, arch string) (string, v1.Image) {
	t.Helper()
	dir := BaseLayout(t)
	return dir, LayoutImage(t, dir, arch)
}

// LayoutImage is the linux/arch image of the base layout dir (a single
// image, or an index holding one per platform).
func LayoutImage(t testing.TB, dir, arch string) v1.Image {
	t.Helper()
	img, err := baseImage(dir, arch)
	if err != nil {
		t.Fatalf("base layout %s: %v", dir, err)
	}
	if img == nil {
		SkipOrFail(t, "the Debian base layout %s has no linux/%s image: `make base` adds it (debootstrap under QEMU; `make deps` registers QEMU)", dir, arch)
	}
	return img
}

// baseImage finds the image for linux/arch in the layout: its first entry is
// either that image or an index holding it. nil when there is none.
func baseImage(dir, arch string) (v1.Image, error) {
	l, err := ocilayout.Open(dir)
	if err != nil {
		return nil, err
	}
	if len(l.Entries) == 0 {
		return nil, fmt.Errorf("index.json lists no image")
	}
	img, _, err := l.Image(l.Entries[0], ocispecs.Platform{OS: "linux", Architecture: arch})
	if errors.Is(err, ocilayout.ErrNoPlatform) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile() // a single image is returned whatever its platform
	if err != nil || cfg.Architecture != arch {
		return nil, err
	}
	return img, nil
}

// BaseRootFS unpacks the base image for linux/arch into a temporary
// directory: a real Debian userland (dash, coreutils, gzip; no xz or zstd).
// For a foreign arch the test also needs the emulator (RequireEmulator).
func BaseRootFS(t testing.TB, arch string) string {
	t.Helper()
	_, img := BaseLayoutFor(t, arch)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, layer := range layers {
		rc, err := layer.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("tar", "-x", "-C", root)
		cmd.Stdin = rc
		out, err := cmd.CombinedOutput()
		rc.Close()
		if err != nil {
			t.Fatalf("unpack the %s base: %v\n%s", arch, err, out)
		}
	}
	return root
}

// kernelArch is uname -m's name of a Debian/Go architecture name.
func kernelArch(arch string) string {
	switch arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return arch
}

// RequireEmulator skips (fails under CI) unless programs for arch (amd64,
// arm64, x86_64 or aarch64) run here: natively, or through a QEMU handler
// registered with binfmt_misc, as `make deps` does.
func RequireEmulator(t testing.TB, arch string) {
	t.Helper()
	name := kernelArch(arch)
	if name == kernelArch(runtime.GOARCH) {
		return
	}
	status, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-" + name)
	if err != nil || !strings.HasPrefix(string(status), "enabled") {
		SkipOrFail(t, "%s programs cannot run on this %s machine: no QEMU handler for %s in /proc/sys/fs/binfmt_misc (`make deps` installs qemu-user-static and registers it)", name, kernelArch(runtime.GOARCH), name)
	}
}
