// Command cores measures, end to end, the designs that put every core on
// the driver layer's compression while BuildKit stays the engine (issue 11,
// item 4). On one private buildkitd it builds the same driver image (the
// realistic stand-in, version 999.10.01, downloaded by BuildKit from a file
// server on 127.0.0.1, the base in a registry on 127.0.0.1) cold in each
// design, side by side in one run, in a rotating order, every build writing
// a docker tarball and pushing to the registry:
//
//	(0)   today: gpuimg's plan (llb.Build with the extraction step, as
//	      `gpuimg build --driver-layers 1` makes it: the driver's files in one
//	      layer), one solve with both exporters, BuildKit compressing the
//	      layer on one core (gpuimg build's default of 4 driver layers,
//	      compressed one per core, is not one of these designs);
//	(b)   the same plan, the docker-tarball export and the push as two
//	      concurrent solves of the same definition (the solver shares the
//	      steps and the blob);
//	(a)   a build step (no network) runs a static packer (bench/cores/packer,
//	      synced from the client) that diffs the base against the installed
//	      tree and compresses the layer on every core; the blob goes to the
//	      client through the local exporter, into an OCI layout, and a second
//	      solve merges it (llb.OCILayout) onto the base and exports it as is;
//	(a+b) (a) with (b)'s concurrent exports.
//
// Per design: wall time, builder CPU (buildkitd and the steps it ran),
// client CPU (this process; the registry and file server run in a child
// process, counted apart), the driver layer's bytes against `gzip -6` and
// `zstd -3` of the same tar, and where the time went. Every image is checked
// against (0)'s: the same base layers, and a driver layer with the same
// entries (names, types, modes, owners, times, link targets, xattrs,
// contents, whiteouts) and a diffID that is the sha256 of its tar; the run
// aborts on a mismatch. Every build pushes to an empty registry. Last,
// -cache-test exports the build cache of designs (a) (as a user would ask,
// and with the packer step's result uncompressed) and (0) with --cache-to
// type=local, and builds each again from it in a pruned builder. A
// benchmark, not a test: it never fails on a number.
//
//	go run ./bench/cores [-payload zstd|xz] [-compression gzip|zstd] [-runs N]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gpuimg/gpuimg/bench/benchenv"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

const version = "999.10.01"

// serveEnv makes the re-executed harness a file server and registry.
const serveEnv = "BENCH_CORES_SERVE"

type config struct {
	payload, compression, work string
	runs                       int
	cacheTest                  bool
}

func main() {
	if dir := os.Getenv(serveEnv); dir != "" {
		serve(dir)
		return
	}
	var cfg config
	flag.StringVar(&cfg.payload, "payload", "zstd", "the stand-in's payload: zstd (today's drivers) or xz (450.102.04's era)")
	flag.StringVar(&cfg.compression, "compression", "gzip", "layer compression: gzip or zstd")
	flag.IntVar(&cfg.runs, "runs", 1, "rounds (each design once per round, cold)")
	flag.StringVar(&cfg.work, "work", ".cache/bench-cores", "scratch directory")
	flag.BoolVar(&cfg.cacheTest, "cache-test", true, "also try --cache-to type=local with design (a) and (0), then a build from that cache")
	flag.Parse()
	if cfg.compression != "gzip" && cfg.compression != "zstd" {
		fmt.Fprintf(os.Stderr, "cores: -compression %q: use gzip or zstd\n", cfg.compression)
		os.Exit(2)
	}
	if cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "cores: -runs must be at least 1")
		os.Exit(2)
	}
	// containerd's content store (the OCI layouts) warns about fsverity.
	logrus.SetLevel(logrus.ErrorLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cores:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cores %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// env is the running harness.
type env struct {
	cfg         config
	d           *testenv.BuildkitDaemon
	files, reg  string
	server      *exec.Cmd // the registry and file server
	serveDir    string    // what the file server serves: the .run
	baseLayout  string    // the base's OCI layout
	spec        llb.Spec
	baseConfig  []byte
	baseDiffIDs []string // the base's layers' diffIDs
	toolsDir    string   // gpuimg-unpack and the packer, synced to the builder
	out         string
	compression string
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("buildkitd runs as root here: run it as root")
	}
	work, err := filepath.Abs(cfg.work)
	if err != nil {
		return err
	}
	e := &env{cfg: cfg, compression: cfg.compression, toolsDir: filepath.Join(work, "tools"), out: filepath.Join(work, "out")}
	serveDir := filepath.Join(work, "serve")
	for _, dir := range []string{serveDir, e.out} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	say("stand-in %s (realistic, %s payload; generated once)", version, cfg.payload)
	runPath, err := standin.Cached(standin.Options{Version: version, Compression: cfg.payload, Scale: standin.ScaleRealistic})
	if err != nil {
		return err
	}
	served := filepath.Join(serveDir, filepath.Base(runPath))
	_ = os.Remove(served)
	if err := os.Link(runPath, served); err != nil {
		return err
	}
	sum, _, err := drivers.FileSHA256(served)
	if err != nil {
		return err
	}
	if err := e.buildTools(); err != nil {
		return err
	}
	e.serveDir, e.baseLayout = serveDir, envOr("GPUIMG_TEST_BASE", ".cache/base/debian-bookworm")
	e.spec.Driver = drivers.Resolved{
		Version: drivers.MustParseVersion(version), Arch: drivers.ArchX86_64, Variant: drivers.VariantFull,
		SHA256: sum, VerifiedBy: drivers.VerifiedByFlag,
	}
	if err := e.freshServer(); err != nil {
		return err
	}
	defer e.stopServer()
	say("starting a private buildkitd")
	if e.d, err = testenv.StartBuildkitd(envOr("GPUIMG_BUILDKITD", "bin/buildkitd")); err != nil {
		return err
	}
	defer e.d.Stop()
	return e.measure(ctx)
}

// buildTools builds gpuimg-unpack (the extraction step's, as `make build`
// puts it beside gpuimg) and the packer, both static.
func (e *env) buildTools() error {
	for _, t := range []struct{ name, pkg string }{{"gpuimg-unpack", "./cmd/gpuimg-unpack"}, {packerName, "./bench/cores/packer"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(e.toolsDir, t.name), t.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", t.name, err, out)
		}
	}
	e.spec.Platform = ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}
	e.spec.Components = llb.All
	e.spec.Extractor = &llb.Extractor{LocalName: toolsLocalName, FileName: "gpuimg-unpack", Platform: e.spec.Platform}
	return nil
}

// freshServer starts an empty registry (and the file server) and pushes
// the base to it, so that every build pushes its driver layer for real: a
// registry that already holds the blob from an earlier round answers the
// push's existence check, and the upload is skipped.
func (e *env) freshServer() error {
	if e.server != nil {
		e.stopServer()
	}
	if err := e.startServer(e.serveDir); err != nil {
		return err
	}
	e.spec.Driver.URLs = []string{"http://" + e.files + "/" + e.spec.Driver.FileName()}
	return e.pushBase(e.baseLayout)
}

// startServer re-executes this harness as the registry and file server, so
// that this process's CPU time is the client's alone.
func (e *env) startServer(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), serveEnv+"="+dir)
	cmd.Stderr = os.Stderr
	// It goes with this process, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	e.server = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("registry and file server: %w", err)
	}
	if _, err := fmt.Sscan(line, &e.files, &e.reg); err != nil {
		return fmt.Errorf("registry and file server said %q: %w", line, err)
	}
	return nil
}

func (e *env) stopServer() {
	_ = e.server.Process.Signal(syscall.SIGTERM)
	_ = e.server.Wait()
}

// serve is the child: a file server for dir and a registry, both on
// 127.0.0.1, until it is told to stop.
func serve(dir string) {
	files, stopFiles, err := benchenv.Serve(http.FileServer(http.Dir(dir)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cores: file server:", err)
		os.Exit(1)
	}
	defer stopFiles()
	reg, stopReg, err := benchenv.StartRegistry()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cores: registry:", err)
		os.Exit(1)
	}
	defer stopReg()
	fmt.Println(files, reg)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

// serverCPU is the registry and file server's CPU time so far.
func (e *env) serverCPU() float64 {
	secs, err := procCPU(e.server.Process.Pid, false)
	if err != nil {
		say("registry CPU time: %v", err)
	}
	return secs
}

// builderCPU is the CPU time buildkitd and the steps it ran used so far.
func (e *env) builderCPU() float64 {
	secs, err := e.d.CPUSeconds()
	if err != nil {
		say("builder CPU time: %v", err)
	}
	return secs
}

// processCPU is this process's CPU time (user+sys), in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// procCPU reads a process's user+sys time (and its reaped children's) from
// /proc/PID/stat.
func procCPU(pid int, children bool) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	fields := []int{11, 12}
	if children {
		fields = append(fields, 13, 14)
	}
	var ticks float64
	for _, i := range fields {
		var n float64
		if _, err := fmt.Sscan(f[i], &n); err != nil {
			return 0, err
		}
		ticks += n
	}
	return ticks / 100, nil
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
