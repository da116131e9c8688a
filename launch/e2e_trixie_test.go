package launch_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

// sharedDir is a directory every user can reach (t.TempDir's parent is 0700).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpuimg-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Docker 26 (Debian 13) takes `gpuimg cdi generate`'s spec with CDI enabled
// in daemon.json, and runs the --privileged fallback for real (20.10 cannot
// here: it asks for capabilities this machine does not grant).
func TestDocker26CDIAndPrivilegedFallback(t *testing.T) {
	testenv.SkipIfShort(t, "Docker 26 from the trixie root")
	tr := testenv.TrixieRoot(t)
	specDir := sharedDir(t)
	cfg := filepath.Join(t.TempDir(), "daemon.json")
	conf, _ := json.Marshal(map[string]any{"features": map[string]bool{"cdi": true}, "cdi-spec-dirs": []string{specDir}})
	if err := os.WriteFile(cfg, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	d := tr.Dockerd(t, "--config-file", cfg)
	if v, _, err := d.Run(t, "version", "--format", "{{.Server.Version}}"); err != nil || !strings.HasPrefix(v, "26.") {
		t.Fatalf("the trixie dockerd is %q (%v), want 26.x", v, err)
	}
	const driver = "550.127.05"
	img := "gpuimg-e2e/busybox:" + driver
	d.Load(t, busyboxImage(t, img, map[string]string{llb.LabelDriverVersion: driver}))
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	if r := gpuimg(t, nil, "cdi", "generate", "--root", root, "--output", filepath.Join(specDir, "gpuimg.yaml")); r.code != 0 {
		t.Fatalf("cdi generate: exit %d\n%s", r.code, r.stderr)
	}
	base, stderr, err := d.Run(t, "run", "--rm", "--network", "none", img, "sh", "-c", probe)
	if err != nil {
		t.Fatalf("baseline: %v\n%s", err, stderr)
	}
	baseline := devices(t, base)

	checkCDIDevices(t, root, baseline, func(device string) (string, string, error) {
		return d.Run(t, "run", "--rm", "--network", "none", "--device", device, img, "sh", "-c", probe)
	})

	// gpuimg run drives Docker 26 itself: device nodes, then the fallback.
	env := []string{"DOCKER_HOST=" + d.Host, "PATH=" + tr.Wrapper(t, "docker", "/usr/bin/docker") + ":/usr/bin:/bin"}
	r := gpuimgEnv(t, env, "run", "--root", root, "--gpus", "2", "--", "--rm", "--network", "none", img, "sh", "-c", probe)
	if got := added(baseline, devices(t, r.stdout)); r.code != 0 || strings.Join(got, "\n") != strings.Join(expectedNodes(t, root, launch.Options{GPUs: "2"}), "\n") {
		t.Errorf("gpuimg run --gpus 2 on Docker 26: exit %d, nodes %v\n%s", r.code, got, r.stderr)
	}
	noUVM := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	d.Load(t, busyboxImage(t, "gpuimg-e2e/busybox:550.54.15", map[string]string{llb.LabelDriverVersion: "550.54.15"}))
	r = gpuimgEnv(t, env, "run", "--root", noUVM, "--fallback", "privileged", "--", "--rm", "--network", "none", "gpuimg-e2e/busybox:550.54.15", "sh", "-c", probe)
	if r.code != 0 {
		t.Fatalf("privileged fallback on Docker 26: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{"falling back to --privileged because /dev/nvidia-uvm", "EVERY host device"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "CUDA_VISIBLE_DEVICES=GPU-77777777-6666-5555-4444-333333333333\n") {
		t.Errorf("CUDA_VISIBLE_DEVICES not pinned:\n%s", r.stdout)
	}
	// Privileged: the host's own /dev (more than a plain container's), none
	// of the scratch root's nodes.
	if priv := devices(t, r.stdout); len(priv) <= len(baseline) || priv["/dev/nvidia0"] != "" {
		t.Errorf("privileged container sees %d devices (plain: %d): %v", len(priv), len(baseline), fmt.Sprint(priv))
	}
}

// The CRI plugin of containerd 1.7 with CDI enabled, the layer kubelet talks
// to: crictl starts a pod sandbox (a locally built pause image) and a
// container asking for a gpuimg.dev/gpu device; the container sees exactly
// that GPU's nodes and the control and uvm nodes.
func TestContainerdCRIWithCDI(t *testing.T) {
	testenv.SkipIfShort(t, "containerd 1.7 from the trixie root")
	tr := testenv.TrixieRoot(t)
	specDir := sharedDir(t)
	const pause = "localhost/gpuimg-e2e/pause:1"
	cri := tr.Containerd(t, specDir, pause)
	const driver = "550.127.05"
	img := "localhost/gpuimg-e2e/busybox:" + driver
	cri.Import(t, busyboxImage(t, img, map[string]string{llb.LabelDriverVersion: driver}))
	cri.Import(t, pauseImage(t, pause))
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	if r := gpuimg(t, nil, "cdi", "generate", "--root", root, "--output", filepath.Join(specDir, "gpuimg.yaml")); r.code != 0 {
		t.Fatalf("cdi generate: exit %d\n%s", r.code, r.stderr)
	}
	dir := t.TempDir()
	podConfig := writeJSON(t, dir, "pod.json", map[string]any{
		"metadata":      map[string]any{"name": "gpuimg-e2e", "namespace": "default", "uid": "gpuimg-e2e", "attempt": 0},
		"log_directory": dir,
		// The node's network: no CNI plugin is needed.
		"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	})
	pod, stderr, err := cri.Crictl("runp", podConfig)
	if err != nil {
		t.Fatalf("crictl runp: %v\n%s\n%s", err, stderr, cri.Log())
	}
	run := func(name string, annotations map[string]string) string {
		t.Helper()
		ctr := writeJSON(t, dir, name+".json", map[string]any{
			"metadata": map[string]any{"name": name}, "image": map[string]any{"image": img},
			"command": []string{"sh", "-c", probe}, "log_path": name + ".log", "annotations": annotations,
		})
		id, stderr, err := cri.Crictl("create", pod, ctr, podConfig)
		if err != nil {
			t.Fatalf("crictl create %s: %v\n%s\n%s", name, err, stderr, cri.Log())
		}
		if _, stderr, err := cri.Crictl("start", id); err != nil {
			t.Fatalf("crictl start %s: %v\n%s", name, err, stderr)
		}
		for i := 0; ; i++ {
			state, _, _ := cri.Crictl("inspect", "--output", "go-template", "--template", "{{.status.state}}", id)
			if state == "CONTAINER_EXITED" {
				break
			}
			if i == 300 {
				t.Fatalf("container %s still %q after a minute", name, state)
			}
			time.Sleep(200 * time.Millisecond)
		}
		out, stderr, err := cri.Crictl("logs", id)
		if err != nil {
			t.Fatalf("crictl logs %s: %v\n%s", name, err, stderr)
		}
		return out
	}
	baseline := devices(t, run("baseline", nil))
	out := run("gpu1", map[string]string{"cdi.k8s.io/gpuimg": launch.CDIKind + "=1"})
	got, want := added(baseline, devices(t, out)), expectedNodes(t, root, launch.Options{GPUs: "1"})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("CRI container got\n%s\nwant exactly\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out, "NVIDIA_VISIBLE_DEVICES=void") {
		t.Errorf("spec env not applied:\n%s", out)
	}
}

// pauseImage is the pod sandbox image: busybox waiting for its signal.
func pauseImage(t *testing.T, tag string) string {
	t.Helper()
	img, err := mutate.Config(busybox(t, nil), v1.Config{
		Env:        []string{"PATH=/bin"},
		Entrypoint: []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pause.tar")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeJSON(t *testing.T, dir, file string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Rootless podman 5 as an unprivileged user in group video: what `gpuimg
// flags --runtime podman --rootless` prints (--group-add keep-groups, with
// podman's default crun) lets the container open 0660 root:video nodes;
// without it the same container is refused.
func TestRootlessPodmanKeepGroups(t *testing.T) {
	testenv.SkipIfShort(t, "rootless podman from the trixie root")
	tr := testenv.TrixieRoot(t)
	p := tr.RootlessPodman(t)
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "video-0660-550.54.15"), true)
	// The user must reach the scratch root's nodes.
	for dir := root; dir != filepath.Clean(os.TempDir()); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := gpuimg(t, nil, "flags", "--runtime", "podman", "--rootless", "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "--group-add keep-groups") {
		t.Fatalf("flags --rootless: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	flags := strings.Fields(r.stdout)
	const img = "localhost/gpuimg-e2e/busybox:550.54.15"
	tarPath := filepath.Join(p.Dir, "image.tar")
	copyFile(t, busyboxImage(t, img, map[string]string{llb.LabelDriverVersion: "550.54.15"}), tarPath)
	if out, stderr, err := p.Run("load", "-i", tarPath); err != nil {
		t.Fatalf("rootless podman load: %v\n%s%s", err, out, stderr)
	}
	// Opening a node with no driver behind it fails with ENXIO once the
	// permission check passed, with EACCES when it did not.
	const open = "{ cat /dev/nvidiactl; cat /dev/nvidia0; ls /dev/nvidia-uvm; } 2>&1"
	run := func(args []string) string {
		out, stderr, err := p.Run(append(append([]string{"run", "--rm", "--network", "none"}, args...), img, "sh", "-c", open)...)
		if err != nil {
			t.Fatalf("rootless podman run %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	out := run(flags)
	if strings.Count(out, "No such device or address") != 2 || strings.Contains(out, "Permission denied") || !strings.Contains(out, "/dev/nvidia-uvm") {
		t.Errorf("with gpuimg's flags the nodes are not usable:\n%s", out)
	}
	var withoutGroups []string
	for i := 0; i < len(flags); i++ {
		if flags[i] == "--group-add" {
			i++
			continue
		}
		withoutGroups = append(withoutGroups, flags[i])
	}
	if out := run(withoutGroups); strings.Count(out, "Permission denied") != 2 {
		t.Errorf("without keep-groups the 0660 nodes should be refused:\n%s", out)
	}
}
