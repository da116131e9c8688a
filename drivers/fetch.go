package drivers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// errHTTPStatus is an HTTP answer that is not the file.
type errHTTPStatus struct {
	url  string
	code int
}

func (e *errHTTPStatus) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s", e.url, e.code, http.StatusText(e.code))
}

// errStalled is the cause of a request cancelled by the stall watchdog.
var errStalled = errors.New("no data received")

// fetcher downloads one package into the cache, resuming, under a lock.
type fetcher struct {
	w    Want
	dir  string
	file string
	// pin is the checksum in force; a mirror's .sha256sum may set it.
	pin    pin
	client *http.Client
	urls   []string
}

// fetch downloads the package unless another process has just stored it.
func (f *fetcher) fetch(ctx context.Context) (Resolved, []string, error) {
	if err := prepareCache(f.dir); err != nil {
		return Resolved{}, nil, err
	}
	unlock, err := f.lock(ctx)
	if err != nil {
		return Resolved{}, nil, err
	}
	defer unlock()
	// Another process may have finished the same download while we waited.
	// (A damaged copy was reported and removed by Resolve's look-up; one
	// found here is removed too and downloaded again.)
	if r, ok, _ := findCached(f.dir, f.file, f.pin); ok {
		return f.w.judgeCached(r, nil)
	}
	return f.download(ctx)
}

func newHTTPClient(stall time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: stall,
		// A transparently gunzipped body would break Range offsets.
		DisableCompression: true,
		ReadBufferSize:     256 << 10,
	}}
}

func (f *fetcher) verified() bool { return f.pin.sha256 != "" }

func (f *fetcher) noChecksumError() error {
	v := f.w.Version
	var others []string
	for _, p := range List(WithVersion(v)) {
		others = append(others, "--arch "+p.Arch+" --variant "+p.Variant)
	}
	if len(others) > 0 {
		return noChecksum{fmt.Errorf("%s is not in the catalog, but driver %s is with %s: use one of those, or pass --sha256 HEX for this file", f.file, v, strings.Join(others, " or "))}
	}
	return noChecksum{fmt.Errorf("%s is not in the catalog and no checksum is available for it (no .sha256sum beside it on the mirror): pass --sha256 HEX from a source you trust", f.file)}
}

func (f *fetcher) lock(ctx context.Context) (func(), error) {
	fl := flock.New(filepath.Join(f.dir, cacheLocks, f.file+".lock"))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, unwritableCache(f.dir, err)
	}
	if !ok {
		fmt.Fprintf(f.w.Progress, "waiting for another gpuimg fetching %s\n", f.file)
		if ok, err = fl.TryLockContext(ctx, 100*time.Millisecond); err != nil || !ok {
			return nil, fmt.Errorf("wait for the lock on %s: %w", f.file, err)
		}
	}
	return func() { fl.Unlock() }, nil
}

// partPath is where the download grows. With a known checksum it survives a
// failed run so the next one resumes; an unverified download starts over.
func (f *fetcher) partPath() string {
	key := "unverified"
	if f.verified() {
		key = f.pin.sha256
	}
	return filepath.Join(f.dir, cachePartials, f.file+"."+key+".part")
}

func (f *fetcher) download(ctx context.Context) (Resolved, []string, error) {
	var warnings []string
	if !f.verified() {
		if err := f.findSidecar(ctx); err != nil {
			return Resolved{}, nil, err
		}
		if !f.verified() {
			more, err := f.w.allowUnverified(f.noChecksumError(), false)
			if err != nil {
				return Resolved{}, nil, err
			}
			warnings = more
		}
	}
	part := f.partPath()
	if !f.verified() {
		os.Remove(part)
	}
	var failures []error
	for _, u := range f.urls {
		sha, size, err := f.downloadURL(ctx, u, part)
		if err == nil {
			err = f.checkDownloaded(part, sha, size)
		}
		if err == nil {
			path, err := storeBlob(f.dir, part, sha, f.file, f.verified())
			if err != nil {
				return Resolved{}, warnings, err
			}
			r := f.w.resolved(sha, size, f.pin.by)
			r.Path, r.Source = path, u
			return r, warnings, nil
		}
		if errors.Is(err, syscall.ENOSPC) {
			// Neither a retry nor another URL frees the disk: stop, and do
			// not leave the partial file filling it.
			if f.w.KeepPartial && f.verified() {
				return Resolved{}, warnings, fmt.Errorf("fetch %s: %w (the partial download %s is kept, as --keep-partial asks: run the command again to resume)", f.file, err, part)
			}
			os.Remove(part)
			return Resolved{}, warnings, fmt.Errorf("fetch %s: %w (the partial download was removed)", f.file, err)
		}
		if ctx.Err() != nil {
			if !f.verified() {
				return Resolved{}, warnings, fmt.Errorf("fetch %s: %w", f.file, context.Cause(ctx))
			}
			return Resolved{}, warnings, fmt.Errorf("fetch %s: %w (the partial download is kept; run the command again to resume)", f.file, context.Cause(ctx))
		}
		removeIfEmpty(part)
		failures = append(failures, err)
	}
	hint := "check the version and --arch, or name another --mirror"
	if fileExists(part) {
		hint = "the partial download is kept: run the command again to resume, or name another --mirror"
	}
	return Resolved{}, warnings, &fetchError{file: f.file, hint: hint, errs: failures}
}

// fetchError lists why every URL failed; errors.Is sees each cause.
type fetchError struct {
	file, hint string
	errs       []error
}

func (e *fetchError) Error() string {
	lines := make([]string, len(e.errs))
	for i, err := range e.errs {
		lines[i] = err.Error()
	}
	return fmt.Sprintf("fetch %s failed from every URL (%s):\n  %s", e.file, e.hint, strings.Join(lines, "\n  "))
}

func (e *fetchError) Unwrap() []error { return e.errs }

// removeIfEmpty drops a partial file a failed request never wrote to.
func removeIfEmpty(p string) {
	if st, err := os.Stat(p); err == nil && st.Size() == 0 {
		os.Remove(p)
	}
}

// checkDownloaded verifies a complete download and removes it when it is not
// the package asked for, so a bad file is never resumed or kept.
func (f *fetcher) checkDownloaded(part, sha string, size int64) error {
	var err error
	switch {
	case f.pin.size >= 0 && size != f.pin.size:
		err = fmt.Errorf("%w: %s is %d bytes, the catalog says %d", ErrChecksumMismatch, f.file, size, f.pin.size)
	case f.verified():
		if _, _, err = f.pin.judge(f.w, f.file, sha); err != nil {
			err = fmt.Errorf("%w (the mirror served a damaged or different file)", err)
		}
	}
	if err == nil {
		err = CheckRunFile(part, f.w.Version, f.w.Arch)
	}
	if err != nil {
		os.Remove(part)
	}
	return err
}

// downloadURL fetches u into part, resuming across attempts, and returns the
// sha256 and size of the complete file.
func (f *fetcher) downloadURL(ctx context.Context, u, part string) (string, int64, error) {
	var lastErr error
	for attempt := 1; attempt <= f.w.Attempts; attempt++ {
		if attempt > 1 {
			fmt.Fprintf(f.w.Progress, "%v; retrying (attempt %d of %d)\n", lastErr, attempt, f.w.Attempts)
			select {
			case <-ctx.Done():
				return "", 0, context.Cause(ctx)
			case <-time.After(f.w.RetryDelay):
			}
		}
		sha, size, err := f.downloadAttempt(ctx, u, part)
		if err == nil {
			return sha, size, nil
		}
		lastErr = err
		var status *errHTTPStatus
		if errors.As(err, &status) && status.code < 500 || ctx.Err() != nil || errors.Is(err, syscall.ENOSPC) {
			return "", 0, err
		}
	}
	return "", 0, lastErr // it names the URL
}

// downloadAttempt makes one request, appending to what part already holds.
func (f *fetcher) downloadAttempt(ctx context.Context, u, part string) (string, int64, error) {
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", 0, unwritableCache(f.dir, err)
	}
	defer out.Close()
	h := sha256.New()
	have, err := copyHashing(nil, h, out, nil) // what an earlier attempt left
	if err != nil {
		return "", 0, fmt.Errorf("read the partial download: %w", err)
	}
	if want := f.pin.size; want >= 0 && have > want {
		if err := restart(out, h); err != nil {
			return "", 0, err
		}
		have = 0
	} else if have > 0 && have == want {
		return hex.EncodeToString(h.Sum(nil)), have, nil // complete; a crash came before the rename
	}

	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", u, err)
	}
	req.Header.Set("User-Agent", "gpuimg")
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", 0, explainStall(reqCtx, err, f.w.StallTimeout) // a *url.Error names the URL
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != have {
			restart(out, h)
			return "", 0, fmt.Errorf("%s: the server resumed at the wrong offset (Content-Range %q); starting over", u, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			if err := restart(out, h); err != nil {
				return "", 0, err
			}
			have = 0
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		restart(out, h)
		return "", 0, fmt.Errorf("%s: the server refused to resume at byte %d; starting over", u, have)
	default:
		return "", 0, &errHTTPStatus{url: u, code: resp.StatusCode}
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return "", 0, err
	}

	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	} else {
		total = f.pin.size
	}
	need := int64(-1)
	if total >= 0 {
		need = total - have
	}
	if err := checkFreeSpace(filepath.Dir(part), f.file, need); err != nil {
		return "", 0, err
	}
	bar := newProgress(f.w.Progress, f.w.ProgressBar, f.file, u, have, total)
	body := newStallReader(resp.Body, f.w.StallTimeout, cancel)
	n, err := copyHashing(out, h, body, func(n int64) { bar.update(have + n) })
	body.stop()
	size := have + n
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	// No fsync: it would cost a third of the download time, and the cache
	// can always be refetched. The rename after verification keeps
	// concurrent readers and crashed processes from seeing a partial file,
	// and a cache hit re-checks the size and header (fromCache).
	bar.finish(err)
	if err != nil {
		if total >= 0 {
			need = total - size
		}
		if err = asNoSpace(err, filepath.Dir(part), f.file, need); errors.Is(err, syscall.ENOSPC) {
			return "", 0, err
		}
		return "", 0, explainStall(reqCtx, fmt.Errorf("%s: download stopped at byte %d: %w", u, size, err), f.w.StallTimeout)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

func explainStall(reqCtx context.Context, err error, stall time.Duration) error {
	if errors.Is(context.Cause(reqCtx), errStalled) {
		return fmt.Errorf("%w (the server sent nothing for %s)", err, stall)
	}
	return err
}

// restart empties the partial file and the running hash.
func restart(out *os.File, h hash.Hash) error {
	h.Reset()
	if err := out.Truncate(0); err != nil {
		return fmt.Errorf("reset the partial download: %w", err)
	}
	_, err := out.Seek(0, io.SeekStart)
	return err
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// findSidecar looks for NVIDIA's <file>.sha256sum beside each URL.
func (f *fetcher) findSidecar(ctx context.Context) error {
	for _, u := range f.urls {
		sha, err := f.fetchSidecar(ctx, u+".sha256sum")
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			continue
		}
		f.pin.sha256, f.pin.by, f.pin.size = sha, VerifiedBySidecar, -1
		fmt.Fprintf(f.w.Progress, "using the checksum in %s.sha256sum\n", u)
		return nil
	}
	return nil
}

func (f *fetcher) fetchSidecar(ctx context.Context, u string) (string, error) {
	reqCtx, cancel := context.WithTimeout(ctx, f.w.StallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &errHTTPStatus{url: u, code: resp.StatusCode}
	}
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return parseSHA256Sum(line, f.file)
}

// parseSHA256Sum reads a `sha256sum` line ("<hex>  <file>" or "<hex> *<file>")
// and checks it names file.
func parseSHA256Sum(line, file string) (string, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "", errors.New("empty .sha256sum")
	}
	sha, err := NormalizeSHA256(fields[0])
	if err != nil {
		return "", err
	}
	if len(fields) > 1 && filepath.Base(strings.TrimPrefix(fields[1], "*")) != file {
		return "", fmt.Errorf(".sha256sum names %s, not %s", fields[1], file)
	}
	return sha, nil
}

// stallReader cancels the request when no bytes arrive for the timeout.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func newStallReader(r io.Reader, d time.Duration, cancel context.CancelCauseFunc) *stallReader {
	return &stallReader{r: r, d: d, timer: time.AfterFunc(d, func() { cancel(errStalled) })}
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

func (s *stallReader) stop() { s.timer.Stop() }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
