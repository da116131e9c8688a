// Package testenv starts the real components end-to-end tests need (buildkitd,
// a registry, dockerd, podman) and builds the gpuimg binary for tests that run
// it as users do. A test that cannot find its component fails under CI=true and
// skips elsewhere, so CI never passes by skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// component is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail fails the test under CI=true and skips it elsewhere.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: a missing component fails; run `make deps buildkitd base` first)", msg)
	}
	t.Skipf("%s (skipped outside CI; `make test` provides it)", msg) // fails instead when CI=true
}

// SkipIfShort skips a slow or end-to-end test under `go test -short`
// (make test-unit), but never under CI=true, where every test runs.
func SkipIfShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skipf("%s: skipped by -short (make test-unit); CI runs it", what)
	}
}

// RequireRoot skips (or fails, under CI) when the test is not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root")
	}
}

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// NVIDIAInstallersEnv names the directory of NVIDIA's own nvidia-installer
// builds, one folder per release (<release>/nvidia-installer, and
// <release>/aarch64/nvidia-installer): .ci/run sets it to
// ../shared/fixtures/nvidia-installer.
const NVIDIAInstallersEnv = "GPUIMG_NVIDIA_INSTALLERS"

// NVIDIAInstaller returns the path of NVIDIA's x86_64 nvidia-installer of
// release (built from NVIDIA's source), found through $GPUIMG_NVIDIA_INSTALLERS.
// The test skips without the variable, and fails under CI=true.
func NVIDIAInstaller(t testing.TB, release string) string {
	t.Helper()
	return NVIDIAInstallerFor(t, release, "x86_64")
}

// NVIDIAInstallerFor is NVIDIAInstaller for arch: x86_64 or aarch64
// (<release>/aarch64/nvidia-installer, which runs here under QEMU).
func NVIDIAInstallerFor(t testing.TB, release, arch string) string {
	t.Helper()
	dir := os.Getenv(NVIDIAInstallersEnv)
	if dir == "" {
		SkipOrFail(t, "needs NVIDIA's installers: set %s to ../shared/fixtures/nvidia-installer (.ci/run does)", NVIDIAInstallersEnv)
	}
	path := filepath.Join(dir, release, "nvidia-installer")
	if arch != "x86_64" {
		path = filepath.Join(dir, release, arch, "nvidia-installer")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("NVIDIA's %s installer %s: %v (%s=%s)", arch, release, err, NVIDIAInstallersEnv, dir)
	}
	return path
}

var (
	gpuimgOnce sync.Once
	gpuimgPath string
	gpuimgErr  error
)

// Gpuimg builds the gpuimg binary once per test process and returns its path,
// <repo>/.cache/testbin/gpuimg. Each process builds to its own file and renames
// it into place, so test binaries of several packages can build at once; a
// process already running the old file keeps its inode.
func Gpuimg(t testing.TB) string {
	t.Helper()
	gpuimgOnce.Do(func() {
		root := RepoRoot(t)
		dir := filepath.Join(root, ".cache", "testbin")
		if gpuimgErr = os.MkdirAll(dir, 0o755); gpuimgErr != nil {
			return
		}
		gpuimgPath = filepath.Join(dir, "gpuimg")
		tmp := fmt.Sprintf("%s.%d", gpuimgPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/gpuimg")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			gpuimgErr = fmt.Errorf("go build ./cmd/gpuimg: %v\n%s", err, out)
			return
		}
		gpuimgErr = os.Rename(tmp, gpuimgPath)
	})
	if gpuimgErr != nil {
		t.Fatal(gpuimgErr)
	}
	return gpuimgPath
}

var (
	unpackOnce sync.Once
	unpackDir  string
	unpackErr  error
)

// GpuimgWithExtractor returns a gpuimg binary with the static gpuimg-unpack
// next to it, as `make build` leaves them: that gpuimg unpacks verified
// packages in a build step of their own. Built once per test process into
// <repo>/.cache/testbin/with-extractor/.
func GpuimgWithExtractor(t testing.TB) string {
	t.Helper()
	bin := Gpuimg(t)
	unpackOnce.Do(func() {
		root := RepoRoot(t)
		unpackDir = filepath.Join(root, ".cache", "testbin", "with-extractor", strconv.Itoa(os.Getpid()))
		if unpackErr = os.MkdirAll(unpackDir, 0o755); unpackErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(unpackDir, "gpuimg-unpack"), "./cmd/gpuimg-unpack")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			unpackErr = fmt.Errorf("go build ./cmd/gpuimg-unpack: %v\n%s", err, out)
			return
		}
		b, err := os.ReadFile(bin)
		if err == nil {
			err = os.WriteFile(filepath.Join(unpackDir, "gpuimg"), b, 0o755)
		}
		unpackErr = err
	})
	if unpackErr != nil {
		t.Fatal(unpackErr)
	}
	return filepath.Join(unpackDir, "gpuimg")
}
