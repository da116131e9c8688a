package faults_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// An empty --gpus (an unset $GPU in a script) is refused: nothing is
// printed for the runtime, and `all` must be said.
func TestFaultEmptyGPUSelection(t *testing.T) {
	root := testenv.HostFixture(t, "8gpu-550.127.05")
	for _, args := range [][]string{
		{"flags", "--root", root, "--gpus", ""},
		{"flags", "--root", root, "--gpus", " "},
		{"run", "--root", root, "--gpus", "", "--dry-run", "busybox"},
	} {
		r := gpuimg(t, nil, args...)
		r.expect(t, 1, "the GPU selection is empty", "--gpus all", "--gpus 0,2")
		if r.stdout != "" {
			t.Errorf("%v printed %q along with the refusal", args, r.stdout)
		}
	}
}

// Each wrong thing at a node path is reported as what it is, never passed
// to a container, shown by init-devices --dry-run, and replaced by it.
func TestFaultWrongDeviceNodes(t *testing.T) {
	testenv.RequireRoot(t)
	fixture := testenv.HostFixture(t, "8gpu-550.127.05")
	for _, c := range []struct {
		name  string
		make  func(t *testing.T, p string)
		found string // what `host` and the refusal say is there
	}{
		{"stale", func(t *testing.T, p string) {
			hosttest.MakeNode(t, "/", hosttest.DevNode{Path: p, Type: "c", Major: 510, Minor: 0, Mode: 0o666})
		}, "character device 510:0"},
		{"regular file", func(t *testing.T, p string) { must(t, os.WriteFile(p, []byte("x"), 0o644)) }, "a regular file"},
		{"symlink to /dev/null", func(t *testing.T, p string) { must(t, os.Symlink("/dev/null", p)) }, `a symlink to "/dev/null"`},
		{"missing", func(t *testing.T, p string) {}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := hosttest.ScratchRoot(t, fixture, true)
			uvm := filepath.Join(root, "dev/nvidia-uvm")
			must(t, os.Remove(uvm))
			c.make(t, uvm)
			fix := "sudo gpuimg host init-devices --root " + root

			r := gpuimg(t, nil, "flags", "--root", root, "--gpus", "0")
			if c.found == "" {
				r.expect(t, 1, "/dev/nvidia-uvm not present", fix)
			} else {
				r.expect(t, 1, "/dev/nvidia-uvm is "+c.found+", not 511:0", "must not reach a container", fix)
			}
			if r.stdout != "" {
				t.Errorf("flags printed %q for a host with a wrong node", r.stdout)
			}

			r = gpuimg(t, nil, "host", "--root", root)
			r.expect(t, 0)
			if c.found != "" && !strings.Contains(r.stdout, c.found) {
				t.Errorf("`gpuimg host` does not report what is at /dev/nvidia-uvm (%s):\n%s", c.found, r.stdout)
			}

			if c.found != "" {
				r = gpuimg(t, nil, "doctor", "--root", root)
				if r.code != 1 || !strings.Contains(r.stdout, "wrong device nodes") || !strings.Contains(r.stdout, "/dev/nvidia-uvm ("+c.found+", not 511:0)") ||
					strings.Contains(r.stdout, "missing device nodes") {
					t.Errorf("doctor: exit %d, does not report the wrong node as what it is:\n%s%s", r.code, r.stdout, r.stderr)
				}
			}

			before := entries(t, filepath.Join(root, "dev"))
			r = gpuimg(t, nil, "host", "init-devices", "--root", root, "--dry-run")
			r.expect(t, 0)
			want := "mknod -m 0666 /dev/nvidia-uvm c 511 0"
			if c.found != "" {
				want = "rm -f /dev/nvidia-uvm && " + want + "  # replaces " + c.found
			}
			if !strings.Contains(r.stdout, want) {
				t.Errorf("--dry-run does not show %q:\n%s", want, r.stdout)
			}
			if got := entries(t, filepath.Join(root, "dev")); strings.Join(got, " ") != strings.Join(before, " ") {
				t.Errorf("--dry-run changed /dev")
			}

			gpuimg(t, nil, "host", "init-devices", "--root", root).expect(t, 0)
			r = gpuimg(t, nil, "flags", "--root", root, "--gpus", "0")
			r.expect(t, 0)
			if !strings.Contains(r.stdout, "--device "+uvm+":/dev/nvidia-uvm") {
				t.Errorf("after init-devices flags gives %q", r.stdout)
			}
		})
	}
}

// Control bytes in /sys/module/nvidia/version never reach the terminal or
// become the driver version.
func TestFaultGarbageDriverVersion(t *testing.T) {
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), false)
	must(t, os.WriteFile(filepath.Join(root, "sys/module/nvidia/version"), []byte("\x1b]0;owned\x07550.127.05\n"), 0o644))
	r := gpuimg(t, nil, "host", "--root", root)
	r.expect(t, 0, `"\x1b]0;owned\a550.127.05\n"`, "not a driver version")
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") {
		t.Errorf("control bytes printed raw:\nstdout %q\nstderr %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "550.127.05") {
		t.Errorf("the /proc version is not used:\n%s", r.stdout)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
