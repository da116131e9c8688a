package llb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/internal/testenv"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// familyFlags runs the install script's family choice in a chroot holding a
// static busybox and the given directories, and returns $family_flags and
// what it printed on stderr.
func familyFlags(t *testing.T, spec Spec, dirs ...string) (string, string) {
	t.Helper()
	testenv.RequireRoot(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		testenv.SkipOrFail(t, "needs a static busybox (make deps installs busybox-static)")
	}
	root := t.TempDir()
	for _, d := range append(dirs, "bin") {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	script := familyScript(spec) + `echo "$family_flags"`
	cmd := exec.Command("chroot", root, "/bin/busybox", "sh", "-c", script)
	cmd.Env = []string{"PATH=/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("family script: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), stderr.String()
}

// The X module path and the 32-bit directory follow the base's family.
func TestFamilyScript(t *testing.T) {
	amd64 := Spec{Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"}}
	for name, tc := range map[string]struct {
		spec Spec
		dirs []string
		want string
	}{
		"debian": {amd64, []string{"usr/lib/x86_64-linux-gnu"},
			"--x-library-path=/usr/lib/x86_64-linux-gnu --x-module-path=/usr/lib/xorg/modules"},
		"rhel": {amd64, []string{"usr/lib64"},
			"--x-library-path=/usr/lib64 --x-module-path=/usr/lib64/xorg/modules"},
		"debian, 32-bit": {Spec{Platform: amd64.Platform, Compat32: true}, []string{"usr/lib/x86_64-linux-gnu"},
			"--x-library-path=/usr/lib/x86_64-linux-gnu --x-module-path=/usr/lib/xorg/modules --install-compat32-libs --compat32-libdir=lib/i386-linux-gnu"},
		"rhel, 32-bit": {Spec{Platform: amd64.Platform, Compat32: true}, []string{"usr/lib64"},
			"--x-library-path=/usr/lib64 --x-module-path=/usr/lib64/xorg/modules --install-compat32-libs --compat32-libdir=lib"},
		"debian arm64": {Spec{Platform: ocispecs.Platform{OS: "linux", Architecture: "arm64"}}, []string{"usr/lib/aarch64-linux-gnu"},
			"--x-library-path=/usr/lib/aarch64-linux-gnu --x-module-path=/usr/lib/xorg/modules"},
	} {
		got, stderr := familyFlags(t, tc.spec, tc.dirs...)
		if got != tc.want {
			t.Errorf("%s: family flags %q, want %q", name, got, tc.want)
		}
		if tc.spec.Compat32 && !strings.Contains(stderr, "no 32-bit C library (ld-linux.so.2)") {
			t.Errorf("%s: no warning about the missing 32-bit C library: %q", name, stderr)
		}
	}
}
