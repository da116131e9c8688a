package launch_test

import (
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
)

func TestResolveImageRef(t *testing.T) {
	cases := []struct {
		ref, version, want string
		templated          bool
		errSays            string
	}{
		{"reg.example.com/nvidia:{driver}", "550.127.05", "reg.example.com/nvidia:550.127.05", true, ""},
		{"nvidia:{driver}-cuda", "470.256.02", "nvidia:470.256.02-cuda", true, ""},
		{"./images/{driver}", "580.159.04", "./images/580.159.04", true, ""},
		{"{driver}/{driver}.tar", "1.2.3", "1.2.3/1.2.3.tar", true, ""},
		// No placeholder: a plain reference, even when no driver is loaded.
		{"reg.example.com/nvidia:550.127.05", "", "reg.example.com/nvidia:550.127.05", false, ""},
		{"nvidia:{DRIVER}", "550.127.05", "nvidia:{DRIVER}", false, ""},
		{"nvidia:{driver", "550.127.05", "nvidia:{driver", false, ""},
		{"nvidia:{driver}", "", "", true, "no driver version could be read"},
	}
	for _, c := range cases {
		got, templated, err := launch.ResolveImageRef(c.ref, c.version)
		if c.errSays != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSays) {
				t.Errorf("%q with %q: err %v, want one saying %q", c.ref, c.version, err, c.errSays)
			}
			continue
		}
		if err != nil || got != c.want || templated != c.templated {
			t.Errorf("%q with %q = %q, %v, %v; want %q, %v", c.ref, c.version, got, templated, err, c.want, c.templated)
		}
	}
}

// Whatever the reference, a resolved one keeps no placeholder and a plain one
// comes back unchanged; nothing panics.
func FuzzResolveImageRef(f *testing.F) {
	for _, seed := range []string{"r/x:{driver}", "{driver}", "x", "", "{driver}{driver}", "{{driver}}"} {
		f.Add(seed, "550.127.05")
	}
	f.Fuzz(func(t *testing.T, ref, version string) {
		got, templated, err := launch.ResolveImageRef(ref, version)
		if err != nil {
			if !templated || version != "" {
				t.Fatalf("%q %q: unexpected error %v", ref, version, err)
			}
			return
		}
		if !templated && got != ref {
			t.Fatalf("plain %q changed to %q", ref, got)
		}
		if templated && strings.Count(got, launch.DriverPlaceholder) > strings.Count(version, launch.DriverPlaceholder)*strings.Count(ref, launch.DriverPlaceholder) {
			t.Fatalf("%q resolved to %q, still templated", ref, got)
		}
	})
}

// `gpuimg run` (dry run) tells of a pending driver upgrade with the build to
// make now.
func TestRunWarnsOfPendingUpgrade(t *testing.T) {
	testenv.RequireRoot(t) // the binary reads real nodes: mknod
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "h200-580.159.04"), true)
	hosttest.WriteFile(t, root, "/proc/sys/kernel/osrelease", []byte("6.8.0-60-generic\n"))
	hosttest.WriteModule(t, root, "/lib/modules/6.8.0-60-generic/updates/dkms/nvidia.ko.zst", "580.165.01")
	r := gpuimg(t, nil, "run", "--root", root, "--dry-run", "--force", "img:1")
	if want := "after a reboot this host runs 580.165.01; build it now: gpuimg build --driver 580.165.01"; r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d; stderr lacks %q:\n%s", r.code, want, r.stderr)
	}
}
