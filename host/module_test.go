package host_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

const kernel = "6.1.0-18-amd64"

func TestModuleVersionCompressions(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"nvidia.ko", "nvidia.ko.xz", "nvidia.ko.zst"} {
		path := "/m/" + name
		hosttest.WriteModule(t, root, path, "550.127.05")
		if v, err := host.ModuleVersion(filepath.Join(root, path)); err != nil || v != "550.127.05" {
			t.Errorf("%s: %q, %v", name, v, err)
		}
	}
}

// An object gcc wrote, with .modinfo as the kernel's MODULE_INFO macro puts it.
func TestModuleVersionFromGCCObject(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.SkipOrFail(t, "gcc not found (`make deps` installs it)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "nvidia.c")
	os.WriteFile(src, []byte(`
static const char license[] __attribute__((section(".modinfo"), used, aligned(1))) = "license=NVIDIA";
static const char version[] __attribute__((section(".modinfo"), used, aligned(1))) = "version=580.159.04";
int nv_init(void) { return 0; }
`), 0o644)
	ko := filepath.Join(dir, "nvidia.ko")
	if out, err := exec.Command("gcc", "-c", "-o", ko, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if v, err := host.ModuleVersion(ko); err != nil || v != "580.159.04" {
		t.Errorf("gcc object: %q, %v", v, err)
	}
}

func TestModuleVersionBadInput(t *testing.T) {
	root := t.TempDir()
	hosttest.WriteFile(t, root, "not-elf.ko", []byte("hello"))
	hosttest.WriteFile(t, root, "no-version.ko", hosttest.ModuleELF("license=NVIDIA"))
	hosttest.WriteFile(t, root, "bad-version.ko", hosttest.ModuleELF("version=550.127.05; rm -rf /"))
	hosttest.WriteFile(t, root, "truncated.ko.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0})
	hosttest.WriteFile(t, root, "truncated.ko.zst", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00})
	elf := hosttest.ModuleELF("version=550.127.05")
	hosttest.WriteFile(t, root, "cut.ko", elf[:len(elf)-20])
	hosttest.WriteFile(t, root, "nvidia.o", elf)
	for name, says := range map[string]string{
		"not-elf.ko":       "not an ELF kernel module",
		"no-version.ko":    "no version= field",
		"bad-version.ko":   "not a driver version",
		"truncated.ko.xz":  "xz",
		"truncated.ko.zst": "decompress",
		"cut.ko":           "not an ELF kernel module",
		"absent.ko":        "no such file",
		"nvidia.o":         "not a kernel module name",
	} {
		v, err := host.ModuleVersion(filepath.Join(root, name))
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %q, %v; want an error saying %q", name, v, err, says)
		}
	}
}

// upgradeRoot is the 8-GPU fixture (550.127.05 loaded) running kernel, with
// the given module files written under it.
func upgradeRoot(t *testing.T, modules map[string]string) string {
	t.Helper()
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), false)
	hosttest.WriteFile(t, root, "/proc/sys/kernel/osrelease", []byte(kernel+"\n"))
	for path, version := range modules {
		hosttest.WriteModule(t, root, path, version)
	}
	return root
}

func TestPendingUpgrade(t *testing.T) {
	cases := []struct {
		name    string
		modules map[string]string
		pending string
		path    string
	}{
		{"same", map[string]string{"/lib/modules/" + kernel + "/updates/dkms/nvidia.ko.zst": "550.127.05"}, "", "/lib/modules/" + kernel + "/updates/dkms/nvidia.ko.zst"},
		{"upgraded", map[string]string{"/lib/modules/" + kernel + "/updates/dkms/nvidia.ko.xz": "550.144.03"}, "550.144.03", "/lib/modules/" + kernel + "/updates/dkms/nvidia.ko.xz"},
		{"usr-lib", map[string]string{"/usr/lib/modules/" + kernel + "/kernel/drivers/video/nvidia.ko": "570.86.15"}, "570.86.15", "/usr/lib/modules/" + kernel + "/kernel/drivers/video/nvidia.ko"},
		// depmod prefers updates/ over the distribution's kernel/ tree.
		{"updates-first", map[string]string{
			"/lib/modules/" + kernel + "/kernel/drivers/video/nvidia.ko": "535.183.01",
			"/lib/modules/" + kernel + "/updates/dkms/nvidia.ko":         "550.127.05",
		}, "", "/lib/modules/" + kernel + "/updates/dkms/nvidia.ko"},
		// Another kernel's module is not what this kernel boots.
		{"other-kernel", map[string]string{"/lib/modules/6.1.0-99-amd64/updates/dkms/nvidia.ko": "999.1.1"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := read(t, upgradeRoot(t, c.modules))
			m := h.Driver.Installed
			if m == nil || m.Kernel != kernel || m.Path != c.path || h.Driver.PendingUpgrade != c.pending || h.UpgradePending() != (c.pending != "") {
				t.Fatalf("installed %+v, pending %q; want path %q, pending %q", m, h.Driver.PendingUpgrade, c.path, c.pending)
			}
			warned := strings.Contains(strings.Join(h.Warnings, "\n"), "after a reboot this host runs "+c.pending+"; build it now: gpuimg build --driver "+c.pending)
			if warned != (c.pending != "") {
				t.Errorf("warnings %v", h.Warnings)
			}
		})
	}
}
