package faults_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
)

// Pushes to a registry that fails: it answers 500, it dies mid-push, it
// accepts connections and never answers. Each ends in bounded time with
// the registry named and what to check, and no tag is left pointing at a
// half-pushed image.
func TestFaultRegistry(t *testing.T) {
	b := newBuilder(t)
	run, sum := standinRun(t, "999.60.01")
	// Warm the builder's cache, so that what is slow or silent in the pushes
	// below is the registry, not the first extraction of the base.
	b.build(t, run, sum, "-o", "type=docker,dest="+filepath.Join(t.TempDir(), "warm.tar")).wait(t).expect(t, 0)
	push := func(t *testing.T, host string, extra ...string) result {
		return b.build(t, run, sum, append([]string{"-t", host + "/gpuimg/fault:{driver}", "--push"}, extra...)...).wait(t)
	}

	t.Run("answers 500", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "broken", http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)
		host := hostOf(t, srv.URL)
		r := push(t, host)
		r.expect(t, 1, "pushing to the registry "+host+" failed", "docker login "+host, "the tag was not updated")
		if r.stdout != "" {
			t.Errorf("stdout %q: nothing was pushed", r.stdout)
		}
	})

	t.Run("killed mid-push", func(t *testing.T) {
		// One registry behind two servers: the one gpuimg pushes to dies at
		// the first upload; the other is how the test looks inside.
		backend := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
		inspect := httptest.NewServer(backend)
		t.Cleanup(inspect.Close)
		var dead atomic.Bool
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				dead.Store(true)
			}
			if dead.Load() {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close() // the registry process is gone
				}
				return
			}
			backend.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		host := hostOf(t, front.URL)
		r := push(t, host)
		r.expect(t, 1, "pushing to the registry "+host+" failed", "check that it is up")
		if !dead.Load() {
			t.Fatal("the push never reached an upload: the fault was not injected")
		}
		if tags, err := crane.ListTags(hostOf(t, inspect.URL) + "/gpuimg/fault"); err == nil && len(tags) > 0 {
			t.Errorf("the dead registry has tags %v: a half-pushed image is tagged", tags)
		}
	})

	t.Run("never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // held open, never read or answered
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		host := ln.Addr().String()
		out := t.TempDir()
		r := push(t, host, "--idle-timeout", "3s", "-o", "type=docker,dest="+filepath.Join(out, "img.tar"))
		r.expect(t, 1, "no progress for 3s", "the registry "+host+" does not answer", "raise --idle-timeout")
		leftNothing(t, out)
	})
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	must(t, err)
	if !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Fatalf("%s is not on 127.0.0.1", rawURL)
	}
	return u.Host
}
