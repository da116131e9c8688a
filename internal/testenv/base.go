package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// BaseRef is the reference the Debian base layout's index.json carries.
const BaseRef = "docker.io/library/debian:bookworm"

// BaseLayout returns the Debian base image's OCI layout directory:
// $GPUIMG_TEST_BASE (the Makefile sets it), else .cache/base/debian-bookworm.
// `make base` creates it with debootstrap.
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
