package faults_test

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/driverstest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// mirror serves one driver package on 127.0.0.1 and counts the requests
// for it. Without Content-Length it streams the file in chunks (the size is
// then unknown until the end).
type mirror struct {
	url, file, sha, path string
	data                 []byte
	gets                 atomic.Int32
	noLength             atomic.Bool
}

func newMirror(t *testing.T, version string, size int) *mirror {
	t.Helper()
	blob := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(blob) // incompressible
	path, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: version, Files: map[string][]byte{"blob": blob}})
	if err != nil {
		t.Fatal(err)
	}
	m := &mirror{path: path, file: filepath.Base(path)}
	m.data, _ = os.ReadFile(path)
	m.sha, _, _ = drivers.FileSHA256(path)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/"+m.file) {
			http.NotFound(w, r)
			return
		}
		m.gets.Add(1)
		if !m.noLength.Load() {
			http.ServeContent(w, r, m.file, testTime, strings.NewReader(string(m.data)))
			return
		}
		for off := 0; off < len(m.data); off += 64 << 10 {
			if _, err := w.Write(m.data[off:min(off+64<<10, len(m.data))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

func (m *mirror) fetchArgs(version, cache string, extra ...string) []string {
	return append([]string{"drivers", "fetch", version, "--arch", "x86_64", "--mirror", m.url + "/{file}", "--sha256", m.sha, "--cache-dir", cache}, extra...)
}

// smallTmpfs mounts a tmpfs of size (e.g. "1m") and unmounts it at the end.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs: %v: %s", size, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// A download that cannot fit is refused before the first byte when its size
// is known, and stopped at the first ENOSPC when it is not: no retry, no
// other mirror suggested, the disk and the bytes named, no partial file
// left filling the disk (unless --keep-partial).
func TestFaultFetchOnAFullDisk(t *testing.T) {
	const version = "998.30.01"
	m := newMirror(t, version, 3<<20)
	for _, c := range []struct {
		name     string
		noLength bool
		extra    []string
		says     string
		kept     bool
	}{
		{"size known: refused before downloading", false, nil, "it needs 3", false},
		{"size unknown: stopped at ENOSPC", true, nil, "the partial download was removed", false},
		{"size unknown, --keep-partial", true, []string{"--keep-partial"}, "is kept, as --keep-partial asks", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := smallTmpfs(t, "1m")
			cache := filepath.Join(disk, "cache")
			m.noLength.Store(c.noLength)
			m.gets.Store(0)
			r := gpuimg(t, nil, m.fetchArgs(version, cache, c.extra...)...)
			r.expect(t, 1, "no space left for "+m.file+" on the disk holding "+filepath.Join(cache, "partial"), "mounted at "+disk,
				"free space there, or pass --cache-dir on another disk", c.says)
			for _, wrong := range []string{"retrying", "--mirror"} {
				if strings.Contains(r.stderr, wrong) {
					t.Errorf("stderr says %q on a full disk:\n%s", wrong, r.stderr)
				}
			}
			if n := m.gets.Load(); n != 1 {
				t.Errorf("%d requests for the package, want 1 (no retries on ENOSPC)", n)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			parts := entries(t, filepath.Join(cache, "partial"))
			if c.kept != (len(parts) == 1) {
				t.Errorf("partial/ holds %q (keep: %v)", parts, c.kept)
			}
			for _, d := range []string{"sha256", "verified"} {
				leftNothing(t, filepath.Join(cache, d))
			}
		})
	}
}

// A byte flipped in a cached package is found on the next use: offline it
// is refused with the reason, online it is removed and downloaded again;
// builds that use the cache are refused the same way.
func TestFaultCorruptedCache(t *testing.T) {
	const version = "998.31.01"
	m := newMirror(t, version, 1<<20)
	cache := t.TempDir()
	r := gpuimg(t, nil, m.fetchArgs(version, cache)...)
	r.expect(t, 0)
	cached := strings.TrimSpace(r.stdout)
	flip := func() {
		data, err := os.ReadFile(cached)
		must(t, err)
		data[len(data)/2] ^= 0x40
		must(t, os.WriteFile(cached, data, 0o644))
	}

	flip()
	r = gpuimg(t, nil, m.fetchArgs(version, cache, "--offline")...)
	r.expect(t, 1, "the cached "+cached+" has sha256", "not the "+m.sha, "changed on disk", "removed it", "--offline forbids downloading it again")
	if _, err := os.Stat(cached); !os.IsNotExist(err) {
		t.Errorf("the damaged copy is still in the cache: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(cache, "verified", m.file)); !os.IsNotExist(err) {
		t.Errorf("the name link to the damaged copy is still there: %v", err)
	}

	gpuimg(t, nil, m.fetchArgs(version, cache)...).expect(t, 0)
	flip()
	r = gpuimg(t, nil, m.fetchArgs(version, cache)...)
	r.expect(t, 0, "gpuimg: warning:", "removed it; downloading it again")
	if got, _, _ := drivers.FileSHA256(cached); got != m.sha || strings.TrimSpace(r.stdout) != cached {
		t.Errorf("after the refetch %s has sha256 %s (stdout %q)", cached, got, r.stdout)
	}

	flip()
	out := t.TempDir()
	r = gpuimg(t, nil, "build", "--driver", version, "--sha256", m.sha, "--cache-dir", cache, "--offline",
		"--addr", "unix://"+filepath.Join(out, "no-builder.sock"), "-o", "type=docker,dest="+filepath.Join(out, "img", "out.tar"))
	r.expect(t, 1, "has sha256", "removed it", "--offline forbids")
	leftNothing(t, out)
}

// A truncated package that no checksum vouches for (--allow-unverified) is
// refused before anything is built or cached: its payload is walked whole.
func TestFaultTruncatedUnverifiedPackage(t *testing.T) {
	const version = "998.32.01"
	m := newMirror(t, version, 1<<20)
	trunc := filepath.Join(t.TempDir(), m.file)
	must(t, os.WriteFile(trunc, m.data[:len(m.data)*6/10], 0o644))
	out, cache := t.TempDir(), t.TempDir()

	r := gpuimg(t, nil, "build", "--driver-file", trunc, "--allow-unverified", "--cache-dir", cache,
		"--addr", "unix://"+filepath.Join(out, "no-builder.sock"), "-o", "type=docker,dest="+filepath.Join(out, "img", "out.tar"))
	r.expect(t, 1, "the unverified driver package is not whole", "truncated", "fix or replace the file")
	if strings.Contains(r.stderr, "no BuildKit answering") {
		t.Errorf("the truncation was not found before the builder was reached")
	}
	leftNothing(t, out)

	r = gpuimg(t, nil, "drivers", "import", trunc, "--allow-unverified", "--cache-dir", cache)
	r.expect(t, 1, "not whole", "truncated", "removed from the cache")
	for _, d := range []string{"sha256", "unverified"} {
		leftNothing(t, filepath.Join(cache, d))
	}
}
