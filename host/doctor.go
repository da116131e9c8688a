package host

import (
	"fmt"
	"os"
	"strings"
)

// CheckStatus is how a doctor check came out.
type CheckStatus string

// Statuses, from fine to fatal.
const (
	StatusOK      CheckStatus = "ok"
	StatusInfo    CheckStatus = "info"
	StatusWarning CheckStatus = "warning"
	// StatusProblem: the host cannot run GPU containers until it is fixed.
	StatusProblem CheckStatus = "problem"
)

// Check is one finding of `gpuimg doctor`.
type Check struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail"`
	// Fix is the exact command that fixes a warning or problem.
	Fix string `json:"fix,omitempty"`
}

// Diagnosis is `gpuimg doctor`'s answer.
type Diagnosis struct {
	Root     string        `json:"root"`
	CanRun   bool          `json:"canRunGPUContainers"`
	Checks   []Check       `json:"checks"`
	Runtimes []RuntimeInfo `json:"runtimes"`
}

// Diagnose checks the host for what GPU containers launched with device
// nodes need, each finding with the command that fixes it. It is pure: the
// runtimes' versions come in from ProbeRuntimes.
func Diagnose(h Host, runtimes []RuntimeInfo) Diagnosis {
	d := Diagnosis{Root: h.Root, Runtimes: runtimes}
	if d.Runtimes == nil {
		d.Runtimes = []RuntimeInfo{}
	}
	add := func(name string, status CheckStatus, fix, format string, args ...any) {
		d.Checks = append(d.Checks, Check{Name: name, Status: status, Detail: fmt.Sprintf(format, args...), Fix: fix})
	}
	initDevices := InitDevicesCommand(h.Root)
	if !h.Driver.Loaded {
		add("driver", StatusProblem, "sudo modprobe nvidia", "the NVIDIA kernel module is not loaded (no %s, no %s); install the driver for kernel %s if modprobe finds none",
			SysVersionPath, ProcVersionPath, kernelOf(h))
	} else {
		add("driver", StatusOK, "", "NVIDIA %s kernel module %s is loaded", orUnknown(h.Driver.Module), orUnknown(h.Driver.Version))
		diagnoseGPUs(h, add)
		diagnoseNodes(h, add, initDevices)
		diagnoseUpgrade(h, add)
		if h.PersistencedSocket {
			add("persistenced", StatusOK, "", "nvidia-persistenced is running (%s)", PersistencedSocket)
		} else {
			add("persistenced", StatusWarning, "sudo systemctl enable --now nvidia-persistenced",
				"nvidia-persistenced is not running (no %s): each container start initialises the GPUs again (seconds on large GPUs) and their state is lost between containers", PersistencedSocket)
		}
	}
	diagnoseRuntimes(h, runtimes, add)
	diagnoseToolkit(h, add)
	d.CanRun = true
	for _, c := range d.Checks {
		d.CanRun = d.CanRun && c.Status != StatusProblem
	}
	return d
}

type addFunc func(name string, status CheckStatus, fix, format string, args ...any)

func kernelOf(h Host) string {
	if h.Driver.Installed != nil {
		return h.Driver.Installed.Kernel
	}
	return "$(uname -r)"
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func diagnoseGPUs(h Host, add addFunc) {
	if len(h.GPUs) == 0 {
		add("gpus", StatusProblem, "sudo nvidia-smi -L", "the driver lists no GPU in /proc/driver/nvidia/gpus: check `dmesg | grep -i nvrm` for why it did not bind")
		return
	}
	excluded := 0
	for _, g := range h.GPUs {
		if g.Excluded {
			excluded++
		}
	}
	add("gpus", StatusOK, "", "%d GPU(s), %d excluded", len(h.GPUs), excluded)
	if len(h.MIG) > 0 {
		names := []string{}
		for _, m := range h.MIG {
			names = append(names, m.Name())
		}
		add("mig", StatusInfo, "", "MIG devices %s: select them with --gpus <gpu>:<mig> (or MIG-<uuid> where nvidia-smi is installed); a whole MIG-enabled GPU gives CUDA no device", strings.Join(names, ", "))
	} else {
		add("mig", StatusOK, "", "no MIG devices (MIG off, or no GPU instances created)")
	}
}

// diagnoseNodes checks the nodes compute containers need, their numbers,
// modes and /dev/char links.
func diagnoseNodes(h Host, add addFunc, initDevices string) {
	if h.Majors.UVM == 0 {
		add("uvm", StatusProblem, "sudo modprobe nvidia-uvm && "+initDevices, "nvidia-uvm is not loaded (no nvidia-uvm in /proc/devices): CUDA cannot run")
	} else {
		add("uvm", StatusOK, "", "nvidia-uvm is loaded (major %d)", h.Majors.UVM)
	}
	var missing, mismatched, noLink, groupOnly []string
	for _, n := range h.Nodes {
		switch {
		case n.Mismatch:
			// A stale node or something that is not a device: reported as
			// what it is, never as missing.
			mismatched = append(mismatched, fmt.Sprintf("%s (%s, not %d:%d)", n.Path, n.Found, n.Major, n.Minor))
			continue
		case n.Kind == KindModeset || n.Kind == KindDRI:
			if !n.Exists {
				continue // display/graphics only
			}
		case !n.Exists:
			if n.Kind != KindUVM && n.Kind != KindUVMTools || h.Majors.UVM != 0 {
				missing = append(missing, n.Path)
			}
			continue
		}
		if !n.CharLink {
			noLink = append(noLink, n.CharLinkPath())
		}
		if !n.WorldUsable() {
			groupOnly = append(groupOnly, fmt.Sprintf("%s (%04o %s)", n.Path, n.Mode.Perm(), groupName(n)))
		}
	}
	switch {
	case len(missing) > 0:
		add("nodes", StatusProblem, initDevices, "missing device nodes: %s", strings.Join(missing, " "))
	case len(mismatched) > 0:
		add("nodes", StatusProblem, initDevices, "wrong device nodes (never passed to a container; init-devices replaces them): %s", strings.Join(mismatched, "; "))
	default:
		add("nodes", StatusOK, "", "every device node is present with the driver's major:minor")
	}
	if len(noLink) > 0 {
		add("char-links", StatusWarning, initDevices, "no /dev/char link for %s: under systemd's cgroup driver `systemctl daemon-reload` revokes these nodes in running containers (\"Failed to initialize NVML: Unknown Error\")", strings.Join(noLink, " "))
	} else {
		add("char-links", StatusOK, "", "every node has its /dev/char link")
	}
	if len(groupOnly) > 0 {
		add("modes", StatusInfo, "", "not world-usable: %s; gpuimg adds the group to containers (--group-add; podman: keep-groups), and users need to be in it", strings.Join(groupOnly, ", "))
	} else {
		add("modes", StatusOK, "", "nodes are world-usable")
	}
}

func groupName(n Node) string {
	if n.Group != "" {
		return "group " + n.Group
	}
	return fmt.Sprintf("gid %d", n.GID)
}

func diagnoseUpgrade(h Host, add addFunc) {
	m := h.Driver.Installed
	switch {
	case m == nil:
		add("upgrade", StatusInfo, "", "the running kernel is unknown (no %s): no check for a pending driver upgrade", osReleasePath)
	case m.Error != "":
		add("upgrade", StatusWarning, "modinfo -F version nvidia", "the installed module %s is unreadable: %s", m.Path, m.Error)
	case m.Path == "":
		add("upgrade", StatusWarning, "sudo dkms autoinstall -k "+m.Kernel, "no nvidia module is installed for kernel %s: the driver will not load after a reboot", m.Kernel)
	case h.UpgradePending():
		add("upgrade", StatusWarning, "gpuimg build --driver "+m.Version, "after a reboot this host runs %s (installed: %s), not the loaded %s: images for %s are needed then",
			m.Version, m.Path, h.Driver.Version, m.Version)
	default:
		add("upgrade", StatusOK, "", "no upgrade pending: %s is installed for kernel %s", m.Version, m.Kernel)
	}
}

func diagnoseRuntimes(h Host, runtimes []RuntimeInfo, add addFunc) {
	if len(runtimes) == 0 {
		add("runtimes", StatusProblem, "sudo apt-get install docker.io (or podman)", "no container engine (docker, podman, nerdctl) on PATH under %s", h.Root)
		return
	}
	for _, rt := range runtimes {
		version := orUnknown(rt.Version)
		switch {
		case rt.CDI && rt.Name == "containerd":
			add("runtime "+rt.Name, StatusOK, "", "%s %s (%s): the CRI plugin takes CDI: `gpuimg cdi generate -o /etc/cdi/gpuimg.yaml`, then the pod annotation cdi.k8s.io/gpuimg: gpuimg.dev/gpu=0", rt.Name, version, rt.Path)
		case rt.CDI:
			add("runtime "+rt.Name, StatusOK, "", "%s %s (%s): CDI works: `gpuimg cdi generate -o /etc/cdi/gpuimg.yaml`, then --device gpuimg.dev/gpu=0", rt.Name, version, rt.Path)
		case strings.Contains(rt.CDINote, "enable_cdi"):
			add("runtime "+rt.Name, StatusInfo, `sudo sed -i '/^\[plugins."io.containerd.grpc.v1.cri"\]/a\  enable_cdi = true\n  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]' /etc/containerd/config.toml && sudo systemctl restart containerd`,
				"%s %s (%s): %s", rt.Name, version, rt.Path, rt.CDINote)
		case strings.Contains(rt.CDINote, "daemon.json"):
			add("runtime "+rt.Name, StatusInfo, enableDockerCDI(reader{root: h.Root}),
				"%s %s (%s): plain --device works; %s", rt.Name, version, rt.Path, rt.CDINote)
		default:
			add("runtime "+rt.Name, StatusInfo, "", "%s %s (%s): plain --device works (gpuimg run/flags); no CDI: %s", rt.Name, version, rt.Path, rt.CDINote)
		}
	}
}

func diagnoseToolkit(h Host, add addFunc) {
	r := reader{root: h.Root}
	if len(h.Toolkit) == 0 {
		add("toolkit", StatusOK, "", "nvidia-container-toolkit is not installed: nothing injects a second driver")
		return
	}
	every := toolkitInEveryContainer(r)
	if len(every) == 0 {
		add("toolkit", StatusInfo, "", "nvidia-container-toolkit is installed (%s) but acts only with --gpus/--runtime=nvidia, which gpuimg never passes", strings.Join(h.Toolkit, ", "))
	} else {
		add("toolkit", StatusWarning, "gpuimg run IMAGE (it passes -e NVIDIA_VISIBLE_DEVICES=void)",
			"nvidia-container-toolkit joins every container (%s): an image started without NVIDIA_VISIBLE_DEVICES=void that sets NVIDIA_VISIBLE_DEVICES (CUDA base images set it to all) gets the host's driver mounted over its own (\"mount error: file creation failed: ... file exists\", or mismatched libraries)",
			strings.Join(every, "; "))
	}
	if v := os.Getenv("NVIDIA_VISIBLE_DEVICES"); v != "" && v != "void" {
		add("toolkit env", StatusWarning, "unset NVIDIA_VISIBLE_DEVICES",
			"NVIDIA_VISIBLE_DEVICES=%s is set in this shell: `docker run -e NVIDIA_VISIBLE_DEVICES` passes it on, and the toolkit injects its driver", v)
	}
}

// enableDockerCDI is the command that turns CDI on in daemon.json, keeping
// what the file already says.
func enableDockerCDI(r reader) string {
	const restart = " && sudo systemctl restart docker"
	if _, ok, _ := r.readOptional("/etc/docker/daemon.json"); !ok {
		return `echo '{"features": {"cdi": true}}' | sudo tee /etc/docker/daemon.json` + restart
	}
	return `sudo sh -c 'jq ".features.cdi = true" /etc/docker/daemon.json > /etc/docker/daemon.json.new && mv /etc/docker/daemon.json.new /etc/docker/daemon.json'` + restart
}
