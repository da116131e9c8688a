package host

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RuntimeInfo is an installed container engine, its version and whether it
// can consume CDI specs (`--device gpuimg.dev/gpu=0`).
type RuntimeInfo struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	// Source says where Version came from: "dpkg" or "<binary> --version".
	Source string `json:"source,omitempty"`
	// CDI: the engine resolves CDI device names as configured now.
	CDI bool `json:"cdi"`
	// CDINote says why not, or what enabling it takes.
	CDINote string `json:"cdiNote,omitempty"`
}

// dpkgPackages are the Debian/Ubuntu packages that ship each engine.
var dpkgPackages = map[string][]string{
	"docker":     {"docker-ce", "docker.io", "moby-engine"},
	"podman":     {"podman"},
	"nerdctl":    {"nerdctl"},
	"containerd": {"containerd", "containerd.io"},
}

// ProbeRuntimes finds each engine's version: from <root>/var/lib/dpkg/status,
// which works under any root, else by running `<binary> --version` on the
// real host (root /) only, since binaries under another root may not run here.
func ProbeRuntimes(ctx context.Context, h Host) []RuntimeInfo {
	r := reader{root: h.Root}
	status, _, _ := r.readOptional("/var/lib/dpkg/status")
	pkgs := parseDpkgStatus(status)
	var infos []RuntimeInfo
	for _, rt := range h.Runtimes {
		if _, known := dpkgPackages[rt.Name]; !known {
			continue // runc, crun: OCI runtimes, not engines
		}
		info := RuntimeInfo{Name: rt.Name, Path: rt.Path}
		for _, p := range dpkgPackages[rt.Name] {
			if v, ok := pkgs[p]; ok {
				info.Version, info.Source = upstreamVersion(v), "dpkg "+p
				break
			}
		}
		if info.Version == "" && (h.Root == "/" || h.Root == "") {
			info.Version, info.Source = versionFromBinary(ctx, rt.Path), rt.Name+" --version"
		}
		info.CDI, info.CDINote = cdiSupport(r, info)
		infos = append(infos, info)
	}
	return infos
}

// parseDpkgStatus maps installed package names to versions.
func parseDpkgStatus(text string) map[string]string {
	pkgs := map[string]string{}
	var name, version string
	installed := false
	flush := func() {
		if name != "" && installed {
			pkgs[name] = version
		}
		name, version, installed = "", "", false
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "Package: "):
			name = strings.TrimPrefix(line, "Package: ")
		case strings.HasPrefix(line, "Version: "):
			version = strings.TrimPrefix(line, "Version: ")
		case strings.HasPrefix(line, "Status: "):
			installed = strings.HasSuffix(line, " installed")
		}
	}
	flush()
	return pkgs
}

var leadingVersion = regexp.MustCompile(`\d+\.\d+(\.\d+)?`)

// upstreamVersion drops a Debian epoch and revision: "5:26.1.4-1~ubuntu" → "26.1.4".
func upstreamVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	return leadingVersion.FindString(v)
}

func versionFromBinary(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	return leadingVersion.FindString(string(out))
}

// atLeast compares dotted versions numerically.
func atLeast(v string, want ...int) bool {
	parts := strings.Split(v, ".")
	for i, w := range want {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// cdiSupport applies REFERENCE 6.3: Docker from 25.0 with features.cdi in
// daemon.json (default on from 28.2), podman from 4.1 (CDI spec 0.3+),
// nerdctl from 2.0, containerd's CRI plugin from 1.7 with enable_cdi
// (default on from 2.0).
func cdiSupport(r reader, info RuntimeInfo) (bool, string) {
	if info.Version == "" {
		return false, "version unknown"
	}
	switch info.Name {
	case "docker":
		if !atLeast(info.Version, 25) {
			return false, "Docker " + info.Version + " has no CDI (25.0 or newer): use `gpuimg run`/`gpuimg flags` (plain --device)"
		}
		if atLeast(info.Version, 28, 2) {
			return true, ""
		}
		if dockerCDIEnabled(r) {
			return true, ""
		}
		return false, `Docker ` + info.Version + ` needs {"features":{"cdi":true}} in /etc/docker/daemon.json (then restart dockerd)`
	case "podman":
		if atLeast(info.Version, 4, 1) {
			return true, ""
		}
		return false, "podman " + info.Version + " is older than 4.1: use `gpuimg run --runtime podman`"
	case "nerdctl":
		if atLeast(info.Version, 2) {
			return true, ""
		}
		return false, "nerdctl " + info.Version + " is older than 2.0: use `gpuimg run --runtime nerdctl`"
	case "containerd":
		switch {
		case atLeast(info.Version, 2):
			return true, ""
		case !atLeast(info.Version, 1, 7):
			return false, "containerd " + info.Version + " has no CDI (1.7 or newer): Kubernetes pods get the nodes only through a device plugin"
		case containerdCDIEnabled(r):
			return true, ""
		}
		return false, "containerd " + info.Version + ` needs enable_cdi = true (and cdi_spec_dirs) under [plugins."io.containerd.grpc.v1.cri"] in /etc/containerd/config.toml (then restart containerd)`
	}
	return false, ""
}

// DockerDaemonConfig is what doctor reads of /etc/docker/daemon.json.
type DockerDaemonConfig struct {
	Features       map[string]bool `json:"features"`
	DefaultRuntime string          `json:"default-runtime"`
	ExecOpts       []string        `json:"exec-opts"`
}

func readDockerConfig(r reader) (DockerDaemonConfig, bool) {
	var cfg DockerDaemonConfig
	text, ok, err := r.readOptional("/etc/docker/daemon.json")
	if err != nil || !ok || json.Unmarshal([]byte(text), &cfg) != nil {
		return DockerDaemonConfig{}, false
	}
	return cfg, true
}

func dockerCDIEnabled(r reader) bool {
	cfg, ok := readDockerConfig(r)
	return ok && cfg.Features["cdi"]
}

var enableCDILine = regexp.MustCompile(`(?m)^\s*enable_cdi\s*=\s*true\b`)

// containerdCDIEnabled: the CRI plugin's enable_cdi is set in config.toml.
func containerdCDIEnabled(r reader) bool {
	text, _, _ := r.readOptional("/etc/containerd/config.toml")
	return enableCDILine.MatchString(text)
}

// toolkitHooks are files through which the toolkit joins every container.
var toolkitHooks = []string{
	"/usr/share/containers/oci/hooks.d/oci-nvidia-hook.json",
	"/etc/containers/oci/hooks.d/oci-nvidia-hook.json",
}

// toolkitInEveryContainer names what makes the toolkit act on containers
// gpuimg did not start: Docker's default runtime, or an OCI hook for podman.
func toolkitInEveryContainer(r reader) []string {
	var where []string
	if cfg, ok := readDockerConfig(r); ok && cfg.DefaultRuntime == "nvidia" {
		where = append(where, `"default-runtime": "nvidia" in /etc/docker/daemon.json`)
	}
	for _, hook := range toolkitHooks {
		if _, ok, _ := r.readOptional(hook); ok {
			where = append(where, filepath.Base(hook)+" in "+filepath.Dir(hook))
		}
	}
	return where
}
