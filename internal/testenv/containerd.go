package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	stopPods := func() {
		// Pods first: their shims outlive containerd.
		if out, _, err := c.Crictl("pods", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _, _ = c.Crictl("stopp", id)
				_, _, _ = c.Crictl("rmp", "-f", id)
			}
		}
	}
	ready := func() error { _, _, err := c.Crictl("version"); return err }
	startDaemon(t, "containerd", dir, tr.Command("/usr/bin/containerd", "--config", filepath.Join(dir, "config.toml")), ready, stopPods)
	return c
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
