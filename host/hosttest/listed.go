package hosttest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
)

// DevNodesList is a fixture root's stand-in for the device nodes git cannot
// hold: "path type major minor mode [uid gid]", mode in octal.
const DevNodesList = "dev-nodes.tsv"

// Read reads the fixture host root with its device nodes taken from its
// dev-nodes.tsv (host.ReadWith with Listed).
func Read(t testing.TB, root string) host.Host {
	t.Helper()
	devices, err := Listed(root)
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.ReadWith(root, devices)
	if err != nil {
		t.Fatalf("host.ReadWith(%s): %v", root, err)
	}
	return h
}

// Listed returns the device nodes root's dev-nodes.tsv lists, as
// host.Devices; nil (stat the real ones) when root has no such file, as a
// ScratchRoot has not.
func Listed(root string) (host.Devices, error) {
	text, err := os.ReadFile(filepath.Join(root, DevNodesList))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rows, err := ParseDevNodes(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(root, DevNodesList), err)
	}
	l := listed{}
	for _, row := range rows {
		if row.Type == "c" {
			l[row.Path] = host.DeviceNode{Major: row.Major, Minor: row.Minor, Mode: row.Mode, UID: row.UID, GID: row.GID}
		}
	}
	return l, nil
}

// listed maps host paths to the nodes a dev-nodes.tsv says are there.
type listed map[string]host.DeviceNode

func (l listed) Node(p string) (host.DeviceNode, bool, error) {
	n, ok := l[p]
	return n, ok, nil
}

func (l listed) Names(dir string) ([]string, error) {
	var names []string
	for p := range l {
		if path.Dir(p) == path.Clean(dir) {
			names = append(names, path.Base(p))
		}
	}
	return names, nil
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
