package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// RootlessUID is the unprivileged user hack/mktrixie.sh makes in the trixie
// root (gpuimg-rootless, in group video).
const RootlessUID = 1500

// RootlessPodman is podman 5 from the trixie root, run as RootlessUID with
// a private store in a directory that user owns.
type RootlessPodman struct {
	tr *Trixie
	// Dir is a directory the user can read (put image tarballs here).
	Dir string
	// xdg is bound on /run/user/<uid> in every call.
	xdg string
	env []string
}

// RootlessPodman makes the private store; it is removed when the test ends.
func (tr *Trixie) RootlessPodman(t testing.TB) *RootlessPodman {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpuimg-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	// The runtime directory, bound on /run/user/<uid> in each call, outlives
	// the calls (a fresh one would start a pause process per call); the one
	// pause process that keeps the user namespace is ended with the test.
	xdg := filepath.Join(dir, "xdg")
	t.Cleanup(func() {
		if pid, err := os.ReadFile(filepath.Join(xdg, "libpod", "tmp", "pause.pid")); err == nil {
			var n int
			if _, err := fmt.Sscan(string(pid), &n); err == nil && n > 1 {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		unmountBelow(dir)
		os.RemoveAll(dir)
	})
	for _, d := range []string{dir, filepath.Join(dir, "store"), filepath.Join(dir, "run"), xdg} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, RootlessUID, RootlessUID); err != nil {
			t.Fatal(err)
		}
	}
	storage := filepath.Join(dir, "storage.conf")
	conf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "store"), filepath.Join(dir, "run"))
	engine := filepath.Join(dir, "containers.conf")
	// cgroupfs: no systemd user session; file events: no journald.
	for path, text := range map[string]string{storage: conf, engine: "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &RootlessPodman{tr: tr, Dir: dir, xdg: xdg, env: []string{
		"HOME=/home/gpuimg-rootless", fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", RootlessUID),
		"CONTAINERS_STORAGE_CONF=" + storage, "CONTAINERS_CONF=" + engine, "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
	}}
}

// Run runs podman with args as the unprivileged user.
func (p *RootlessPodman) Run(args ...string) (stdout, stderr string, err error) {
	uid := fmt.Sprint(RootlessUID)
	run := "/run/user/" + uid
	setup := "mkdir -p " + run + " && mount --bind " + p.xdg + " " + run +
		` && exec setpriv --reuid=` + uid + ` --regid=` + uid + ` --init-groups env "$@"`
	argv := append([]string{"/bin/sh", "-c", setup, "sh"}, p.env...)
	argv = append(argv, append([]string{"/usr/bin/podman"}, args...)...)
	var out, errOut bytes.Buffer
	cmd := p.tr.Command(argv...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
