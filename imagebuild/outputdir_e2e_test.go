package imagebuild_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// A directory destination (type=oci,tar=false) is taken before the builder
// is reached, like a file; one that already exists is refused when it would
// be written (a rename cannot replace a directory), and is left untouched.
func TestExistingOutputDirectory(t *testing.T) {
	e := setup(t)
	run, sum := standinRun(t, driverA)
	dir := filepath.Join(t.TempDir(), "oci")
	args := []string{"--driver-file", run, "--sha256", sum, "--base", e.base, "--output", "type=oci,dest=" + dir + ",tar=false"}
	e.mustBuild(t, args...)
	before := onlyLayoutImage(t, dir)
	digest, _ := before.Digest()
	_, stderr, err := e.gpuimg(t, append([]string{"build", "--components", "compute"}, args...)...)
	if err == nil || !strings.Contains(stderr, "destination "+dir+" already exists: remove it or choose another dest=") {
		t.Errorf("another image into the existing directory: %v\n%s", err, tailLines(stderr, 10))
	}
	if after, _ := onlyLayoutImage(t, dir).Digest(); after != digest {
		t.Errorf("the directory changed from %s to %s", digest, after)
	}
}
