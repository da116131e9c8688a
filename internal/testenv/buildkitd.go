package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// BuildkitDaemon is a private buildkitd (OCI worker, runc, overlayfs) started for
// one test with its own state root and socket.
type BuildkitDaemon struct {
	// Addr is the address clients dial: unix://DIR/buildkitd.sock, or
	// tcp://127.0.0.1:PORT when started with TLS.
	Addr string
	// Dir holds the state root, the socket and buildkitd.log.
	Dir string
	// TLS is set when the daemon listens on TCP with mutual TLS.
	TLS *TLSFiles

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // its exit status, once done is closed
	logFile *os.File
}

// BuildkitdOption changes how Buildkitd starts the daemon.
type BuildkitdOption func(*buildkitdConfig)

type buildkitdConfig struct{ tls, noNetwork bool }

// WithTLS makes the daemon listen on tcp://127.0.0.1:PORT with mutual TLS
// (certificates generated for the test), the way remote builders are reached.
func WithTLS() BuildkitdOption { return func(c *buildkitdConfig) { c.tls = true } }

// WithoutNetwork runs the daemon in a network namespace of its own with only
// a loopback device (unshare --net): a build that succeeds there needed no
// network at all. Clients still reach it through its unix socket.
func WithoutNetwork() BuildkitdOption { return func(c *buildkitdConfig) { c.noNetwork = true } }

// BuildkitdBinary returns the buildkitd to run: $GPUIMG_BUILDKITD (the Makefile
// points it at bin/buildkitd), else bin/buildkitd in the repository.
func BuildkitdBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("GPUIMG_BUILDKITD")
	if bin == "" {
		bin = filepath.Join(RepoRoot(t), "bin", "buildkitd")
	}
	if _, err := os.Stat(bin); err != nil {
		SkipOrFail(t, "buildkitd not found at %s (`make buildkitd` builds the version pinned in go.mod)", bin)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		SkipOrFail(t, "runc not on PATH (Debian's runc; `make deps` installs it)")
	}
	return bin
}

// Buildkitd starts a private buildkitd as root, waits until it answers Info
// (with backoff, up to 30 s; the log's tail is shown when it does not), and
// stops it when the test ends.
func Buildkitd(t testing.TB, opts ...BuildkitdOption) *BuildkitDaemon {
	t.Helper()
	RequireRoot(t)
	bin := BuildkitdBinary(t)
	var cfg buildkitdConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.noNetwork && cfg.tls {
		t.Fatal("testenv: WithoutNetwork and WithTLS exclude each other (tcp needs the host's network)")
	}
	dir, err := os.MkdirTemp("", "gpuimg-bk-")
	if err != nil {
		t.Fatal(err)
	}
	d := &BuildkitDaemon{Addr: "unix://" + filepath.Join(dir, "buildkitd.sock"), Dir: dir}
	var extra, wrap []string
	if cfg.tls {
		d.TLS = GenerateTLS(t, filepath.Join(dir, "tls"))
		d.Addr = "tcp://127.0.0.1:" + freePort(t)
		extra = []string{"--tlscert", d.TLS.ServerCert, "--tlskey", d.TLS.ServerKey, "--tlscacert", d.TLS.CA}
	}
	if cfg.noNetwork {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			SkipOrFail(t, "unshare not found (util-linux)")
		}
		wrap = []string{unshare, "--net", "--"}
	}
	if err := d.start(bin, extra, wrap); err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("buildkitd log tail:\n%s", d.LogTail(30))
		}
		d.Stop()
	})
	return d
}

// StartBuildkitd starts a private buildkitd (bin, as root) on a unix socket in
// a new temporary directory and waits until it answers; Stop ends it. For
// programs such as the benchmarks; tests use Buildkitd.
func StartBuildkitd(bin string) (*BuildkitDaemon, error) {
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("runc not on PATH (Debian's runc; `make deps` installs it)")
	}
	dir, err := os.MkdirTemp("", "gpuimg-bk-")
	if err != nil {
		return nil, err
	}
	d := &BuildkitDaemon{Addr: "unix://" + filepath.Join(dir, "buildkitd.sock"), Dir: dir}
	if err := d.start(bin, nil, nil); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

// start runs wrap... bin with the OCI worker, its root under d.Dir, d.Addr and
// extra flags, and waits until it answers. On failure the daemon is stopped
// and the error carries its log's tail.
func (d *BuildkitDaemon) start(bin string, extra, wrap []string) error {
	args := append([]string{
		"--oci-worker=true", "--containerd-worker=false", "--oci-worker-gc=false",
		"--root", filepath.Join(d.Dir, "root"), "--addr", d.Addr,
	}, extra...)
	logFile, err := os.Create(filepath.Join(d.Dir, "buildkitd.log"))
	if err != nil {
		return err
	}
	argv := append(append(wrap[:len(wrap):len(wrap)], bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w (`make buildkitd` builds it)", bin, err)
	}
	d.cmd, d.logFile, d.done = cmd, logFile, make(chan struct{})
	go func() { d.waitErr = cmd.Wait(); close(d.done) }()
	if err := waitBuildkitd(d); err != nil {
		tail := d.LogTail(30)
		d.stopProcess()
		return fmt.Errorf("buildkitd at %s did not come up: %w\nlog tail:\n%s", d.Addr, err, tail)
	}
	return nil
}

// LogTail returns the last lines of the daemon's log.
func (d *BuildkitDaemon) LogTail(lines int) string {
	return tail(filepath.Join(d.Dir, "buildkitd.log"), lines)
}

// Stop ends the daemon (SIGTERM, then SIGKILL after 20 s) and removes its
// directory, unmounting what a killed daemon left mounted there.
func (d *BuildkitDaemon) Stop() {
	d.stopProcess()
	unmountBelow(d.Dir)
	_ = os.RemoveAll(d.Dir)
}

// Signal sends sig to the daemon's process group (buildkitd and the runc
// containers it runs), for fault tests: SIGSTOP freezes the builder,
// SIGCONT thaws it, SIGKILL kills it mid-build.
func (d *BuildkitDaemon) Signal(sig syscall.Signal) error {
	return syscall.Kill(-d.cmd.Process.Pid, sig)
}

func (d *BuildkitDaemon) stopProcess() {
	if d.cmd == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGCONT) // a frozen daemon cannot act on SIGTERM
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.logFile.Close()
}

// ClientOpts returns the client options that reach this daemon (TLS files when set).
func (d *BuildkitDaemon) ClientOpts() []client.ClientOpt {
	if d.TLS == nil {
		return nil
	}
	return []client.ClientOpt{
		client.WithServerConfig("127.0.0.1", d.TLS.CA),
		client.WithCredentials(d.TLS.ClientCert, d.TLS.ClientKey),
	}
}

func waitBuildkitd(d *BuildkitDaemon) error {
	deadline := time.Now().Add(30 * time.Second)
	delay := 50 * time.Millisecond
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return errExited{d.waitErr}
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.New(ctx, d.Addr, d.ClientOpts()...)
		if err == nil {
			_, err = c.Info(ctx)
			c.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
	return lastErr
}

type errExited struct{ err error }

func (e errExited) Error() string { return "buildkitd exited: " + errString(e.err) }

func errString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	parts := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}

// CPUSeconds is the CPU time (user+sys) the daemon and its reaped children
// (runc and the build steps it ran) have used so far, from /proc/PID/stat:
// the benchmarks report it next to wall time, which a shared machine's
// load moves and CPU time does not.
func (d *BuildkitDaemon) CPUSeconds() (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after "(comm) ": state is 0, utime 11, stime 12, cutime 13, cstime 14.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", d.cmd.Process.Pid, len(f))
	}
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} {
		n, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", d.cmd.Process.Pid, err)
		}
		ticks += n
	}
	return ticks / 100, nil // USER_HZ is 100 on Linux
}
