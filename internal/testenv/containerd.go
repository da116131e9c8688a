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

// CRI is a private containerd (from the trixie root) whose CRI plugin, the
// layer kubelet talks to, has CDI enabled; crictl drives it.
type CRI struct {
	// Socket is containerd's address; Dir holds its state and log.
	Socket, Dir string
	tr          *Trixie
}

// Containerd starts the trixie root's containerd with the CRI plugin, CDI
// on and specs read from cdiDir, sandboxImage as the pod sandbox (import it
// with Import before creating pods), and stops it when the test ends.
func (tr *Trixie) Containerd(t testing.TB, cdiDir, sandboxImage string) *CRI {
	t.Helper()
	if _, err := os.Stat(tr.Crictl); err != nil {
		SkipOrFail(t, "crictl not found beside the trixie root (hack/mktrixie.sh builds it): %v", err)
	}
	dir, err := os.MkdirTemp("", "gpuimg-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &CRI{Socket: filepath.Join(dir, "containerd.sock"), Dir: dir, tr: tr}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = true
  cdi_spec_dirs = [%q]
  sandbox_image = %q
  # No lower oom_score_adj than containerd's own: that needs CAP_SYS_RESOURCE,
  # which CI machines like this one do not grant.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, cdiDir, sandboxImage)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := tr.Command("/usr/bin/containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// Pods first (their shims outlive containerd), then the daemon.
		if out, _, err := c.Crictl("pods", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _, _ = c.Crictl("stopp", id)
				_, _, _ = c.Crictl("rmp", "-f", id)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		unmountBelow(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing containerd dir: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, _, err := c.Crictl("version"); err == nil {
			return c
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("containerd exited during startup (%v); log:\n%s", werr, readTail(filepath.Join(dir, "containerd.log")))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s within 60s; log:\n%s", c.Socket, readTail(filepath.Join(dir, "containerd.log")))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Crictl runs crictl against this containerd.
func (c *CRI) Crictl(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := "unix://" + c.Socket
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, c.tr.Crictl, append([]string{"--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--config", os.DevNull}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return strings.TrimSpace(out.String()), errOut.String(), err
}

// Import loads a docker-format tarball into the CRI plugin's namespace.
func (c *CRI) Import(t testing.TB, tarPath string) {
	t.Helper()
	if out, errOut, err := c.tr.Run("/usr/bin/ctr", "--address", c.Socket, "--namespace", "k8s.io", "images", "import", tarPath); err != nil {
		t.Fatalf("ctr images import %s: %v\n%s%s", tarPath, err, out, errOut)
	}
}

// Log returns containerd's log so far, for failure messages.
func (c *CRI) Log() string { return readTail(filepath.Join(c.Dir, "containerd.log")) }
