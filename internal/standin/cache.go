package standin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// cacheKey names the cache directory of opts (normalized): a hash of the
// options and of the generator's own sources, so a changed generator never
// reuses packages an older one made.
func cacheKey(opts Options) (string, error) {
	src, err := sourceDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n", opts)
	if opts.Installer != "" {
		b, err := os.ReadFile(opts.Installer)
		if err != nil {
			return "", fmt.Errorf("stand-in driver: read the installer to ship: %w", err)
		}
		h.Write(b)
	}
	for _, dir := range []string{src, filepath.Join(src, "cmd", "nvunpack")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", fmt.Errorf("stand-in driver: read generator sources: %w", err)
		}
		for _, e := range entries { // ReadDir sorts by name
			if e.IsDir() || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return "", fmt.Errorf("stand-in driver: read generator sources: %w", err)
			}
			fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// cacheRoot is $GPUIMG_CACHE/standin, else <repo>/.cache/standin.
func cacheRoot() (string, error) {
	if dir := os.Getenv("GPUIMG_CACHE"); dir != "" {
		return filepath.Join(dir, "standin"), nil
	}
	src, err := sourceDir()
	if err != nil {
		return "", fmt.Errorf("%w (or set GPUIMG_CACHE)", err)
	}
	for dir := src; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "standin"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("stand-in driver: no go.mod above %s: set GPUIMG_CACHE to a cache directory", src)
		}
	}
}

// Cached returns the package for opts from the cache, generating it on the
// first call. Concurrent callers (test processes) are safe: each generates
// into its own temporary directory and renames it into place; the loser of
// the race uses the winner's copy.
func Cached(opts Options) (runPath string, err error) {
	opts, err = opts.normalized()
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	key, err := cacheKey(opts)
	if err != nil {
		return "", err
	}
	final := filepath.Join(root, key)
	runPath = filepath.Join(final, opts.runName())
	if _, err := os.Stat(runPath); err == nil {
		return runPath, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("stand-in driver: create cache directory: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("stand-in driver: create cache directory: %w", err)
	}
	defer os.RemoveAll(tmp)                      // gone after a successful rename
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700; builds read it as other users
		return "", fmt.Errorf("stand-in driver: %w", err)
	}
	if _, err := Generate(tmp, opts); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, statErr := os.Stat(runPath); statErr == nil {
			return runPath, nil // another process finished first
		}
		return "", fmt.Errorf("stand-in driver: store in cache: %w", errors.Join(err))
	}
	return runPath, nil
}
