package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrBusy is wrapped when another process is writing the same path.
var ErrBusy = errors.New("being written by another process")

// pathLock is an exclusive flock on .<name>.gpuimg-lock beside a path. The
// kernel drops it when its holder dies, so a lock that can be taken proves
// that nobody is writing the path: leftovers for it are stale.
type pathLock struct {
	file *os.File
	path string
}

const lockSuffix = ".gpuimg-lock"

func lockName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+lockSuffix)
}

// lockPath takes path's lock without waiting: ErrBusy when it is held.
func lockPath(path string) (*pathLock, error) {
	name := lockName(path)
	for range 3 {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is %w (its lock %s is held)", path, ErrBusy, name)
			}
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		// The previous holder removes the file before it unlocks: a lock
		// on a file no longer at name locks nothing; take the new one.
		held, err1 := f.Stat()
		now, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &pathLock{file: f, path: name}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock %s: it keeps being replaced by other processes", name)
}

// release removes the lock file, then unlocks; nil-safe and idempotent.
func (l *pathLock) release() {
	if l == nil || l.file == nil {
		return
	}
	_ = os.Remove(l.path)
	_ = l.file.Close()
	l.file = nil
}

// removeStale deletes what killed writers left in dir: temporary files and
// directories of Create and CreateDir, and lock files, each only when the
// lock of the path it belongs to can be taken (no live writer).
func removeStale(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		final, ok := staleCandidate(e.Name())
		if !ok {
			continue
		}
		l, err := lockPath(filepath.Join(dir, final))
		if err != nil {
			continue // a live writer (or one we cannot judge): leave it
		}
		if !strings.HasSuffix(e.Name(), lockSuffix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
		l.release()
	}
}

// staleCandidate maps a leftover's name to the name of the path it was for:
// .gpuimg-<digits>-NAME (Create), .NAME.gpuimg-<digits> (CreateDir) and
// .NAME.gpuimg-lock.
func staleCandidate(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, ".gpuimg-"); ok {
		digits, final, ok := strings.Cut(rest, "-")
		return final, ok && allDigits(digits) && final != ""
	}
	if !strings.HasPrefix(name, ".") {
		return "", false
	}
	if final, ok := strings.CutSuffix(name[1:], lockSuffix); ok && final != "" {
		return final, true
	}
	i := strings.LastIndex(name, ".gpuimg-")
	if i <= 1 || !allDigits(name[i+len(".gpuimg-"):]) {
		return "", false
	}
	return name[1:i], true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
