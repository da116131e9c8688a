package drivers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpuimg/gpuimg/drivers/driverstest"
)

// TestMain doubles as the helper process of TestFetchTwoProcesses: run with
// GPUIMG_FETCH_HELPER set, the test binary fetches once and exits.
func TestMain(m *testing.M) {
	if os.Getenv("GPUIMG_FETCH_HELPER") != "" {
		os.Exit(fetchHelper())
	}
	os.Exit(m.Run())
}

func fetchHelper() int {
	run, err := fetchRun(context.Background(), Want{
		Version:  MustParseVersion(os.Getenv("GPUIMG_FETCH_VERSION")),
		Arch:     ArchX86_64,
		Mirror:   os.Getenv("GPUIMG_FETCH_MIRROR"),
		SHA256:   os.Getenv("GPUIMG_FETCH_SHA256"),
		CacheDir: os.Getenv("GPUIMG_FETCH_CACHE"),
		Progress: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(run.Path)
	return 0
}

// runServer serves .run files by name with a chosen misbehaviour and counts
// what it was asked.
type runServer struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	mode     string        // "", "404", "500", "stall", "truncate-once", "truncate-always", "flip", "slow", "hold", ...
	release  chan struct{} // "hold": the body's second half waits for it
	requests atomic.Int32
	full     atomic.Int32 // requests answered from byte 0
	ranges   []string
}

func newRunServer(t *testing.T) *runServer {
	s := &runServer{files: map[string][]byte{}, release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *runServer) setMode(m string) { s.mu.Lock(); s.mode = m; s.mu.Unlock() }

func (s *runServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	mode := s.mode
	data, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
	if rg := r.Header.Get("Range"); rg != "" {
		s.ranges = append(s.ranges, rg)
	} else {
		s.full.Add(1)
	}
	switch mode {
	case "truncate-once":
		s.mode = ""
	case "truncate-once-norange":
		s.mode = "norange"
	}
	s.mu.Unlock()
	if !ok || mode == "404" {
		http.NotFound(w, r)
		return
	}
	switch mode {
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
	case "stall":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/3])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case "stall-headers":
		<-r.Context().Done()
	case "norange":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data) // 200 with the whole file, whatever Range asked
	case "truncate-once-norange":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/2])
	case "truncate-once", "truncate-always":
		if r.Header.Get("Range") != "" {
			http.ServeContent(w, r, "x.run", time.Time{}, bytes.NewReader(data))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/2]) // the server closes the connection short of Content-Length
	case "flip":
		bad := append([]byte{}, data...)
		bad[len(bad)/2] ^= 0x01
		http.ServeContent(w, r, "x.run", time.Time{}, bytes.NewReader(bad))
	case "hold":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		select {
		case <-s.release:
		case <-time.After(10 * time.Second):
		}
		w.Write(data[len(data)/2:])
	case "slow":
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		for i := 0; i < len(data); i += 64 << 10 {
			w.Write(data[i:min(i+64<<10, len(data))])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	default:
		http.ServeContent(w, r, "x.run", time.Time{}, bytes.NewReader(data))
	}
}

// addRun generates a package whose bulk makes resume and truncation visible.
func (s *runServer) addRun(t *testing.T, version string) (data []byte, sha string) {
	t.Helper()
	files := driverstest.DefaultFiles(version)
	bulk := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{7}).Read(bulk) // incompressible, so the package stays megabytes big
	files["libnvidia-rtcore.so."+version] = bulk
	p, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: version, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(p)
	s.mu.Lock()
	s.files[filepath.Base(p)] = data
	s.mu.Unlock()
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

func (s *runServer) template() string { return s.URL + "/{file}" }

func testOptions(s *runServer, version, sha, cache string) Want {
	return Want{
		Version: MustParseVersion(version), Arch: ArchX86_64, Mirror: s.template(), SHA256: sha,
		CacheDir: cache, StallTimeout: 300 * time.Millisecond, RetryDelay: 10 * time.Millisecond,
	}
}

// noPartials checks a failed or finished fetch left nothing half-written
// outside partial/, and reports what partial/ holds.
func cacheFiles(t *testing.T, cache string) (blobs, partials []string) {
	t.Helper()
	filepath.Walk(cache, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(cache, p)
		switch strings.Split(rel, string(filepath.Separator))[0] {
		case cacheBlobs:
			blobs = append(blobs, rel)
		case cachePartials:
			partials = append(partials, rel)
		}
		return nil
	})
	return blobs, partials
}

func TestFetchVerifiesAndCaches(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	cache := t.TempDir()
	var progress bytes.Buffer
	opts := testOptions(s, "998.10.01", strings.ToUpper(sha), cache)
	opts.Progress = &progress
	run, err := fetchRun(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if run.Path != filepath.Join(cache, "sha256", sha, "NVIDIA-Linux-x86_64-998.10.01.run") || run.SHA256 != sha || run.VerifiedBy != VerifiedByFlag || run.Size != int64(len(data)) {
		t.Errorf("run = %+v", run)
	}
	got, _ := os.ReadFile(run.Path)
	if !bytes.Equal(got, data) {
		t.Fatalf("cached file differs from the served one")
	}
	if !strings.Contains(progress.String(), "downloading NVIDIA-Linux-x86_64-998.10.01.run") || !strings.Contains(progress.String(), "downloaded ") || strings.Contains(progress.String(), "\r") {
		t.Errorf("non-terminal progress should be two plain lines, got %q", progress.String())
	}
	if _, partials := cacheFiles(t, cache); len(partials) != 0 {
		t.Errorf("partial files left behind: %v", partials)
	}
	// A second fetch is answered from the cache, without a request.
	before := s.requests.Load()
	again, err := fetchRun(context.Background(), opts)
	if err != nil || again.Path != run.Path || again.Source != "cache" || s.requests.Load() != before {
		t.Errorf("second fetch: %+v, %v, %d new requests", again, err, s.requests.Load()-before)
	}
	// Offline finds it too, by checksum or by name.
	opts.Offline, opts.SHA256 = true, ""
	off, err := fetchRun(context.Background(), opts)
	if err != nil || off.Path != run.Path {
		t.Errorf("offline fetch: %+v, %v", off, err)
	}
	if c, err := FindCached(cache, MustParseVersion("998.10.01"), ArchX86_64, ""); err != nil || c.Path != run.Path {
		t.Errorf("FindCached by name = %q, %v", c.Path, err)
	}
	if _, err := FindCached(cache, MustParseVersion("998.10.02"), ArchX86_64, ""); !errors.Is(err, ErrNotCached) {
		t.Errorf("FindCached of an absent version: %v", err)
	}
}

func TestFetchProgressBar(t *testing.T) {
	s := newRunServer(t)
	s.addRun(t, "998.10.01")
	s.setMode("slow")
	var progress bytes.Buffer
	opts := testOptions(s, "998.10.01", "", t.TempDir())
	opts.AllowUnverified, opts.Progress, opts.ProgressBar = true, &progress, true
	if _, err := fetchRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "\r[") || !strings.Contains(progress.String(), "%") || !strings.Contains(progress.String(), "MB/s") {
		t.Errorf("a terminal should get a redrawn bar, got %q", progress.String())
	}
}

func TestFetchCatalogChecksum(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "999.1.01")
	useCatalog(t, Package{Version: MustParseVersion("999.1.01"), Arch: ArchX86_64, Variant: VariantFull, Branch: "production", SHA256: sha, Size: int64(len(data)), URL: s.URL + "/NVIDIA-Linux-x86_64-999.1.01.run"})
	cache := t.TempDir()
	run, err := fetchRun(context.Background(), testOptions(s, "999.1.01", "", cache))
	if err != nil {
		t.Fatal(err)
	}
	if run.VerifiedBy != VerifiedByCatalog || run.SHA256 != sha {
		t.Errorf("run = %+v", run)
	}
	if c, err := FindCached(cache, MustParseVersion("999.1.01"), ArchX86_64, ""); err != nil || c.Path != run.Path {
		t.Errorf("FindCached = %q, %v", c.Path, err)
	}

	// A mirror serving other bytes, or more of them, fails the catalog's pins.
	s.mu.Lock()
	s.files["NVIDIA-Linux-x86_64-999.1.01.run"] = append(append([]byte{}, data...), '\n')
	s.mu.Unlock()
	_, err = fetchRun(context.Background(), testOptions(s, "999.1.01", "", t.TempDir()))
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "the catalog says") {
		t.Errorf("a longer file: %v", err)
	}
	s.setMode("flip")
	s.mu.Lock()
	s.files["NVIDIA-Linux-x86_64-999.1.01.run"] = data
	s.mu.Unlock()
	_, err = fetchRun(context.Background(), testOptions(s, "999.1.01", "", t.TempDir()))
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "the catalog's 999.1.01 x86_64 package has") {
		t.Errorf("a flipped byte: %v", err)
	}
}

func TestFetchFailures(t *testing.T) {
	for _, tc := range []struct {
		mode, reason string
		keepsPart    bool
	}{
		{"404", "HTTP 404", false},
		{"500", "HTTP 500", false},
		{"stall", "the server sent nothing for 300ms", true},
		{"stall-headers", "timeout awaiting response headers", false},
		{"truncate-always", "unexpected EOF", true},
		{"flip", "sha256 mismatch", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := newRunServer(t)
			_, sha := s.addRun(t, "998.10.01")
			s.setMode(tc.mode)
			if tc.mode == "truncate-always" {
				s.setMode("truncate-always")
			}
			cache := t.TempDir()
			opts := testOptions(s, "998.10.01", sha, cache)
			if tc.mode == "truncate-always" {
				// Range requests succeed in this mode, so one attempt only.
				opts.Attempts = 1
			}
			_, err := fetchRun(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want %q", err, tc.reason)
			}
			blobs, partials := cacheFiles(t, cache)
			if len(blobs) != 0 {
				t.Errorf("a failed fetch left %v in the cache", blobs)
			}
			if tc.keepsPart != (len(partials) == 1) {
				t.Errorf("partials = %v, want kept=%v", partials, tc.keepsPart)
			}
			if tc.keepsPart && !strings.Contains(err.Error(), "run the command again to resume") {
				t.Errorf("the error should say how to resume: %v", err)
			}
		})
	}
}

func TestFetchResumesWithinOneRun(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	s.setMode("truncate-once")
	run, err := fetchRun(context.Background(), testOptions(s, "998.10.01", sha, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", len(data)/2); len(s.ranges) != 1 || s.ranges[0] != want {
		t.Errorf("ranges asked = %v, want [%s]", s.ranges, want)
	}
	if s.full.Load() != 1 {
		t.Errorf("%d full downloads, want 1", s.full.Load())
	}
	if got, _, err := FileSHA256(run.Path); err != nil || got != sha {
		t.Errorf("cached file has sha256 %s (%v), want %s", got, err, sha)
	}
}

func TestFetchRestartsWhenRangeIsIgnored(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	s.setMode("truncate-once-norange")
	run, err := fetchRun(context.Background(), testOptions(s, "998.10.01", sha, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ranges) != 1 || s.full.Load() != 1 {
		t.Errorf("want one full request then one Range request (answered 200): ranges %v, full %d", s.ranges, s.full.Load())
	}
	if got, _ := os.ReadFile(run.Path); !bytes.Equal(got, data) {
		t.Errorf("the restarted download is not the file")
	}
}

func TestFetchResumesAcrossRuns(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	cache := t.TempDir()
	s.setMode("stall")
	opts := testOptions(s, "998.10.01", sha, cache)
	opts.Attempts = 1
	if _, err := fetchRun(context.Background(), opts); err == nil {
		t.Fatal("a stalled server gave no error")
	}
	_, partials := cacheFiles(t, cache)
	if len(partials) != 1 {
		t.Fatalf("partials = %v", partials)
	}
	st, _ := os.Stat(filepath.Join(cache, partials[0]))
	s.setMode("")
	// The server now answers in full: a short stall timeout would only
	// let a loaded machine's slowness cut the resumed download again.
	resume := testOptions(s, "998.10.01", sha, cache)
	resume.StallTimeout = time.Minute
	run, err := fetchRun(context.Background(), resume)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", st.Size()); len(s.ranges) != 1 || s.ranges[0] != want || st.Size() == 0 || st.Size() >= int64(len(data)) {
		t.Errorf("second run asked %v, want [%s] (partial %d of %d bytes)", s.ranges, want, st.Size(), len(data))
	}
	if got, _, err := FileSHA256(run.Path); err != nil || got != sha {
		t.Errorf("cached file has sha256 %s (%v), want %s", got, err, sha)
	}
}

func TestFetchChecksumSources(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	cache := t.TempDir()
	opts := testOptions(s, "998.10.01", "", cache)

	_, err := fetchRun(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "not in the catalog and no checksum") || !errors.Is(err, ErrUnverifiable) {
		t.Fatalf("no checksum: err = %v", err)
	}
	if blobs, _ := cacheFiles(t, cache); len(blobs) != 0 {
		t.Errorf("refused fetch cached %v", blobs)
	}

	// A wrong sidecar fails verification; a right one verifies.
	s.mu.Lock()
	s.files["NVIDIA-Linux-x86_64-998.10.01.run.sha256sum"] = []byte(strings.Repeat("0", 64) + "  NVIDIA-Linux-x86_64-998.10.01.run\n")
	s.mu.Unlock()
	if _, err := fetchRun(context.Background(), opts); !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("wrong sidecar: err = %v", err)
	}
	s.mu.Lock()
	s.files["NVIDIA-Linux-x86_64-998.10.01.run.sha256sum"] = []byte(sha + "  NVIDIA-Linux-x86_64-998.10.01.run\n")
	s.mu.Unlock()
	run, err := fetchRun(context.Background(), opts)
	if err != nil || run.VerifiedBy != VerifiedBySidecar || run.SHA256 != sha {
		t.Fatalf("sidecar: %+v, %v", run, err)
	}

	// --allow-unverified opens a version with no checksum anywhere.
	s2 := newRunServer(t)
	data2, sha2 := s2.addRun(t, "997.20.02")
	opts2 := testOptions(s2, "997.20.02", "", t.TempDir())
	opts2.AllowUnverified = true
	run2, err := fetchRun(context.Background(), opts2)
	if err != nil || run2.VerifiedBy != "" || run2.SHA256 != sha2 || run2.Size != int64(len(data2)) {
		t.Errorf("unverified: %+v, %v", run2, err)
	}
	_ = data
}

func TestFetchWrongPackage(t *testing.T) {
	s := newRunServer(t)
	data, _ := s.addRun(t, "997.20.02")
	// Serve the 470 package under the 535 name.
	s.mu.Lock()
	s.files["NVIDIA-Linux-x86_64-996.30.03.run"] = data
	s.mu.Unlock()
	sum := sha256.Sum256(data)
	cache := t.TempDir()
	_, err := fetchRun(context.Background(), testOptions(s, "996.30.03", hex.EncodeToString(sum[:]), cache))
	if !errors.Is(err, ErrWrongPackage) {
		t.Fatalf("err = %v, want ErrWrongPackage", err)
	}
	if blobs, partials := cacheFiles(t, cache); len(blobs)+len(partials) != 0 {
		t.Errorf("a wrong package was kept: %v %v", blobs, partials)
	}
}

func TestFetchOfflineNeverConnects(t *testing.T) {
	s := newRunServer(t)
	_, sha := s.addRun(t, "998.10.01")
	opts := testOptions(s, "998.10.01", sha, t.TempDir())
	opts.Offline = true
	_, err := fetchRun(context.Background(), opts)
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "--offline") {
		t.Errorf("err = %v", err)
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("offline fetch made %d requests", n)
	}
}

func TestFetchUnwritableCache(t *testing.T) {
	s := newRunServer(t)
	_, sha := s.addRun(t, "998.10.01")
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o644)
	_, err := fetchRun(context.Background(), testOptions(s, "998.10.01", sha, filepath.Join(file, "cache")))
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "--cache-dir") {
		t.Errorf("err = %v", err)
	}
	if os.Geteuid() != 0 { // root writes through directory permissions
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		_, err := fetchRun(context.Background(), testOptions(s, "998.10.01", sha, ro))
		if err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only dir: err = %v", err)
		}
	}
}

func TestFetchRejectsBadOptions(t *testing.T) {
	for _, opts := range []Want{
		{Arch: ArchX86_64},
		{Version: MustParseVersion("998.10.01"), Arch: "ppc64le"},
		{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, SHA256: "abc"},
		{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, Variant: "32bit"},
		{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, Mirror: "mars"},
	} {
		if _, err := fetchRun(context.Background(), opts); err == nil {
			t.Errorf("fetchRun(%+v) accepted bad options", opts)
		}
	}
}

func TestFetchTwoProcesses(t *testing.T) {
	s := newRunServer(t)
	data, sha := s.addRun(t, "998.10.01")
	// The first download stalls halfway until the other process says it is
	// waiting for the lock, so the two always overlap.
	s.setMode("hold")
	var releaseOnce sync.Once
	cache := t.TempDir()
	type result struct {
		out, errOut string
		err         error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "GPUIMG_FETCH_HELPER=1", "GPUIMG_FETCH_VERSION=998.10.01",
				"GPUIMG_FETCH_MIRROR="+s.template(), "GPUIMG_FETCH_SHA256="+sha, "GPUIMG_FETCH_CACHE="+cache)
			var out, errOut bytes.Buffer
			cmd.Stdout = &out
			stderr, err := cmd.StderrPipe()
			if err == nil {
				err = cmd.Start()
			}
			if err != nil {
				results[i] = result{err: err}
				return
			}
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				errOut.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "waiting for another gpuimg") {
					releaseOnce.Do(func() { close(s.release) })
				}
			}
			err = cmd.Wait()
			results[i] = result{strings.TrimSpace(out.String()), errOut.String(), err}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("process %d: %v\n%s", i, r.err, r.errOut)
		}
	}
	if results[0].out != results[1].out {
		t.Errorf("the two processes returned %q and %q", results[0].out, results[1].out)
	}
	got, _ := os.ReadFile(results[0].out)
	if !bytes.Equal(got, data) {
		t.Errorf("the cached file is not intact")
	}
	if n := s.full.Load(); n != 1 {
		t.Errorf("the server sent the file %d times; the lock should make the second process wait and reuse it", n)
	}
	if !strings.Contains(results[0].errOut+results[1].errOut, "waiting for another gpuimg") {
		t.Errorf("neither process reported waiting:\n%s\n%s", results[0].errOut, results[1].errOut)
	}
	if _, partials := cacheFiles(t, cache); len(partials) != 0 {
		t.Errorf("partials left: %v", partials)
	}
}

func TestParseSHA256Sum(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for line, ok := range map[string]bool{
		sha + "  NVIDIA-Linux-x86_64-1.run\n": true,
		sha + " *NVIDIA-Linux-x86_64-1.run":   true,
		sha:                                   true,
		sha + "  other.run":                   false,
		"xyz  NVIDIA-Linux-x86_64-1.run":      false,
		"":                                    false,
	} {
		got, err := parseSHA256Sum(line, "NVIDIA-Linux-x86_64-1.run")
		if (err == nil) != ok || (ok && got != sha) {
			t.Errorf("parseSHA256Sum(%q) = %q, %v", line, got, err)
		}
	}
}

// useCatalog adds packages to the loaded catalog for one test.
func useCatalog(t *testing.T, pkgs ...Package) {
	t.Helper()
	if _, err := loadCatalog(); err != nil {
		t.Fatal(err)
	}
	saved := catalog
	catalog = append(append([]Package{}, saved...), pkgs...)
	t.Cleanup(func() { catalog = saved })
}

func TestFetchSuggestsTheCatalogsVariant(t *testing.T) {
	// 340.108 was published only without the 32-bit libraries.
	_, err := fetchRun(context.Background(), Want{Version: MustParseVersion("340.108"), Arch: ArchX86_64, Variant: VariantFull, CacheDir: t.TempDir(), Offline: false, Mirror: "http://127.0.0.1:1/{file}"})
	if err == nil || !strings.Contains(err.Error(), "--arch x86_64 --variant no-compat32") {
		t.Errorf("err = %v", err)
	}
}

// fetchRun is `gpuimg drivers fetch`: Resolve into the cache.
func fetchRun(ctx context.Context, w Want) (Resolved, error) {
	w.Download = true
	r, _, err := Resolve(ctx, w)
	return r, err
}

// importRun is `gpuimg drivers import FILE`: Resolve FILE into the cache.
func importRun(file string, w Want) (Resolved, error) {
	w.File, w.Download = file, true
	r, _, err := Resolve(context.Background(), w)
	return r, err
}
