package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

// Step is one BuildKit vertex (or one progress item inside it, such as the
// exporter's "exporting layers") with its wall time.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// At is when it started, in seconds after the build's first vertex.
	At     float64 `json:"at"`
	Cached bool    `json:"cached,omitempty"`
	// Sub marks a progress item inside the vertex listed before it.
	Sub bool `json:"sub,omitempty"`
}

// Run is one timed build.
type Run struct {
	Side    string  `json:"side"`
	Kind    string  `json:"kind"` // cold or warm
	Seconds float64 `json:"seconds"`
	// BuilderCPU is the CPU time buildkitd and its build steps used (user +
	// sys, reaped children included): unlike Seconds, other work on the
	// machine does not inflate it.
	BuilderCPU float64 `json:"builder_cpu_seconds,omitempty"`
	Steps      []Step  `json:"steps"`
}

// statusLog keeps the last state of every vertex and progress item of a
// build, from the client's status channel or gpuimg's --progress rawjson.
type statusLog struct {
	mu       sync.Mutex
	vertices map[digest.Digest]*client.Vertex
	items    map[string]*client.VertexStatus
}

func newStatusLog() *statusLog {
	return &statusLog{vertices: map[digest.Digest]*client.Vertex{}, items: map[string]*client.VertexStatus{}}
}

func (l *statusLog) add(s *client.SolveStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range s.Vertexes {
		l.vertices[v.Digest] = v
	}
	for _, st := range s.Statuses {
		l.items[string(st.Vertex)+"\x00"+st.ID] = st
	}
}

// steps lists the vertices in start order, each followed by its timed
// progress items; unstarted (fully cached) vertices are listed as cached.
func (l *statusLog) steps() []Step {
	l.mu.Lock()
	defer l.mu.Unlock()
	type vtx struct {
		v     *client.Vertex
		start time.Time
	}
	var vs []vtx
	for _, v := range l.vertices {
		var start time.Time
		if v.Started != nil {
			start = *v.Started
		}
		vs = append(vs, vtx{v, start})
	}
	sort.Slice(vs, func(i, j int) bool {
		if !vs[i].start.Equal(vs[j].start) {
			return vs[i].start.Before(vs[j].start)
		}
		return vs[i].v.Name < vs[j].v.Name
	})
	var t0 time.Time
	for _, x := range vs {
		if !x.start.IsZero() {
			t0 = x.start
			break
		}
	}
	at := func(t *time.Time) float64 {
		if t == nil || t0.IsZero() {
			return 0
		}
		return t.Sub(t0).Seconds()
	}
	var out []Step
	for _, x := range vs {
		out = append(out, Step{Name: x.v.Name, Seconds: span(x.v.Started, x.v.Completed), At: at(x.v.Started), Cached: x.v.Cached})
		var subs []*client.VertexStatus
		for _, st := range l.items {
			if st.Vertex == x.v.Digest && st.Started != nil && st.Completed != nil {
				subs = append(subs, st)
			}
		}
		sort.Slice(subs, func(i, j int) bool { return subs[i].Started.Before(*subs[j].Started) })
		for _, st := range subs {
			if d := span(st.Started, st.Completed); d >= 0.05 {
				out = append(out, Step{Name: st.ID, Seconds: d, At: at(st.Started), Sub: true})
			}
		}
	}
	return out
}

func span(start, end *time.Time) float64 {
	if start == nil || end == nil {
		return 0
	}
	return end.Sub(*start).Seconds()
}

// recipeDockerfile is the classic recipe of the issue: tools from apt, then
// wget, chmod and run the installer in one RUN.
func recipeDockerfile(baseRef, url, runName string) string {
	return fmt.Sprintf(`FROM %s
RUN apt update && apt install -y wget kmod
RUN wget %s && chmod +x %s && ./%s --accept-license --ui=none --no-kernel-module --no-questions && rm -rf %s
`, baseRef, url, runName, runName, runName)
}

// solveRecipe builds the Dockerfile in dir through buildkitd's own
// dockerfile.v0 frontend, exported as a docker tarball to tarPath and pushed
// as pushRef in the same solve, the way `docker buildx build` does it.
func solveRecipe(ctx context.Context, addr, dir, tarPath, pushRef string) (*statusLog, error) {
	c, err := client.New(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return nil, err
	}
	tmp := tarPath + ".tmp"
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: map[string]string{"filename": "Dockerfile"},
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports: []client.ExportEntry{
			{Type: client.ExporterDocker, Attrs: map[string]string{"name": pushRef},
				Output: func(map[string]string) (io.WriteCloser, error) { return os.Create(tmp) }},
			{Type: client.ExporterImage, Attrs: map[string]string{"name": pushRef, "push": "true"}},
		},
	}
	log := newStatusLog()
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		for s := range ch {
			log.add(s)
		}
		close(done)
	}()
	_, err = c.Solve(ctx, nil, opt, ch)
	<-done
	if err != nil {
		_ = os.Remove(tmp)
		return log, fmt.Errorf("classic recipe: %w%s", err, lastLogs(log))
	}
	return log, os.Rename(tmp, tarPath)
}

// lastLogs is a hint for a failed recipe: the names of the vertices that
// errored.
func lastLogs(l *statusLog) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, v := range l.vertices {
		if v.Error != "" {
			fmt.Fprintf(&b, "\n  step %q: %s", v.Name, v.Error)
		}
	}
	return b.String()
}

// runGpuimg runs the gpuimg CLI with --progress rawjson and collects its
// BuildKit status stream from stderr; other stderr lines (warnings) are kept
// for the error message.
func runGpuimg(ctx context.Context, bin string, args ...string) (*statusLog, []byte, error) {
	args = append(args, "--progress", "rawjson", "--json")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w (`make build` builds it)", bin, err)
	}
	log := newStatusLog()
	var other []string
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var s client.SolveStatus
		if err := json.Unmarshal(sc.Bytes(), &s); err == nil && strings.HasPrefix(sc.Text(), "{") {
			log.add(&s)
			continue
		}
		other = append(other, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return log, nil, fmt.Errorf("gpuimg %s: %w\n%s", strings.Join(args, " "), err, strings.Join(other, "\n"))
	}
	return log, stdout.Bytes(), nil
}

// timed runs f and returns its wall time in seconds.
func timed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}

// fileSize is a file's size in bytes (0 when missing).
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// linkOrCopy puts src at dst (a hard link when on one filesystem).
func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}
