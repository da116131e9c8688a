package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Debian's docker.io: the daemon and the client built with it (the newer
// client in /usr/local/bin may speak an API version dockerd 20.10 refuses).
const (
	dockerdBinary = "/usr/sbin/dockerd"
	dockerBinary  = "/usr/bin/docker"
)

// DockerDaemon is a private dockerd started for one test: its own data root,
// exec root and socket, no iptables and no bridge, so it never touches the
// host's networking or a system docker.
type DockerDaemon struct {
	// Host is the daemon's address for `docker -H` ("unix:///…/docker.sock").
	Host string
	// Dir holds the socket, the data and exec roots and the daemon's log.
	Dir string
	// client makes a docker client command built with the daemon.
	client func(args ...string) *exec.Cmd
}

// Dockerd starts a private dockerd (which starts its own containerd), waits
// until it answers, and stops it when the test ends. It needs root and
// Debian's docker.io; without them it skips, or fails under CI=true.
func Dockerd(t testing.TB) *DockerDaemon {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{dockerdBinary, dockerBinary} {
		if _, err := os.Stat(bin); err != nil {
			SkipOrFail(t, "%s not found (Debian's docker.io; `make deps` installs it)", bin)
		}
	}
	d := newDockerDaemon(t)
	d.client = func(args ...string) *exec.Cmd { return exec.Command(dockerBinary, args...) }
	startDockerd(t, d, exec.Command(dockerdBinary, d.daemonArgs()...))
	return d
}

// Dockerd starts the trixie root's dockerd (26.1) the way Dockerd starts
// this machine's, with extra daemon arguments (e.g. --config-file); its Run
// uses the root's docker client, which speaks CDI device names. unshare and
// the entry script exec, so the process started is dockerd itself.
func (tr *Trixie) Dockerd(t testing.TB, extraArgs ...string) *DockerDaemon {
	t.Helper()
	d := newDockerDaemon(t)
	d.client = func(args ...string) *exec.Cmd { return tr.Command(append([]string{dockerBinary}, args...)...) }
	startDockerd(t, d, tr.Command(append([]string{dockerdBinary}, append(d.daemonArgs(), extraArgs...)...)...))
	return d
}

func newDockerDaemon(t testing.TB) *DockerDaemon {
	t.Helper()
	// A short directory outside t.TempDir(): unix socket paths are limited to
	// 108 bytes and containerd nests its own sockets under the exec root.
	dir, err := os.MkdirTemp("", "gpuimg-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	return &DockerDaemon{Host: "unix://" + filepath.Join(dir, "docker.sock"), Dir: dir}
}

// daemonArgs keep the daemon to its own directory: no iptables, no bridge.
func (d *DockerDaemon) daemonArgs() []string {
	return []string{
		"--iptables=false", "--ip-masq=false", "--bridge=none",
		"--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"),
		"--host", d.Host,
		"--pidfile", filepath.Join(d.Dir, "dockerd.pid"),
	}
}

// startDockerd starts cmd (a dockerd) and waits until it answers.
func startDockerd(t testing.TB, d *DockerDaemon, cmd *exec.Cmd) {
	t.Helper()
	ready := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := d.client("-H", d.Host, "version", "--format", "{{.Server.Version}}")
		return exec.CommandContext(ctx, c.Path, c.Args[1:]...).Run()
	}
	startDaemon(t, "dockerd", d.Dir, cmd, ready, nil)
}

// Run runs the daemon's docker client with -H Host and args and returns what it printed.
func (d *DockerDaemon) Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := d.client(append([]string{"-H", d.Host}, args...)...)
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Load runs `docker load -i tarPath` (a docker-format tarball; dockerd 20.10
// cannot load OCI tarballs) and fails the test when it does not succeed.
func (d *DockerDaemon) Load(t testing.TB, tarPath string) {
	t.Helper()
	stdout, stderr, err := d.Run(t, "load", "-i", tarPath)
	if err != nil {
		t.Fatalf("docker load -i %s: %v\n%s%s", tarPath, err, stdout, stderr)
	}
}

// Log returns the daemon's log so far, for failure messages.
func (d *DockerDaemon) Log() string { return readTail(filepath.Join(d.Dir, "dockerd.log")) }

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const keep = 8000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// unmountBelow lazily unmounts every mount point under dir, deepest first.
func unmountBelow(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
