// Package benchenv is the benchmarks' environment, as internal/testenv is the
// tests' (which needs a testing.TB): the builder's cache, a file server and a
// ggcr registry, all on this machine.
package benchenv

import (
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

// Prune empties the builder's cache (every record, the base and the
// downloads included): the next build is cold.
func Prune(ctx context.Context, d *testenv.BuildkitDaemon) error {
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

// Serve starts an HTTP server on 127.0.0.1 and returns its host:port.
func Serve(h http.Handler) (string, func(), error) {
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

// StartRegistry starts ggcr's in-memory registry on 127.0.0.1 (plain HTTP,
// which BuildKit accepts for loopback addresses).
func StartRegistry() (string, func(), error) {
	return Serve(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
}
