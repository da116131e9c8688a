// Package hosttest holds what tests need to stand in for GPU hosts: the
// fixtures' dev-nodes.tsv (their device nodes, which git cannot hold) read
// as host.Devices, and scratch host roots with real nodes made by mknod.
// Package host itself reads only real nodes.
package hosttest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// ScratchRoot copies fixture (a directory under testdata/hosts) into a new
// temporary root, leaving out dev-nodes.tsv. With makeNodes it creates every
// node the list names with mknod (needs root), with the listed numbers,
// mode and owner, so the root reads like a real host through stat.
func ScratchRoot(t testing.TB, fixture string, makeNodes bool) string {
	t.Helper()
	root := t.TempDir()
	if err := CopyRoot(root, fixture, makeNodes); err != nil {
		t.Fatal(err)
	}
	return root
}

// CopyRoot is ScratchRoot into the existing directory root, for programs
// (the benchmarks) as well as tests.
func CopyRoot(root, fixture string, makeNodes bool) error {
	err := filepath.WalkDir(fixture, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fixture, path)
		target := filepath.Join(root, rel)
		switch {
		case rel == DevNodesList:
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
		return fmt.Errorf("copy fixture %s: %w", fixture, err)
	}
	if !makeNodes {
		return nil
	}
	text, err := os.ReadFile(filepath.Join(fixture, DevNodesList))
	if err != nil {
		return err
	}
	rows, err := ParseDevNodes(string(text))
	if err != nil {
		return err
	}
	for _, row := range rows {
		if err := makeNode(root, row); err != nil {
			return err
		}
	}
	return nil
}

// MakeNode creates one listed node (or directory) under root.
func MakeNode(t testing.TB, root string, row DevNode) {
	t.Helper()
	if err := makeNode(root, row); err != nil {
		t.Fatal(err)
	}
}

func makeNode(root string, row DevNode) error {
	p := filepath.Join(root, row.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if row.Type == "d" {
		return os.MkdirAll(p, row.Mode.Perm())
	}
	dev := unix.Mkdev(uint32(row.Major), uint32(row.Minor))
	if err := unix.Mknod(p, unix.S_IFCHR|uint32(row.Mode.Perm()), int(dev)); err != nil {
		return fmt.Errorf("mknod %s c %d %d: %w (needs root)", p, row.Major, row.Minor, err)
	}
	if err := os.Chmod(p, row.Mode.Perm()); err != nil {
		return err
	}
	return os.Lchown(p, row.UID, row.GID)
}
