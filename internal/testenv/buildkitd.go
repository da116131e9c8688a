package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	// Short path outside t.TempDir(): unix sockets are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "gpuimg-bk-")
	if err != nil {
		t.Fatal(err)
	}
	d := &BuildkitDaemon{Addr: "unix://" + filepath.Join(dir, "buildkitd.sock"), Dir: dir}
	args := []string{
		"--oci-worker=true", "--containerd-worker=false", "--oci-worker-gc=false",
		"--root", filepath.Join(dir, "root"),
	}
	if cfg.tls {
		d.TLS = GenerateTLS(t, filepath.Join(dir, "tls"))
		d.Addr = "tcp://127.0.0.1:" + freePort(t)
		args = append(args, "--tlscert", d.TLS.ServerCert, "--tlskey", d.TLS.ServerKey, "--tlscacert", d.TLS.CA)
	}
	args = append(args, "--addr", d.Addr)
	logPath := filepath.Join(dir, "buildkitd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if cfg.noNetwork {
		if cfg.tls {
			t.Fatal("testenv: WithoutNetwork and WithTLS exclude each other (tcp needs the host's network)")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			SkipOrFail(t, "unshare not found (util-linux)")
		}
		cmd = exec.Command(unshare, append([]string{"--net", "--", bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("buildkitd log tail:\n%s", tail(logPath, 30))
		}
		// The state root holds overlay snapshots; unmount leftovers are the daemon's job.
		_ = os.RemoveAll(dir)
	})
	if err := waitBuildkitd(d, exited); err != nil {
		t.Fatalf("buildkitd at %s did not come up: %v\nlog tail:\n%s", d.Addr, err, tail(logPath, 30))
	}
	return d
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

func waitBuildkitd(d *BuildkitDaemon, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	delay := 50 * time.Millisecond
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return errExited{err}
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
