package host

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gpuimg/gpuimg/internal/atomicfile"
)

// ErrNeedsRoot is wrapped when init-devices would change /dev without root.
var ErrNeedsRoot = errors.New("creating device nodes needs root")

// ActionKind is what an init-devices step does.
type ActionKind string

// The steps init-devices takes.
const (
	ActionMknod   ActionKind = "mknod"
	ActionSymlink ActionKind = "symlink"
)

// Action is one change init-devices makes under the root.
type Action struct {
	Kind ActionKind
	// Path is the host path to create (read under the root).
	Path string
	// For mknod: the character device's numbers, mode and owner.
	Major, Minor int
	Mode         os.FileMode
	UID, GID     int
	// For symlink: the link's target, relative to the link's directory.
	Target string
	// Replaces says what wrong thing the mknod replaces ("a regular file",
	// "character device 237:0"); empty when the path is free.
	Replaces string
}

// String is the action as the shell command that does the same.
func (a Action) String() string {
	switch a.Kind {
	case ActionMknod:
		s := fmt.Sprintf("mknod -m %04o %s c %d %d", a.Mode.Perm(), a.Path, a.Major, a.Minor)
		if a.UID != 0 || a.GID != 0 {
			s += fmt.Sprintf(" && chown %d:%d %s", a.UID, a.GID, a.Path)
		}
		if a.Replaces != "" {
			s = fmt.Sprintf("rm -f %s && %s  # replaces %s", a.Path, s, a.Replaces)
		}
		return s
	case ActionSymlink:
		return fmt.Sprintf("ln -sfn %s %s", a.Target, a.Path)
	}
	return string(a.Kind)
}

// PlanInitDevices lists what to create so that every node the launcher emits
// exists with its /dev/char link: /dev/nvidiactl and /dev/nvidia<minor>
// (major from /proc/devices, minors from information), /dev/nvidia-uvm and
// -tools, the caps of existing MIG devices, and the links of all of them.
// IMEX channels are made only when asked for (imexChannels), since a channel
// grants access to memory other nodes export. A path holding the wrong thing
// (a stale node, a regular file, a symlink) is replaced. It is pure: it
// reads only h. An empty plan means there is nothing to do.
func PlanInitDevices(h Host, imexChannels ...int) ([]Action, error) {
	if err := h.RequireDriver(); err != nil {
		return nil, err
	}
	if h.Majors.UVM == 0 {
		return nil, fmt.Errorf("nvidia-uvm is not loaded (no nvidia-uvm line in %s), so its major is unknown: pass --load-modules, or run `modprobe nvidia-uvm` first", procDevicesPath)
	}
	for _, n := range h.Nodes {
		if n.Mismatch && !n.Exists && strings.HasPrefix(n.Found, "a directory") {
			return nil, fmt.Errorf("%s is a directory, not the device node %d:%d: remove it (rm -r under %s) and run init-devices again", n.Path, n.Major, n.Minor, h.Root)
		}
	}
	var actions []Action
	for _, n := range h.Nodes {
		switch n.Kind {
		case KindModeset, KindDRI:
			continue // made by nvidia-modeset / nvidia-drm themselves, and optional
		}
		if n.Major == 0 {
			continue // a cap node of a module that is not loaded
		}
		if !n.Exists || n.Mismatch {
			// A stale node, a regular file or a symlink is replaced the same
			// way a missing node is created: renamed over, shown in --dry-run.
			a := Action{Kind: ActionMknod, Path: n.Path, Major: n.Major, Minor: n.Minor, Mode: 0o666, Replaces: n.Found}
			switch n.Kind {
			case KindControl, KindGPU:
				a.Mode, a.UID, a.GID = h.Params.DeviceFileMode, h.Params.DeviceFileUID, h.Params.DeviceFileGID
			case KindCap:
				a.Mode = 0o444
			}
			actions = append(actions, a)
		}
		if !n.CharLink {
			rel, err := filepath.Rel("/dev/char", n.Path)
			if err != nil {
				return nil, fmt.Errorf("link for %s: %w", n.Path, err)
			}
			actions = append(actions, Action{Kind: ActionSymlink, Path: n.CharLinkPath(), Target: rel})
		}
	}
	imex, err := planIMEXChannels(h, imexChannels)
	return append(actions, imex...), err
}

// ApplyInitDevices carries out the actions under root. Each node and link is
// made under a temporary name and renamed into place; on a failure the ones
// already made are removed again, so nothing is left half-done.
func ApplyInitDevices(root string, actions []Action) error {
	if len(actions) > 0 && os.Geteuid() != 0 {
		return fmt.Errorf("%w: run `sudo gpuimg host init-devices` (or add --dry-run to see the %d step(s) it would take)", ErrNeedsRoot, len(actions))
	}
	var done []string
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			_ = os.Remove(done[i])
		}
	}
	for _, a := range actions {
		path := UnderRoot(root, a.Path)
		if err := applyOne(path, a); err != nil {
			undo()
			return fmt.Errorf("init-devices: %s: %w (nothing was changed)", a, err)
		}
		done = append(done, path)
	}
	return nil
}

func applyOne(path string, a Action) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Replace(path, func(tmp string) error {
		switch a.Kind {
		case ActionMknod:
			dev := unix.Mkdev(uint32(a.Major), uint32(a.Minor))
			if err := unix.Mknod(tmp, unix.S_IFCHR|uint32(a.Mode.Perm()), int(dev)); err != nil {
				return err
			}
			// mknod applies the umask; set the mode and owner explicitly.
			if err := os.Chmod(tmp, a.Mode.Perm()); err != nil {
				return err
			}
			return os.Lchown(tmp, a.UID, a.GID)
		case ActionSymlink:
			return os.Symlink(a.Target, tmp)
		}
		return fmt.Errorf("unknown action %q", a.Kind)
	})
}

// InitOptions are the flags of `gpuimg host init-devices`.
type InitOptions struct {
	Root string
	// DryRun plans without changing anything (and without needing root).
	DryRun bool
	// LoadModules runs `modprobe nvidia` and `modprobe nvidia-uvm` first
	// (only on the real host, --root /).
	LoadModules bool
	// IMEXChannels are the IMEX channel nodes to make (--imex-channels).
	IMEXChannels []int
}

// InitDevices loads the modules when asked, reads the host, and creates the
// missing nodes and links (unless DryRun). It returns the actions planned:
// empty when everything was already there, so a second run is a no-op.
func InitDevices(opts InitOptions) ([]Action, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	if !opts.DryRun && os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: run `sudo gpuimg host init-devices` (or add --dry-run to see what it would do)", ErrNeedsRoot)
	}
	if opts.LoadModules {
		if filepath.Clean(root) != "/" {
			return nil, fmt.Errorf("--load-modules loads modules into the running kernel, which only makes sense with --root / (got --root %s)", root)
		}
		if !opts.DryRun {
			if err := loadModules(); err != nil {
				return nil, err
			}
		}
	}
	h, err := Read(root)
	if err != nil {
		return nil, err
	}
	actions, err := PlanInitDevices(h, opts.IMEXChannels...)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return actions, nil
	}
	return actions, ApplyInitDevices(h.Root, actions)
}

// loadModules loads the kernel driver and nvidia-uvm (loading alone does not
// create /dev/nvidia-uvm; PlanInitDevices does that).
func loadModules() error {
	for _, mod := range []string{"nvidia", "nvidia-uvm"} {
		out, err := exec.Command("modprobe", mod).CombinedOutput()
		if err != nil {
			return fmt.Errorf("modprobe %s: %w: %s (is the NVIDIA kernel driver installed for this kernel?)", mod, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
