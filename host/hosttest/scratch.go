// Package hosttest makes scratch host roots for tests: a fixture root's
// procfs and sysfs files copied into a temporary directory, with real
// character nodes made by mknod from its dev-nodes.tsv.
package hosttest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpuimg/gpuimg/host"
)

// ScratchRoot copies fixture (a directory under testdata/hosts) into a new
// temporary root, leaving out dev-nodes.tsv. With makeNodes it creates every
// node the list names with mknod (needs root), with the listed numbers,
// mode and owner, so the root reads like a real host through stat.
func ScratchRoot(t testing.TB, fixture string, makeNodes bool) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(fixture, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fixture, path)
		target := filepath.Join(root, rel)
		switch {
		case rel == host.DevNodesList:
			return nil
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			dest, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(dest, target)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
	})
	if err != nil {
		t.Fatalf("copy fixture %s: %v", fixture, err)
	}
	if !makeNodes {
		return root
	}
	text, err := os.ReadFile(filepath.Join(fixture, host.DevNodesList))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := host.ParseDevNodes(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		MakeNode(t, root, row)
	}
	return root
}

// MakeNode creates one listed node (or directory) under root.
func MakeNode(t testing.TB, root string, row host.DevNode) {
	t.Helper()
	p := filepath.Join(root, row.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if row.Type == "d" {
		if err := os.MkdirAll(p, row.Mode.Perm()); err != nil {
			t.Fatal(err)
		}
		return
	}
	dev := unix.Mkdev(uint32(row.Major), uint32(row.Minor))
	if err := unix.Mknod(p, unix.S_IFCHR|uint32(row.Mode.Perm()), int(dev)); err != nil {
		t.Fatalf("mknod %s c %d %d: %v (needs root)", p, row.Major, row.Minor, err)
	}
	if err := os.Chmod(p, row.Mode.Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, row.UID, row.GID); err != nil {
		t.Fatal(err)
	}
}
