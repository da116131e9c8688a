package drivers

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress reports a download: a redrawn bar on a terminal, otherwise one
// line when it starts and one when it ends, so logs stay short.
type progress struct {
	w      io.Writer
	bar    bool
	file   string
	total  int64
	start  time.Time
	from   int64
	mu     sync.Mutex
	last   time.Time
	shown  bool
	latest int64
}

func newProgress(w io.Writer, bar bool, file, url string, have, total int64) *progress {
	p := &progress{w: w, bar: bar, file: file, total: total, start: time.Now(), from: have, latest: have}
	what := "downloading"
	if have > 0 {
		what = fmt.Sprintf("resuming at %s,", mb(have))
	}
	size := ""
	if total >= 0 {
		size = " (" + mb(total) + ")"
	}
	fmt.Fprintf(w, "%s %s%s from %s\n", what, file, size, url)
	return p
}

// update is called from the copy loop for every chunk; it redraws at most
// five times a second.
func (p *progress) update(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latest = n
	if !p.bar {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	const width = 30
	line := mb(p.latest)
	if p.total > 0 {
		frac := float64(p.latest) / float64(p.total)
		filled := int(frac * width)
		line = fmt.Sprintf("[%s%s] %3.0f%% %s / %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100, mb(p.latest), mb(p.total))
	}
	fmt.Fprintf(p.w, "\r%s %s  ", line, p.rate(p.latest))
	p.shown = true
}

func (p *progress) rate(n int64) string {
	secs := time.Since(p.start).Seconds()
	if secs <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f MB/s", float64(n-p.from)/1e6/secs)
}

func (p *progress) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	if err == nil {
		fmt.Fprintf(p.w, "downloaded %s in %.1fs (%s)\n", p.file, time.Since(p.start).Seconds(), p.rate(p.latest))
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
