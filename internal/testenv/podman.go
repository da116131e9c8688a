package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const podmanBinary = "/usr/bin/podman"

// PodmanStore is a private podman image and container store for one test,
// so tests never touch the machine's own podman state.
type PodmanStore struct {
	Root, RunRoot string
	// StorageConf and ContainersConf configure podman through the
	// environment (see Env), for programs like `gpuimg run --runtime podman`
	// that call podman themselves.
	StorageConf, ContainersConf string
}

// Env is the environment that points a plain `podman` at this store.
func (p *PodmanStore) Env() []string {
	return []string{"CONTAINERS_STORAGE_CONF=" + p.StorageConf, "CONTAINERS_CONF=" + p.ContainersConf}
}

// PodmanRunArgs are the `podman run` flags Debian 12's podman 4.3 needs on
// the CI machines: crun refuses the hybrid cgroup layout, and raising
// rlimits is refused, so runc with rlimits it already has.
var PodmanRunArgs = []string{
	"--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
	"--network", "none",
}

// Podman returns a private podman store, removed when the test ends. It
// needs root and Debian's podman; without them it skips, or fails under CI.
func Podman(t testing.TB) *PodmanStore {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(podmanBinary); err != nil {
		SkipOrFail(t, "%s not found (Debian's podman; `make deps` installs it)", podmanBinary)
	}
	// Short paths: podman puts sockets under the run root.
	dir, err := os.MkdirTemp("", "gpuimg-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PodmanStore{
		Root:           filepath.Join(dir, "root"),
		RunRoot:        filepath.Join(dir, "run"),
		StorageConf:    filepath.Join(dir, "storage.conf"),
		ContainersConf: filepath.Join(dir, "containers.conf"),
	}
	conf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", p.Root, p.RunRoot)
	if err := os.WriteFile(p.StorageConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// cgroupfs: no systemd to talk to; file events: no journald.
	engine := "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
	if err := os.WriteFile(p.ContainersConf, []byte(engine), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Unmount the store's overlays before removing it.
		_, _, _ = p.Run(t, "system", "reset", "--force")
		unmountBelow(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing podman store: %v", err)
		}
	})
	return p
}

// Run runs podman with this store's --root and --runroot.
func (p *PodmanStore) Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(podmanBinary, append([]string{"--root", p.Root, "--runroot", p.RunRoot}, args...)...)
	cmd.Env = append(os.Environ(), p.Env()...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Load runs `podman load -i tarPath` and fails the test when it fails.
func (p *PodmanStore) Load(t testing.TB, tarPath string) {
	t.Helper()
	if stdout, stderr, err := p.Run(t, "load", "-i", tarPath); err != nil {
		t.Fatalf("podman load -i %s: %v\n%s%s", tarPath, err, stdout, stderr)
	}
}
