package launch_test

import (
	"context"
	"errors"
	"net"
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

// --persistenced binds the daemon's socket in every format.
func TestPersistencedSocketGolden(t *testing.T) {
	fixture := testenv.HostFixture(t, "h200-580.159.04")
	root := hosttest.ScratchRoot(t, fixture, false)
	copyFile(t, filepath.Join(fixture, hosttest.DevNodesList), filepath.Join(root, hosttest.DevNodesList))
	opts := launch.FlagsOptions{Runtime: "docker", Plan: launch.Options{GPUs: "all", Persistenced: true}}
	if _, _, err := launch.Flags(context.Background(), hosttest.Read(t, root), opts); err == nil || !strings.Contains(err.Error(), "systemctl start nvidia-persistenced") {
		t.Fatalf("no socket: %v, want an error with the fix", err)
	}
	sock := filepath.Join(root, host.PersistencedSocket)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, format := range launch.Formats {
		opts.Format = format
		out, _, err := launch.Flags(context.Background(), hosttest.Read(t, root), opts)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Golden(t, "h200-persistenced."+format, root, out)
	}
}

// An image with graphics or display components gets /dev/nvidia-modeset
// where it exists, and a warning with the fix where it does not.
func TestModesetFromImageComponents(t *testing.T) {
	graphics := busyboxImage(t, "gpuimg-e2e/gfx:550.54.15", map[string]string{llb.LabelDriverVersion: "550.54.15", llb.LabelDriverComponents: "compute,utility,graphics"})
	compute := busyboxImage(t, "gpuimg-e2e/cuda:550.54.15", map[string]string{llb.LabelDriverVersion: "550.54.15", llb.LabelDriverComponents: "compute,utility"})
	withModeset := testenv.HostFixture(t, "video-0660-550.54.15")
	without := testenv.HostFixture(t, "no-char-links-550.54.15")
	for _, c := range []struct {
		root, image string
		modeset     bool
		warns       string
	}{
		{withModeset, graphics, true, ""},
		{withModeset, compute, false, ""},
		{without, graphics, false, "sudo nvidia-modprobe -m"},
	} {
		out, warnings, err := launch.Flags(context.Background(), hosttest.Read(t, c.root), launch.FlagsOptions{Image: c.image, Runtime: "docker", Plan: launch.Options{GPUs: "all"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out, "/dev/nvidia-modeset"); got != c.modeset {
			t.Errorf("%s on %s: modeset passed %v, want %v:\n%s", c.image, filepath.Base(c.root), got, c.modeset, out)
		}
		if w := strings.Join(warnings, "\n"); c.warns != "" && !strings.Contains(w, c.warns) {
			t.Errorf("warnings %q lack %q", w, c.warns)
		}
	}
}

// Bad values of the new flags: a clear error, no output.
func TestOptInBadInput(t *testing.T) {
	withStandinSMI(t)
	hgx := testenv.HostFixture(t, "hgx-imex-570.124.06")
	for _, c := range []struct {
		root string
		plan launch.Options
		says string
	}{
		{hgx, launch.Options{GPUs: "all", IMEXChannels: "2"}, "IMEX channel 2 does not exist"},
		{hgx, launch.Options{GPUs: "all", IMEXChannels: "0,-1"}, "use channel numbers such as 0,1"},
		{hgx, launch.Options{GPUs: "all", IMEXChannels: "4096"}, "the driver offers channels 0-2047"},
		{hgx, launch.Options{GPUs: "all", IMEXChannels: "al"}, "use channel numbers such as 0,1 (or all)"},
		{testenv.HostFixture(t, "8gpu-550.127.05"), launch.Options{GPUs: "all", IMEXChannels: "all"}, "no nvidia-caps-imex-channels line"},
		{testenv.HostFixture(t, "8gpu-550.127.05"), launch.Options{GPUs: "all", NVSwitch: true}, "has no /dev/nvidia-nvswitch* nodes"},
		{testenv.HostFixture(t, "mig-535.183.01"), launch.Options{GPUs: "MIG-00000000-2222-5333-8444-555555555501"}, "no MIG device MIG-00000000"},
		{testenv.HostFixture(t, "mig-535.183.01"), launch.Options{GPUs: "MIG-11111111-2222-5333-8444-555555555501", Privileged: true}, "MIG UUIDs are known only to NVML"},
	} {
		out, _, err := launch.Flags(context.Background(), hosttest.Read(t, c.root), launch.FlagsOptions{Runtime: "docker", Plan: c.plan})
		if err == nil || out != "" || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: out %q, err %v; want an error saying %q", c.plan, out, err, c.says)
		}
		if errors.Is(err, host.ErrIMEXChannel) != strings.Contains(c.says, "channel") && c.plan.IMEXChannels != "" {
			t.Errorf("%+v: %v is not ErrIMEXChannel", c.plan, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
