// Package atomicfile writes files, directories, device nodes and symlinks
// under a temporary name beside their final path and renames them into place
// only when they are complete, so a reader sees the whole thing or nothing,
// and a failure leaves nothing behind. It also probes, before any work, that
// a directory can take such a write.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Pending is a file or directory being written under a temporary name.
type Pending struct {
	final, tmp string
	file       *os.File // nil for a directory
}

// Create starts a file that will replace path: write it through File, then
// Commit (or Discard).
func Create(path string) (*Pending, error) {
	// The name keeps the extension: validators (CDI's) read it.
	f, err := os.CreateTemp(filepath.Dir(path), ".gpuimg-*-"+filepath.Base(path))
	if err != nil {
		return nil, err
	}
	return &Pending{final: path, tmp: f.Name(), file: f}, nil
}

// CreateDir starts a directory that will become path (which must not exist).
func CreateDir(path string) (*Pending, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".gpuimg-")
	if err != nil {
		return nil, err
	}
	return &Pending{final: path, tmp: tmp}, nil
}

// File is the temporary file to write (nil for a directory).
func (p *Pending) File() *os.File { return p.file }

// Name is the temporary path, complete once written (e.g. to validate it).
func (p *Pending) Name() string { return p.tmp }

// Commit closes the file, gives it mode perm (files only; a temporary file
// is 0600) and renames it into place.
func (p *Pending) Commit(perm os.FileMode) error {
	if p.file != nil {
		// A writer may have closed it already; a second Close only says so.
		_ = p.file.Close()
		if err := os.Chmod(p.tmp, perm); err != nil {
			return err
		}
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		return fmt.Errorf("move the finished %s into place: %w", p.final, err)
	}
	p.tmp = ""
	return nil
}

// Discard removes what was written; after Commit it does nothing.
func (p *Pending) Discard() {
	if p.file != nil {
		_ = p.file.Close()
	}
	if p.tmp != "" {
		_ = os.RemoveAll(p.tmp)
	}
}

// WriteFile writes data to path atomically, with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	p, err := Create(path)
	if err != nil {
		return err
	}
	defer p.Discard()
	if _, err := p.File().Write(data); err != nil {
		return err
	}
	if err := p.File().Close(); err != nil {
		return err
	}
	return p.Commit(perm)
}

// Replace makes path anew: create makes the thing (a device node, a
// symlink) at the temporary name it is given, which is then renamed over
// path. Nothing is left at the temporary name when create or the rename
// fails.
func Replace(path string, create func(tmp string) error) error {
	// The process id keeps two processes replacing the same path apart.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".gpuimg-%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp) // a crashed earlier run's
	if err := create(tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// ProbeDir creates dir (and its parents) and proves a file can be created
// in it, so a write refused for permissions or a read-only file system is
// reported before any long work starts.
func ProbeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	probe, err := os.CreateTemp(dir, ".gpuimg-probe-*")
	if err != nil {
		return err
	}
	probe.Close()
	return os.Remove(probe.Name())
}
