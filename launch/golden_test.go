package launch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

func TestFlagsGolden(t *testing.T) {
	cases := []struct {
		name, fixture string
		plan          launch.Options
		runtime       string
	}{
		{"h200-all", "h200-580.159.04", launch.Options{}, "docker"},
		{"8gpu-0,2", "8gpu-550.127.05", launch.Options{GPUs: "0,2"}, "docker"},
		{"8gpu-uuid-and-bus", "8gpu-550.127.05", launch.Options{GPUs: "gpu-00000005-1111-2222-3333-444444444445,db:00.0"}, "podman"},
		{"8gpu-all", "8gpu-550.127.05", launch.Options{GPUs: "all"}, "nerdctl"},
		{"pre550-all", "pre550-470.256.02", launch.Options{}, "docker"},
		{"mig-0:1", "mig-535.183.01", launch.Options{GPUs: "0:1"}, "docker"},
		{"mig-0:2,1", "mig-535.183.01", launch.Options{GPUs: "0:2,1"}, "docker"},
		{"video-compute-display", "video-0660-550.54.15", launch.Options{Capabilities: []string{"compute,display"}}, "docker"},
		{"no-char-links", "no-char-links-550.54.15", launch.Options{}, "docker"},
		{"h200-privileged", "h200-580.159.04", launch.Options{Privileged: true}, "docker"},
		{"no-uvm-fallback", "no-uvm-550.54.15", launch.Options{Fallback: launch.FallbackPrivileged}, "docker"},
		{"no-uvm-utility-only", "no-uvm-550.54.15", launch.Options{Capabilities: []string{"utility"}}, "docker"},
		{"hgx-imex-0,1", "hgx-imex-570.124.06", launch.Options{GPUs: "1", IMEXChannels: "0,1"}, "docker"},
		{"hgx-imex-all-nvswitch", "hgx-imex-570.124.06", launch.Options{IMEXChannels: "all", NVSwitch: true}, "podman"},
		{"mig-uuid", "mig-535.183.01", launch.Options{GPUs: "MIG-11111111-2222-5333-8444-555555555501"}, "docker"},
		{"video-rootless-podman", "video-0660-550.54.15", launch.Options{Rootless: true}, "podman"},
	}
	withStandinSMI(t)
	for _, c := range cases {
		if c.plan.GPUs == "" {
			c.plan.GPUs = "all" // the flag's default
		}
		for _, format := range launch.Formats {
			t.Run(c.name+"/"+format, func(t *testing.T) {
				root := testenv.HostFixture(t, c.fixture)
				h := hosttest.Read(t, root)
				out, warnings, err := launch.Flags(context.Background(), h, launch.FlagsOptions{
					Runtime: c.runtime, Format: format, Plan: c.plan,
				})
				if err != nil {
					t.Fatal(err)
				}
				warnings = append(h.Warnings, warnings...) // as `gpuimg flags` prints them
				if len(warnings) > 0 {
					out += "--- stderr\n" + strings.Join(warnings, "\n") + "\n"
				}
				testenv.Golden(t, c.name+"."+format, root, out)
			})
		}
	}
}

func TestCDIGolden(t *testing.T) {
	for _, fx := range []string{"h200-580.159.04", "8gpu-550.127.05", "mig-535.183.01", "video-0660-550.54.15", "hgx-imex-570.124.06"} {
		t.Run(fx, func(t *testing.T) {
			root := testenv.HostFixture(t, fx)
			out := filepath.Join(t.TempDir(), "gpuimg.yaml")
			data, err := launch.GenerateCDI(hosttest.Read(t, root), out)
			if err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(out)
			if err != nil || string(written) != string(data) {
				t.Fatalf("written file differs from the returned spec (%v)", err)
			}
			testenv.Golden(t, fx+".cdi.yaml", root, string(data))
		})
	}
}

func TestCDIVersionIsTheLowestCovering(t *testing.T) {
	h := hosttest.Read(t, testenv.HostFixture(t, "8gpu-550.127.05"))
	spec, err := launch.CDISpec(h)
	if err != nil {
		t.Fatal(err)
	}
	// Device names start with digits and hostPath is used: 0.5.0.
	if spec.Version != "0.5.0" || spec.Kind != "gpuimg.dev/gpu" {
		t.Errorf("version %s kind %s", spec.Version, spec.Kind)
	}
	h = hosttest.Read(t, testenv.HostFixture(t, "video-0660-550.54.15"))
	if spec, err = launch.CDISpec(h); err != nil {
		t.Fatal(err)
	}
	// additionalGids for the video group needs 0.7.0.
	if spec.Version != "0.7.0" || len(spec.ContainerEdits.AdditionalGIDs) != 1 || spec.ContainerEdits.AdditionalGIDs[0] != 44 {
		t.Errorf("version %s gids %v", spec.Version, spec.ContainerEdits.AdditionalGIDs)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name, fixture string
		opts          launch.FlagsOptions
		is            error
		says          []string
	}{
		{"index beyond the GPUs", "h200-580.159.04", launch.FlagsOptions{Plan: launch.Options{GPUs: "7"}}, launch.ErrSelector, []string{"index 7", "1 GPU"}},
		{"unknown UUID", "h200-580.159.04", launch.FlagsOptions{Plan: launch.Options{GPUs: "GPU-00000000-0000-0000-0000-000000000000"}}, launch.ErrSelector, []string{"no GPU with UUID", "GPU-d804f6e6"}},
		{"malformed selector", "8gpu-550.127.05", launch.FlagsOptions{Plan: launch.Options{GPUs: "0,,2"}}, launch.ErrSelector, []string{"empty item"}},
		{"malformed item", "8gpu-550.127.05", launch.FlagsOptions{Plan: launch.Options{GPUs: "first"}}, launch.ErrSelector, []string{`"first" is not a GPU`}},
		{"unknown bus id", "8gpu-550.127.05", launch.FlagsOptions{Plan: launch.Options{GPUs: "0000:99:00.0"}}, launch.ErrSelector, []string{"0000:99:00.0"}},
		{"MIG UUID", "mig-535.183.01", launch.FlagsOptions{Plan: launch.Options{GPUs: "MIG-4f4e4d4c-0000-0000-0000-000000000000"}}, launch.ErrSelector, []string{"<gpu>:<mig>", "0:1=gpu0/gi1/ci1"}},
		{"unknown MIG device", "mig-535.183.01", launch.FlagsOptions{Plan: launch.Options{GPUs: "1:0"}}, launch.ErrSelector, []string{"no MIG device 1:0"}},
		{"privileged MIG", "mig-535.183.01", launch.FlagsOptions{Plan: launch.Options{GPUs: "0:0", Privileged: true}}, launch.ErrSelector, []string{"MIG UUIDs"}},
		{"no driver", "no-driver", launch.FlagsOptions{}, host.ErrNoDriver, []string{"modprobe nvidia"}},
		{"uvm missing", "no-uvm-550.54.15", launch.FlagsOptions{}, launch.ErrMissingNode, []string{"/dev/nvidia-uvm", "gpuimg host init-devices", "--fallback=privileged"}},
		{"unknown capability", "h200-580.159.04", launch.FlagsOptions{Plan: launch.Options{Capabilities: []string{"compute,ngx"}}}, nil, []string{`"ngx"`}},
		{"unknown format", "h200-580.159.04", launch.FlagsOptions{Format: "yaml"}, nil, []string{`--format "yaml"`}},
		{"unknown runtime", "h200-580.159.04", launch.FlagsOptions{Runtime: "lxc"}, nil, []string{`"lxc"`, "--format oci"}},
		{"unknown fallback", "h200-580.159.04", launch.FlagsOptions{Plan: launch.Options{Fallback: "cdi"}}, nil, []string{`"cdi"`}},
		{"empty selection", "8gpu-550.127.05", launch.FlagsOptions{Plan: launch.Options{GPUs: " "}}, launch.ErrSelector, []string{"selection is empty", "--gpus all"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := hosttest.Read(t, testenv.HostFixture(t, c.fixture))
			if c.opts.Runtime == "" {
				c.opts.Runtime = "docker"
			}
			if c.opts.Plan.GPUs == "" {
				c.opts.Plan.GPUs = "all" // the flags' defaults
			}
			out, _, err := launch.Flags(context.Background(), h, c.opts)
			if err == nil {
				t.Fatalf("no error; printed %q", out)
			}
			if out != "" {
				t.Errorf("printed %q along with the error", out)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestCheckDriver(t *testing.T) {
	img := func(label string) launch.Image {
		l := map[string]string{}
		if label != "" {
			l[llb.LabelDriverVersion] = label
		}
		return launch.Image{Ref: "img", Labels: l}
	}
	if w, err := launch.CheckDriver(img("580.159.04"), "580.159.04", false); err != nil || len(w) != 0 {
		t.Errorf("equal: %v %v", w, err)
	}
	// String equality: go-version would call these equal, the driver does not.
	_, err := launch.CheckDriver(img("470.82"), "470.82.00", false)
	if !errors.Is(err, launch.ErrDriverMismatch) || !strings.Contains(err.Error(), "gpuimg build --driver 470.82.00") || !strings.Contains(err.Error(), "470.82 driver") {
		t.Errorf("470.82 vs 470.82.00: %v", err)
	}
	if w, err := launch.CheckDriver(img("535.1.1"), "580.159.04", true); err != nil || len(w) != 1 || !strings.Contains(w[0], "--force") {
		t.Errorf("forced: %v %v", w, err)
	}
	if w, err := launch.CheckDriver(img(""), "580.159.04", false); err != nil || len(w) != 1 || !strings.Contains(w[0], "cannot verify") {
		t.Errorf("unlabelled: %v %v", w, err)
	}
}

func TestSplitRunArgs(t *testing.T) {
	cases := []struct {
		in          string
		args, image string
		cmd         string
	}{
		{"--rm -it -v /a:/b img:1 nvidia-smi -L", "--rm -it -v /a:/b", "img:1", "nvidia-smi -L"},
		{"--name=x --rm img", "--name=x --rm", "img", ""},
		{"-e A=1 --shm-size 1g img sh -c true", "-e A=1 --shm-size 1g", "img", "sh -c true"},
		{"img", "", "img", ""},
		{"--rm -- img --version", "--rm", "img", "--version"},
	}
	for _, c := range cases {
		args, image, cmd, err := launch.SplitRunArgs(strings.Fields(c.in))
		if err != nil || strings.Join(args, " ") != c.args || image != c.image || strings.Join(cmd, " ") != c.cmd {
			t.Errorf("%q → args %q image %q cmd %q (%v)", c.in, args, image, cmd, err)
		}
	}
	for _, bad := range []string{"--rm -v", "--rm -it"} {
		if _, _, _, err := launch.SplitRunArgs(strings.Fields(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, c := range []struct {
		words            []string
		dashAt           int
		args, image, cmd string
	}{
		{[]string{"img", "--", "nvidia-smi", "-L"}, -1, "", "img", "nvidia-smi -L"},
		{[]string{"img", "sh", "-c", "true"}, -1, "", "img", "sh -c true"},
		{[]string{"--rm", "-it", "img", "sh"}, 0, "--rm -it", "img", "sh"},
		{[]string{"img", "sh"}, 1, "", "img", "sh"},
	} {
		args, image, cmd, err := launch.ParseRunArgs(c.words, c.dashAt)
		if err != nil || strings.Join(args, " ") != c.args || image != c.image || strings.Join(cmd, " ") != c.cmd {
			t.Errorf("ParseRunArgs(%q, %d) → %q %q %q (%v)", c.words, c.dashAt, args, image, cmd, err)
		}
	}
	if err := launch.CheckRuntimeArgs([]string{"--rm", "--gpus", "all"}); err == nil || !strings.Contains(err.Error(), "toolkit") {
		t.Errorf("--gpus in runtime args: %v", err)
	}
	if err := launch.CheckRuntimeArgs([]string{"--runtime", "nvidia"}); err == nil {
		t.Error("--runtime nvidia accepted")
	}
}

// graphics/video pass the selected GPU's /dev/dri nodes (found through
// sysfs), display passes nvidia-modeset; compute alone passes neither.
func TestCapabilitiesChooseNodes(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"sys/module/nvidia/version": "550.54.15\n",
		"proc/devices":              "Character devices:\n195 nvidia\n226 drm\n511 nvidia-uvm\n",
		"proc/driver/nvidia/gpus/0000:01:00.0/information":    "Model: \t\t L4\nGPU UUID: \t GPU-a\nBus Location: \t 0000:01:00.0\nDevice Minor: \t 0\n",
		"proc/driver/nvidia/gpus/0000:02:00.0/information":    "Model: \t\t L4\nGPU UUID: \t GPU-b\nBus Location: \t 0000:02:00.0\nDevice Minor: \t 1\n",
		"sys/bus/pci/devices/0000:01:00.0/drm/card1/dev":      "226:1\n",
		"sys/bus/pci/devices/0000:01:00.0/drm/renderD128/dev": "226:128\n",
		"sys/bus/pci/devices/0000:02:00.0/drm/card2/dev":      "226:2\n",
		"sys/bus/pci/devices/0000:02:00.0/drm/renderD129/dev": "226:129\n",
		hosttest.DevNodesList: "/dev/nvidiactl c 195 255 666\n/dev/nvidia0 c 195 0 666\n/dev/nvidia1 c 195 1 666\n" +
			"/dev/nvidia-uvm c 511 0 666\n/dev/nvidia-uvm-tools c 511 1 666\n/dev/nvidia-modeset c 195 254 666\n" +
			"/dev/dri/card1 c 226 1 660 0 44\n/dev/dri/renderD128 c 226 128 666\n/dev/dri/card2 c 226 2 660 0 44\n/dev/dri/renderD129 c 226 129 666\n",
	}
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := hosttest.Read(t, root)
	paths := func(caps ...string) string {
		p, err := launch.NewPlan(h, launch.Options{GPUs: "1", Capabilities: caps})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range p.Devices {
			out = append(out, d.Path)
		}
		return strings.Join(out, " ") + fmt.Sprintf(" groups=%v", p.GroupAdd)
	}
	for caps, want := range map[string]string{
		"compute":          "/dev/nvidiactl /dev/nvidia1 /dev/nvidia-uvm /dev/nvidia-uvm-tools groups=[]",
		"utility":          "/dev/nvidiactl /dev/nvidia1 groups=[]",
		"graphics":         "/dev/nvidiactl /dev/nvidia1 /dev/dri/card2 /dev/dri/renderD129 groups=[44]",
		"video,display":    "/dev/nvidiactl /dev/nvidia1 /dev/nvidia-modeset /dev/dri/card2 /dev/dri/renderD129 groups=[44]",
		"compute,graphics": "/dev/nvidiactl /dev/nvidia1 /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/dri/card2 /dev/dri/renderD129 groups=[44]",
	} {
		if got := paths(strings.Split(caps, ",")...); got != want {
			t.Errorf("--capabilities %s:\n got %s\nwant %s", caps, got, want)
		}
	}
}
