package drivers

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// noSpaceError is a download that does not fit on the cache's disk: found
// before writing (from the known size) or when a write failed with ENOSPC.
// It is not retried and no other URL is tried: neither frees the disk.
type noSpaceError struct {
	dir  string
	file string
	// need is the bytes still to write (-1: unknown), free those available.
	need, free int64
}

func (e *noSpaceError) Error() string {
	need := "more bytes than"
	if e.need >= 0 {
		need = fmt.Sprintf("%d more bytes (%s), but only", e.need, mb(e.need))
	}
	return fmt.Sprintf("no space left for %s on the disk holding %s (mounted at %s): it needs %s %d bytes (%s) are free: free space there, or pass --cache-dir on another disk",
		e.file, e.dir, mountPoint(e.dir), need, e.free, mb(e.free))
}

func (e *noSpaceError) Unwrap() error { return syscall.ENOSPC }

// freeBytes is what an unprivileged writer may still put on dir's disk.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkFreeSpace refuses, before the first byte is written, a download of
// need more bytes that cannot fit into dir.
func checkFreeSpace(dir, file string, need int64) error {
	if need <= 0 {
		return nil
	}
	free, err := freeBytes(dir)
	if err != nil || free >= need {
		return nil // no statfs: the write itself will tell
	}
	return &noSpaceError{dir: dir, file: file, need: need, free: free}
}

// asNoSpace turns a write's ENOSPC into a noSpaceError naming the disk.
func asNoSpace(err error, dir, file string, need int64) error {
	var ns *noSpaceError
	if err == nil || errors.As(err, &ns) || !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	free, _ := freeBytes(dir)
	return &noSpaceError{dir: dir, file: file, need: need, free: free}
}

// mountPoint is the directory dir's filesystem is mounted at: the highest
// ancestor on the same device.
func mountPoint(dir string) string {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return dir
	}
	for p := filepath.Clean(dir); p != "/"; {
		parent := filepath.Dir(p)
		var pst unix.Stat_t
		if unix.Stat(parent, &pst) != nil || pst.Dev != st.Dev {
			return p
		}
		p = parent
	}
	return "/"
}
