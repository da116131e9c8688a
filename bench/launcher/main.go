// Command launcher measures the launcher's whole-process latency: the median
// wall time of `gpuimg flags` and `gpuimg host` on a copy of the 8-GPU
// fixture root with real device nodes (mknod: run it as root), each run as
// a fresh process, the way a wrapper script calls it before
// every `docker run`. A benchmark, not a test: it prints numbers and never
// fails on them.
//
//	go run ./bench/launcher [-bin bin/gpuimg] [-runs 50]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/gpuimg/gpuimg/host/hosttest"
)

func main() {
	bin := flag.String("bin", "", "gpuimg binary to measure (default: go build ./cmd/gpuimg into a temp dir)")
	runs := flag.Int("runs", 50, "runs per command")
	fixture := flag.String("root", "testdata/hosts/8gpu-550.127.05", "host fixture root (copied, with its listed nodes made)")
	flag.Parse()
	if err := run(*bin, *runs, *fixture); err != nil {
		fmt.Fprintln(os.Stderr, "bench/launcher: "+err.Error())
		os.Exit(1)
	}
}

func run(bin string, runs int, fixture string) error {
	if runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	root, err := os.MkdirTemp("", "gpuimg-bench-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := hosttest.CopyRoot(root, fixture, true); err != nil {
		return err
	}
	if bin == "" {
		dir, err := os.MkdirTemp("", "gpuimg-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "gpuimg")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/gpuimg").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/gpuimg (run from the repository root): %v\n%s", err, out)
		}
	}
	commands := [][]string{
		{"flags", "--root", root, "--gpus", "all"},
		{"flags", "--root", root, "--gpus", "0,2", "--format", "json"},
		{"host", "--root", root},
		{"--help"},
	}
	fmt.Printf("gpuimg launcher latency: %s, %d runs each, whole process (fork+exec+exit)\n", bin, runs)
	for _, args := range commands {
		// One untimed run warms the page cache and checks the command works.
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("gpuimg %v: %v\n%s", args, err, out)
		}
		times := make([]time.Duration, runs)
		for i := range times {
			cmd := exec.Command(bin, args...)
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("gpuimg %v: %v", args, err)
			}
			times[i] = time.Since(start)
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		fmt.Printf("  %-60s median %6.2f ms  min %6.2f ms  p90 %6.2f ms\n",
			fmt.Sprint(args), ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)*9/10]))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
