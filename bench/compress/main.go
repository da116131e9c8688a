// Command compress measures the candidates for putting every core on the
// driver layer's compression, on one layer tar (the driver's installed
// files): BuildKit v0.34.2's own compressors (Go's compress/gzip at the
// default level; klauspost zstd at its default level, no concurrent blocks),
// and the parallel ones a build step or the client could run (klauspost
// pgzip at level 6 with 1 MiB blocks, klauspost zstd with concurrent
// blocks; the gzip and zstd binaries for reference). For each: wall time,
// CPU time (user+sys: what scales with cores), compressed bytes and the
// ratio to `gzip -6` or `zstd -3`. CPU time divided by the cores, floored by
// the longest serial part (the sha256 of the blob and of the tar), gives the
// scaling model for 16 and 64 cores. A benchmark, not a test.
//
//	go run ./bench/compress LAYER.tar|DRIVER.run
//
// Given a .run, it measures the tar of the package's extracted tree (the
// same files, within a few kilobytes, as the driver layer holds).
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

type result struct {
	name       string
	wall, cpu  float64
	bytes      int64
	reference  string
	threads    int
	serialNote string
}

// counter counts bytes written.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func cpuNow() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func inProcess(name, path string, threads int, wrap func(io.Writer) (io.WriteCloser, error)) (result, error) {
	f, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	var c counter
	start, cpu := time.Now(), cpuNow()
	w, err := wrap(&c)
	if err != nil {
		return result{}, err
	}
	if _, err := io.Copy(w, f); err != nil {
		return result{}, err
	}
	if err := w.Close(); err != nil {
		return result{}, err
	}
	return result{name: name, wall: time.Since(start).Seconds(), cpu: cpuNow() - cpu, bytes: c.n, threads: threads}, nil
}

func binary(name, path string, threads int, args ...string) (result, error) {
	f, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	var c counter
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout = f, &c
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	ps := cmd.ProcessState
	return result{name: name, wall: time.Since(start).Seconds(), cpu: (ps.UserTime() + ps.SystemTime()).Seconds(), bytes: c.n, threads: threads}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/compress LAYER.tar|DRIVER.run")
		os.Exit(2)
	}
	path := os.Args[1]
	if strings.HasSuffix(path, ".run") {
		tmp, err := os.MkdirTemp("", "bench-compress-")
		must(err)
		defer os.RemoveAll(tmp)
		path, err = treeTar(path, tmp)
		must(err)
	}
	cores := runtime.NumCPU()
	load, _ := os.ReadFile("/proc/loadavg")
	st, err := os.Stat(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("layer tar %.0f MB, %d cores, load average %s\n", float64(st.Size())/1e6, cores, load)
	sha, err := inProcess("sha256 of the tar (diffID; BuildKit also hashes the blob)", path, 1, func(w io.Writer) (io.WriteCloser, error) {
		return nopCloser{sha256.New()}, nil
	})
	must(err)
	runs := []func() (result, error){
		func() (result, error) { return binary("gzip -6 (binary)", path, 1, "gzip", "-6", "-c") },
		func() (result, error) {
			return inProcess("BuildKit gzip: Go compress/gzip, default level", path, 1, func(w io.Writer) (io.WriteCloser, error) {
				return gzip.NewWriterLevel(w, gzip.DefaultCompression)
			})
		},
		func() (result, error) {
			return inProcess(fmt.Sprintf("pgzip level 6, 1 MiB blocks, %d threads", cores), path, cores, func(w io.Writer) (io.WriteCloser, error) {
				zw, err := pgzip.NewWriterLevel(w, 6)
				if err == nil {
					err = zw.SetConcurrency(1<<20, 2*cores)
				}
				return zw, err
			})
		},
		func() (result, error) {
			return binary("zstd -3 (binary, 1 thread)", path, 1, "zstd", "-3", "-T1", "-c")
		},
		func() (result, error) {
			return binary(fmt.Sprintf("zstd -3 (binary, %d threads)", cores), path, cores, "zstd", "-3", fmt.Sprintf("-T%d", cores), "-c")
		},
		func() (result, error) {
			return inProcess("BuildKit zstd: klauspost default level, no concurrent blocks", path, 1, func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
			})
		},
		func() (result, error) {
			return inProcess(fmt.Sprintf("klauspost zstd default level, %d concurrent blocks", cores), path, cores, func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(cores))
			})
		},
	}
	var out []result
	for _, r := range runs {
		res, err := r()
		must(err)
		out = append(out, res)
	}
	gzipRef, zstdRef := float64(out[0].bytes), float64(out[3].bytes)
	fmt.Printf("%-62s %7s %7s %9s %9s %8s %8s\n", "compressor", "wall s", "cpu s", "MB", "vs ref", "16 cores", "64 cores")
	fmt.Printf("%-62s %7.1f %7.1f %9s %9s\n", sha.name, sha.wall, sha.cpu, "", "")
	for i, r := range out {
		ref := gzipRef
		if i >= 3 {
			ref = zstdRef
		}
		// One thread does not scale; a parallel compressor's CPU time
		// spreads over the cores, but the tar read and both sha256 passes
		// stay serial (BuildKit hashes while it writes).
		model := func(n int) float64 {
			if r.threads == 1 {
				return r.cpu
			}
			return max(r.cpu/float64(n), 2*sha.cpu)
		}
		fmt.Printf("%-62s %7.1f %7.1f %9.1f %+8.2f%% %7.1fs %7.1fs\n", r.name, r.wall, r.cpu, float64(r.bytes)/1e6, 100*(float64(r.bytes)/ref-1), model(16), model(64))
	}
}

// treeTar extracts run under dir and writes the tree's tar (sorted names,
// like a layer) to dir/layer.tar.
func treeTar(run, dir string) (string, error) {
	tree := filepath.Join(dir, "tree")
	if _, err := drivers.ExtractPayload(run, tree, dir); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "layer.tar")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == tree {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(tree, p)
		if err := tw.WriteHeader(h); err != nil || !info.Mode().IsRegular() {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	_ = os.RemoveAll(tree)
	return out, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "compress:", err)
		os.Exit(1)
	}
}
