// Command build benchmarks `gpuimg build` against the classic Dockerfile
// recipe (apt install wget kmod; wget the .run; run the installer), both
// solved by one private buildkitd on this machine, from the same base image
// in a registry on 127.0.0.1, with a realistic stand-in .run served over HTTP
// on 127.0.0.1. It measures cold and unchanged builds (docker tarball and
// push), the bytes each adds to the base, --components compute, three drivers
// in one build, the launcher, where the time goes and the physical floor, and
// writes a table (stdout), bench/results/latest.json, bench/results/chart.svg
// and bench/results/latest.md. A benchmark, not a test: it never fails on a
// number. hack/bench.sh (make bench) runs it as root.
//
//	go run ./bench/build [-runs 3]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/gpuimg/gpuimg/bench/benchenv"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// Stand-in driver versions: not in gpuimg's catalog, so a single-driver
// build pins the download with --sha256 like any unlisted version.
var versions = []string{"999.10.01", "999.20.01", "999.30.01"}

type config struct {
	runs      int
	bin       string
	buildkitd string
	baseDir   string
	work      string
	results   string
	payload   string
	arm64Only bool
	skipArm64 bool
}

func main() {
	def := 3
	if s := os.Getenv("BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: BENCH_RUNS=%q is not a positive number: use e.g. BENCH_RUNS=1\n", s)
			os.Exit(2)
		}
		def = n
	}
	var cfg config
	flag.IntVar(&cfg.runs, "runs", def, "cold+warm runs per side (default $BENCH_RUNS, else 3)")
	flag.StringVar(&cfg.bin, "bin", "bin/gpuimg", "the gpuimg binary to measure")
	flag.StringVar(&cfg.buildkitd, "buildkitd", envOr("GPUIMG_BUILDKITD", "bin/buildkitd"), "buildkitd binary")
	flag.StringVar(&cfg.baseDir, "base", envOr("GPUIMG_TEST_BASE", ".cache/base/debian-bookworm"), "the Debian base's OCI layout")
	flag.StringVar(&cfg.work, "work", ".cache/bench", "scratch directory (outputs, floor)")
	flag.StringVar(&cfg.results, "results", "bench/results", "where latest.json, latest.md and chart.svg go")
	// NVIDIA's own formats: zstd from 530.30.02 on, xz before (450.102.04's
	// era). make bench runs both; gzip is the generator's default.
	flag.StringVar(&cfg.payload, "payload", "zstd", "the stand-in's payload compression: zstd, xz or gzip")
	flag.BoolVar(&cfg.skipArm64, "skip-arm64", false, "leave out the arm64 section (make bench measures it once, with the zstd payload run)")
	flag.BoolVar(&cfg.arm64Only, "arm64-only", false, "measure only the arm64 section (amd64 and arm64 cold builds, extraction under QEMU) into bench/results/arm64.{json,md}")
	report := flag.String("report", "", "only print the table and redraw latest.md and chart.svg from this results file (no builds)")
	flag.Parse()
	if *report != "" {
		if err := rereport(*report, cfg.results); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench holds the running environment.
type bench struct {
	cfg      config
	bk       *testenv.BuildkitDaemon
	reg      string // registry host:port
	files    string // file server host:port
	baseRef  string
	runs     map[string]string // version -> local .run path (served)
	sums     map[string]string // version -> sha256
	baseLays map[string]bool
	out      string // outputs directory
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return errors.New("buildkitd runs as root here: run `sudo make bench`")
	}
	for _, p := range []*string{&cfg.bin, &cfg.buildkitd, &cfg.baseDir, &cfg.work, &cfg.results} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	res := &Results{
		Date: time.Now().UTC().Format(time.RFC3339), Runs: cfg.runs, Machine: machine(),
		Payload: cfg.payload, Commit: gitDescribe(),
	}
	b := &bench{cfg: cfg, runs: map[string]string{}, sums: map[string]string{}, out: filepath.Join(cfg.work, "out")}
	serveDir := filepath.Join(cfg.work, "serve")
	generate := versions
	if cfg.arm64Only {
		generate = versions[:1] // the arm64 section builds the first only
	}
	for _, v := range generate {
		progress("stand-in %s (realistic, %s payload; generated once into .cache/standin)", v, cfg.payload)
		path, err := standin.Cached(standin.Options{Version: v, Compression: cfg.payload, Scale: standin.ScaleRealistic})
		if err != nil {
			return err
		}
		served := filepath.Join(serveDir, filepath.Base(path))
		if err := linkOrCopy(path, served); err != nil {
			return err
		}
		sum, _, err := drivers.FileSHA256(served)
		if err != nil {
			return err
		}
		b.runs[v], b.sums[v] = served, sum
	}
	res.RunBytes = fileSize(b.runs[versions[0]])
	var stopFiles, stopReg func()
	var err error
	if b.files, stopFiles, err = benchenv.Serve(http.FileServer(http.Dir(serveDir))); err != nil {
		return err
	}
	defer stopFiles()
	if b.reg, stopReg, err = benchenv.StartRegistry(); err != nil {
		return err
	}
	defer stopReg()
	b.baseRef = b.reg + "/debian:bookworm"
	baseImg, err := pushBase(cfg.baseDir, b.baseRef)
	if err != nil {
		return err
	}
	if b.baseLays, err = layerSet(baseImg); err != nil {
		return err
	}
	progress("starting a private buildkitd")
	if b.bk, err = testenv.StartBuildkitd(cfg.buildkitd); err != nil {
		return err
	}
	defer b.bk.Stop()
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	if cfg.arm64Only {
		if err := b.arm64(ctx, res); err != nil {
			return err
		}
		res.Machine.LoadAfter = loadavg()
		return res.writeArm64(cfg.results)
	}
	if err := b.sides(ctx, res); err != nil {
		return err
	}
	if err := b.components(ctx, res); err != nil {
		return err
	}
	if err := b.multi(ctx, res); err != nil {
		return err
	}
	if !cfg.skipArm64 {
		if err := b.arm64(ctx, res); err != nil {
			return err
		}
	}
	if err := b.floor(ctx, res); err != nil {
		return err
	}
	if err := launcher(ctx, cfg.bin, res); err != nil {
		return err
	}
	res.Machine.LoadAfter = loadavg()
	res.finish()
	return res.write(cfg.results)
}

// Sides measured head to head.
const (
	sideRecipe = "recipe"
	sideGzip   = "gpuimg"
	sideZstd   = "gpuimg-zstd"
	// sideOneLayer is gpuimg with its driver files in one layer
	// (--driver-layers 1), as before the split: what the split buys.
	sideOneLayer = "gpuimg-1layer"
)

// allSides are the sides in table order.
var allSides = []string{sideRecipe, sideGzip, sideZstd, sideOneLayer}

// Kinds of build: cold (builder cache pruned, no output file), warm (the
// same build again, unchanged) and rewrite (warm again, but the output file
// removed first, so it must be sent again: the recipe's docker exporter
// always does that, gpuimg skips a file that already holds the image).
const (
	kindCold    = "cold"
	kindWarm    = "warm"
	kindRewrite = "rewrite"
)

// sides runs cold, warm and (gpuimg) rewrite builds of each side, rotating
// the order every round so drift hits all of them.
func (b *bench) sides(ctx context.Context, res *Results) error {
	order := allSides
	v := versions[0]
	failed := map[string]bool{}
	for round := 0; round < b.cfg.runs; round++ {
		for k := range order {
			side := order[(k+round)%len(order)]
			if failed[side] {
				continue
			}
			kinds := []string{kindCold, kindWarm, kindRewrite}
			switch side {
			case sideRecipe:
				kinds = kinds[:2] // its warm build already rewrites the file
			case sideOneLayer:
				kinds = kinds[:1] // the comparison is the cold build
			}
			for _, kind := range kinds {
				if kind == kindCold {
					if err := benchenv.Prune(ctx, b.bk); err != nil {
						return err
					}
				}
				// No local reuse: gpuimg leaves a destination that already
				// holds the image alone, so these start without one.
				if kind != kindWarm {
					if err := os.Remove(b.tarPath(side, v)); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
				r, err := b.build(ctx, side, v, kind)
				if err != nil && side == sideRecipe && ctx.Err() == nil {
					// Most likely apt could not reach Debian's mirror from the
					// build: say so, and measure gpuimg alone (no ratios).
					progress("the classic recipe failed; measuring gpuimg without it: %v", err)
					res.RecipeError = err.Error()
					failed[side] = true
					break
				}
				if err != nil {
					return err
				}
				progress("round %d/%d %-11s %-7s %6.1f s", round+1, b.cfg.runs, side, kind, r.Seconds)
				res.Builds = append(res.Builds, r)
			}
		}
	}
	for _, side := range order {
		if failed[side] {
			continue
		}
		img, err := remoteImage(b.pushRef(side, v))
		if err != nil {
			return fmt.Errorf("read the pushed %s image: %w", side, err)
		}
		added, n, err := addedBytes(img, b.baseLays)
		if err != nil {
			return err
		}
		res.Added = append(res.Added, Added{Side: side, Bytes: added, Layers: n, TarBytes: fileSize(b.tarPath(side, v))})
	}
	return nil
}

func (b *bench) pushRef(side, v string) string { return b.reg + "/" + side + ":" + v }
func (b *bench) tarPath(side, v string) string {
	return filepath.Join(b.out, side+"-"+v+".tar")
}

// build runs one side's build of driver v and times it.
func (b *bench) build(ctx context.Context, side, v, kind string) (Run, error) {
	r := Run{Side: side, Kind: kind}
	cpu0, _ := b.bk.CPUSeconds()
	var log *statusLog
	var err error
	switch side {
	case sideRecipe:
		dir := filepath.Join(b.cfg.work, "recipe")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return r, err
		}
		runName := filepath.Base(b.runs[v])
		df := recipeDockerfile(b.baseRef, "http://"+b.files+"/"+runName, runName)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			return r, err
		}
		r.Seconds, err = timed(func() error {
			log, err = solveRecipe(ctx, b.bk.Addr, dir, b.tarPath(side, v), b.pushRef(side, v))
			return err
		})
	default:
		args := b.gpuimgArgs(side, v)
		r.Seconds, err = timed(func() error {
			log, _, err = runGpuimg(ctx, b.cfg.bin, args...)
			return err
		})
	}
	if err != nil {
		return r, err
	}
	r.Steps = log.steps()
	cpu1, _ := b.bk.CPUSeconds()
	r.BuilderCPU = cpu1 - cpu0
	return r, nil
}

// gpuimgArgs is a single-driver build the way a user pins an unlisted
// version: downloaded by BuildKit from the mirror, checked against --sha256,
// with an empty driver cache (no local reuse).
func (b *bench) gpuimgArgs(side, v string) []string {
	args := []string{"build", "--addr", b.bk.Addr, "--driver", v,
		"--mirror", "http://" + b.files + "/{file}", "--sha256", b.sums[v],
		"--cache-dir", filepath.Join(b.cfg.work, "empty-driver-cache"),
		"--base", b.baseRef, "-t", b.pushRef(side, v), "--push",
		"--output", "type=docker,dest=" + b.tarPath(side, v)}
	switch side {
	case sideZstd:
		args = append(args, "--compression", "zstd")
	case sideOneLayer:
		args = append(args, "--driver-layers", "1")
	}
	return args
}

// components measures what --components compute adds (the .manifest must be
// local, so the .run is passed with --driver-file).
func (b *bench) components(ctx context.Context, res *Results) error {
	v := versions[0]
	ref := b.reg + "/gpuimg-compute:" + v
	progress("--components compute")
	secs, err := timed(func() error {
		_, _, err := runGpuimg(ctx, b.cfg.bin, "build", "--addr", b.bk.Addr, "--driver", v,
			"--driver-file", b.runs[v], "--sha256", b.sums[v], "--components", "compute",
			"--base", b.baseRef, "-t", ref, "--push")
		return err
	})
	if err != nil {
		return err
	}
	img, err := remoteImage(ref)
	if err != nil {
		return err
	}
	added, n, err := addedBytes(img, b.baseLays)
	if err != nil {
		return err
	}
	res.Added = append(res.Added, Added{Side: "gpuimg-compute", Bytes: added, Layers: n})
	res.ComputeSeconds = secs
	return nil
}

// multi compares three drivers in one gpuimg build with one driver and with
// three sequential builds, all cold, each downloaded by BuildKit from the
// mirror and pinned by its own --sha256 (one per --driver, same order).
func (b *bench) multi(ctx context.Context, res *Results) error {
	build := func(drv string) error {
		var sums []string
		for _, v := range strings.Split(drv, ",") {
			sums = append(sums, b.sums[v])
			// Cold: no earlier output to reuse.
			if err := os.Remove(filepath.Join(b.out, "multi-"+v+".tar")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		_, _, err := runGpuimg(ctx, b.cfg.bin, "build", "--addr", b.bk.Addr, "--driver", drv,
			"--mirror", "http://"+b.files+"/{file}", "--sha256", strings.Join(sums, ","),
			"--cache-dir", filepath.Join(b.cfg.work, "empty-driver-cache"), "--base", b.baseRef,
			"-t", b.reg+"/multi:{driver}", "--push",
			"--output", "type=docker,dest="+filepath.Join(b.out, "multi-{driver}.tar"))
		return err
	}
	m := &Multi{}
	var err error
	if err = benchenv.Prune(ctx, b.bk); err != nil {
		return err
	}
	cpu0, _ := b.bk.CPUSeconds()
	if m.OneSeconds, err = timed(func() error { return build(versions[0]) }); err != nil {
		return err
	}
	cpu1, _ := b.bk.CPUSeconds()
	m.OneCPU = cpu1 - cpu0
	progress("one driver                   %6.1f s", m.OneSeconds)
	if err = benchenv.Prune(ctx, b.bk); err != nil {
		return err
	}
	cpu0, _ = b.bk.CPUSeconds()
	if m.ThreeInOneSeconds, err = timed(func() error { return build(strings.Join(versions, ",")) }); err != nil {
		return err
	}
	cpu1, _ = b.bk.CPUSeconds()
	m.ThreeInOneCPU = cpu1 - cpu0
	progress("three drivers in one build   %6.1f s", m.ThreeInOneSeconds)
	if err = benchenv.Prune(ctx, b.bk); err != nil {
		return err
	}
	if m.ThreeSequentialSeconds, err = timed(func() error {
		for _, v := range versions {
			if err := build(v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	progress("three sequential builds      %6.1f s", m.ThreeSequentialSeconds)
	res.Multi = m
	return nil
}

// machine describes where the numbers were taken.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = float64(kb) / (1 << 20)
		}
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	m.LoadBefore = loadavg()
	return m
}

// prettyJSON is used by the report for the results file.
func prettyJSON(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// rereport renders a finished run's results again (the table on stdout,
// latest.md, chart.svg and the JSON itself) without building anything.
func rereport(path, dir string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-report: %w", err)
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("-report %s: not a results file: %w", path, err)
	}
	// Summaries and targets are derived: recompute them from the raw runs.
	res.Summary, res.Targets = nil, nil
	res.finish()
	return res.write(dir)
}

// gitDescribe names the checkout being measured, or "unknown" outside git.
func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
