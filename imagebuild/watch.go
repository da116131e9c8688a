package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client"
)

// DefaultIdleTimeout is how long a build may go without any status from
// the builder and without any byte of an export before it is abandoned.
// An install step prints as it goes and a push reports its bytes, so five
// silent minutes mean a frozen builder or a registry that does not answer.
const DefaultIdleTimeout = 5 * time.Minute

// errIdle is the cancel cause when the watchdog fires.
var errIdle = errors.New("no progress")

// watchdog cancels the builds when neither a status nor an exported byte
// arrived for the idle timeout. It also remembers the vertices in progress,
// to say what was stuck.
type watchdog struct {
	timeout time.Duration
	timer   *time.Timer
	mu      sync.Mutex
	active  map[string]string // vertex digest (/status ID) → name, started and not completed
	// stuckAtFire is what was in progress when it fired (the cancellation
	// then completes every step).
	stuckAtFire []string
}

func newWatchdog(timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if timeout <= 0 {
		timeout = DefaultIdleTimeout
	}
	w := &watchdog{timeout: timeout, active: map[string]string{}}
	w.timer = time.AfterFunc(timeout, func() {
		stuck := w.inProgress()
		w.mu.Lock()
		w.stuckAtFire = stuck
		w.mu.Unlock()
		cancel(errIdle)
	})
	return w
}

// status records a status update as activity.
func (w *watchdog) status(s *client.SolveStatus) {
	w.timer.Reset(w.timeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range s.Vertexes {
		switch {
		case v.Completed != nil:
			delete(w.active, v.Digest.String())
		case v.Started != nil:
			w.active[v.Digest.String()] = v.Name
		}
	}
	// Statuses are a vertex's sub-steps ("pushing layers" of "exporting
	// to image"): they say best what is waiting.
	for _, st := range s.Statuses {
		key := st.Vertex.String() + "/" + st.ID
		switch {
		case st.Completed != nil:
			delete(w.active, key)
		case st.Started != nil:
			w.active[key] = st.Name
		}
	}
}

func (w *watchdog) stop() { w.timer.Stop() }

// writer counts the bytes of an export written on this machine as activity.
func (w *watchdog) writer(dst io.WriteCloser) io.WriteCloser {
	return activeWriter{dst, w}
}

type activeWriter struct {
	io.WriteCloser
	w *watchdog
}

func (a activeWriter) Write(p []byte) (int, error) {
	a.w.timer.Reset(a.w.timeout)
	return a.WriteCloser.Write(p)
}

// stuck names the steps in progress when the watchdog fired.
func (w *watchdog) stuck() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuckAtFire
}

// inProgress names the steps started and not completed.
func (w *watchdog) inProgress() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for _, n := range w.active {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// idleError says what went silent. A builder that does not answer a
// plain request either is frozen; one that answers was waiting on a
// registry (when a push or a registry base was in progress) or on a step
// that is slow or hung.
func (b *Builder) idleError(w *watchdog, c *client.Client) error {
	steps := w.stuck()
	waiting := "while " + orNothing(strings.Join(steps, "; "))
	probe, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.ListWorkers(probe); err != nil {
		return fmt.Errorf("%w for %s %s: the builder at %s sent no status and no data and does not answer (frozen, stopped with SIGSTOP, or overloaded): check buildkitd on that host (`ps -o stat= -p PID`: T is stopped; `kill -CONT PID`), or raise --idle-timeout; no unfinished destination was left",
			errIdle, w.timeout, waiting, b.in.Address())
	}
	registryStep := false
	for _, s := range steps {
		registryStep = registryStep || strings.Contains(s, "push") || s == "exporting to image" ||
			strings.HasPrefix(s, "resolve image config") || strings.HasPrefix(s, "[internal] load metadata")
	}
	if registries := b.registries(); registryStep && len(registries) > 0 {
		return fmt.Errorf("%w for %s %s: the registry %s does not answer (the builder at %s does; the registry accepted the connection but sent nothing back): check that it is up and reachable from the builder, or raise --idle-timeout; no unfinished destination was left",
			errIdle, w.timeout, waiting, strings.Join(registries, ", "), b.in.Address())
	}
	return fmt.Errorf("%w for %s %s: the builder at %s answers, but the step sent nothing: it is slow (raise --idle-timeout) or hung (see the builder's log); no unfinished destination was left",
		errIdle, w.timeout, waiting, b.in.Address())
}

func orNothing(s string) string {
	if s == "" {
		return "no step was running"
	}
	return s
}

// registries lists the registry hosts this build pushes to or pulls its
// base from.
func (b *Builder) registries() []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if named, err := reference.ParseNormalizedNamed(name); err == nil && !seen[reference.Domain(named)] {
			seen[reference.Domain(named)] = true
			out = append(out, reference.Domain(named))
		}
	}
	for _, im := range b.images {
		for _, e := range im.exports {
			if e.attrs["push"] == "true" {
				for _, n := range strings.Split(e.attrs["name"], ",") {
					add(n)
				}
			}
		}
	}
	for _, base := range b.bases {
		if base.Named != nil {
			add(base.Named.String())
		}
	}
	return out
}
