// Command packer is the static helper of bench/cores' design (a): run by a
// build step (no network, synced from the client like gpuimg-unpack), it
// writes the driver layer's blob with every core of the builder. It diffs
// the base (-lower) against the installed tree (-upper) with containerd's
// own differ and tar writer (the walk BuildKit falls back to, the tar
// format its overlay differ writes: the same files, modes, owners,
// symlinks, hard links and whiteouts), compresses the tar with klauspost's
// pgzip (level 6, 1 MiB blocks, all cores) or zstd (default level,
// concurrent blocks), and writes an OCI content store under -out:
// blobs/sha256/<digest> and layer.json (digest, size, diffID, media type).
// The tar is hashed (the diffID) in a goroutine of its own, beside the
// compressor, and the blob as it is written.
//
//	packer -compression gzip|zstd -lower /base -upper /installed -out /out
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/gpuimg/gpuimg/bench/cores/packed"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

func main() {
	compression := flag.String("compression", "gzip", "gzip (pgzip) or zstd")
	lower := flag.String("lower", "/lower", "the base's tree")
	upper := flag.String("upper", "/upper", "the installed tree")
	out := flag.String("out", "/out", "where the content store goes")
	flag.Parse()
	if err := pack(*compression, *lower, *upper, *out); err != nil {
		fmt.Fprintln(os.Stderr, "packer:", err)
		os.Exit(1)
	}
}

func pack(compression, lower, upper, out string) error {
	start := time.Now()
	dir := filepath.Join(out, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "incoming"))
	if err != nil {
		return err
	}
	defer f.Close()
	blobHash := sha256.New()
	var blob counter
	compressed := io.MultiWriter(f, blobHash, &blob)
	cores := runtime.NumCPU()
	var zw io.WriteCloser
	layer := packed.Layer{Threads: cores}
	switch compression {
	case "gzip":
		w, err := pgzip.NewWriterLevel(compressed, 6)
		if err == nil {
			err = w.SetConcurrency(1<<20, 2*cores)
		}
		if err != nil {
			return err
		}
		zw, layer.MediaType = w, "application/vnd.oci.image.layer.v1.tar+gzip"
	case "zstd":
		w, err := zstd.NewWriter(compressed, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(cores))
		if err != nil {
			return err
		}
		zw, layer.MediaType = w, "application/vnd.oci.image.layer.v1.tar+zstd"
	default:
		return fmt.Errorf("-compression %q: use gzip or zstd", compression)
	}
	diffID := newAsyncHash()
	var tarBytes counter
	if err := archive.WriteDiff(context.Background(), io.MultiWriter(zw, diffID, &tarBytes), lower, upper); err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	layer.Digest = "sha256:" + hex.EncodeToString(blobHash.Sum(nil))
	layer.DiffID = "sha256:" + hex.EncodeToString(diffID.Sum())
	layer.Size, layer.TarBytes = blob.n, tarBytes.n
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	layer.CPUSeconds = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	layer.WallSeconds = time.Since(start).Seconds()
	if err := os.Rename(f.Name(), filepath.Join(dir, layer.Digest[len("sha256:"):])); err != nil {
		return err
	}
	js, err := json.MarshalIndent(layer, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, packed.FileName), append(js, '\n'), 0o644)
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// asyncHash hashes what is written to it in a goroutine of its own, so the
// sha256 pass over the tar runs beside the walk and the compressor instead
// of in line with them.
type asyncHash struct {
	chunks chan []byte
	done   chan struct{}
	h      hash.Hash
}

func newAsyncHash() *asyncHash {
	a := &asyncHash{chunks: make(chan []byte, 64), done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(a.done)
		for c := range a.chunks {
			a.h.Write(c)
		}
	}()
	return a
}

func (a *asyncHash) Write(p []byte) (int, error) {
	a.chunks <- append([]byte(nil), p...)
	return len(p), nil
}

// Sum waits for the pending chunks and returns the digest.
func (a *asyncHash) Sum() []byte {
	close(a.chunks)
	<-a.done
	return a.h.Sum(nil)
}
