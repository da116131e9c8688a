package host_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// read reads a fixture root, its nodes from its dev-nodes.tsv (real ones
// when it has none).
func read(t *testing.T, root string) host.Host {
	t.Helper()
	return hosttest.Read(t, root)
}

// The real H200 snapshot (a copy of ../shared/fixtures/h200-580.159.04, so a
// clone with nothing beside it tests it), cross-checked with the nvidia-smi -L
// captured on the same host.
func TestReadRealH200Snapshot(t *testing.T) {
	root := filepath.Join("..", "testdata", "hosts", "h200-580.159.04")
	h := read(t, root)
	if !h.Driver.Loaded || h.Driver.Version != "580.159.04" || h.Driver.ProcVersion != "580.159.04" || h.Driver.Module != "open" {
		t.Errorf("driver = %+v, want 580.159.04 from both files, open module", h.Driver)
	}
	if len(h.Warnings) != 0 {
		t.Errorf("warnings on a consistent host: %v", h.Warnings)
	}
	smi, err := os.ReadFile(filepath.Join(root, "nvidia-smi-L.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`GPU (\d+): (.*) \(UUID: (GPU-[0-9a-f-]+)\)`).FindStringSubmatch(string(smi))
	if m == nil {
		t.Fatalf("cannot parse nvidia-smi -L: %q", smi)
	}
	if len(h.GPUs) != 1 || h.GPUs[0].UUID != m[3] || h.GPUs[0].Model != m[2] || h.GPUs[0].Index != 0 {
		t.Fatalf("GPUs = %+v, nvidia-smi -L says %q", h.GPUs, m[0])
	}
	if g := h.GPUs[0]; g.Minor != 0 || g.BusID != "0000:00:06.0" {
		t.Errorf("GPU 0 = %+v, want minor 0 at 0000:00:06.0", g)
	}
	// /proc/devices lists 195 twice (nvidia and nvidiactl): the frontend is "nvidia".
	want := host.Majors{Frontend: 195, FrontendName: "nvidia", UVM: 238, Caps: 241, ImexChannels: 242, NVSwitch: 239, NVLink: 240}
	if h.Majors != want {
		t.Errorf("majors = %+v, want %+v", h.Majors, want)
	}
	rows, err := os.ReadFile(filepath.Join(root, hosttest.DevNodesList))
	if err != nil {
		t.Fatal(err)
	}
	list, err := hosttest.ParseDevNodes(string(rows))
	if err != nil {
		t.Fatal(err)
	}
	// Every character node the host had is reported with its listed numbers and mode.
	for _, row := range list {
		if row.Type != "c" {
			continue
		}
		n, ok := h.Node(row.Path)
		if !ok || !n.Exists || n.Major != row.Major || n.Minor != row.Minor || n.Mode != row.Mode || n.Mismatch {
			t.Errorf("%s: got %+v, dev-nodes.tsv says %d:%d %o", row.Path, n, row.Major, row.Minor, row.Mode)
		}
	}
	if n, _ := h.Node("/dev/nvidia-caps/nvidia-cap1"); n.Cap != "config" {
		t.Errorf("nvidia-cap1 is %q, mig-minors says config", n.Cap)
	}
	if n, ok := h.Node("/dev/nvidia-modeset"); !ok || n.Exists {
		t.Errorf("the snapshot has no /dev/nvidia-modeset; got %+v", n)
	}
}

func TestReadVariants(t *testing.T) {
	t.Run("Grace Hopper: aarch64 from the open module's line, nodes and GPUs as on x86_64", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "gh200-580.159.04"))
		if h.Arch != "aarch64" || h.Driver.Version != "580.159.04" || h.Driver.Module != "open" {
			t.Errorf("arch %q driver %+v, want aarch64 580.159.04 open", h.Arch, h.Driver)
		}
		if len(h.GPUs) != 1 || h.GPUs[0].BusID != "0009:01:00.0" || h.GPUs[0].Model != "NVIDIA GH200 480GB" {
			t.Errorf("GPUs %+v", h.GPUs)
		}
		if n, ok := h.Node("/dev/nvidia-uvm"); !ok || n.Major != 508 || !n.Exists {
			t.Errorf("uvm node %+v", n)
		}
		if x86 := read(t, testenv.HostFixture(t, "pre550-470.256.02")); x86.Arch != "x86_64" {
			t.Errorf("the proprietary module's line says x86_64; read %q", x86.Arch)
		}
	})
	t.Run("/proc/sys/kernel/arch says the architecture first", func(t *testing.T) {
		root := t.TempDir()
		for p, text := range map[string]string{
			"proc/sys/kernel/arch":       "aarch64\n",
			"proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build\n",
		} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if h := read(t, root); h.Arch != "aarch64" {
			t.Errorf("arch %q, want /proc/sys/kernel/arch's aarch64", h.Arch)
		}
	})
	t.Run("8 GPUs: index is bus order, minor is Device Minor", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "8gpu-550.127.05"))
		wantMinors := []int{2, 3, 0, 1, 6, 7, 4, 5}
		if len(h.GPUs) != 8 {
			t.Fatalf("%d GPUs, want 8", len(h.GPUs))
		}
		for i, g := range h.GPUs {
			if g.Index != i || g.Minor != wantMinors[i] || !strings.HasSuffix(g.UUID, "44444444444"+string(rune('0'+i))) {
				t.Errorf("GPU %d = %+v, want minor %d", i, g, wantMinors[i])
			}
			if i > 0 && h.GPUs[i-1].BusID >= g.BusID {
				t.Errorf("GPUs not in bus order: %s before %s", h.GPUs[i-1].BusID, g.BusID)
			}
			n, _ := h.Node("/dev/nvidia" + string(rune('0'+g.Minor)))
			if !n.Exists || !n.CharLink || n.Minor != g.Minor {
				t.Errorf("node of GPU %d: %+v", i, n)
			}
		}
	})
	t.Run("live capabilities tree with MIG off (the real H200 of docs/GPU-E2E.md)", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "h200-580.159.04-capabilities"))
		snapshot := read(t, testenv.HostFixture(t, "h200-580.159.04"))
		if len(h.MIG) != 0 {
			t.Errorf("MIG is off, yet MIG devices were found: %+v", h.MIG)
		}
		if h.Driver != snapshot.Driver || len(h.GPUs) != 1 || h.GPUs[0] != snapshot.GPUs[0] {
			t.Errorf("driver %+v GPUs %+v, want the snapshot's %+v %+v", h.Driver, h.GPUs, snapshot.Driver, snapshot.GPUs)
		}
		if len(h.Nodes) != len(snapshot.Nodes) {
			t.Fatalf("%d nodes, want the snapshot's %d: %+v", len(h.Nodes), len(snapshot.Nodes), h.Nodes)
		}
		for i := range h.Nodes {
			if h.Nodes[i] != snapshot.Nodes[i] {
				t.Errorf("node %d = %+v, want %+v", i, h.Nodes[i], snapshot.Nodes[i])
			}
		}
		if n, _ := h.Node("/dev/nvidia-caps/nvidia-cap1"); n.Cap != "config" || n.Mode != 0o400 {
			t.Errorf("cap1 = %+v, want the MIG config cap, mode 0400", n)
		}
	})
	t.Run("pre-550 proprietary module", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "pre550-470.256.02"))
		if h.Driver.Version != "470.256.02" || h.Driver.Module != "proprietary" {
			t.Errorf("driver %+v", h.Driver)
		}
		if h.Majors.FrontendName != "nvidia-frontend" || h.Majors.Frontend != 195 || h.Majors.UVM != 510 || h.Majors.Caps != 235 {
			t.Errorf("majors %+v", h.Majors)
		}
	})
	t.Run("MIG caps", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "mig-535.183.01"))
		want := []host.MIGDevice{
			{GPUIndex: 0, GPUMinor: 0, Index: 0, GI: 1, CI: 0, GICapMinor: 12, CICapMinor: 13},
			{GPUIndex: 0, GPUMinor: 0, Index: 1, GI: 1, CI: 1, GICapMinor: 12, CICapMinor: 14},
			{GPUIndex: 0, GPUMinor: 0, Index: 2, GI: 2, CI: 0, GICapMinor: 21, CICapMinor: 22},
		}
		if len(h.MIG) != len(want) {
			t.Fatalf("MIG = %+v", h.MIG)
		}
		for i := range want {
			if h.MIG[i] != want[i] {
				t.Errorf("MIG[%d] = %+v, want %+v", i, h.MIG[i], want[i])
			}
		}
		if n, _ := h.Node("/dev/nvidia-caps/nvidia-cap14"); !n.Exists || n.Cap != "gpu0/gi1/ci1/access" || n.Major != 509 {
			t.Errorf("cap14 = %+v", n)
		}
	})
	t.Run("uvm loaded, nodes missing", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "no-uvm-550.54.15"))
		for _, p := range []string{"/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} {
			if n, ok := h.Node(p); !ok || n.Exists || n.Major != 511 {
				t.Errorf("%s = %+v, want listed as missing with major 511", p, n)
			}
		}
	})
	t.Run("0660 video nodes", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "video-0660-550.54.15"))
		n, _ := h.Node("/dev/nvidia0")
		if n.Mode != 0o660 || n.GID != 44 || n.Group != "video" || n.WorldUsable() {
			t.Errorf("nvidia0 = %+v", n)
		}
		if h.Params.DeviceFileGID != 44 || h.Params.DeviceFileMode != 0o660 {
			t.Errorf("params %+v", h.Params)
		}
	})
	t.Run("no /dev/char links", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "no-char-links-550.54.15"))
		for _, n := range h.Nodes {
			if n.Exists && n.CharLink {
				t.Errorf("%s reported linked", n.Path)
			}
		}
	})
	t.Run("no driver", func(t *testing.T) {
		h := read(t, testenv.HostFixture(t, "no-driver"))
		if h.Driver.Loaded || len(h.GPUs) != 0 || len(h.Nodes) != 0 {
			t.Errorf("host %+v", h)
		}
		if err := h.RequireDriver(); err == nil || !strings.Contains(err.Error(), "modprobe nvidia") {
			t.Errorf("RequireDriver = %v", err)
		}
	})
}

func TestVersionsDisagreeWarns(t *testing.T) {
	root := t.TempDir()
	write(t, root, "sys/module/nvidia/version", "550.54.15\n")
	write(t, root, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\nGCC version:  gcc version 12.2.0\n")
	h := read(t, root)
	if h.Driver.Version != "550.54.15" || h.Driver.ProcVersion != "550.54.14" {
		t.Errorf("driver %+v", h.Driver)
	}
	found := false
	for _, w := range h.Warnings {
		found = found || strings.Contains(w, "disagree") && strings.Contains(w, "550.54.14") && strings.Contains(w, "550.54.15")
	}
	if !found {
		t.Errorf("no disagreement warning naming both versions in %v", h.Warnings)
	}
}

func TestParseProcVersion(t *testing.T) {
	cases := []struct{ line, version, module string }{
		{"NVRM version: NVIDIA UNIX x86_64 Kernel Module  595.58.03  Tue Mar 17 19:54:55 UTC 2026", "595.58.03", "proprietary"},
		{"NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  550.144.03  Release Build  (dvs-builder@U16)  Mon Dec 30 2024", "550.144.03", "open"},
		{"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  ", "580.159.04", "open"},
		{"NVRM version: NVIDIA UNIX x86_64 Kernel Module  390.157  Wed Oct 12 09:19:07 UTC 2022", "390.157", "proprietary"},
	}
	for _, c := range cases {
		v, m, ok := host.ParseProcVersion(c.line + "\nGCC version:  gcc version 12.3.0\n")
		if !ok || v != c.version || m != c.module {
			t.Errorf("%q → %q %q %v, want %q %q", c.line, v, m, ok, c.version, c.module)
		}
	}
	if _, _, ok := host.ParseProcVersion("garbage"); ok {
		t.Error("garbage parsed")
	}
}

func TestNormalizeBusID(t *testing.T) {
	for in, want := range map[string]string{
		"0000:00:06.0": "0000:00:06.0", "00000000:3B:00.0": "0000:3b:00.0", "0:6:0.0": "0000:06:00.0",
		"3b:00.0": "0000:3b:00.0", "nope": "", "0:1": "", "0000:00:20.0": "", "0000:00:06.8": "",
	} {
		if got := host.NormalizeBusID(in); got != want {
			t.Errorf("host.NormalizeBusID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDevNodesRejectsBadRows(t *testing.T) {
	for _, bad := range []string{"/dev/x c 195", "/dev/x c x 0 666", "dev/x c 195 0 666", "/dev/x b 1 2 666", "/dev/x c 1 2 999"} {
		if _, err := hosttest.ParseDevNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadRootMustBeDirectory(t *testing.T) {
	if _, err := host.Read(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "--root") {
		t.Errorf("host.Read(absent) = %v", err)
	}
}

// A production read stats the nodes: a dev-nodes.tsv under the root is
// just a file, which changes nothing.
func TestReadIgnoresANodeList(t *testing.T) {
	h, err := host.Read(testenv.HostFixture(t, "video-0660-550.54.15"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range h.Nodes {
		if n.Exists {
			t.Errorf("%s reported present from the fixture's %s", n.Path, hosttest.DevNodesList)
		}
	}
}

// Real nodes are read with stat.
func TestReadStatsRealNodes(t *testing.T) {
	testenv.RequireRoot(t)
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "video-0660-550.54.15"), true)
	h, err := host.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := h.Node("/dev/nvidiactl")
	if !n.Exists || n.Major != 195 || n.Minor != 255 || n.Mode != 0o660 || n.GID != 44 {
		t.Errorf("nvidiactl = %+v", n)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "dev/nvidia-uvm"), &st); err != nil || unix.Major(st.Rdev) != 511 {
		t.Fatalf("scratch root nvidia-uvm: %v %d", err, unix.Major(st.Rdev))
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Control bytes in /sys/module/nvidia/version are not a version: ignored,
// quoted in the warning, and the /proc version is used.
func TestGarbageSysVersionIsRefusedAndEscaped(t *testing.T) {
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "h200-580.159.04"), false)
	write(t, root, "sys/module/nvidia/version", "580.159.04\x1b[2J\x07\n")
	h, err := host.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if h.Driver.SysVersion != "" || h.Driver.Version != "580.159.04" {
		t.Errorf("driver = %+v, want the /proc version and no sys version", h.Driver)
	}
	warnings := strings.Join(h.Warnings, "\n")
	if !strings.Contains(warnings, `"580.159.04\x1b[2J\a\n"`) || !strings.Contains(warnings, "not a driver version") || strings.ContainsAny(warnings, "\x1b\x07") {
		t.Errorf("warnings = %q, want the bytes quoted and escaped", warnings)
	}
}
