package host_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/templates"
)

// devTree describes everything under root/dev: nodes with numbers, mode and
// owner, links with their targets.
func devTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "dev"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			out = append(out, fmt.Sprintf("/%s c %d:%d %04o %d:%d", rel, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Mode&0o7777, st.Uid, st.Gid))
		case unix.S_IFLNK:
			dest, _ := os.Readlink(path)
			out = append(out, fmt.Sprintf("/%s -> %s", rel, dest))
		case unix.S_IFREG:
			out = append(out, fmt.Sprintf("/%s regular file", rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestInitDevicesCreatesMissingNodesAndLinksOnce(t *testing.T) {
	testenv.RequireRoot(t)
	cases := []struct {
		fixture   string
		makeNodes bool
		want      []string // lines that must appear in the tree afterwards
		actions   int
	}{
		{"no-uvm-550.54.15", true, []string{
			"/dev/nvidia-uvm c 511:0 0666 0:0", "/dev/nvidia-uvm-tools c 511:1 0666 0:0",
			"/dev/char/511:0 -> ../nvidia-uvm", "/dev/char/511:1 -> ../nvidia-uvm-tools",
		}, 4},
		{"no-char-links-550.54.15", true, []string{
			"/dev/char/195:255 -> ../nvidiactl", "/dev/char/195:0 -> ../nvidia0", "/dev/char/511:0 -> ../nvidia-uvm",
		}, 4},
		// No nodes at all: each /dev/nvidiaN gets its Device Minor, not its index.
		{"8gpu-550.127.05", false, []string{
			"/dev/nvidiactl c 195:255 0666 0:0", "/dev/nvidia0 c 195:0 0666 0:0", "/dev/nvidia7 c 195:7 0666 0:0",
			"/dev/nvidia-uvm c 511:0 0666 0:0",
		}, 11},
		// DeviceFileGID/Mode decide new GPU nodes' owner and mode.
		{"video-0660-550.54.15", false, []string{"/dev/nvidia0 c 195:0 0660 0:44", "/dev/nvidiactl c 195:255 0660 0:44"}, 4},
		{"mig-535.183.01", false, []string{"/dev/nvidia-caps/nvidia-cap14 c 509:14 0444 0:0", "/dev/char/509:14 -> ../nvidia-caps/nvidia-cap14"}, 10},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			root := hosttest.ScratchRoot(t, testenv.HostFixture(t, c.fixture), c.makeNodes)
			before := devTree(t, root)
			dry, err := host.InitDevices(host.InitOptions{Root: root, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := devTree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
				t.Fatalf("--dry-run changed the tree:\n%s", strings.Join(got, "\n"))
			}
			actions, err := host.InitDevices(host.InitOptions{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if len(actions) != c.actions || len(dry) != len(actions) {
				t.Errorf("%d actions (dry run planned %d), want %d: %v", len(actions), len(dry), c.actions, actions)
			}
			tree := strings.Join(devTree(t, root), "\n")
			for _, w := range c.want {
				if !strings.Contains(tree, w) {
					t.Errorf("missing %q in\n%s", w, tree)
				}
			}
			h, err := host.Read(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range h.Nodes {
				if (n.Kind == host.KindControl || n.Kind == host.KindGPU || n.Kind == host.KindUVM || n.Kind == host.KindUVMTools || n.Kind == host.KindCap) && (!n.Exists || !n.CharLink || n.Mismatch) {
					t.Errorf("after init-devices: %+v", n)
				}
			}
			again, err := host.InitDevices(host.InitOptions{Root: root})
			if err != nil || len(again) != 0 {
				t.Errorf("second run: %v %v, want nothing to do", again, err)
			}
		})
	}
}

// wrongNodesRoot is a scratch host whose /dev/nvidia0 is stale (195:9, from
// another driver load), /dev/nvidiactl a regular file and /dev/nvidia-uvm a
// symlink to /dev/null: the three wrong things a node path can hold.
func wrongNodesRoot(t *testing.T) string {
	t.Helper()
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	for _, p := range []string{"dev/nvidia0", "dev/nvidiactl"} {
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	hosttest.MakeNode(t, root, hosttest.DevNode{Path: "/dev/nvidia0", Type: "c", Major: 195, Minor: 9, Mode: 0o666})
	write(t, root, "dev/nvidiactl", "")
	if err := os.Symlink("/dev/null", filepath.Join(root, "dev/nvidia-uvm")); err != nil {
		t.Fatal(err)
	}
	return root
}

// A stale node, a regular file and a symlink are each reported as what they
// are, shown by --dry-run, and replaced by init-devices (the script too).
func TestInitDevicesReplacesWrongNodes(t *testing.T) {
	testenv.RequireRoot(t)
	root := wrongNodesRoot(t)
	h, err := host.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, found := range map[string]string{
		"/dev/nvidia0":    "character device 195:9",
		"/dev/nvidiactl":  "a regular file",
		"/dev/nvidia-uvm": `a symlink to "/dev/null"`,
	} {
		n, _ := h.Node(path)
		if !n.Mismatch || n.Found != found {
			t.Errorf("%s: mismatch %v found %q, want %q", path, n.Mismatch, n.Found, found)
		}
		if !strings.Contains(strings.Join(h.Warnings, "\n"), path+" is ") {
			t.Errorf("no warning names %s: %q", path, h.Warnings)
		}
	}
	if !strings.Contains(strings.Join(h.Warnings, "\n"), "init-devices --root "+root) {
		t.Errorf("the warnings' fix omits --root: %q", h.Warnings)
	}

	before := devTree(t, root)
	planned, err := host.InitDevices(host.InitOptions{Root: root, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, a := range planned {
		text = append(text, a.String())
	}
	for _, want := range []string{
		"rm -f /dev/nvidia0 && mknod -m 0666 /dev/nvidia0 c 195 0  # replaces character device 195:9",
		"rm -f /dev/nvidiactl && mknod -m 0666 /dev/nvidiactl c 195 255  # replaces a regular file",
		`rm -f /dev/nvidia-uvm && mknod -m 0666 /dev/nvidia-uvm c 511 0  # replaces a symlink to "/dev/null"`,
	} {
		if !strings.Contains(strings.Join(text, "\n"), want) {
			t.Errorf("--dry-run does not show %q:\n%s", want, strings.Join(text, "\n"))
		}
	}
	if got := devTree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("--dry-run changed the tree:\n%s", strings.Join(got, "\n"))
	}

	if _, err := host.InitDevices(host.InitOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	after, err := host.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range after.Nodes {
		if n.Mismatch {
			t.Errorf("after init-devices %s still holds %s", n.Path, n.Found)
		}
	}
	if again, err := host.InitDevices(host.InitOptions{Root: root}); err != nil || len(again) != 0 {
		t.Errorf("second run: %v %v, want nothing to do", again, err)
	}

	byScript := wrongNodesRoot(t)
	script, err := templates.Render("init-devices.sh.tmpl", templates.InitDevices{Gpuimg: "gpuimg"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "GPUIMG_ROOT="+byScript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	if goTree, shTree := strings.Join(devTree(t, root), "\n"), strings.Join(devTree(t, byScript), "\n"); goTree != shTree {
		t.Errorf("init-devices made:\n%s\nthe script made:\n%s", goTree, shTree)
	}
}

// A directory at a node path is not removed behind the user's back.
func TestInitDevicesRefusesADirectoryAndChangesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	if err := os.Mkdir(filepath.Join(root, "dev/nvidia-uvm"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := devTree(t, root)
	_, err := host.InitDevices(host.InitOptions{Root: root})
	if err == nil || !strings.Contains(err.Error(), "/dev/nvidia-uvm is a directory") || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("err = %v, want one naming the directory and the fix", err)
	}
	if got := devTree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("tree changed after a refusal:\n%s", strings.Join(got, "\n"))
	}
}

func TestInitDevicesErrors(t *testing.T) {
	if _, err := host.InitDevices(host.InitOptions{Root: testenv.HostFixture(t, "no-driver"), DryRun: true}); err == nil || !strings.Contains(err.Error(), "modprobe nvidia") {
		t.Errorf("no driver: %v", err)
	}
	root := t.TempDir()
	write(t, root, "sys/module/nvidia/version", "550.54.15\n")
	write(t, root, "proc/devices", "Character devices:\n195 nvidia\n")
	if _, err := host.InitDevices(host.InitOptions{Root: root, DryRun: true}); err == nil || !strings.Contains(err.Error(), "--load-modules") {
		t.Errorf("uvm not loaded: %v", err)
	}
	if _, err := host.InitDevices(host.InitOptions{Root: root, DryRun: true, LoadModules: true}); err == nil || !strings.Contains(err.Error(), "--root /") {
		t.Errorf("--load-modules with a scratch root: %v", err)
	}
}

// The printed script does what init-devices does: same nodes, same links.
func TestInitDevicesScriptMatchesCommand(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		fx   string
		imex []int
	}{{"8gpu-550.127.05", nil}, {"video-0660-550.54.15", nil}, {"no-uvm-550.54.15", nil}, {"mig-535.183.01", nil}, {"hgx-imex-570.124.06", []int{0, 3}}} {
		fx := c.fx
		t.Run(fx, func(t *testing.T) {
			script, err := templates.Render("init-devices.sh.tmpl", templates.InitDevices{Gpuimg: "gpuimg", IMEXChannels: c.imex})
			if err != nil {
				t.Fatal(err)
			}
			byGo := hosttest.ScratchRoot(t, testenv.HostFixture(t, fx), false)
			byScript := hosttest.ScratchRoot(t, testenv.HostFixture(t, fx), false)
			if _, err := host.InitDevices(host.InitOptions{Root: byGo, IMEXChannels: c.imex}); err != nil {
				t.Fatal(err)
			}
			for run := 0; run < 2; run++ {
				cmd := exec.Command("sh", "-c", script)
				cmd.Env = append(os.Environ(), "GPUIMG_ROOT="+byScript)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("script: %v\n%s", err, out)
				}
				if run == 1 && len(out) != 0 {
					t.Errorf("second run of the script did something:\n%s", out)
				}
			}
			goTree, shTree := strings.Join(devTree(t, byGo), "\n"), strings.Join(devTree(t, byScript), "\n")
			if goTree != shTree {
				t.Errorf("init-devices made:\n%s\nthe script made:\n%s", goTree, shTree)
			}
		})
	}
}

// Without root, init-devices says so and changes nothing.
func TestInitDevicesWithoutRoot(t *testing.T) {
	testenv.RequireRoot(t) // to switch to an unprivileged user
	bin := testenv.Gpuimg(t)
	// t.TempDir()'s parent is 0700: the unprivileged user needs a path it can reach.
	dir, err := os.MkdirTemp("", "gpuimg-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "gpuimg")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	before := devTree(t, root)
	cmd := exec.Command(exe, "host", "init-devices", "--root", root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs root") || !strings.Contains(string(out), "sudo") {
		t.Errorf("as nobody: %v\n%s", err, out)
	}
	if got := devTree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("tree changed:\n%s", strings.Join(got, "\n"))
	}
}

// The command users type: creates what is missing, then has nothing to do.
func TestInitDevicesCommandIsIdempotent(t *testing.T) {
	testenv.RequireRoot(t)
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	run := func() (string, string) {
		cmd := exec.Command(testenv.Gpuimg(t), "host", "init-devices", "--root", root)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("init-devices: %v\n%s", err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	out, _ := run()
	for _, want := range []string{"mknod -m 0666 /dev/nvidia-uvm c 511 0", "mknod -m 0666 /dev/nvidia-uvm-tools c 511 1", "ln -sfn ../nvidia-uvm /dev/char/511:0"} {
		if !strings.Contains(out, want) {
			t.Errorf("first run does not report %q:\n%s", want, out)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "dev/nvidia-uvm-tools"), &st); err != nil || unix.Major(st.Rdev) != 511 || unix.Minor(st.Rdev) != 1 {
		t.Errorf("nvidia-uvm-tools: %v %d:%d", err, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	out, errOut := run()
	if out != "" || !strings.Contains(errOut, "nothing to do") {
		t.Errorf("second run: stdout %q stderr %q", out, errOut)
	}
}
