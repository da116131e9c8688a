package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// bound is the most any one gpuimg run of this suite may take: every fault
// here must end in seconds, and a hang fails the test instead of CI.
const bound = 2 * time.Minute

// result is one finished gpuimg run.
type result struct {
	stdout, stderr string
	code           int
}

// gpuimg runs the CLI with env added and returns what it printed and its
// exit status. It fails the test when the run outlives bound.
func gpuimg(t *testing.T, env []string, args ...string) result {
	t.Helper()
	p := start(t, env, args...)
	return p.wait(t)
}

// proc is a gpuimg run in progress; its stderr can be watched line by line.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr bytes.Buffer
	lines  chan string
	done   chan struct{}
	cancel context.CancelFunc
	killed bool // by the test, on purpose
}

// kill ends the run with SIGKILL, as a crash or the OOM killer would.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	p := &proc{lines: make(chan string, 4096), done: make(chan struct{}), cancel: cancel}
	p.cmd = exec.CommandContext(ctx, testenv.Gpuimg(t), args...)
	p.cmd.Env = append(append(os.Environ(), "BUILDKIT_PROGRESS=plain", "SOURCE_DATE_EPOCH="), env...)
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// waitFor returns once stderr shows a line containing s (BuildKit's plain
// progress: the build is under way). It fails the test when the run ends
// first.
func (p *proc) waitFor(t *testing.T, s string) {
	t.Helper()
	for line := range p.lines {
		if strings.Contains(line, s) {
			return
		}
	}
	t.Fatalf("gpuimg ended without printing %q; stderr:\n%s", s, p.errText())
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) wait(t *testing.T) result {
	t.Helper()
	go func() {
		for range p.lines { // keep draining after waitFor
		}
	}()
	<-p.done
	err := p.cmd.Wait()
	p.cancel()
	r := result{stdout: p.stdout.String(), stderr: p.errText()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
		if exit.ExitCode() == -1 && !p.killed {
			t.Fatalf("gpuimg %s did not end within %s (killed); stderr:\n%s", strings.Join(p.cmd.Args[1:], " "), bound, r.stderr)
		}
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// expect checks the exit status and that stderr says each of says.
func (r result) expect(t *testing.T, code int, says ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, code, tail(r.stderr))
	}
	for _, s := range says {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not say %q:\n%s", s, tail(r.stderr))
		}
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// entries lists everything under dir (relative paths, hidden files too), so
// a test can assert what was left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// leftNothing fails the test when dir holds anything but want.
func leftNothing(t *testing.T, dir string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := entries(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// standinRun generates a stand-in driver .run (tiny) and returns its path
// and sha256.
func standinRun(t *testing.T, version string) (string, string) {
	t.Helper()
	path, err := standin.Generate(t.TempDir(), standin.Options{Version: version})
	if err != nil {
		t.Fatalf("stand-in driver %s: %v", version, err)
	}
	sum, _, err := drivers.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

var testTime = time.Unix(0, 0)
