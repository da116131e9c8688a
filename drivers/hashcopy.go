package drivers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Downloads and verification read hundreds of megabytes. Hashing on the
// reading goroutine would add the hash time to the copy time, so the reader
// copies (read, then write, as curl does) and hands each chunk to a hasher
// goroutine: on two or more cores the hash costs no wall time.
const (
	copyChunkSize = 1 << 20
	copyChunks    = 8
)

// copyHashing copies src to dst (nil: hash only) while hashing into h, and
// calls progress with the running byte count. It returns the bytes read and
// the first read or write error (io.EOF is not an error).
func copyHashing(dst io.Writer, h hash.Hash, src io.Reader, progress func(int64)) (int64, error) {
	free := make(chan []byte, copyChunks)
	for range copyChunks {
		free <- make([]byte, copyChunkSize)
	}
	toHash := make(chan []byte, copyChunks)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for chunk := range toHash {
			h.Write(chunk)
			free <- chunk[:cap(chunk)]
		}
	}()
	var total int64
	var err error
	for err == nil {
		buf := <-free
		var n int
		n, err = fill(src, buf)
		if n == 0 {
			free <- buf
			continue
		}
		if dst != nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				free <- buf
				break
			}
		}
		toHash <- buf[:n]
		total += int64(n)
		if progress != nil {
			progress(total)
		}
	}
	close(toHash)
	<-hashed
	if err == io.EOF {
		err = nil
	}
	return total, err
}

// fill reads until buf is full or src fails, returning src's own error (so a
// truncated HTTP body's io.ErrUnexpectedEOF is kept, unlike io.ReadFull).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// FileSHA256 returns the lowercase hex sha256 and size of the file at path.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("open %s to hash it: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := copyHashing(nil, h, f, nil)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ErrChecksumMismatch marks a file whose sha256 is not the expected one.
var ErrChecksumMismatch = errors.New("sha256 mismatch")

// NormalizeSHA256 validates a sha256 given by a user (any case, optional
// "sha256:" prefix) and returns it in lowercase hex.
func NormalizeSHA256(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	if !isSHA256Hex(h) {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits: copy it from NVIDIA's .sha256sum file or `sha256sum FILE`", s)
	}
	return h, nil
}
