package imagebuild_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// An unchanged rebuild that writes a docker tarball and also pushes leaves
// the tarball alone and still pushes: the push lands in a registry that did
// not have the image, under the digest printed, and it is the tarball's
// image (same config).
func TestUnchangedRebuildWithPush(t *testing.T) {
	e := setup(t)
	runA, sumA := standinRun(t, driverA)
	dest := t.TempDir() + "/driver.tar"
	first, second := testenv.Registry(t), testenv.Registry(t)
	build := func(reg string) string {
		return e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base,
			"-t", "gpuimg-e2e:{driver}", "--output", "type=docker,dest="+dest,
			"--output", "type=image,name="+reg+"/nvidia:{driver},push=true")
	}
	build(first)
	before, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	stdout := build(second)
	after, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("unchanged rebuild rewrote %s", dest)
	}
	ref := second + "/nvidia:" + driverA
	var printed string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.HasPrefix(line, ref+"@") {
			printed = strings.TrimPrefix(line, ref+"@")
		}
	}
	if !strings.Contains(stdout, dest) || printed == "" {
		t.Fatalf("stdout = %q, want %s and %s@sha256:…", stdout, dest, ref)
	}
	pushed, err := crane.Digest(ref)
	if err != nil {
		t.Fatalf("the unchanged rebuild did not push %s: %v", ref, err)
	}
	if pushed != printed {
		t.Errorf("registry has %s, stdout printed %s", pushed, printed)
	}
	img, err := tarball.ImageFromPath(dest, mustTag(t, "gpuimg-e2e:"+driverA))
	if err != nil {
		t.Fatal(err)
	}
	remoteImg, err := crane.Pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	fileCfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	pushedCfg, err := remoteImg.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if fileCfg != pushedCfg {
		t.Errorf("tarball image config %s, pushed image config %s: the same build should give the same image", fileCfg, pushedCfg)
	}
}
