package launch

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/gpuimg/gpuimg/host"
)

// Capabilities a container can ask for (NVIDIA_DRIVER_CAPABILITIES names).
var knownCapabilities = []string{"compute", "utility", "graphics", "video", "display"}

// DefaultCapabilities are the official stack's default: utility,compute.
var DefaultCapabilities = []string{"compute", "utility"}

// Fallback values for Options.Fallback.
const (
	FallbackNone       = ""
	FallbackPrivileged = "privileged"
)

// ErrMissingNode is wrapped when a node the selection needs does not exist.
var ErrMissingNode = errors.New("device node missing")

// ErrWrongNode is wrapped when a node path holds a stale device (other
// numbers than the driver's) or something that is not a device at all.
var ErrWrongNode = errors.New("wrong device node")

// Options choose what to give the container.
type Options struct {
	// GPUs is the --gpus selector: "all" or the GPUs to give. Empty is
	// refused (the flag defaults to "all"; an empty value is a mistake).
	GPUs string
	// Capabilities decide the extra nodes: compute → uvm, display → modeset,
	// graphics/video → the GPU's /dev/dri nodes. Default compute,utility.
	Capabilities []string
	// Privileged gives every host device (--privileged) and pins
	// CUDA_VISIBLE_DEVICES instead of passing nodes.
	Privileged bool
	// Fallback "privileged" switches to Privileged only when a node is missing.
	Fallback string
	// IMEXChannels is the --imex-channels value: "all" (every channel node
	// that exists) or channel numbers ("0,1"); "" for none.
	IMEXChannels string
	// NVSwitch passes the NVSwitch nodes present (fabric manager, NVSwitch
	// management tools; CUDA itself does not need them).
	NVSwitch bool
	// Persistenced binds nvidia-persistenced's socket, so NVML in the
	// container talks to the host's daemon.
	Persistenced bool
	// Modeset passes /dev/nvidia-modeset when it exists: the image carries
	// graphics or display components (set from its components label).
	Modeset bool
	// Rootless: the engine runs as an unprivileged user, who cannot add host
	// groups to a container; podman keeps the user's own (keep-groups).
	Rootless bool
}

// Mount is a host path bound into the container.
type Mount struct {
	HostPath string `json:"hostPath"`
	Path     string `json:"path"`
}

// Device is one node passed to the container.
type Device struct {
	// HostPath is where the node is on the machine running the runtime
	// (under --root); Path is where the container sees it.
	HostPath string `json:"hostPath"`
	Path     string `json:"path"`
	Major    int    `json:"major"`
	Minor    int    `json:"minor"`
	// FileMode is the permission bits (e.g. 0666).
	FileMode os.FileMode `json:"fileMode"`
	UID      int         `json:"uid"`
	GID      int         `json:"gid"`
	// Access is the cgroup access the container gets ("rwm", "rm" for caps
	// that are read-only).
	Access string `json:"access"`
}

// Plan is what a container needs, independent of the runtime's syntax.
type Plan struct {
	Devices []Device `json:"devices"`
	// GroupAdd are the groups whose members may open nodes that are not
	// world-usable (0660 root:video).
	GroupAdd []int `json:"groupAdd"`
	// Env is set in the container: NVIDIA_VISIBLE_DEVICES=void always (so a
	// toolkit host never injects a second driver), CUDA_VISIBLE_DEVICES when
	// privileged.
	Env        []string `json:"env"`
	Mounts     []Mount  `json:"mounts,omitempty"`
	Privileged bool     `json:"privileged"`
	// Rootless: groups are kept from the user (podman --group-add keep-groups).
	Rootless bool `json:"rootless,omitempty"`
	// Selected GPUs' UUIDs and MIG device names, for messages.
	GPUs []string `json:"gpus"`
	MIG  []string `json:"mig,omitempty"`
	// CharLinksMissing are /dev/char links absent for emitted nodes: with
	// systemd's cgroup driver, `systemctl daemon-reload` revokes those nodes.
	CharLinksMissing []string `json:"charLinksMissing,omitempty"`
	// Warnings go to stderr.
	Warnings []string `json:"warnings,omitempty"`
}

// PrivilegedWarning is printed whenever a plan is privileged.
const PrivilegedWarning = "--privileged gives the container EVERY host device (all GPUs, disks, /dev/mem), not only the selected GPUs; only CUDA_VISIBLE_DEVICES keeps CUDA to them"

// NewPlan decides the nodes, groups and environment for a selection.
func NewPlan(h host.Host, opts Options) (Plan, error) {
	if err := h.RequireDriver(); err != nil {
		return Plan{}, err
	}
	caps, err := parseCapabilities(opts.Capabilities)
	if err != nil {
		return Plan{}, err
	}
	if opts.Fallback != FallbackNone && opts.Fallback != FallbackPrivileged {
		return Plan{}, fmt.Errorf("unknown --fallback %q: the only fallback is \"privileged\"", opts.Fallback)
	}
	sel, err := Select(h, opts.GPUs)
	if err != nil {
		return Plan{}, err
	}
	extra, err := optInNodes(h, opts)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	if opts.Persistenced {
		if !h.PersistencedSocket {
			return Plan{}, fmt.Errorf("--persistenced: no socket at %s under %s: start the daemon (`systemctl start nvidia-persistenced`) or drop --persistenced", host.PersistencedSocket, h.Root)
		}
		p.Mounts = append(p.Mounts, Mount{HostPath: h.HostPath(host.PersistencedSocket), Path: host.PersistencedSocket})
	}
	for _, g := range sel.GPUs {
		p.GPUs = append(p.GPUs, g.UUID)
	}
	for _, m := range sel.MIG {
		p.MIG = append(p.MIG, m.Name())
	}
	if opts.Privileged {
		return privilegedPlan(sel, p, "")
	}

	needed, missing, wrong := neededNodes(h, sel, caps)
	if len(wrong) > 0 {
		// Never passed on, and no --fallback either: the fix is certain.
		return Plan{}, fmt.Errorf("%w: %s under %s: a wrong node must not reach a container; replace it with `%s` (add --dry-run to see the steps)",
			ErrWrongNode, strings.Join(wrong, "; "), h.Root, host.InitDevicesCommand(h.Root))
	}
	needed = append(needed, extra...)
	if opts.Modeset && !slices.Contains(caps, "display") {
		if n, ok := h.Node("/dev/nvidia-modeset"); ok && n.Exists && !n.Mismatch {
			needed = append(needed, n)
		} else {
			p.Warnings = append(p.Warnings, "the image has graphics/display components but /dev/nvidia-modeset is missing (nvidia-modeset not loaded): display output will fail; load it with `sudo nvidia-modprobe -m`")
		}
	}
	if len(missing) > 0 {
		if opts.Fallback == FallbackPrivileged {
			return privilegedPlan(sel, p, fmt.Sprintf("falling back to --privileged because %s missing", strings.Join(missing, ", ")))
		}
		return Plan{}, fmt.Errorf("%w: %s not present under %s: create it with `%s` (add --load-modules when the module is not loaded), or pass --fallback=privileged",
			ErrMissingNode, strings.Join(missing, ", "), h.Root, host.InitDevicesCommand(h.Root))
	}
	groups := map[int]bool{}
	for _, n := range needed {
		access := "rwm"
		if n.Kind == host.KindCap {
			access = "rm" // nvidia-caps are opened read-only
		}
		p.Devices = append(p.Devices, Device{
			HostPath: h.HostPath(n.Path), Path: n.Path, Major: n.Major, Minor: n.Minor,
			FileMode: n.Mode.Perm(), UID: n.UID, GID: n.GID, Access: access,
		})
		if !n.WorldUsable() && n.GID != 0 {
			groups[n.GID] = true
		}
		if !n.CharLink {
			p.CharLinksMissing = append(p.CharLinksMissing, n.CharLinkPath())
		}
	}
	p.GroupAdd = sortedKeys(groups)
	p.Rootless = opts.Rootless
	p.Env = []string{"NVIDIA_VISIBLE_DEVICES=void"}
	if len(p.CharLinksMissing) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("no /dev/char link for %s: under systemd's cgroup driver `systemctl daemon-reload` revokes these nodes in running containers (\"Failed to initialize NVML: Unknown Error\"); create the links with `%s`",
			strings.Join(p.CharLinksMissing, ", "), host.InitDevicesCommand(h.Root)))
	}
	for _, c := range caps {
		if (c == "graphics" || c == "video") && !hasKind(needed, host.KindDRI) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("capability %s: the selected GPUs have no /dev/dri nodes (nvidia-drm not loaded?); only CUDA-based %s work will have a device", c, c))
		}
	}
	return p, nil
}

func hasKind(nodes []host.Node, kind host.NodeKind) bool {
	for _, n := range nodes {
		if n.Kind == kind {
			return true
		}
	}
	return false
}

func parseCapabilities(list []string) ([]string, error) {
	if len(list) == 0 {
		return DefaultCapabilities, nil
	}
	var caps []string
	for _, item := range list {
		for _, c := range strings.Split(item, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c == "all" {
				return knownCapabilities, nil
			}
			known := false
			for _, k := range knownCapabilities {
				known = known || k == c
			}
			if !known {
				return nil, fmt.Errorf("unknown capability %q: use any of %s (or all)", c, strings.Join(knownCapabilities, ","))
			}
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// neededNodes lists the host nodes a selection needs, in a stable order:
// control, GPUs, MIG caps, uvm, modeset, DRI. missing names absent ones,
// wrong says what is at the paths that hold the wrong thing.
func neededNodes(h host.Host, sel Selection, caps []string) (needed []host.Node, missing, wrong []string) {
	want := func(c string) bool {
		for _, x := range caps {
			if x == c {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	add := func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		n, ok := h.Node(path)
		if ok && n.Mismatch {
			wrong = append(wrong, fmt.Sprintf("%s is %s, not %d:%d", path, n.Found, n.Major, n.Minor))
			return
		}
		if !ok || !n.Exists {
			missing = append(missing, path)
			return
		}
		needed = append(needed, n)
	}
	add("/dev/nvidiactl")
	minors := []int{}
	for _, g := range sel.GPUs {
		minors = append(minors, g.Minor)
	}
	for _, m := range sel.MIG {
		minors = append(minors, m.GPUMinor)
	}
	for _, minor := range minors {
		add(fmt.Sprintf("/dev/nvidia%d", minor))
	}
	for _, m := range sel.MIG {
		add(fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", m.GICapMinor))
		add(fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", m.CICapMinor))
	}
	if want("compute") {
		add("/dev/nvidia-uvm")
		add("/dev/nvidia-uvm-tools")
	}
	if want("display") {
		add("/dev/nvidia-modeset")
	}
	if want("graphics") || want("video") {
		for _, minor := range minors {
			for _, n := range h.Nodes {
				if n.Kind == host.KindDRI && n.GPUMinor == minor {
					add(n.Path)
				}
			}
		}
	}
	return needed, missing, wrong
}

// optInNodes are the IMEX channel and NVSwitch nodes the options ask for; a
// channel that does not exist is refused with the command that makes it.
func optInNodes(h host.Host, opts Options) ([]host.Node, error) {
	all, channels, err := host.ParseIMEXChannels(opts.IMEXChannels)
	if err != nil {
		return nil, err
	}
	nodes, err := h.IMEXChannelNodes(all, channels)
	if err != nil {
		return nil, err
	}
	if opts.NVSwitch {
		found := false
		for _, n := range h.Nodes {
			if n.Kind == host.KindNVSwitch && n.Exists && !n.Mismatch {
				nodes, found = append(nodes, n), true
			}
		}
		if !found {
			return nil, fmt.Errorf("--nvswitch: this host (under %s) has no /dev/nvidia-nvswitch* nodes: it has no NVSwitch, or `sudo nvidia-modprobe -s` has not made them", h.Root)
		}
	}
	return nodes, nil
}

// privilegedPlan exposes every device and keeps CUDA to the selection by UUID.
func privilegedPlan(sel Selection, p Plan, reason string) (Plan, error) {
	if len(sel.MIG) > 0 {
		return Plan{}, fmt.Errorf("%w: --privileged pins GPUs with CUDA_VISIBLE_DEVICES by UUID, and MIG UUIDs are known only to NVML; select whole GPUs or drop --privileged", ErrSelector)
	}
	p.Privileged = true
	p.Env = []string{"NVIDIA_VISIBLE_DEVICES=void", "CUDA_VISIBLE_DEVICES=" + strings.Join(p.GPUs, ",")}
	if reason != "" {
		p.Warnings = append(p.Warnings, reason)
	}
	p.Warnings = append(p.Warnings, PrivilegedWarning)
	return p, nil
}
