// Command drivers benchmarks gpuimg's driver-package I/O against the standard
// tools doing the same work on the same machine, run interleaved, and prints
// ratios (the targets in brackets):
//
//   - fetch: `gpuimg drivers fetch` (download, sha256, header check, cache)
//     vs `curl -o` from the same 127.0.0.1 server           [>= 0.8x throughput]
//   - verify: `gpuimg drivers verify --sha256` vs `sha256sum` on 400 MB  [<= 1.2x time]
//   - inspect: `gpuimg drivers inspect` of the realistic stand-in vs
//     `tail -n +N | gzip -dc | tar t`                       [<= 1.5x time]
//
// Run from the repository root: go run ./bench/drivers [-runs 5]
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/driverstest"
	"github.com/gpuimg/gpuimg/internal/standin"
)

const benchVersion = "998.10.01"

func main() {
	runs := flag.Int("runs", 5, "timed runs of each side (interleaved); the fastest counts")
	work := flag.String("work", "bench/work/drivers", "scratch directory (400 MB file, caches)")
	sizeMB := flag.Int("size-mb", 400, "size of the fetched and verified file")
	only := flag.String("only", "", "run one comparison: fetch, verify or inspect")
	flag.Parse()
	if err := run(*runs, *work, int64(*sizeMB)<<20, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench/drivers:", err)
		os.Exit(1)
	}
}

func run(runs int, work string, size int64, only string) error {
	for _, tool := range []string{"curl", "sha256sum", "tail", "gzip", "tar", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed for the comparison: %w", tool, err)
		}
	}
	serve := filepath.Join(work, "serve")
	if err := os.MkdirAll(serve, 0o755); err != nil {
		return err
	}
	gpuimg := filepath.Join(work, "gpuimg")
	if out, err := exec.Command("go", "build", "-o", gpuimg, "./cmd/gpuimg").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gpuimg: %v\n%s", err, out)
	}
	big, sha, err := bigRun(serve, size)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "generating the realistic stand-in (cached after the first run)...")
	real, err := standin.Cached(standin.Options{Version: "580.159.04", Scale: standin.ScaleRealistic})
	if err != nil {
		return err
	}
	h, err := drivers.ReadHeaderFile(real)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.FileServer(http.Dir(serve)))
	base := "http://" + ln.Addr().String()
	cache := filepath.Join(work, "cache")
	curlOut := filepath.Join(work, "curl.out")

	skipped := &result{}
	fetch, verify, inspect := skipped, skipped, skipped
	if only == "" || only == "fetch" {
		fetch = compare(runs,
			[]string{"curl", "-sSf", "-o", curlOut, base + "/" + filepath.Base(big)},
			[]string{gpuimg, "drivers", "fetch", benchVersion, "--arch", "x86_64", "--mirror", base + "/{file}", "--sha256", sha, "--cache-dir", cache},
			func() { os.RemoveAll(cache); os.Remove(curlOut) })
	}
	if only == "" || only == "verify" {
		verify = compare(runs,
			[]string{"sha256sum", big},
			[]string{gpuimg, "drivers", "verify", big, "--sha256", sha}, nil)
	}
	if only == "" || only == "inspect" {
		inspect = compare(runs,
			[]string{"sh", "-c", fmt.Sprintf("tail -n +%d %q | gzip -dc | tar t >/dev/null", h.Skip, real)},
			[]string{gpuimg, "drivers", "inspect", real}, nil)
	}
	os.RemoveAll(cache)
	os.Remove(curlOut)
	for _, r := range []*result{fetch, verify, inspect} {
		if r.err != nil {
			return r.err
		}
	}

	st, _ := os.Stat(real)
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	if fetch != skipped {
		fmt.Printf("fetch    %d MB from 127.0.0.1: curl %.2fs (%.0f MB/s), gpuimg %.2fs (%.0f MB/s): throughput ratio %.2fx [target >= 0.8x]\n",
			size>>20, fetch.base.Seconds(), mbps(fetch.base), fetch.ours.Seconds(), mbps(fetch.ours), fetch.base.Seconds()/fetch.ours.Seconds())
		fmt.Printf("         medians: curl %.2fs, gpuimg %.2fs; CPU: curl %.2fs, gpuimg %.2fs (sha256 included)\n", fetch.baseMed.Seconds(), fetch.oursMed.Seconds(), fetch.baseCPU.Seconds(), fetch.oursCPU.Seconds())
	}
	if verify != skipped {
		fmt.Printf("verify   %d MB: sha256sum %.2fs, gpuimg %.2fs: time ratio %.2fx [target <= 1.2x]\n",
			size>>20, verify.base.Seconds(), verify.ours.Seconds(), verify.ours.Seconds()/verify.base.Seconds())
		fmt.Printf("         medians: sha256sum %.2fs, gpuimg %.2fs; CPU: sha256sum %.2fs, gpuimg %.2fs\n", verify.baseMed.Seconds(), verify.oursMed.Seconds(), verify.baseCPU.Seconds(), verify.oursCPU.Seconds())
	}
	if inspect != skipped {
		fmt.Printf("inspect  %d MB stand-in: tail|gzip -dc|tar t %.2fs, gpuimg %.2fs: time ratio %.2fx [target <= 1.5x]\n",
			st.Size()>>20, inspect.base.Seconds(), inspect.ours.Seconds(), inspect.ours.Seconds()/inspect.base.Seconds())
		fmt.Printf("         medians: pipeline %.2fs, gpuimg %.2fs; CPU: pipeline (all three processes) %.2fs, gpuimg %.2fs\n", inspect.baseMed.Seconds(), inspect.oursMed.Seconds(), inspect.baseCPU.Seconds(), inspect.oursCPU.Seconds())
	}
	fmt.Printf("(fastest of %d interleaved runs of each side after one warm-up run; load average %s)\n", runs, loadAverage())
	return nil
}

type result struct {
	base, ours, baseMed, oursMed time.Duration
	// baseCPU and oursCPU are the least user+system CPU time of a run: on a
	// loaded machine wall time follows CPU time, not parallelism.
	baseCPU, oursCPU time.Duration
	err              error
}

// compare runs the baseline and gpuimg alternately, after one untimed warm-up
// of each (page cache), and keeps the fastest and median of each.
func compare(runs int, baseline, ours []string, reset func()) *result {
	var bt, ot, bc, oc []time.Duration
	for i := 0; i <= runs; i++ {
		for _, side := range []struct {
			argv       []string
			times, cpu *[]time.Duration
		}{{baseline, &bt, &bc}, {ours, &ot, &oc}} {
			if reset != nil {
				reset()
			}
			start := time.Now()
			cmd := exec.Command(side.argv[0], side.argv[1:]...)
			var errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &errOut
			if err := cmd.Run(); err != nil {
				return &result{err: fmt.Errorf("%v: %v\n%s", side.argv, err, errOut.Bytes())}
			}
			if i > 0 {
				*side.times = append(*side.times, time.Since(start))
				*side.cpu = append(*side.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
		}
	}
	for _, d := range [][]time.Duration{bt, ot, bc, oc} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	return &result{base: bt[0], ours: ot[0], baseMed: bt[len(bt)/2], oursMed: ot[len(ot)/2], baseCPU: bc[0], oursCPU: oc[0]}
}

// bigRun writes a .run of about size bytes: a real stub and an incompressible
// body behind gzip's magic, which fetch and verify read like any package.
func bigRun(dir string, size int64) (path, sha string, err error) {
	path = filepath.Join(dir, drivers.RunFileName(drivers.MustParseVersion(benchVersion), drivers.ArchX86_64, ""))
	if st, err := os.Stat(path); err == nil && st.Size() >= size {
		s, _, err := drivers.FileSHA256(path)
		return path, s, err
	}
	body := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(body)
	copy(body, []byte{0x1f, 0x8b, 0x08})
	data := driverstest.Assemble(driverstest.Run{Version: benchVersion, Arch: drivers.ArchX86_64}, body)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:]), nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
