package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
)

// stepLog keeps where a design's time went: every BuildKit vertex and
// progress item (exporting layers, sending the tarball, pushing) of each of
// its solves, from the client's status channels, and the client's own
// phases between the solves.
type stepLog struct {
	mu    sync.Mutex
	start time.Time
	spans map[string]span
}

type span struct {
	name       string
	start, end time.Time
}

func newStepLog() *stepLog { return &stepLog{spans: map[string]span{}} }

// channel returns a status channel for one solve labelled label; c.Build
// closes it.
func (l *stepLog) channel(label string) chan *client.SolveStatus {
	ch := make(chan *client.SolveStatus)
	go func() {
		for s := range ch {
			l.add(label, s)
		}
	}()
	return ch
}

// channelUntil is channel, and closes gate when the progress item id (a
// blob's digest: its fetch) has completed, or the solve has ended.
func (l *stepLog) channelUntil(label, id string, gate chan struct{}) chan *client.SolveStatus {
	ch := make(chan *client.SolveStatus)
	go func() {
		open := true
		for s := range ch {
			l.add(label, s)
			for _, st := range s.Statuses {
				if open && st.ID == id && st.Completed != nil {
					close(gate)
					open = false
				}
			}
		}
		if open {
			close(gate)
		}
	}()
	return ch
}

func (l *stepLog) add(label string, s *client.SolveStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range s.Vertexes {
		if v.Started != nil && v.Completed != nil && !v.Cached {
			l.spans[label+v.Digest.String()] = span{label + ": " + v.Name, *v.Started, *v.Completed}
		}
	}
	for _, st := range s.Statuses {
		if st.Started != nil && st.Completed != nil {
			l.spans[label+st.Vertex.String()+st.ID] = span{label + ":   " + st.ID, *st.Started, *st.Completed}
		}
	}
}

// client records a phase the client ran itself, from t to now.
func (l *stepLog) client(name string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spans["client "+name] = span{"client: " + name, t, time.Now()}
}

// lines lists the spans of at least min seconds in start order: when, how
// long, what.
func (l *stepLog) lines(min float64) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var spans []span
	for _, s := range l.spans {
		if s.end.Sub(s.start).Seconds() >= min {
			spans = append(spans, s)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	var out []string
	for _, s := range spans {
		out = append(out, fmt.Sprintf("    at %5.1f s %5.1f s  %s", s.start.Sub(l.start).Seconds(), s.end.Sub(s.start).Seconds(), strings.TrimSpace(s.name)))
	}
	return out
}

// ran says whether a step whose name contains what ran (was not cached).
func (l *stepLog) ran(what string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.spans {
		if strings.Contains(s.name, what) {
			return true
		}
	}
	return false
}
