package standin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/internal/testenv"
)

// sandbox runs the stand-in installer for real, as root, in a chroot whose
// root is an overlay: lower is a read-only root (the host's / or the Debian
// base), upper a tmpfs in a private mount namespace. Nothing reaches the
// host; after each run the upper layer is copied to upper() for inspection.
type sandbox struct {
	t     *testing.T
	lower string
	dir   string
	// extraTree, when set, is copied to /pkg/tree before the run.
	extraTree string
}

// sandboxScript sets up the namespace: $1 work dir, $2 lower, $3 command.
const sandboxScript = `set -e
T=$1 LOWER=$2 M=$1/fs/merged
mount -t tmpfs tmpfs "$T/fs"
mkdir -p "$T/fs/up/opt/stubs" "$T/fs/work" "$M"
for u in modprobe rmmod lsmod depmod; do ln -s /bin/true "$T/fs/up/opt/stubs/$u"; done
cp -a "$T/inject/." "$T/fs/up/"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$T/fs/up,workdir=$T/fs/work" "$M"
mount -t tmpfs -o mode=755 tmpfs "$M/dev"
mknod -m 666 "$M/dev/null" c 1 3
mknod -m 666 "$M/dev/zero" c 1 5
mknod -m 666 "$M/dev/urandom" c 1 9
mount -t proc proc "$M/proc"
set +e
chroot "$M" /usr/bin/env -i PATH=/opt/stubs:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /bin/sh -c "$3"
rc=$?
umount "$M/proc" "$M/dev"
rm -rf "$T/fs/up/opt/stubs" "$T/fs/up/pkg"
cp -a "$T/fs/up/." "$T/upper/"
exit $rc
`

func newSandbox(t *testing.T, lower string) *sandbox {
	t.Helper()
	testenv.RequireRoot(t)
	requireTools(t, "unshare", "mount", "chroot", "mknod")
	return &sandbox{t: t, lower: lower}
}

// run copies the packages to /pkg/<name> in the root, runs cmd with
// /bin/sh -c there, and returns its output and exit code.
func (s *sandbox) run(packages map[string]string, cmd string) (string, int) {
	t := s.t
	t.Helper()
	s.dir = t.TempDir()
	for _, d := range []string{"fs", "upper", "inject/pkg"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range packages {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, "inject", "pkg", name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if s.extraTree != "" {
		if out, err := exec.Command("cp", "-a", s.extraTree, filepath.Join(s.dir, "inject", "pkg", "tree")).CombinedOutput(); err != nil {
			t.Fatalf("copy the package tree: %v\n%s", err, out)
		}
	}
	c := exec.Command("unshare", "-m", "sh", "-c", sandboxScript, "sandbox", s.dir, s.lower, cmd)
	out, err := c.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("sandbox: %v", err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// runTree is run with the directory tree copied to /pkg/tree as well.
func (s *sandbox) runTree(packages map[string]string, tree, cmd string) (string, int) {
	s.t.Helper()
	s.extraTree = tree
	return s.run(packages, cmd)
}

// upper is the path of p in the last run's upper layer (what it wrote).
func (s *sandbox) upper(p string) string { return filepath.Join(s.dir, "upper", p) }

// cachedPackage is a shared tiny package (the installer tests only read it).
func cachedPackage(t *testing.T, opts Options) string {
	t.Helper()
	requireTools(t, "gcc", "objcopy", "go")
	run, err := Cached(opts)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestInstallerOnDebianBase(t *testing.T) {
	const v = "580.159.04"
	run := cachedPackage(t, Options{Version: v, Compression: "zstd"})
	s := newSandbox(t, testenv.BaseRootFS(t, "amd64"))
	out, code := s.run(map[string]string{"driver.run": run}, `
for tool in xz zstd; do command -v $tool >/dev/null && echo "base has $tool"; done
cd /tmp && sh /pkg/driver.run --silent --no-kernel-module --no-nouveau-check --no-nvidia-modprobe --no-rpms --no-backup --no-check-for-alternate-installs
echo "installer exit $?"
mknod -m 666 /dev/nvidia0 c 195 0 && mknod -m 666 /dev/nvidiactl c 195 255
nvidia-smi
nvidia-smi --query-gpu=driver_version --format=csv,noheader
nvidia-smi -L
ldconfig -p | grep -E 'libcuda.so.1 |libnvidia-ml.so.1 '
`)
	if code != 0 || !strings.Contains(out, "installer exit 0") {
		t.Fatalf("install on the Debian base: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "base has") {
		t.Logf("note: the base image has xz or zstd; the embedded decompressor was still the one used:\n%s", out)
	}
	for _, want := range []string{
		"NVIDIA-SMI " + v + "  Driver Version: " + v,
		"/dev/nvidia0 char 195:0 0666",
		"/dev/nvidiactl char 195:255 0666",
		"\n" + v + "\n",
		"GPU 0: NVIDIA Stand-in GPU",
		"libcuda.so.1 (libc6,x86-64) => ",
		"libnvidia-ml.so.1 (libc6,x86-64) => ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}

	libdir := "usr/lib/x86_64-linux-gnu"
	for _, f := range []string{libdir + "/libcuda.so." + v, libdir + "/libnvidia-ml.so." + v, libdir + "/vdpau/libvdpau_nvidia.so." + v, "usr/bin/nvidia-smi"} {
		if st, err := os.Lstat(s.upper(f)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s not installed as a regular file: %v", f, err)
		}
	}
	// Like NVIDIA's: no 32-bit library directory in the base, no 32-bit libraries.
	if _, err := os.Lstat(s.upper("usr/lib/i386-linux-gnu")); !os.IsNotExist(err) {
		t.Errorf("32-bit libraries installed into a base without a 32-bit library directory (%v)", err)
	}
	if !strings.Contains(out, "Unable to find a suitable destination to install 32-bit compatibility libraries") {
		t.Errorf("no warning about the missing 32-bit library directory:\n%s", out)
	}
	for link, target := range map[string]string{
		libdir + "/libcuda.so.1":         "libcuda.so." + v,
		libdir + "/libcuda.so":           "libcuda.so.1",
		libdir + "/libGLX_indirect.so.0": "libGLX_nvidia.so." + v,
		libdir + "/libGL.so.1":           "libGL.so.1.7.0", // the base has no libglvnd, so NVIDIA's copy is installed
		"usr/bin/nvidia-uninstall":       "nvidia-installer",
	} {
		if got, err := os.Readlink(s.upper(link)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want -> %s", link, got, err, target)
		}
	}
	icds := map[string]string{
		"etc/vulkan/icd.d/nvidia_icd.json":            `"library_path": "libGLX_nvidia.so.0"`,
		"usr/share/glvnd/egl_vendor.d/10_nvidia.json": `"library_path" : "libEGL_nvidia.so.0"`,
		"etc/OpenCL/vendors/nvidia.icd":               "libnvidia-opencl.so.1",
	}
	for f, want := range icds {
		if b, err := os.ReadFile(s.upper(f)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, want it to contain %q", f, err, want)
		}
	}
	if _, err := os.Lstat(s.upper("usr/bin/nvidia-modprobe")); !os.IsNotExist(err) {
		t.Errorf("--no-nvidia-modprobe installed nvidia-modprobe (%v)", err)
	}
	record, err := os.ReadFile(s.upper("var/lib/nvidia/log"))
	if err != nil || !strings.Contains(string(record), "CUDA_LIB /usr/lib/x86_64-linux-gnu/libcuda.so."+v+"\n") {
		t.Errorf("uninstall record /var/lib/nvidia/log lacks libcuda: %v\n%s", err, record)
	}
	log, err := os.ReadFile(s.upper("var/log/nvidia-installer.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"installer version: " + v, "--no-kernel-module", "will not install a kernel module", "libdir lib/x86_64-linux-gnu", "is now complete"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestInstallerPrefixesAndFlags(t *testing.T) {
	const v = "580.159.04"
	run := cachedPackage(t, Options{Version: v})
	s := newSandbox(t, "/")
	out, code := s.run(map[string]string{"driver.run": run}, `
cd /tmp && sh /pkg/driver.run --silent --no-kernel-module --utility-prefix=/opt/nv --opengl-prefix /opt/nv \
  --no-install-compat32-libs --no-nvidia-modprobe --no-kernel-module-source --no-systemd --no-libglx-indirect \
  --install-libglvnd --no-wine-files --log-file-name=/var/log/custom.log --override-file-type-destination=CUDA_ICD:/opt/icd \
  --x-prefix=/tmp/null --x-module-path=/tmp/null --x-library-path=/tmp/null --x-sysconfig-path=/tmp/null
echo "installer exit $?"
LD_LIBRARY_PATH=/opt/nv/lib /opt/nv/bin/nvidia-smi --version
/opt/nv/bin/nvidia-smi
echo "bare exit $?"
`)
	if code != 0 || !strings.Contains(out, "installer exit 0") {
		t.Fatalf("install with prefixes: exit %d\n%s", code, out)
	}
	// Without the library in the cache or LD_LIBRARY_PATH, nvidia-smi cannot start.
	for _, want := range []string{"DRIVER version      : " + v, "libnvidia-ml.so.1: cannot open shared object file", "bare exit 127",
		"Unable to determine the default library path. The path /opt/nv/lib will be used"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	present := []string{"opt/nv/lib/libcuda.so." + v, "opt/nv/lib/libnvidia-ml.so." + v, "opt/nv/bin/nvidia-smi", "opt/nv/lib/libGL.so.1.7.0",
		"opt/icd/nvidia.icd", "var/log/custom.log",
		// gdc's --x-*=/tmp/null moves the X driver and GLX module away, not the ICD JSONs (REFERENCE 4.5);
		// the OutputClass snippet needs an X server that reads it, and the base has none.
		"tmp/null/drivers/nvidia_drv.so", "tmp/null/extensions/libglxserver_nvidia.so." + v,
		"etc/vulkan/icd.d/nvidia_icd.json", "usr/share/glvnd/egl_vendor.d/10_nvidia.json"}
	absent := []string{"opt/nv/lib/libGLX_indirect.so.0", "opt/nv/bin/nvidia-modprobe", "usr/bin/nvidia-modprobe", "usr/src/nvidia-" + v,
		"usr/lib/systemd/system/nvidia-suspend.service", "usr/lib/i386-linux-gnu", "etc/OpenCL/vendors/nvidia.icd",
		"var/log/nvidia-installer.log", "opt/nv/lib/nvidia/wine", "usr/lib/x86_64-linux-gnu/libcuda.so." + v}
	for _, f := range present {
		if _, err := os.Lstat(s.upper(f)); err != nil {
			t.Errorf("%s should be installed: %v", f, err)
		}
	}
	for _, f := range absent {
		if _, err := os.Lstat(s.upper(f)); !os.IsNotExist(err) {
			t.Errorf("%s should not be installed (%v)", f, err)
		}
	}
}

// The library directory is the first of lib/<triplet>, lib64, lib that the
// ldconfig cache knows under the prefix, even when another one exists.
func TestInstallerLibdirFromLdconfigCache(t *testing.T) {
	const v = "580.159.04"
	run := cachedPackage(t, Options{Version: v})
	s := newSandbox(t, "/")
	out, code := s.run(map[string]string{"driver.run": run}, `
mkdir -p /opt/r/lib64 /opt/r/lib/x86_64-linux-gnu
cp "$(ldconfig -p | sed -n 's/.*libz.so.1 (libc6,x86-64) => //p' | head -n 1)" /opt/r/lib64/
echo /opt/r/lib64 > /etc/ld.so.conf.d/r.conf && ldconfig
cd /tmp && sh /pkg/driver.run --silent --no-kernel-module --opengl-prefix=/opt/r --utility-prefix=/opt/r
echo "installer exit $?"
nvidia-smi --version
/opt/r/bin/nvidia-smi --version
`)
	if code != 0 || !strings.Contains(out, "installer exit 0") {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	for _, f := range []string{"opt/r/lib64/libcuda.so." + v, "opt/r/lib64/libnvidia-ml.so." + v} {
		if _, err := os.Lstat(s.upper(f)); err != nil {
			t.Errorf("%s not installed (lib64 is in the ldconfig cache): %v", f, err)
		}
	}
	if entries, _ := os.ReadDir(s.upper("opt/r/lib/x86_64-linux-gnu")); len(entries) != 0 {
		t.Errorf("files went to lib/x86_64-linux-gnu although only lib64 is in the cache: %d entries", len(entries))
	}
	// The installer ran ldconfig, so nvidia-smi finds libnvidia-ml through the cache.
	if !strings.Contains(out, "DRIVER version      : "+v) {
		t.Errorf("nvidia-smi did not run through the ld.so cache:\n%s", out)
	}
}

func TestInstallerRefusals(t *testing.T) {
	const v = "580.159.04"
	pkgs := map[string]string{
		"580.run": cachedPackage(t, Options{Version: v}),
		"470.run": cachedPackage(t, Options{Version: "470.256.02"}),
		"460.run": cachedPackage(t, Options{Version: "460.106.00"}),
	}
	install := "cd /tmp && sh /pkg/580.run --silent --no-kernel-module"
	seeLog := "Please see the file '/var/log/nvidia-installer.log' for details."
	cases := []struct {
		name string
		cmd  string
		code int
		want []string
	}{
		{"not root", "cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups sh /pkg/580.run --silent --no-kernel-module", 1,
			[]string{"ERROR: nvidia-installer must be run as root"}},
		{"unknown flag", install + " --no-such-flag", 1,
			[]string{"ERROR: Invalid commandline, please run `nvidia-installer --help` for usage information."}},
		{"plural --no-kernel-modules before 515.43.04", "cd /tmp && sh /pkg/470.run --silent --no-kernel-modules", 1,
			[]string{"ERROR: Invalid commandline"}},
		{"--no-systemd before 465.19.01", "cd /tmp && sh /pkg/460.run --silent --no-kernel-module --no-systemd", 1,
			[]string{"ERROR: Invalid commandline"}},
		{"plural --no-kernel-modules on 580", "cd /tmp && sh /pkg/580.run --silent --no-kernel-modules && echo installed", 0,
			[]string{"installed"}},
		{"missing modprobe", "rm -f /opt/stubs/modprobe /usr/sbin/modprobe /sbin/modprobe /usr/bin/modprobe /bin/modprobe; " + install, 1,
			[]string{"Unable to find the module utility `modprobe`; please make sure you have the package 'module-init-tools' or 'kmod' installed", seeLog}},
		{"without --no-kernel-module", "cd /tmp && sh /pkg/580.run --silent", 1,
			[]string{"Unable to find the kernel source tree for the currently running kernel", seeLog}},
		{"live X server", "sleep 30 & echo $! > /tmp/.X0-lock; " + install + "; rc=$?; kill $!; exit $rc", 1,
			[]string{"You appear to be running an X server; please exit X before installing.", seeLog}},
		{"live X server with --no-x-check", "sleep 30 & echo $! > /tmp/.X0-lock; " + install + " --no-x-check && echo installed; rc=$?; kill $!; exit $rc", 0,
			[]string{"installed"}},
		{"nouveau loaded", "mkdir -p /sys/module/nouveau; " + install, 1,
			[]string{"The Nouveau kernel driver is currently in use by your system.", seeLog}},
		{"nouveau loaded with --no-nouveau-check", "mkdir -p /sys/module/nouveau; " + install + " --no-nouveau-check && echo installed", 0,
			[]string{"installed"}},
		{"alternate install", "mkdir -p /usr/lib/nvidia && touch /usr/lib/nvidia/alternate-install-present; " + install, 1,
			[]string{"An alternate method of installing the NVIDIA driver was detected", seeLog}},
		{"failure hook", "export GPUIMG_STANDIN_FAIL=1; " + install + "; rc=$?; tail -n 2 /var/log/nvidia-installer.log; exit $rc", 1,
			[]string{seeLog, "GPUIMG_STANDIN_FAIL=1 is set", "ERROR: Installation has failed."}},
		{"help needs no root", "cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups sh /pkg/580.run -A", 0,
			[]string{"--no-kernel-module\n", "--override-file-type-destination=FILE_TYPE:DESTINATION"}},
	}
	s := newSandbox(t, "/")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.t = t
			out, code := s.run(pkgs, c.cmd)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, out)
			}
			for _, want := range c.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q\n%s", want, out)
				}
			}
		})
	}
}
