// Package atomicfile writes files, directories, device nodes and symlinks
// under a temporary name beside their final path and renames them into place
// only when they are complete, so a reader sees the whole thing or nothing,
// and a failure leaves nothing behind. It also probes, before any work, that
// a directory can take such a write.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Pending is a file or directory being written under a temporary name. It
// holds the final path's lock until Commit or Discard.
type Pending struct {
	final, tmp string
	file       *os.File // nil for a directory
	lock       *pathLock
	// made are the directories created for it, deepest first: Discard
	// removes them again (when still empty).
	made []string
}

// Create starts a file that will replace path: write it through File, then
// Commit (or Discard). Missing parent directories are created (and removed
// again by Discard). A second writer of the same path is refused with
// ErrBusy while this one runs, and what a killed writer left in the
// directory is removed first (see removeStale).
func Create(path string) (*Pending, error) {
	p, err := start(path)
	if err != nil {
		return nil, err
	}
	// The name keeps the extension: validators (CDI's) read it.
	f, err := os.CreateTemp(filepath.Dir(path), ".gpuimg-*-"+filepath.Base(path))
	if err != nil {
		p.Discard()
		return nil, err
	}
	p.tmp, p.file = f.Name(), f
	return p, nil
}

// CreateDir starts a directory that will become path (which must not exist).
func CreateDir(path string) (*Pending, error) {
	p, err := start(path)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".gpuimg-")
	if err != nil {
		p.Discard()
		return nil, err
	}
	p.tmp = tmp
	return p, nil
}

// start makes path's directory, takes path's lock and clears the
// directory's stale leftovers.
func start(path string) (*Pending, error) {
	p := &Pending{final: path}
	var err error
	if p.made, err = mkdirAll(filepath.Dir(path)); err != nil {
		p.Discard()
		return nil, err
	}
	if p.lock, err = lockPath(path); err != nil {
		p.Discard()
		return nil, err
	}
	removeStale(filepath.Dir(path))
	return p, nil
}

// mkdirAll is os.MkdirAll that returns the directories it created,
// deepest first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
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
	p.tmp, p.made = "", nil
	p.lock.release()
	return nil
}

// Discard removes what was written and the directories made for it; after
// Commit it does nothing.
func (p *Pending) Discard() {
	if p.file != nil {
		_ = p.file.Close()
	}
	if p.tmp != "" {
		_ = os.RemoveAll(p.tmp)
		p.tmp = ""
	}
	p.lock.release()
	for _, d := range p.made {
		_ = os.Remove(d) // only when empty: another writer may use it now
	}
	p.made = nil
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

// ProbeDir proves a file can be created in dir, or, when dir does not
// exist yet, in its nearest existing ancestor, so a write refused for
// permissions or a read-only file system is reported before any long work
// starts. It leaves nothing behind: no probe file and no directory.
func ProbeDir(dir string) error {
	d := filepath.Clean(dir)
	for {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return err
		}
		d = filepath.Dir(d)
	}
	probe, err := os.CreateTemp(d, ".gpuimg-probe-*")
	if err != nil {
		return err
	}
	probe.Close()
	return os.Remove(probe.Name())
}
