// Package host reads what a GPU host offers a container launcher: the NVIDIA
// kernel driver's version, its GPUs (index, minor, UUID, bus id), the device
// nodes with their real major:minor, mode and group, MIG capabilities, the
// /dev/char links systemd's cgroup driver relies on, and whether the NVIDIA
// container toolkit or container runtimes are installed. Every path is read
// under a root directory so fixture trees stand in for real hosts; it also
// creates missing device nodes (see InitDevices).
package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpuimg/gpuimg/internal/shell"
)

// Host is everything the launcher needs to know about one machine.
type Host struct {
	// Root is the directory every path was read under ("/" on a real host).
	Root string `json:"root"`
	// Arch is the machine as uname -m names it (x86_64, aarch64): from
	// /proc/sys/kernel/arch, else the driver's /proc version line; "" when
	// neither says. Images must be for this architecture.
	Arch   string `json:"arch,omitempty"`
	Driver Driver `json:"driver"`
	// GPUs in PCI bus order: GPUs[i].Index == i, the NVML index.
	GPUs []GPU `json:"gpus"`
	// Majors are the character-device majors /proc/devices assigns.
	Majors Majors `json:"majors"`
	Params Params `json:"params"`
	// Nodes are every device node the driver needs or offers, present or not.
	Nodes []Node `json:"nodes"`
	// MIG lists the MIG devices (GPU instance + compute instance) whose
	// access capabilities exist.
	MIG []MIGDevice `json:"mig,omitempty"`
	// Toolkit lists the nvidia-container-toolkit binaries found on PATH.
	Toolkit []string `json:"toolkit"`
	// Runtimes lists the container runtimes found on PATH.
	Runtimes []Runtime `json:"runtimes"`
	// PersistencedSocket: nvidia-persistenced's socket exists (it is running).
	PersistencedSocket bool `json:"persistencedSocket"`
	// Warnings are inconsistencies worth telling the user (on stderr).
	Warnings []string `json:"warnings,omitempty"`
}

// Driver describes the loaded kernel module.
type Driver struct {
	// Loaded is false when neither /sys/module/nvidia/version nor
	// /proc/driver/nvidia/version exists.
	Loaded bool `json:"loaded"`
	// Version is the module's version string exactly as the host prints it
	// (never normalised: "450.102.04" stays "450.102.04").
	Version string `json:"version,omitempty"`
	// SysVersion is /sys/module/nvidia/version; ProcVersion the version parsed
	// from /proc/driver/nvidia/version.
	SysVersion  string `json:"sysVersion,omitempty"`
	ProcVersion string `json:"procVersion,omitempty"`
	// Module is "open" or "proprietary", from the /proc version line.
	Module string `json:"module,omitempty"`
	// Installed is the nvidia module on disk for the running kernel (nil
	// when the root has no proc/sys/kernel/osrelease). When its version
	// differs from Version, an upgrade is pending (see UpgradePending).
	Installed *InstalledModule `json:"installed,omitempty"`
	// PendingUpgrade is the version the host runs after a reboot, when it
	// differs from the loaded one.
	PendingUpgrade string `json:"pendingUpgrade,omitempty"`
}

// GPU is one entry of /proc/driver/nvidia/gpus.
type GPU struct {
	// Index is the NVML index: position in PCI bus order.
	Index int `json:"index"`
	// Minor is "Device Minor": the node is /dev/nvidia<Minor>. Index != Minor.
	Minor    int    `json:"minor"`
	UUID     string `json:"uuid"`
	BusID    string `json:"busId"`
	Model    string `json:"model"`
	Excluded bool   `json:"excluded,omitempty"`
}

// Majors holds the character majors of the NVIDIA drivers (0 when absent).
type Majors struct {
	// Frontend is 195; FrontendName is how /proc/devices names it:
	// "nvidia-frontend" before 550, "nvidia" from 550.
	Frontend     int    `json:"frontend"`
	FrontendName string `json:"frontendName,omitempty"`
	UVM          int    `json:"uvm"`
	Caps         int    `json:"caps"`
	ImexChannels int    `json:"imexChannels,omitempty"`
	NVSwitch     int    `json:"nvswitch,omitempty"`
	NVLink       int    `json:"nvlink,omitempty"`
}

// Params are the module parameters that decide how nodes are created.
type Params struct {
	DeviceFileUID     int         `json:"deviceFileUid"`
	DeviceFileGID     int         `json:"deviceFileGid"`
	DeviceFileMode    os.FileMode `json:"deviceFileMode"`
	ModifyDeviceFiles bool        `json:"modifyDeviceFiles"`
	// ImexChannelCount is how many IMEX channels the driver offers (its
	// ImexChannelCount parameter; 0 when params does not say).
	ImexChannelCount int `json:"imexChannelCount,omitempty"`
}

// NodeKind says what a device node is for.
type NodeKind string

// The node kinds, in the order the launcher emits them.
const (
	KindControl  NodeKind = "control"   // /dev/nvidiactl
	KindGPU      NodeKind = "gpu"       // /dev/nvidia<minor>
	KindUVM      NodeKind = "uvm"       // /dev/nvidia-uvm
	KindUVMTools NodeKind = "uvm-tools" // /dev/nvidia-uvm-tools
	KindModeset  NodeKind = "modeset"   // /dev/nvidia-modeset
	KindCap      NodeKind = "cap"       // /dev/nvidia-caps/nvidia-cap<minor>
	KindDRI      NodeKind = "dri"       // /dev/dri/card*, renderD*
	// Listed only where present: made by nvidia-modprobe, fabric manager or
	// the administrator, never expected on every host.
	KindIMEX     NodeKind = "imex-channel" // /dev/nvidia-caps-imex-channels/channel<N>
	KindNVSwitch NodeKind = "nvswitch"     // /dev/nvidia-nvswitchctl, /dev/nvidia-nvswitch<N>
	KindNVLink   NodeKind = "nvlink"       // /dev/nvidia-nvlink
)

// Paths of the opt-in nodes and sockets.
const (
	IMEXChannelDir     = "/dev/nvidia-caps-imex-channels"
	PersistencedSocket = "/run/nvidia-persistenced/socket"
)

// IMEXChannelPath is the node of IMEX channel n.
func IMEXChannelPath(n int) string { return fmt.Sprintf("%s/channel%d", IMEXChannelDir, n) }

// Node is one device node: what the driver says it should be (Major, Minor)
// and what the host has (Exists, Mode, UID, GID, actual numbers).
type Node struct {
	// Path is the path on the host and in the container ("/dev/nvidia0");
	// it is read under Host.Root.
	Path string   `json:"path"`
	Kind NodeKind `json:"kind"`
	// GPUMinor is the parent GPU's minor for gpu and dri nodes, -1 otherwise.
	GPUMinor int `json:"gpuMinor"`
	// Cap names a capability node's meaning ("gpu0/gi1/ci0/access").
	Cap   string `json:"cap,omitempty"`
	Major int    `json:"major"`
	Minor int    `json:"minor"`
	// Exists: a character device is at Path.
	Exists bool `json:"exists"`
	// Mismatch: something is at Path that is not the expected node: a
	// character device with other numbers (Exists too), or no character
	// device at all. Found says what it is. It is never passed on.
	Mismatch bool `json:"mismatch,omitempty"`
	// Found is what a mismatched path really holds: "character device
	// 237:0", "a regular file", "a symlink to \"/dev/null\"".
	Found string      `json:"found,omitempty"`
	Mode  os.FileMode `json:"mode,omitempty"`
	UID   int         `json:"uid"`
	GID   int         `json:"gid"`
	// Group is GID's name from <root>/etc/group, when known.
	Group string `json:"group,omitempty"`
	// CharLink: /dev/char/<major>:<minor> points at Path.
	CharLink bool `json:"charLink"`
}

// CharLinkPath is the /dev/char link systemd's device cgroup rules go through.
func (n Node) CharLinkPath() string { return fmt.Sprintf("/dev/char/%d:%d", n.Major, n.Minor) }

// WorldUsable reports whether any user may open the node (rw, or r for the
// read-only capability nodes); otherwise the container needs the node's group.
func (n Node) WorldUsable() bool {
	if n.Kind == KindCap {
		return n.Mode.Perm()&0o004 != 0
	}
	return n.Mode.Perm()&0o006 == 0o006
}

// MIGDevice is one MIG compute instance: the parent GPU plus the GI and CI
// access capabilities a container needs.
type MIGDevice struct {
	// GPUIndex and GPUMinor identify the parent GPU.
	GPUIndex int `json:"gpuIndex"`
	GPUMinor int `json:"gpuMinor"`
	// Index is the position among this GPU's MIG devices in (GI, CI) order,
	// the <mig> of a "<gpu>:<mig>" selector.
	Index int `json:"index"`
	GI    int `json:"gi"`
	CI    int `json:"ci"`
	// GICapMinor and CICapMinor are the nvidia-cap minors of the GI and CI
	// access files.
	GICapMinor int `json:"giCapMinor"`
	CICapMinor int `json:"ciCapMinor"`
}

// IMEXChannels lists the IMEX channels whose nodes exist, in order.
func (h Host) IMEXChannels() []int {
	var chans []int
	for _, n := range h.Nodes {
		if n.Kind == KindIMEX && n.Exists {
			chans = append(chans, n.Minor)
		}
	}
	return chans
}

// Name is the "<gpu>:<mig>" selector naming this device.
func (m MIGDevice) Name() string { return fmt.Sprintf("%d:%d", m.GPUIndex, m.Index) }

// Runtime is a container runtime binary found on PATH.
type Runtime struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// ErrNoDriver is returned (wrapped) by functions that need a loaded driver.
var ErrNoDriver = errors.New("no NVIDIA kernel driver loaded")

// Node returns the node at path, if the host lists it.
func (h Host) Node(path string) (Node, bool) {
	for _, n := range h.Nodes {
		if n.Path == path {
			return n, true
		}
	}
	return Node{}, false
}

// HostPath maps a host path ("/dev/nvidia0") to where it is under Root.
func (h Host) HostPath(path string) string {
	return UnderRoot(h.Root, path)
}

// UnderRoot joins an absolute host path under root; root "/" leaves it as is.
func UnderRoot(root, path string) string {
	if root == "" || root == "/" {
		return path
	}
	return filepath.Join(root, path)
}

// RequireDriver returns an error naming the fix when no driver is loaded.
func (h Host) RequireDriver() error {
	if h.Driver.Loaded {
		return nil
	}
	return fmt.Errorf("%w under %s (no %s or %s): load it with `modprobe nvidia` (or install the NVIDIA driver) and check with `gpuimg host`",
		ErrNoDriver, h.Root, SysVersionPath, ProcVersionPath)
}

// InitDevicesCommand is the command that creates the missing nodes and
// /dev/char links of the host under root.
func InitDevicesCommand(root string) string {
	if root == "/" || root == "" {
		return "sudo gpuimg host init-devices"
	}
	return "sudo gpuimg host init-devices --root " + shell.Quote(root)
}
