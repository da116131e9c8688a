package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/driverstest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// gpuimg runs the CLI as a user would and returns stdout, stderr and the exit code.
func gpuimg(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Gpuimg(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestDriversListAndShow(t *testing.T) {
	out, _, code := gpuimg(t, nil, "drivers", "list")
	if code != 0 || !strings.HasPrefix(out, "VERSION") || strings.Count(out, "\n") != 517 {
		t.Errorf("list: exit %d, %d lines", code, strings.Count(out, "\n"))
	}
	out, _, code = gpuimg(t, nil, "drivers", "list", "--arch", "aarch64", "--branch", "production", "--json")
	var pkgs []drivers.Package
	if err := json.Unmarshal([]byte(out), &pkgs); err != nil || code != 0 || len(pkgs) == 0 {
		t.Fatalf("list --json: exit %d, %v", code, err)
	}
	for _, p := range pkgs {
		if p.Arch != "aarch64" || p.Branch != "production" {
			t.Errorf("filter let through %+v", p)
		}
	}
	out, _, code = gpuimg(t, nil, "drivers", "show", "535.261.03", "--arch", "x86_64", "--json")
	var d drivers.Driver
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || d.MaxCUDA != "12.2.2" || len(d.Packages) != 1 || d.Version.String() != "535.261.03" {
		t.Errorf("show --json: exit %d, %v, %+v", code, err, d)
	}
	out, _, code = gpuimg(t, nil, "drivers", "show", "470.82.00")
	if code != 0 || !strings.Contains(out, "max CUDA  11.4.2") || !strings.Contains(out, "NVIDIA-Linux-aarch64-470.82.00.run") {
		t.Errorf("show: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"drivers", "show", "470.82"},
		{"drivers", "show", "450"},
		{"drivers", "list", "--arch", "i386"},
		{"drivers", "list", "--branch", "stable"},
	} {
		out, errOut, code := gpuimg(t, nil, args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "gpuimg: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one error line", args, code, out, errOut)
		}
	}
}

func TestDriversMalformedVersions(t *testing.T) {
	cache := t.TempDir()
	for _, v := range []string{"450", "450.102.04.1", " 450.102.04", "450.102.04;rm -rf /", "4a0.1", ""} {
		for _, args := range [][]string{{"fetch", v, "--cache-dir", cache}, {"show", v}, {"inspect", v, "--cache-dir", cache}} {
			out, errOut, code := gpuimg(t, nil, append([]string{"drivers"}, args...)...)
			if code != 1 || out != "" || !strings.Contains(errOut, "450.102.04 or 390.157") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("malformed versions touched the cache: %v", entries)
	}
}

func TestDriversFetchInspectVerifyImport(t *testing.T) {
	run, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: "998.10.01", Compression: "xz", Decompressor: []byte("xzminidec\n")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(run)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.StripPrefix("/nv/", http.FileServer(http.Dir(filepath.Dir(run)))))
	defer srv.Close()
	cache := t.TempDir()
	mirror := srv.URL + "/nv/{file}"

	// No checksum anywhere: refused, nothing cached.
	out, errOut, code := gpuimg(t, nil, "drivers", "fetch", "998.10.01", "--arch", "x86_64", "--mirror", mirror, "--cache-dir", cache)
	if code != 1 || out != "" || !strings.Contains(errOut, "--allow-unverified") {
		t.Errorf("unverified fetch: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = gpuimg(t, nil, "drivers", "fetch", "998.10.01", "--arch", "x86_64", "--mirror", mirror, "--cache-dir", cache, "--sha256", sha)
	path := strings.TrimSpace(out)
	if code != 0 || path != filepath.Join(cache, "sha256", sha, "NVIDIA-Linux-x86_64-998.10.01.run") {
		t.Fatalf("fetch: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "downloaded NVIDIA-Linux-x86_64-998.10.01.run") || strings.Contains(errOut, "\r") {
		t.Errorf("progress off a terminal should be plain lines on stderr: %q", errOut)
	}
	// Offline, by version, from the cache.
	out, _, code = gpuimg(t, nil, "drivers", "fetch", "998.10.01", "--arch", "x86_64", "--cache-dir", cache, "--offline")
	if code != 0 || strings.TrimSpace(out) != path {
		t.Errorf("offline fetch: exit %d, %q", code, out)
	}
	out, errOut, code = gpuimg(t, nil, "drivers", "fetch", "998.10.02", "--arch", "x86_64", "--cache-dir", cache, "--offline")
	if code != 1 || out != "" || !strings.Contains(errOut, "--offline forbids") {
		t.Errorf("offline miss: exit %d, %q, %q", code, out, errOut)
	}
	out, errOut, code = gpuimg(t, nil, "drivers", "fetch", "998.10.03", "--arch", "x86_64", "--mirror", mirror, "--cache-dir", cache, "--sha256", sha)
	if code != 1 || out != "" || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("404: exit %d, %q, %q", code, out, errOut)
	}

	out, _, code = gpuimg(t, nil, "drivers", "inspect", "998.10.01", "--arch", "x86_64", "--cache-dir", cache, "--json")
	var info drivers.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 0 {
		t.Fatalf("inspect --json: exit %d, %v", code, err)
	}
	if info.Version != "998.10.01" || info.Header.Compression != "xz" || info.Header.SizeDecompress != 1 || info.Files != 12 || info.Group(drivers.ComponentCompute).Bytes != 1000 ||
		info.TypeTable != "590.48.01" || info.ManifestArch != "x86_64" {
		t.Errorf("inspect: %+v", info)
	}
	out, _, code = gpuimg(t, nil, "drivers", "inspect", run)
	if code != 0 || !strings.Contains(out, "driver      998.10.01 x86_64") || !strings.Contains(out, "payload xz") || !regexpMatch(`compute\s+2\s+1000`, out) ||
		!strings.Contains(out, "read as     nvidia-installer 590.48.01 reads it") {
		t.Errorf("inspect text: exit %d\n%s", code, out)
	}

	out, _, code = gpuimg(t, nil, "drivers", "verify", run, "--sha256", sha)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify: exit %d %q", code, out)
	}
	flipped := append([]byte{}, data...)
	flipped[len(flipped)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "NVIDIA-Linux-x86_64-998.10.01.run")
	os.WriteFile(bad, flipped, 0o644)
	out, errOut, code = gpuimg(t, nil, "drivers", "verify", bad, "--sha256", sha)
	if code != 1 || out != "" || !strings.Contains(errOut, "sha256 mismatch") {
		t.Errorf("verify flipped: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = gpuimg(t, nil, "drivers", "verify", run)
	if code != 1 || !strings.Contains(errOut, "catalog lacks") {
		t.Errorf("verify uncatalogued: exit %d %q %q", code, out, errOut)
	}
	notRun := filepath.Join(t.TempDir(), "README")
	os.WriteFile(notRun, []byte("hello\n"), 0o644)
	for _, verb := range []string{"verify", "inspect", "import"} {
		out, errOut, code = gpuimg(t, nil, "drivers", verb, notRun, "--sha256", sha)
		if verb == "inspect" {
			out, errOut, code = gpuimg(t, nil, "drivers", verb, notRun)
		}
		if code != 1 || out != "" || !strings.Contains(errOut, "not an NVIDIA .run package") {
			t.Errorf("%s of a non-.run: exit %d %q %q", verb, code, out, errOut)
		}
	}

	// Import into the default cache under XDG_CACHE_HOME.
	home := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + home}
	out, errOut, code = gpuimg(t, env, "drivers", "import", bad, "--sha256", sha)
	if code != 1 || out != "" || !strings.Contains(errOut, "sha256 mismatch") {
		t.Errorf("import flipped: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = gpuimg(t, env, "drivers", "import", run, "--sha256", sha)
	want := filepath.Join(home, "gpuimg", "drivers", "sha256", sha, "NVIDIA-Linux-x86_64-998.10.01.run")
	if code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("import: exit %d %q %q", code, out, errOut)
	}
	out, _, code = gpuimg(t, env, "drivers", "inspect", "998.10.01", "--arch", "x86_64")
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("inspect from the default cache: exit %d\n%s", code, out)
	}
}

func TestDriversUnwritableCache(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	run, _ := driverstest.Write(t.TempDir(), driverstest.Run{Version: "998.10.01"})
	out, errOut, code := gpuimg(t, nil, "drivers", "import", run, "--allow-unverified", "--cache-dir", filepath.Join(file, "cache"))
	if code != 1 || out != "" || !strings.Contains(errOut, "not writable") {
		t.Errorf("exit %d %q %q", code, out, errOut)
	}
}

func regexpMatch(pattern, s string) bool {
	return regexp.MustCompile(pattern).MatchString(s)
}

func TestDriversFetchInterruptedThenResumed(t *testing.T) {
	blob := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{3}).Read(blob) // incompressible: the package is megabytes
	run, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: "998.10.01", Files: map[string][]byte{"blob": blob}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(run)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	var hold atomic.Bool
	hold.Store(true)
	ranges := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "" {
			ranges <- rg
		}
		if hold.Load() {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // stall until the client goes away
			return
		}
		http.ServeContent(w, r, "x.run", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	cache := t.TempDir()
	args := []string{"drivers", "fetch", "998.10.01", "--arch", "x86_64", "--mirror", srv.URL + "/{file}", "--sha256", sha, "--cache-dir", cache}

	cmd := exec.Command(testenv.Gpuimg(t), args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once some of the file is on disk (it is written in 1 MiB
	// chunks; the server sends half, then stalls).
	part := filepath.Join(cache, "partial", "NVIDIA-Linux-x86_64-998.10.01.run."+sha+".part")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(part); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the partial download never reached half the file; stderr:\n%s", errOut.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(errOut.String(), "run the command again to resume") {
		t.Fatalf("interrupted fetch: %v, stderr %q; want exit 130 and how to resume", err, errOut.String())
	}
	// How much of the sent half had arrived when the signal came depends on
	// the machine's load; what must hold is that the next run resumes at
	// exactly what the interrupted one left on disk.
	st, err := os.Stat(part)
	if err != nil || st.Size() == 0 || st.Size() > int64(len(data)/2) {
		t.Fatalf("after the interrupt the partial file is %v, %v; want 1 to %d bytes", st, err, len(data)/2)
	}
	kept := st.Size()

	hold.Store(false)
	out, errText, code := gpuimg(t, nil, args...)
	if code != 0 {
		t.Fatalf("resumed fetch: exit %d, %s", code, errText)
	}
	if got := <-ranges; got != "bytes="+strconv.FormatInt(kept, 10)+"-" {
		t.Errorf("the second run asked for %s; the partial file held %d bytes", got, kept)
	}
	if got, _ := os.ReadFile(strings.TrimSpace(out)); !bytes.Equal(got, data) {
		t.Errorf("the resumed file is not the package")
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there after success: %v", err)
	}
}

// What inspect finds odd goes to stderr in the one warning style; the
// report on stdout stays data.
func TestDriversInspectWarnsOnStderr(t *testing.T) {
	run, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: "998.10.01",
		Manifest: driverstest.DefaultManifest("998.10.02", "x86_64"), Files: driverstest.DefaultFiles("998.10.02")})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := gpuimg(t, nil, "drivers", "inspect", run)
	if code != 0 || !strings.Contains(out, "driver      998.10.01") || strings.Contains(out, "warning") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, "gpuimg: warning: "+run+": the header says 998.10.01 but .manifest says 998.10.02") {
		t.Errorf("stderr %q", errOut)
	}
}
