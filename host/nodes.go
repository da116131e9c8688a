package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DRI nodes of a GPU: /sys/bus/pci/devices/<bdf>/drm/{card*,renderD*}.
const driMajor = 226

// Devices answers what device nodes a host has. Read asks the real ones
// under the root (stat); tests hand ReadWith a stand-in (package hosttest).
type Devices interface {
	// Node reports the character device at host path p ("/dev/nvidia0"):
	// false when there is none.
	Node(p string) (DeviceNode, bool, error)
	// Names lists the entries of host directory dir ("/dev/nvidia-caps");
	// none when it does not exist.
	Names(dir string) ([]string, error)
}

// DeviceNode is what is actually at a node path.
type DeviceNode struct {
	Major, Minor int
	Mode         os.FileMode
	UID, GID     int
	// NotChar says what is at the path when it is not a character device
	// ("a regular file", "a symlink to /dev/null"); the numbers are then 0.
	NotChar string
}

// statDevices are the real device nodes under a root.
type statDevices struct{ root string }

func (d statDevices) Node(path string) (DeviceNode, bool, error) {
	p := filepath.Join(d.root, path)
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return DeviceNode{}, false, nil
	}
	if err != nil {
		return DeviceNode{}, false, fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return DeviceNode{NotChar: describeNotChar(p, st.Mode)}, true, nil
	}
	return DeviceNode{
		Major: int(unix.Major(uint64(st.Rdev))),
		Minor: int(unix.Minor(uint64(st.Rdev))),
		Mode:  os.FileMode(st.Mode & 0o7777),
		UID:   int(st.Uid),
		GID:   int(st.Gid),
	}, true, nil
}

// describeNotChar names what a non-device file at a node path is.
func describeNotChar(p string, mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		dest, _ := os.Readlink(p)
		return "a symlink to " + strconv.Quote(dest)
	}
	return fmt.Sprintf("a file of type %#o", mode&unix.S_IFMT)
}

func (d statDevices) Names(dir string) ([]string, error) {
	p := filepath.Join(d.root, dir)
	entries, err := os.ReadDir(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// readNodes lists the nodes the driver needs or offers and fills in what the
// host has at each path.
func (r reader) readNodes(h *Host) error {
	if !h.Driver.Loaded {
		return nil
	}

	frontend := h.Majors.Frontend
	if frontend == 0 {
		frontend = 195 // the one fixed major
	}
	want := []Node{{Path: "/dev/nvidiactl", Kind: KindControl, GPUMinor: -1, Major: frontend, Minor: ControlMinor}}
	for _, g := range h.GPUs {
		want = append(want, Node{Path: fmt.Sprintf("/dev/nvidia%d", g.Minor), Kind: KindGPU, GPUMinor: g.Minor, Major: frontend, Minor: g.Minor})
	}
	want = append(want,
		Node{Path: "/dev/nvidia-uvm", Kind: KindUVM, GPUMinor: -1, Major: h.Majors.UVM, Minor: 0},
		Node{Path: "/dev/nvidia-uvm-tools", Kind: KindUVMTools, GPUMinor: -1, Major: h.Majors.UVM, Minor: 1},
		Node{Path: "/dev/nvidia-modeset", Kind: KindModeset, GPUMinor: -1, Major: frontend, Minor: ModesetMinor},
	)
	caps, err := r.capNodes(h)
	if err != nil {
		return err
	}
	want = append(want, caps...)
	optional, err := r.optionalNodes(h)
	if err != nil {
		return err
	}
	want = append(want, optional...)
	for _, g := range h.GPUs {
		dri, err := r.driNodes(g)
		if err != nil {
			return err
		}
		want = append(want, dri...)
	}

	groups := r.readGroups()
	for _, n := range want {
		f, ok, err := r.devices.Node(n.Path)
		if err != nil {
			return err
		}
		if ok {
			r.compareNode(h, &n, f, groups)
		}
		if n.Major != 0 {
			n.CharLink = r.charLinkPointsAt(n.CharLinkPath(), n.Path)
		}
		h.Nodes = append(h.Nodes, n)
	}
	return nil
}

// compareNode records what is really at n's path: a character device with
// the driver's numbers (Exists), one with other numbers (Exists and
// Mismatch: stale, from another driver load), or something that is not a
// character device at all (Mismatch only). Found says what a mismatched
// path holds; such a node never reaches a container.
func (r reader) compareNode(h *Host, n *Node, f DeviceNode, groups map[int]string) {
	fix := InitDevicesCommand(r.root)
	if f.NotChar != "" {
		n.Mismatch, n.Found = true, f.NotChar
		h.Warnings = append(h.Warnings, fmt.Sprintf("%s is %s, not the character device %d:%d the driver needs: `%s` replaces it (add --dry-run to see how)",
			n.Path, f.NotChar, n.Major, n.Minor, fix))
		return
	}
	n.Exists = true
	if n.Major == 0 {
		// Unknown from /proc/devices (module not loaded?): trust the node.
		n.Major, n.Minor = f.Major, f.Minor
	} else if f.Major != n.Major || f.Minor != n.Minor {
		n.Mismatch, n.Found = true, fmt.Sprintf("character device %d:%d", f.Major, f.Minor)
		h.Warnings = append(h.Warnings, fmt.Sprintf("%s is %d:%d but the driver says %d:%d (stale, from another driver load): `%s` replaces it (add --dry-run to see how)",
			n.Path, f.Major, f.Minor, n.Major, n.Minor, fix))
	}
	n.Mode, n.UID, n.GID = f.Mode, f.UID, f.GID
	n.Group = groups[n.GID]
}

var capNodeName = regexp.MustCompile(`^nvidia-cap(\d+)$`)

// capNodes lists the capability nodes: those present in /dev/nvidia-caps and
// the GI/CI access caps of every MIG device, named from the *-minors files.
func (r reader) capNodes(h *Host) ([]Node, error) {
	names := map[int]string{}
	for _, f := range []string{migMinorsPath, "/proc/driver/nvidia-caps/sys-minors", "/proc/driver/nvidia-caps/nvlink-minors"} {
		text, _, err := r.readOptional(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(text, "\n") {
			name, num, ok := strings.Cut(strings.TrimSpace(line), " ")
			if n, err := strconv.Atoi(num); ok && err == nil {
				if _, dup := names[n]; !dup {
					names[n] = name
				}
			}
		}
	}
	minors := map[int]bool{}
	for _, m := range h.MIG {
		minors[m.GICapMinor] = true
		minors[m.CICapMinor] = true
	}
	present, err := r.presentNumbered("/dev/nvidia-caps", capNodeName)
	if err != nil {
		return nil, err
	}
	for _, n := range present {
		minors[n] = true
	}
	sorted := make([]int, 0, len(minors))
	for n := range minors {
		sorted = append(sorted, n)
	}
	sort.Ints(sorted)
	var nodes []Node
	for _, n := range sorted {
		nodes = append(nodes, Node{
			Path: fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", n), Kind: KindCap, GPUMinor: -1,
			Cap: names[n], Major: h.Majors.Caps, Minor: n,
		})
	}
	return nodes, nil
}

var (
	imexNodeName     = regexp.MustCompile(`^channel(\d+)$`)
	nvswitchNodeName = regexp.MustCompile(`^nvidia-nvswitch(\d+)$`)
	nvswitchCtlName  = regexp.MustCompile(`^nvidia-nvswitch(ctl)$`)
	nvlinkNodeName   = regexp.MustCompile(`^nvidia-nvlink()$`)
)

// optionalNodes lists the IMEX channel, NVSwitch and NVLink nodes that are
// present: hosts without those fabrics have none, and nothing expects them.
func (r reader) optionalNodes(h *Host) ([]Node, error) {
	var nodes []Node
	for _, o := range []struct {
		dir   string
		re    *regexp.Regexp
		kind  NodeKind
		major int
		path  func(n int) string
	}{
		{IMEXChannelDir, imexNodeName, KindIMEX, h.Majors.ImexChannels, IMEXChannelPath},
		{"/dev", nvswitchCtlName, KindNVSwitch, h.Majors.NVSwitch, func(int) string { return "/dev/nvidia-nvswitchctl" }},
		{"/dev", nvswitchNodeName, KindNVSwitch, h.Majors.NVSwitch, func(n int) string { return fmt.Sprintf("/dev/nvidia-nvswitch%d", n) }},
		{"/dev", nvlinkNodeName, KindNVLink, h.Majors.NVLink, func(int) string { return "/dev/nvidia-nvlink" }},
	} {
		present, err := r.presentNumbered(o.dir, o.re)
		if err != nil {
			return nil, err
		}
		for _, n := range present {
			nodes = append(nodes, Node{Path: o.path(n), Kind: o.kind, GPUMinor: -1, Major: o.major, Minor: n})
		}
	}
	return nodes, nil
}

// presentNumbered returns the numbers of the nodes in dir whose names match
// re, sorted; an empty capture (nvidia-nvlink) is minor 0 and "ctl" is the
// control minor 255.
func (r reader) presentNumbered(dir string, re *regexp.Regexp) ([]int, error) {
	names, err := r.devices.Names(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, name := range names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		switch n, err := strconv.Atoi(m[1]); {
		case m[1] == "":
			nums = append(nums, 0)
		case m[1] == "ctl":
			nums = append(nums, ControlMinor)
		case err == nil:
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// driNodes lists a GPU's DRM nodes from sysfs (present only with nvidia-drm).
func (r reader) driNodes(g GPU) ([]Node, error) {
	dir := filepath.Join(sysPCIDevicesDir, g.BusID, "drm")
	entries, err := os.ReadDir(r.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path(dir), err)
	}
	var nodes []Node
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "card") && !strings.HasPrefix(name, "renderD") {
			continue
		}
		n := Node{Path: "/dev/dri/" + name, Kind: KindDRI, GPUMinor: g.Minor, Major: driMajor}
		text, ok, err := r.readOptional(filepath.Join(dir, name, "dev"))
		if err != nil {
			return nil, err
		}
		if maj, min, found := strings.Cut(strings.TrimSpace(text), ":"); ok && found {
			n.Major, _ = strconv.Atoi(maj)
			n.Minor, _ = strconv.Atoi(min)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// charLinkPointsAt reports whether the symlink link (under the root) resolves
// to target, the way systemd resolves /dev/char/MAJ:MIN.
func (r reader) charLinkPointsAt(link, target string) bool {
	dest, err := os.Readlink(r.path(link))
	if err != nil {
		return false
	}
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(filepath.Dir(link), dest)
	}
	return filepath.Clean(dest) == target
}

// readGroups maps gid → name from <root>/etc/group.
func (r reader) readGroups() map[int]string {
	text, _, _ := r.readOptional(etcGroupPath)
	groups := map[int]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 {
			if gid, err := strconv.Atoi(f[2]); err == nil {
				groups[gid] = f[0]
			}
		}
	}
	return groups
}
