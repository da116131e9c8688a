package launch_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

// One command line for a fleet: REPO:{driver} runs the image built for each
// host's driver, and a host whose driver has no image is refused before any
// container starts, naming the tag looked for and the build that makes it.
func TestRunDriverTemplateWithDocker(t *testing.T) {
	testenv.RequireRoot(t)
	d := testenv.Dockerd(t)
	d.Load(t, busyboxImage(t, "gpuimg-e2e/fleet:550.127.05", map[string]string{llb.LabelDriverVersion: "550.127.05"}))
	// A tag that lies: named for 470 but carrying 550's userspace.
	d.Load(t, busyboxImage(t, "gpuimg-e2e/fleet:470.256.02", map[string]string{llb.LabelDriverVersion: "550.127.05"}))
	root550 := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	root535 := hosttest.ScratchRoot(t, testenv.HostFixture(t, "mig-535.183.01"), true)
	root470 := hosttest.ScratchRoot(t, testenv.HostFixture(t, "pre550-470.256.02"), true)

	r := gpuimg(t, d, "run", "--root", root550, "--gpus", "0,2", "--", "--rm", "gpuimg-e2e/fleet:{driver}", "sh", "-c", probe)
	if r.code != 0 {
		t.Fatalf("550 host: exit %d\n%s", r.code, r.stderr)
	}
	want := expectedNodes(t, root550, launch.Options{GPUs: "0,2"})
	for _, n := range want {
		if p, mm, _ := strings.Cut(n, " "); devices(t, r.stdout)[p] != mm {
			t.Errorf("the container lacks %s:\n%s", n, r.stdout)
		}
	}

	r = gpuimg(t, d, "run", "--root", root550, "--dry-run", "gpuimg-e2e/fleet:{driver}", "true")
	if r.code != 0 || !strings.HasSuffix(r.stdout, " gpuimg-e2e/fleet:550.127.05 true\n") {
		t.Errorf("dry run does not name the resolved image: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = gpuimg(t, d, "run", "--root", root535, "--gpus", "0", "--", "--name", "gpuimg-e2e-missing", "gpuimg-e2e/fleet:{driver}", "true")
	for _, s := range []string{"gpuimg-e2e/fleet:535.183.01", "gpuimg build --driver 535.183.01 -t gpuimg-e2e/fleet:535.183.01"} {
		if r.code == 0 || !strings.Contains(r.stderr, s) || r.stdout != "" {
			t.Errorf("535 host without an image: exit %d, want an error saying %q\n%s%s", r.code, s, r.stdout, r.stderr)
		}
	}
	if out, _, _ := d.Run(t, "ps", "-a", "--format", "{{.Names}}"); strings.Contains(out, "gpuimg-e2e-missing") {
		t.Errorf("a container was created for a missing image: %s", out)
	}

	// The label is checked after resolution: the lying tag is refused.
	r = gpuimg(t, d, "run", "--root", root470, "gpuimg-e2e/fleet:{driver}", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "carries the 550.127.05 driver userspace but the host runs the 470.256.02") {
		t.Errorf("label not checked after resolution: exit %d\n%s", r.code, r.stderr)
	}
}

func TestFlagsDriverTemplateRegistryAndLayout(t *testing.T) {
	reg := testenv.Registry(t)
	img := busybox(t, map[string]string{llb.LabelDriverVersion: "550.127.05"})
	ref, err := name.NewTag(reg + "/fleet/nvidia:550.127.05")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	images := t.TempDir()
	lp, err := layout.Write(filepath.Join(images, "550.127.05"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	// The binary reads real nodes only: scratch roots made with mknod.
	testenv.RequireRoot(t)
	root550 := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	root535 := hosttest.ScratchRoot(t, testenv.HostFixture(t, "mig-535.183.01"), true)

	for _, c := range []struct {
		what, template, missing, build string
	}{
		{"registry", reg + "/fleet/nvidia:{driver}", reg + "/fleet/nvidia:535.183.01", "gpuimg build --driver 535.183.01 -t " + reg + "/fleet/nvidia:535.183.01"},
		{"OCI layout", images + "/{driver}", images + "/535.183.01", "gpuimg build --driver 535.183.01 -o type=oci,dest=" + images + "/535.183.01,tar=false"},
	} {
		t.Run(c.what, func(t *testing.T) {
			r := gpuimg(t, nil, "flags", "--root", root550, "--gpus", "0", c.template)
			if r.code != 0 || !strings.Contains(r.stdout, "--device "+root550+"/dev/nvidia2:/dev/nvidia2") {
				t.Errorf("550 host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			r = gpuimg(t, nil, "flags", "--root", root535, "--gpus", "0", c.template)
			for _, s := range []string{c.missing, c.build, "no image for this host's driver"} {
				if r.code == 0 || !strings.Contains(r.stderr, s) || r.stdout != "" {
					t.Errorf("535 host: exit %d, want an error saying %q\n%s%s", r.code, s, r.stdout, r.stderr)
				}
			}
		})
	}
}
