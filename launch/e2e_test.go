package launch_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

// The container prints its character devices as "path major:minor" (hex, as
// stat prints them), then "---" and its groups and environment.
const probe = `find /dev -type c | sort | while read -r n; do stat -c '%n %t:%T' "$n"; done; echo ---; id -G; env | sort`

type result struct {
	stdout, stderr string
	code           int
}

// gpuimg runs the built binary as a user would, against the private dockerd.
func gpuimg(t *testing.T, d *testenv.DockerDaemon, args ...string) result {
	t.Helper()
	var env []string
	if d != nil {
		env = append(env, "DOCKER_HOST="+d.Host)
	}
	return gpuimgEnv(t, env, args...)
}

// gpuimgEnv runs the built binary with extra environment variables.
func gpuimgEnv(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(testenv.Gpuimg(t), args...)
	// Debian's docker client first: the daemon's own version.
	env := append([]string{"PATH=/usr/bin:/usr/sbin:/bin:/sbin"}, extraEnv...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("gpuimg %v: %v", args, err)
	}
	return r
}

// devices parses the probe's device lines into path → "maj:min" (decimal).
func devices(t *testing.T, out string) map[string]string {
	t.Helper()
	devs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "---" {
			break
		}
		var path string
		var major, minor int
		if _, err := fmt.Sscanf(line, "%s %x:%x", &path, &major, &minor); err == nil {
			devs[path] = fmt.Sprintf("%d:%d", major, minor)
		}
	}
	return devs
}

// added returns the devices in got that the baseline container lacks.
func added(baseline, got map[string]string) []string {
	var extra []string
	for p, mm := range got {
		if _, ok := baseline[p]; !ok {
			extra = append(extra, p+" "+mm)
		}
	}
	sort.Strings(extra)
	return extra
}

// expectedNodes lists "path maj:min" for the host nodes a plan passes.
func expectedNodes(t *testing.T, root string, opts launch.Options) []string {
	t.Helper()
	h, err := host.Read(root) // the scratch root's real nodes, through stat
	if err != nil {
		t.Fatal(err)
	}
	plan, err := launch.NewPlan(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range plan.Devices {
		want = append(want, fmt.Sprintf("%s %d:%d", d.Path, d.Major, d.Minor))
	}
	sort.Strings(want)
	return want
}

func TestDockerRunGetsExactlyTheSelectedNodes(t *testing.T) {
	testenv.RequireRoot(t)
	d := testenv.Dockerd(t)
	const driver = "550.127.05"
	d.Load(t, busyboxImage(t, "gpuimg-e2e/busybox:"+driver, map[string]string{llb.LabelDriverVersion: driver}))
	d.Load(t, busyboxImage(t, "gpuimg-e2e/busybox:535.183.01", map[string]string{llb.LabelDriverVersion: "535.183.01"}))
	d.Load(t, busyboxImage(t, "gpuimg-e2e/busybox:unlabelled", nil))
	img := "gpuimg-e2e/busybox:" + driver
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)

	stdout, stderr, err := d.Run(t, "run", "--rm", img, "sh", "-c", probe)
	if err != nil {
		t.Fatalf("baseline container: %v\n%s", err, stderr)
	}
	baseline := devices(t, stdout)

	for _, sel := range []string{"0,2", "GPU-00000007-1111-2222-3333-444444444447", "all"} {
		t.Run("gpus="+sel, func(t *testing.T) {
			r := gpuimg(t, d, "run", "--root", root, "--gpus", sel, "--", "--rm", img, "sh", "-c", probe)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			got := added(baseline, devices(t, r.stdout))
			want := expectedNodes(t, root, launch.Options{GPUs: sel})
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("container got nodes\n%s\nwant exactly\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !strings.Contains(r.stdout, "NVIDIA_VISIBLE_DEVICES=void") {
				t.Errorf("NVIDIA_VISIBLE_DEVICES=void not set:\n%s", r.stdout)
			}
		})
	}
	// Index 0 and 2 are minors 2 and 0 on this host: spelled out, not derived.
	t.Run("index is not minor", func(t *testing.T) {
		r := gpuimg(t, d, "run", "--root", root, "--gpus", "1", img, "sh", "-c", probe)
		got := devices(t, r.stdout)
		if got["/dev/nvidia3"] != "195:3" || got["/dev/nvidia1"] != "" || got["/dev/nvidia-uvm"] != "511:0" || got["/dev/nvidiactl"] != "195:255" {
			t.Errorf("--gpus 1 on the 8-GPU host (minor 3): %v\n%s", got, r.stderr)
		}
	})

	t.Run("0660 video nodes get their group", func(t *testing.T) {
		vroot := hosttest.ScratchRoot(t, testenv.HostFixture(t, "video-0660-550.54.15"), true)
		r := gpuimg(t, d, "run", "--root", vroot, "--force", "--", "--rm", img, "sh", "-c", probe)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		groups := strings.Fields(strings.Split(strings.SplitN(r.stdout, "---\n", 2)[1], "\n")[0])
		if !contains(groups, "44") {
			t.Errorf("container groups %v lack 44 (video)", groups)
		}
		if got := devices(t, r.stdout); got["/dev/nvidia0"] != "195:0" {
			t.Errorf("devices %v", got)
		}
	})

	t.Run("guard refuses another driver", func(t *testing.T) {
		r := gpuimg(t, d, "run", "--root", root, "gpuimg-e2e/busybox:535.183.01", "true")
		if r.code == 0 {
			t.Fatal("a 535.183.01 image ran on a 550.127.05 host")
		}
		for _, s := range []string{"535.183.01", "550.127.05", "gpuimg build --driver 550.127.05", "--force"} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("refusal does not say %q:\n%s", s, r.stderr)
			}
		}
		r = gpuimg(t, d, "run", "--root", root, "--force", "--", "--rm", "gpuimg-e2e/busybox:535.183.01", "sh", "-c", probe)
		if r.code != 0 || !strings.Contains(r.stderr, "--force") || len(added(baseline, devices(t, r.stdout))) == 0 {
			t.Errorf("--force: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("unlabelled image warns", func(t *testing.T) {
		r := gpuimg(t, d, "run", "--root", root, "--", "--rm", "gpuimg-e2e/busybox:unlabelled", "true")
		if r.code != 0 || !strings.Contains(r.stderr, "cannot verify") {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("container exit status", func(t *testing.T) {
		r := gpuimg(t, d, "run", "--root", root, "--", "--rm", img, "sh", "-c", "exit 7")
		if r.code != 7 {
			t.Errorf("exit %d, want the container's 7\n%s", r.code, r.stderr)
		}
	})

	t.Run("privileged dry run", func(t *testing.T) {
		// dockerd 20.10 grants every capability to --privileged, which this
		// CI machine (no CAP_SYS_RESOURCE) cannot: the real privileged run is
		// TestPodmanRunPrivileged. Here: the exact docker command.
		r := gpuimg(t, d, "run", "--root", root, "--privileged", "--gpus", "0,2", "--dry-run", img)
		want := "docker run --privileged -e NVIDIA_VISIBLE_DEVICES=void -e CUDA_VISIBLE_DEVICES=GPU-00000000-1111-2222-3333-444444444440,GPU-00000002-1111-2222-3333-444444444442 " + img + "\n"
		if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "EVERY host device") {
			t.Errorf("exit %d\nstdout %q\nwant   %q\n%s", r.code, r.stdout, want, r.stderr)
		}
	})

	t.Run("dry run prints the command", func(t *testing.T) {
		r := gpuimg(t, d, "run", "--root", root, "--gpus", "0", "--dry-run", "--runtime-arg=--rm", img, "nvidia-smi")
		want := "docker run --device " + root + "/dev/nvidiactl:/dev/nvidiactl --device " + root + "/dev/nvidia2:/dev/nvidia2"
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, " --rm "+img+" nvidia-smi\n") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			args []string
			says string
		}{
			{[]string{"run", "--root", root, "--runtime", "nerdctl", img}, "nerdctl not found on PATH"},
			{[]string{"run", "--root", root, "127.0.0.1:1/nosuch/image:1"}, "cannot read the image"},
			{[]string{"run", "--root", root, "--gpus", "8", img}, "index 8 does not exist"},
			{[]string{"run", "--root", root, "--", "--rm", "--gpus", "all", img}, "needs nvidia-container-toolkit"},
			{[]string{"run", "--root", hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true), img}, "gpuimg host init-devices"},
			{[]string{"run", "--root", testenv.HostFixture(t, "no-driver"), img}, "no NVIDIA kernel driver"},
		}
		for _, c := range cases {
			r := gpuimg(t, d, c.args...)
			if r.code == 0 || !strings.Contains(r.stderr, c.says) || r.stdout != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error saying %q", c.args, r.code, r.stdout, r.stderr, c.says)
			}
		}
	})
}

func TestFlagsWithImageTarball(t *testing.T) {
	testenv.RequireRoot(t)
	tarPath := busyboxImage(t, "gpuimg-e2e/busybox:1", map[string]string{llb.LabelDriverVersion: "580.159.04"})
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "h200-580.159.04"), true)
	r := gpuimg(t, nil, "flags", "--root", root, tarPath)
	if r.code != 0 || !strings.Contains(r.stdout, "--device "+root+"/dev/nvidia0:/dev/nvidia0") {
		t.Errorf("matching tarball: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = gpuimg(t, nil, "flags", "--root", hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true), tarPath)
	if r.code == 0 || !strings.Contains(r.stderr, "gpuimg build --driver 550.127.05") || r.stdout != "" {
		t.Errorf("mismatched tarball: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	notImage := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(notImage, []byte("not a tarball"), 0o644)
	if r = gpuimg(t, nil, "flags", "--root", root, notImage); r.code == 0 || !strings.Contains(r.stderr, "cannot read the image") {
		t.Errorf("unreadable tarball: exit %d\n%s", r.code, r.stderr)
	}
}

func TestPodmanConsumesTheCDISpec(t *testing.T) {
	testenv.RequireRoot(t)
	p := testenv.Podman(t)
	const driver = "550.127.05"
	img := "localhost/gpuimg-e2e/busybox:" + driver
	p.Load(t, busyboxImage(t, img, map[string]string{llb.LabelDriverVersion: driver}))
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)

	// podman 4.3 reads /etc/cdi only: a uniquely named spec, removed afterwards.
	if err := os.MkdirAll("/etc/cdi", 0o755); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join("/etc/cdi", fmt.Sprintf("gpuimg-e2e-%d.yaml", os.Getpid()))
	t.Cleanup(func() { os.Remove(specPath) })
	r := gpuimg(t, nil, "cdi", "generate", "--root", root, "--output", specPath)
	if r.code != 0 {
		t.Fatalf("cdi generate: exit %d\n%s", r.code, r.stderr)
	}

	base, stderr, err := p.Run(t, append(append([]string{"run", "--rm"}, testenv.PodmanRunArgs...), img, "sh", "-c", probe)...)
	if err != nil {
		t.Fatalf("baseline: %v\n%s", err, stderr)
	}
	baseline := devices(t, base)
	checkCDIDevices(t, root, baseline, func(device string) (string, string, error) {
		return p.Run(t, append(append([]string{"run", "--rm", "--device", device}, testenv.PodmanRunArgs...), img, "sh", "-c", probe)...)
	})
}

// checkCDIDevices runs the probe with gpuimg.dev/gpu devices by index, UUID
// and "all" (run(device) starts the container) on the 8-GPU scratch root:
// each container gets exactly the plan's nodes beyond baseline, and the
// spec's environment.
func checkCDIDevices(t *testing.T, root string, baseline map[string]string, run func(device string) (stdout, stderr string, err error)) {
	t.Helper()
	for _, c := range []struct {
		device string
		opts   launch.Options
	}{
		{launch.CDIKind + "=1", launch.Options{GPUs: "1"}},
		{launch.CDIKind + "=GPU-00000004-1111-2222-3333-444444444444", launch.Options{GPUs: "4"}},
		{launch.CDIKind + "=all", launch.Options{GPUs: "all"}},
	} {
		t.Run(c.device, func(t *testing.T) {
			out, stderr, err := run(c.device)
			if err != nil {
				t.Fatalf("run --device %s: %v\n%s", c.device, err, stderr)
			}
			got, want := added(baseline, devices(t, out)), expectedNodes(t, root, c.opts)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("container got\n%s\nwant exactly\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !strings.Contains(out, "NVIDIA_VISIBLE_DEVICES=void") {
				t.Errorf("spec env not applied:\n%s", out)
			}
		})
	}
}

// gpuimg run --runtime podman --privileged: podman grants a privileged
// container the capabilities this machine has, so it runs here.
func TestPodmanRunPrivileged(t *testing.T) {
	testenv.RequireRoot(t)
	p := testenv.Podman(t)
	const driver = "550.127.05"
	img := "localhost/gpuimg-e2e/busybox:" + driver
	p.Load(t, busyboxImage(t, img, map[string]string{llb.LabelDriverVersion: driver}))
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	podmanArgs := append([]string{"--rm"}, testenv.PodmanRunArgs...)

	base := gpuimgEnv(t, p.Env(), append(append([]string{"run", "--runtime", "podman", "--root", root, "--"}, podmanArgs...), img, "sh", "-c", probe)...)
	if base.code != 0 {
		t.Fatalf("device run: exit %d\n%s", base.code, base.stderr)
	}
	r := gpuimgEnv(t, p.Env(), append(append([]string{"run", "--runtime", "podman", "--root", root, "--privileged", "--gpus", "0,2", "--"}, podmanArgs...), img, "sh", "-c", probe)...)
	if r.code != 0 {
		t.Fatalf("privileged run: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "EVERY host device") {
		t.Errorf("no warning:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "CUDA_VISIBLE_DEVICES=GPU-00000000-1111-2222-3333-444444444440,GPU-00000002-1111-2222-3333-444444444442\n") {
		t.Errorf("CUDA_VISIBLE_DEVICES not pinned:\n%s", r.stdout)
	}
	// The privileged container sees the host's /dev (none of the scratch
	// root's nodes, which are not in the host's /dev), unlike the device run.
	privileged, devRun := devices(t, r.stdout), devices(t, base.stdout)
	if _, ok := privileged["/dev/nvidia2"]; ok {
		t.Errorf("privileged run got the scratch nodes: %v", privileged)
	}
	if _, ok := devRun["/dev/nvidia2"]; !ok || len(privileged) <= len(devRun) {
		t.Errorf("privileged run sees %d devices, device run %d (%v)", len(privileged), len(devRun), devRun)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
