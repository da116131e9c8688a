package drivers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gpuimg/gpuimg/internal/atomicfile"
)

// The cache is content-addressed: a package lives at
// <dir>/sha256/<hex>/<file> and is never rewritten in place. A symlink by
// file name points at it, so a version whose checksum the catalog lacks can
// still be found offline: verified/<file> when its checksum was checked as it
// was stored, unverified/<file> when --allow-unverified let it in. names/<file>
// links, which gpuimg wrote before it kept that apart, are read as
// unverified. Downloads grow in partial/, under a lock in locks/.
const (
	cacheBlobs      = "sha256"
	cacheVerified   = "verified"
	cacheUnverified = "unverified"
	cacheLegacy     = "names"
	cachePartials   = "partial"
	cacheLocks      = "locks"
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
	for _, sub := range []string{cacheBlobs, cacheVerified, cacheUnverified, cacheLocks, cachePartials} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return unwritableCache(dir, err)
		}
	}
	if err := atomicfile.ProbeDir(filepath.Join(dir, cachePartials)); err != nil {
		return unwritableCache(dir, err)
	}
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

// cachedByName follows index/<file> (verified, unverified or names) to a cached
// package and returns its path and sha256 (the directory it lives in).
func cachedByName(dir, index, file string) (path, sha string, ok bool) {
	p, err := filepath.EvalSymlinks(filepath.Join(dir, index, file))
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

// cachedUnverified finds a copy stored unverified, or by an older gpuimg
// that did not record whether it was verified.
func cachedUnverified(dir, file string) (path, sha string, ok bool) {
	if path, sha, ok = cachedByName(dir, cacheUnverified, file); ok {
		return path, sha, ok
	}
	return cachedByName(dir, cacheLegacy, file)
}

// storeBlob moves a checked temporary file into the cache and points
// verified/<file> (unverified/<file> when it was not verified) at it. Both
// steps are renames, so a reader sees the whole file or none.
func storeBlob(dir, tmp, sha, file string, verified bool) (string, error) {
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
	index := cacheVerified
	if !verified {
		index = cacheUnverified
	}
	if err := linkName(dir, index, sha, file); err != nil {
		return "", err
	}
	return final, nil
}

func linkName(dir, index, sha, file string) error {
	link := filepath.Join(dir, index, file)
	target := filepath.Join("..", cacheBlobs, sha, file)
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := atomicfile.Replace(link, func(tmp string) error { return os.Symlink(target, tmp) }); err != nil {
		return fmt.Errorf("record %s in the cache index: %w", file, err)
	}
	return nil
}

// FindCached returns the cached package for a version without any network:
// by the catalog's checksum when it has one, else by name (a copy stored
// unverified too: VerifiedBy is then "").
func FindCached(cacheDir string, v Version, arch, variant string) (Resolved, error) {
	w, err := Want{Version: v, Arch: arch, Variant: variant, CacheDir: cacheDir}.normalize()
	if err != nil {
		return Resolved{}, err
	}
	dir, err := cacheDirOrDefault(cacheDir)
	if err != nil {
		return Resolved{}, err
	}
	p, _ := pinFor(w, []string{w.Variant})
	file := RunFileName(v, w.Arch, w.Variant)
	r, ok, err := findCached(dir, file, p)
	if ok {
		return r, nil
	}
	if err != nil {
		return Resolved{}, fmt.Errorf("%w: fetch it again with `gpuimg drivers fetch %s --arch %s`", err, v, arch)
	}
	return Resolved{}, fmt.Errorf("%w: %s is not in the driver cache %s: run `gpuimg drivers fetch %s --arch %s` on a connected machine, or `gpuimg drivers import FILE` with a copy", ErrNotCached, file, dir, v, arch)
}

// findCached looks file up in the cache: by the pinned checksum when there
// is one, else by name. A hit is hashed, every time: its content must still
// be the checksum it is stored under (a flipped byte is found in about a
// second for 300 MB). A damaged copy is removed and reported as an
// ErrCacheDamaged error, so the caller fetches again or refuses offline.
// The hit's header must still name the package.
func findCached(dir, file string, p pin) (Resolved, bool, error) {
	r := Resolved{Source: "cache", SHA256: p.sha256, VerifiedBy: p.by}
	if p.sha256 != "" {
		path, ok := cachedBySHA(dir, p.sha256, file, p.size)
		if !ok {
			return Resolved{}, false, nil
		}
		r.Path = path
	} else if path, sha, ok := cachedByName(dir, cacheVerified, file); ok {
		r.Path, r.SHA256, r.VerifiedBy = path, sha, VerifiedByCache
	} else if path, sha, ok := cachedUnverified(dir, file); ok {
		r.Path, r.SHA256, r.VerifiedBy = path, sha, ""
	} else {
		return Resolved{}, false, nil
	}
	if err := checkCachedContent(dir, r.Path, r.SHA256, file); err != nil {
		return Resolved{}, false, err
	}
	h, err := ReadHeaderFile(r.Path)
	if err != nil {
		return Resolved{}, false, nil
	}
	if r.Version, err = h.Version(); err != nil {
		return Resolved{}, false, nil
	}
	r.Arch, r.Variant = h.TargetArch, variantFromName(file)
	if st, err := os.Stat(r.Path); err == nil {
		r.Size = st.Size()
	}
	return r, RunFileName(r.Version, r.Arch, r.Variant) == file, nil
}

// ErrCacheDamaged marks a cached package whose content is no longer the
// checksum it was stored under.
var ErrCacheDamaged = errors.New("damaged driver cache entry")

// checkCachedContent hashes a cache hit; when it is not what it is stored
// under, it removes the blob and the name links to it (a damaged copy is
// never kept to be found again) and says so.
func checkCachedContent(dir, path, sha, file string) error {
	got, _, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCacheDamaged, err)
	}
	if got == sha {
		return nil
	}
	removed := "removed it"
	if err := removeBlob(dir, sha, file); err != nil {
		removed = fmt.Sprintf("could not remove it (%v): delete %s by hand", err, filepath.Dir(path))
	}
	return fmt.Errorf("%w: the cached %s has sha256 %s, not the %s it was stored as (changed on disk); %s", ErrCacheDamaged, path, got, sha, removed)
}

// removeBlob deletes a cached package and the verified/, unverified/ and
// names/ links that point at it.
func removeBlob(dir, sha, file string) error {
	target := filepath.Join("..", cacheBlobs, sha, file)
	for _, index := range []string{cacheVerified, cacheUnverified, cacheLegacy} {
		link := filepath.Join(dir, index, file)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			os.Remove(link)
		}
	}
	if err := os.Remove(blobPath(dir, sha, file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Join(dir, cacheBlobs, sha)) // empty now, unless another file shares it
	return nil
}

// ErrNotCached marks a package that is not in the cache when the network may
// not be used.
var ErrNotCached = errors.New("not cached")
