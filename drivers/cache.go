package drivers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// The cache is content-addressed: a verified package lives at
// <dir>/sha256/<hex>/<file> and is never rewritten in place; names/<file> is
// a symlink to it so a version whose checksum the catalog lacks can still be
// found offline. Downloads grow in partial/, under a lock in locks/.
const (
	cacheBlobs    = "sha256"
	cacheNames    = "names"
	cachePartials = "partial"
	cacheLocks    = "locks"
)

// DefaultCacheDir is $XDG_CACHE_HOME/gpuimg/drivers, else ~/.cache/gpuimg/drivers.
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (%w): set XDG_CACHE_HOME or pass --cache-dir DIR", err)
	}
	return filepath.Join(base, "gpuimg", "drivers"), nil
}

// HostArch is the .run architecture of this machine, x86_64 elsewhere.
func HostArch() string {
	if runtime.GOARCH == "arm64" {
		return ArchAarch64
	}
	return ArchX86_64
}

func cacheDirOrDefault(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return DefaultCacheDir()
}

// prepareCache creates the cache's directories, explaining an unwritable one.
func prepareCache(dir string) error {
	for _, sub := range []string{cacheBlobs, cacheNames, cachePartials, cacheLocks} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return unwritableCache(dir, err)
		}
	}
	probe, err := os.CreateTemp(filepath.Join(dir, cachePartials), ".probe-*")
	if err != nil {
		return unwritableCache(dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

func unwritableCache(dir string, err error) error {
	return fmt.Errorf("driver cache %s is not writable (%w): pass --cache-dir with a writable directory, or set XDG_CACHE_HOME", dir, err)
}

func blobPath(dir, sha, file string) string { return filepath.Join(dir, cacheBlobs, sha, file) }

// cachedBySHA returns the cached package with this content, if present and of
// the expected size (size < 0: unknown).
func cachedBySHA(dir, sha, file string, size int64) (string, bool) {
	p := blobPath(dir, sha, file)
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() || (size >= 0 && st.Size() != size) {
		return "", false
	}
	return p, true
}

// cachedByName follows names/<file> to a cached package and returns its path
// and sha256 (the directory it lives in).
func cachedByName(dir, file string) (path, sha string, ok bool) {
	p, err := filepath.EvalSymlinks(filepath.Join(dir, cacheNames, file))
	if err != nil {
		return "", "", false
	}
	sha = filepath.Base(filepath.Dir(p))
	if !isSHA256Hex(sha) || filepath.Base(p) != file {
		return "", "", false
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return "", "", false
	}
	return p, sha, true
}

// storeBlob moves a verified temporary file into the cache and points
// names/<file> at it. Both steps are renames, so a reader sees the whole file
// or none.
func storeBlob(dir, tmp, sha, file string) (string, error) {
	final := blobPath(dir, sha, file)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", unwritableCache(dir, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("move the verified package into the cache: %w", err)
	}
	if err := linkName(dir, sha, file); err != nil {
		return "", err
	}
	return final, nil
}

func linkName(dir, sha, file string) error {
	link := filepath.Join(dir, cacheNames, file)
	target := filepath.Join("..", cacheBlobs, sha, file)
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := fmt.Sprintf("%s.%d.new", link, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("record %s in the cache index: %w", file, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record %s in the cache index: %w", file, err)
	}
	return nil
}

// FindCached returns the cached package for a version without any network:
// by the catalog's checksum when it has one, else by name.
func FindCached(cacheDir string, v Version, arch, variant string) (string, error) {
	dir, err := cacheDirOrDefault(cacheDir)
	if err != nil {
		return "", err
	}
	file := RunFileName(v, arch, variant)
	if pkg, ok := LookupPackage(v, arch, variant); ok {
		if p, ok := cachedBySHA(dir, pkg.SHA256, file, pkg.Size); ok {
			return p, nil
		}
	} else if p, _, ok := cachedByName(dir, file); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s is not in the driver cache %s: run `gpuimg drivers fetch %s --arch %s` on a connected machine, or `gpuimg drivers import FILE` with a copy", ErrNotCached, file, dir, v, arch)
}

// ErrNotCached marks a package that is not in the cache when the network may
// not be used.
var ErrNotCached = errors.New("not cached")
