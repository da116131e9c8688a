// Package layersplit spreads the files an install step created over several
// layers of about equal size. BuildKit compresses one layer on one core and
// runs the layers of an image in parallel, so a driver layer of 700 MB split
// four ways compresses on four cores, with BuildKit still the engine (remote
// builders, --cache-to and every exporter work unchanged); registries and
// hosts then push and pull the parts in parallel too.
//
// It runs inside the install step (gpuimg-unpack, static): List before the
// installer records what the base already holds, Split after it moves the new
// files out of the step's root into the step's extra output mounts, one per
// layer after the first. A moved file was created by the step, so the root's
// layer simply no longer has it (no whiteout), and the merged image holds the
// same files, modes, owners and times as the single-layer one.
package layersplit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// skipped are the mount points of a build step that are not the base's
// filesystem, skipped by name as well as by device.
var skipped = map[string]bool{"/proc": true, "/sys": true, "/dev": true, "/tmp": true, "/gpuimg": true}

// List writes every non-directory path under root that is on root's
// filesystem, one per line: what existed before the install.
func List(root string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := walk(root, func(p string, _ fs.FileInfo) error {
		_, err := fmt.Fprintln(bw, p)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// ReadList reads List's output into a set.
func ReadList(r io.Reader) (map[string]bool, error) {
	set := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		set[sc.Text()] = true
	}
	return set, sc.Err()
}

// walk calls fn for every non-directory under root (paths relative to the
// filesystem root, "/usr/lib/x"), in lexical order, without descending into
// other filesystems or the build step's own mounts.
func walk(root string, fn func(p string, fi fs.FileInfo) error) error {
	rootInfo, err := os.Lstat(root)
	if err != nil {
		return err
	}
	rootDev := rootInfo.Sys().(*syscall.Stat_t).Dev
	return filepath.Walk(root, func(full string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(full, root), "/")
		if fi.IsDir() {
			if p != "/" && (skipped[p] || fi.Sys().(*syscall.Stat_t).Dev != rootDev) {
				return filepath.SkipDir
			}
			return nil
		}
		return fn(p, fi)
	})
}

// File is one candidate for another layer.
type File struct {
	Path string
	Size int64
}

// Plan assigns files to n layers: layer 0 already holds stay bytes (what is
// not moved), and each file goes, largest first (then by path, so the plan
// depends only on the files), to the layer with the fewest bytes so far, the
// lowest-numbered on a tie. It returns the files of layers 1..n-1.
func Plan(files []File, stay int64, n int) [][]File {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Size != sorted[j].Size {
			return sorted[i].Size > sorted[j].Size
		}
		return sorted[i].Path < sorted[j].Path
	})
	load := make([]int64, n)
	load[0] = stay
	out := make([][]File, n)
	for _, f := range sorted {
		least := 0
		for i := range load {
			if load[i] < load[least] {
				least = i
			}
		}
		load[least] += f.Size
		out[least] = append(out[least], f)
	}
	return out[1:]
}

// Result says what Split did.
type Result struct {
	// Bytes holds each layer's bytes of new regular files, layer 0 first.
	Bytes []int64
	Files []int
}

// Split moves the regular files under root that are not in before (and have
// a single link: a hard link must stay with its twin) into dests, by Plan
// with len(dests)+1 layers, each at its own path under its destination.
// Parent directories are recreated with the source's owner and mode; moved
// files keep theirs (set-id bits included); both get epoch as their times,
// like every file the install step changed.
func Split(root string, before map[string]bool, dests []string, epoch time.Time) (Result, error) {
	var candidates []File
	// Layer 0 starts with every new file and gives up the ones moved.
	res := Result{Bytes: make([]int64, len(dests)+1), Files: make([]int, len(dests)+1)}
	err := walk(root, func(p string, fi fs.FileInfo) error {
		if before[p] || !fi.Mode().IsRegular() {
			return nil
		}
		res.Bytes[0] += fi.Size()
		res.Files[0]++
		if fi.Sys().(*syscall.Stat_t).Nlink == 1 {
			candidates = append(candidates, File{Path: p, Size: fi.Size()})
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	var candidateBytes int64
	for _, f := range candidates {
		candidateBytes += f.Size
	}
	plan := Plan(candidates, res.Bytes[0]-candidateBytes, len(dests)+1)
	// Directories get their times last: each file moved in changes them.
	dirs := append([]string(nil), dests...)
	for i, files := range plan {
		for _, f := range files {
			created, err := mkdirLike(root, dests[i], filepath.Dir(f.Path))
			dirs = append(dirs, created...)
			if err != nil {
				return res, err
			}
			if err := move(root, dests[i], f.Path, epoch); err != nil {
				return res, err
			}
			res.Bytes[i+1] += f.Size
			res.Files[i+1]++
			res.Bytes[0] -= f.Size
			res.Files[0]--
		}
	}
	for _, d := range dirs {
		if err := os.Chtimes(d, epoch, epoch); err != nil {
			return res, err
		}
	}
	return res, nil
}

// move copies root+p to dest+p (the kernel copies: copy_file_range), with
// the source's owner, mode and epoch times, then removes the source.
func move(root, dest, p string, epoch time.Time) error {
	src := filepath.Join(root, p)
	dst := filepath.Join(dest, p)
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	st := fi.Sys().(*syscall.Stat_t)
	if err == nil {
		err = out.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		// After the chown, which clears set-id bits.
		err = out.Chmod(fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(dst, epoch, epoch)
	}
	if err != nil {
		return fmt.Errorf("move %s to another layer: %w", p, errors.Join(err, os.Remove(dst)))
	}
	return os.Remove(src)
}

// mkdirLike creates dest+dir and its missing parents with the owner and
// mode of root+dir's, and returns the directories it created.
func mkdirLike(root, dest, dir string) ([]string, error) {
	if dir == "/" || dir == "." {
		return nil, nil
	}
	target := filepath.Join(dest, dir)
	if _, err := os.Lstat(target); err == nil {
		return nil, nil
	}
	created, err := mkdirLike(root, dest, filepath.Dir(dir))
	if err != nil {
		return created, err
	}
	fi, err := os.Lstat(filepath.Join(root, dir))
	if err != nil {
		return created, err
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		return created, err
	}
	created = append(created, target)
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return created, err
	}
	return created, os.Chmod(target, fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}
