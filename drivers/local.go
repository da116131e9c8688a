package drivers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// localCopy is a local .run hashed in place, or copied into the cache's
// partial/ directory as it was hashed (import), waiting to be stored.
type localCopy struct {
	sha256 string
	size   int64
	dir    string // the cache, when tmp is set
	tmp    string // the copy in partial/; "" when hashed in place
}

func hashInPlace(path string) (localCopy, error) {
	sum, size, err := FileSHA256(path)
	return localCopy{sha256: sum, size: size}, err
}

// copyIntoCache copies path into the cache's partial/ directory, hashing it
// on the way: one read of a file that may be hundreds of megabytes.
func copyIntoCache(ctx context.Context, path, cacheDir string) (localCopy, error) {
	dir, err := cacheDirOrDefault(cacheDir)
	if err != nil {
		return localCopy{}, err
	}
	if err := prepareCache(dir); err != nil {
		return localCopy{}, err
	}
	src, err := os.Open(path)
	if err != nil {
		return localCopy{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Join(dir, cachePartials), "import-*.part")
	if err != nil {
		return localCopy{}, unwritableCache(dir, err)
	}
	c := localCopy{dir: dir, tmp: tmp.Name()}
	hasher := sha256.New()
	c.size, err = copyHashing(tmp, hasher, &ctxReader{ctx: ctx, r: src}, nil)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.discard()
		return localCopy{}, fmt.Errorf("copy %s into the cache: %w", path, err)
	}
	c.sha256 = hex.EncodeToString(hasher.Sum(nil))
	return c, nil
}

// store moves the copy into the cache under file's name.
func (c *localCopy) store(file string, verified bool) (string, error) {
	p, err := storeBlob(c.dir, c.tmp, c.sha256, file, verified)
	if err == nil {
		c.tmp = ""
	}
	return p, err
}

// discard removes a copy that was not stored (a no-op once it was).
func (c *localCopy) discard() {
	if c.tmp != "" {
		os.Remove(c.tmp)
	}
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
