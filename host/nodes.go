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

// nodeFacts is what is actually at a node path.
type nodeFacts struct {
	major, minor int
	mode         os.FileMode
	uid, gid     int
}

// readNodes lists the nodes the driver needs or offers and fills in what the
// host has at each path.
func (r reader) readNodes(h *Host) error {
	listed, fromList, err := r.listedNodes()
	if err != nil {
		return err
	}
	h.NodesFromList = fromList
	facts := func(path string) (nodeFacts, bool, error) {
		if fromList {
			f, ok := listed[path]
			return f, ok, nil
		}
		return r.statNode(path)
	}
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
	caps, err := r.capNodes(h, listed, fromList)
	if err != nil {
		return err
	}
	want = append(want, caps...)
	for _, g := range h.GPUs {
		dri, err := r.driNodes(g)
		if err != nil {
			return err
		}
		want = append(want, dri...)
	}

	groups := r.readGroups()
	for _, n := range want {
		f, ok, err := facts(n.Path)
		if err != nil {
			return err
		}
		if ok {
			n.Exists = true
			if n.Major == 0 {
				// Unknown from /proc/devices (module not loaded?): trust the node.
				n.Major, n.Minor = f.major, f.minor
			} else if f.major != n.Major || f.minor != n.Minor {
				n.Mismatch = true
				h.Warnings = append(h.Warnings, fmt.Sprintf("%s is %d:%d but the driver says %d:%d: remove it and run `gpuimg host init-devices`",
					n.Path, f.major, f.minor, n.Major, n.Minor))
			}
			n.Mode, n.UID, n.GID = f.mode, f.uid, f.gid
			n.Group = groups[n.GID]
		}
		if n.Major != 0 {
			n.CharLink = r.charLinkPointsAt(n.CharLinkPath(), n.Path)
		}
		h.Nodes = append(h.Nodes, n)
	}
	return nil
}

// statNode reports the character device at path under the root, if any.
func (r reader) statNode(path string) (nodeFacts, bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(r.path(path), &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nodeFacts{}, false, nil
	}
	if err != nil {
		return nodeFacts{}, false, fmt.Errorf("stat %s: %w", r.path(path), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nodeFacts{}, false, nil
	}
	return nodeFacts{
		major: int(unix.Major(uint64(st.Rdev))),
		minor: int(unix.Minor(uint64(st.Rdev))),
		mode:  os.FileMode(st.Mode & 0o7777),
		uid:   int(st.Uid),
		gid:   int(st.Gid),
	}, true, nil
}

// listedNodes reads <root>/dev-nodes.tsv ("path type major minor mode [uid
// gid]", mode in octal) when the root holds none of the nodes it lists as
// real character devices: a fixture root, whose nodes cannot live in git.
func (r reader) listedNodes() (map[string]nodeFacts, bool, error) {
	text, ok, err := r.readOptional("/" + DevNodesList)
	if err != nil || !ok {
		return nil, false, err
	}
	rows, err := ParseDevNodes(text)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", r.path(DevNodesList), err)
	}
	listed := map[string]nodeFacts{}
	for _, row := range rows {
		if row.Type != "c" {
			continue
		}
		if _, real, err := r.statNode(row.Path); err != nil {
			return nil, false, err
		} else if real {
			return nil, false, nil // real nodes were made from the list: stat them
		}
		listed[row.Path] = nodeFacts{major: row.Major, minor: row.Minor, mode: row.Mode, uid: row.UID, gid: row.GID}
	}
	return listed, true, nil
}

// DevNode is one row of a dev-nodes.tsv.
type DevNode struct {
	Path         string
	Type         string // "c" or "d"
	Major, Minor int
	Mode         os.FileMode
	UID, GID     int
}

// ParseDevNodes parses a dev-nodes.tsv: '#' comments, then tab-separated
// path, type, decimal major, decimal minor, octal mode, and optionally uid
// and gid (default 0).
func ParseDevNodes(text string) ([]DevNode, error) {
	var rows []DevNode
	for i, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 && len(f) != 7 {
			return nil, fmt.Errorf("line %d: want path, type, major, minor, mode [, uid, gid], got %q", i+1, line)
		}
		row := DevNode{Path: f[0], Type: f[1]}
		nums := make([]int64, 0, 5)
		for j, s := range f[2:] {
			base := 10
			if j == 2 {
				base = 8 // mode
			}
			n, err := strconv.ParseInt(s, base, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not a number: %w", i+1, s, err)
			}
			nums = append(nums, n)
		}
		row.Major, row.Minor, row.Mode = int(nums[0]), int(nums[1]), os.FileMode(nums[2])
		if len(nums) == 5 {
			row.UID, row.GID = int(nums[3]), int(nums[4])
		}
		if !filepath.IsAbs(row.Path) || (row.Type != "c" && row.Type != "d") {
			return nil, fmt.Errorf("line %d: want an absolute path and type c or d, got %q", i+1, line)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

var capNodeName = regexp.MustCompile(`^nvidia-cap(\d+)$`)

// capNodes lists the capability nodes: those present in /dev/nvidia-caps and
// the GI/CI access caps of every MIG device, named from the *-minors files.
func (r reader) capNodes(h *Host, listed map[string]nodeFacts, fromList bool) ([]Node, error) {
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
	if fromList {
		for p := range listed {
			if dir, base := filepath.Split(p); dir == "/dev/nvidia-caps/" {
				if m := capNodeName.FindStringSubmatch(base); m != nil {
					n, _ := strconv.Atoi(m[1])
					minors[n] = true
				}
			}
		}
	} else {
		entries, err := os.ReadDir(r.path("/dev/nvidia-caps"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", r.path("/dev/nvidia-caps"), err)
		}
		for _, e := range entries {
			if m := capNodeName.FindStringSubmatch(e.Name()); m != nil {
				n, _ := strconv.Atoi(m[1])
				minors[n] = true
			}
		}
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
