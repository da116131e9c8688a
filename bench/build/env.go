package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

// pushBase copies the OCI layout's base to ref, so the recipe's FROM and
// gpuimg's --base name the very same image: a single image, or the
// multi-platform index `make base` writes (amd64 and arm64), pushed whole.
// It returns the linux/amd64 image.
func pushBase(layoutDir, ref string) (v1.Image, error) {
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return nil, fmt.Errorf("base layout %s: %w (`make base` makes it)", layoutDir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("base layout %s holds %d manifests, want 1", layoutDir, len(m.Manifests))
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	if !m.Manifests[0].MediaType.IsIndex() {
		img, err := p.Image(m.Manifests[0].Digest)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r, img); err != nil {
			return nil, fmt.Errorf("push the base to %s: %w", ref, err)
		}
		return img, nil
	}
	multi, err := idx.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(r, multi); err != nil {
		return nil, fmt.Errorf("push the base to %s: %w", ref, err)
	}
	return remoteImage(ref)
}

// remoteImage reads ref's image (linux/amd64) from the local registry.
func remoteImage(ref string) (v1.Image, error) {
	r, err := name.ParseReference(strings.TrimPrefix(ref, "docker-image://"), name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
}
