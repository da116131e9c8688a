package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Trixie is the Debian 13 root hack/mktrixie.sh makes, holding newer
// engines than this machine's Debian 12 (docker.io 26.1, containerd 1.7,
// podman 5.4): the tests run them from it, never by upgrading the machine.
type Trixie struct {
	// Root is the root file system; Crictl is crictl for this machine.
	Root, Crictl string
	// enter is the script that enters the root (see Command).
	enter string
}

var (
	trixieOnce sync.Once
	trixieRoot string
	trixieErr  error
)

// trixieEnter enters the root in a private mount namespace: this machine's
// /dev, /sys (without the cgroup2 hierarchy of a hybrid layout), /proc and
// temporary directory (where tests keep sockets, specs and scratch roots)
// bound in, a fresh /run, then pivot_root (a chroot cannot create user
// namespaces, which rootless podman needs).
const trixieEnter = `set -e
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
R=$1 TMP=$2; shift 2
mount --bind "$R" "$R"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t proc proc "$R/proc"
mkdir -p "$R$TMP"
mount --rbind "$TMP" "$R$TMP"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
# cgroup v1 only: crun (rootless podman) refuses the hybrid v1+v2 layout.
umount -l "$R/sys/fs/cgroup/unified" 2>/dev/null || true
cd "$R"
pivot_root . .oldroot
umount -l /.oldroot
exec "$@"
`

// TrixieRoot returns the trixie root: $GPUIMG_TRIXIE_ROOT, or the one
// hack/mktrixie.sh makes (cached under $GPUIMG_CACHE/trixie, else the
// repository's .cache/trixie; `make test` makes it first). It needs root; without the root it skips, or fails under CI.
func TrixieRoot(t testing.TB) *Trixie {
	t.Helper()
	RequireRoot(t)
	trixieOnce.Do(func() {
		if trixieRoot = os.Getenv("GPUIMG_TRIXIE_ROOT"); trixieRoot != "" {
			return
		}
		repo := RepoRoot(t)
		var stdout, stderr bytes.Buffer
		cache := os.Getenv("GPUIMG_CACHE")
		if cache == "" {
			cache = filepath.Join(repo, ".cache")
		}
		cmd := exec.Command(filepath.Join(repo, "hack", "mktrixie.sh"), filepath.Join(cache, "trixie"))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			trixieErr = fmt.Errorf("hack/mktrixie.sh: %v\n%s", err, stderr.String())
			return
		}
		trixieRoot = strings.TrimSpace(stdout.String())
	})
	if trixieErr != nil {
		SkipOrFail(t, "no Debian 13 root: %v", trixieErr)
	}
	if _, err := os.Stat(filepath.Join(trixieRoot, dockerdBinary)); err != nil {
		SkipOrFail(t, "%s is not a trixie root made by hack/mktrixie.sh: %v", trixieRoot, err)
	}
	dir := t.TempDir()
	enter := filepath.Join(dir, "enter-trixie.sh")
	if err := os.WriteFile(enter, []byte(trixieEnter), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Trixie{Root: trixieRoot, Crictl: filepath.Join(filepath.Dir(trixieRoot), "bin", "crictl"), enter: enter}
}

// Command runs argv (a path inside the root) in the root.
func (tr *Trixie) Command(argv ...string) *exec.Cmd {
	args := append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", tr.enter, tr.Root, filepath.Clean(os.TempDir())}, argv...)
	return exec.Command("unshare", args...)
}

// Run runs argv in the root and returns what it printed.
func (tr *Trixie) Run(argv ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := tr.Command(argv...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Wrapper writes an executable named name into a new directory that runs
// the root's binary of that name (e.g. docker), and returns the directory,
// to put first on PATH for programs (gpuimg) that run it themselves.
func (tr *Trixie) Wrapper(t testing.TB, name, inside string) string {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh %q %q %q %q \"$@\"\n",
		tr.enter, tr.Root, filepath.Clean(os.TempDir()), inside)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
