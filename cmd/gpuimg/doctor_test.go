package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// doctorEnv: engines and the toolkit are looked up under the root only.
var doctorEnv = []string{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES="}

// engine installs a stand-in binary and its dpkg record under root.
func engine(t *testing.T, root, name, pkg, version string) {
	t.Helper()
	hosttest.WriteFile(t, root, "/usr/bin/"+name, []byte("#!/bin/sh\nexit 0\n"))
	if err := os.Chmod(filepath.Join(root, "usr/bin", name), 0o755); err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	old, _ := os.ReadFile(status)
	rec := "Package: " + pkg + "\nStatus: install ok installed\nVersion: " + version + "\n\n"
	hosttest.WriteFile(t, root, "/var/lib/dpkg/status", append(old, rec...))
}

func persistenced(t *testing.T, root string) {
	t.Helper()
	sock := filepath.Join(root, host.PersistencedSocket)
	os.MkdirAll(filepath.Dir(sock), 0o755)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

func TestDoctorGolden(t *testing.T) {
	roots := map[string]string{}
	entries, err := os.ReadDir(filepath.Join(testenv.RepoRoot(t), "testdata", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			roots[e.Name()] = testenv.HostFixture(t, e.Name())
		}
	}
	// A healthy host: Docker 26 with CDI on, persistenced, no upgrade pending.
	healthy := hostRoot(t, "8gpu-550.127.05")
	engine(t, healthy, "docker", "docker.io", "26.1.5+dfsg1-9+deb13u1")
	hosttest.WriteFile(t, healthy, "/etc/docker/daemon.json", []byte(`{"features": {"cdi": true}}`))
	hosttest.WriteFile(t, healthy, "/proc/sys/kernel/osrelease", []byte("6.12.48+deb13-amd64\n"))
	hosttest.WriteModule(t, healthy, "/usr/lib/modules/6.12.48+deb13-amd64/updates/dkms/nvidia.ko.xz", "550.127.05")
	persistenced(t, healthy)
	roots["healthy-docker26-cdi"] = healthy
	// Runs, with warnings: an upgrade on disk, the toolkit as Docker's default
	// runtime, Docker 25 without CDI enabled, podman 4.3, no /dev/char links.
	upgrade := hostRoot(t, "no-char-links-550.54.15")
	engine(t, upgrade, "docker", "docker-ce", "5:25.0.3-1~ubuntu.22.04~jammy")
	engine(t, upgrade, "podman", "podman", "4.3.1+ds1-8+deb12u1")
	engine(t, upgrade, "nvidia-container-runtime-hook", "nvidia-container-toolkit", "1.17.8-1")
	hosttest.WriteFile(t, upgrade, "/etc/docker/daemon.json", []byte(`{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}`))
	hosttest.WriteFile(t, upgrade, "/proc/sys/kernel/osrelease", []byte("6.8.0-60-generic\n"))
	hosttest.WriteModule(t, upgrade, "/lib/modules/6.8.0-60-generic/updates/dkms/nvidia.ko.zst", "550.144.03")
	roots["upgrade-toolkit-docker25"] = upgrade
	// A Kubernetes node: containerd 1.7 without CDI, and one with it.
	k8s, k8sCDI := hostRoot(t, "h200-580.159.04"), hostRoot(t, "h200-580.159.04")
	engine(t, k8s, "containerd", "containerd", "1.7.24~ds1-6+deb13u1")
	engine(t, k8sCDI, "containerd", "containerd.io", "1.7.27-1")
	hosttest.WriteFile(t, k8sCDI, "/etc/containerd/config.toml", []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_cdi = true\n"))
	roots["containerd17"], roots["containerd17-cdi"] = k8s, k8sCDI
	// Cannot run: uvm not loaded and Docker 20.10 only.
	noUVM := hostRoot(t, "no-uvm-550.54.15")
	hosttest.WriteFile(t, noUVM, "/proc/devices", []byte("Character devices:\n195 nvidia\n"))
	engine(t, noUVM, "docker", "docker.io", "20.10.24+dfsg1-1+b3")
	roots["uvm-unloaded-docker20"] = noUVM

	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("NVIDIA_VISIBLE_DEVICES", "")
	for name, root := range roots {
		t.Run(name, func(t *testing.T) {
			h := hosttest.Read(t, root)
			d := host.Diagnose(h, host.ProbeRuntimes(context.Background(), h))
			var text, js bytes.Buffer
			if err := writeDiagnosis(&text, d); err != nil {
				t.Fatal(err)
			}
			if err := writeDiagnosisJSON(&js, d); err != nil {
				t.Fatal(err)
			}
			for _, c := range d.Checks {
				if (c.Status == host.StatusProblem || c.Status == host.StatusWarning) && c.Fix == "" {
					t.Errorf("%s %s has no fix: %s", c.Status, c.Name, c.Detail)
				}
			}
			testenv.Golden(t, "doctor/"+name+".txt", root, text.String())
			testenv.Golden(t, "doctor/"+name+".json", root, js.String())
		})
	}
}

// The binary on a scratch root with real nodes: exit 0 when GPU containers
// can run, 1 with the verdict on stderr when not; --json says the same.
func TestDoctorExitStatus(t *testing.T) {
	testenv.RequireRoot(t) // mknod
	healthy := hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true)
	engine(t, healthy, "docker", "docker.io", "26.1.5+dfsg1-9+deb13u1")
	noUVM := hosttest.ScratchRoot(t, testenv.HostFixture(t, "no-uvm-550.54.15"), true)
	engine(t, noUVM, "docker", "docker.io", "26.1.5+dfsg1-9+deb13u1")
	for _, c := range []struct {
		root string
		code int
		says string
	}{{healthy, 0, "this host can run GPU containers"}, {noUVM, 1, "missing device nodes: /dev/nvidia-uvm"}} {
		text, stderr, code := gpuimg(t, doctorEnv, "doctor", "--root", c.root)
		js, _, jsCode := gpuimg(t, doctorEnv, "doctor", "--root", c.root, "--json")
		var d host.Diagnosis
		if err := json.Unmarshal([]byte(js), &d); err != nil {
			t.Fatalf("--json: %v\n%s", err, js)
		}
		if code != c.code || jsCode != c.code || d.CanRun != (c.code == 0) || !strings.Contains(text, c.says) {
			t.Errorf("%s: exit %d (--json %d, canRun %v), want %d and %q\n%s%s", c.root, code, jsCode, d.CanRun, c.code, c.says, text, stderr)
		}
		if c.code != 0 && !strings.Contains(stderr, "cannot run GPU containers") {
			t.Errorf("stderr: %q", stderr)
		}
	}
}
