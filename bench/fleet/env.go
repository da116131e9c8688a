package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/moby/buildkit/client"
)

// The benchmark's environment mirrors internal/testenv (which needs a
// testing.TB): one private buildkitd, a ggcr registry and a file server, all
// on this machine and all stopped when the benchmark ends.

// prune empties the builder's cache (every record, the base and the
// downloads included): the next build is cold.
func prune(ctx context.Context, d *testenv.BuildkitDaemon) error {
	c, err := client.New(ctx, d.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ch := make(chan client.UsageInfo)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	err = c.Prune(ctx, ch, client.PruneAll)
	close(ch)
	<-done
	if err != nil {
		return fmt.Errorf("prune the builder's cache: %w", err)
	}
	return nil
}

// serve starts an HTTP server on 127.0.0.1 and returns its host:port.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "bench: server:", err)
		}
	}()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// startRegistry starts ggcr's in-memory registry on 127.0.0.1 (plain HTTP,
// which BuildKit accepts for loopback addresses).
func startRegistry() (string, func(), error) {
	return serve(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
}

// tarWriter writes a one-file layer.
type tarWriter struct{ tw *tar.Writer }

func newTar(w io.Writer) *tarWriter { return &tarWriter{tar.NewWriter(w)} }

func (t *tarWriter) add(path, content string) error {
	if err := t.tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.WriteString(t.tw, content); err != nil {
		return err
	}
	return t.tw.Close()
}
