// Command fleet measures issue 11's one-driver-layer-for-many-bases through
// the CLI, as a user runs it, on one private buildkitd and a registry on
// 127.0.0.1 (every image is pushed: no docker tarball): `gpuimg build` of one
// driver on one base cold, the unchanged rebuild, the same driver on two
// bases of one family in one command cold (the second base's extra cost),
// and a fleet of 3 drivers x 2 bases in one command cold; then it reads the
// pushed manifests back (is each driver layer one blob on both bases? what
// does the registry store?). Each row gives wall time, buildkitd's CPU time
// (from /proc: what a shared machine's load does not move) and the CLI's own
// CPU time, and which steps took the time. The client-side compression rows
// solve the llb package's plan directly (the CLI has no such mode). A
// benchmark, not a test: it never fails on a number.
//
//	go run ./bench/fleet [-payload zstd|xz] [-compression gzip|zstd]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/gpuimg/gpuimg/bench/benchenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/ocilayout"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
)

var versions = []string{"999.10.01", "999.20.01", "999.30.01"}

type env struct {
	addr, reg, files string
	gpuimg, cacheDir string // the CLI, with gpuimg-unpack next to it; its driver cache
	runs, sums       map[string]string
	bases            []llb.Base
	extractorDir     string
	compression      string
	d                *testenv.BuildkitDaemon
}

func main() {
	payload := flag.String("payload", "zstd", "stand-in payload: zstd (today's drivers) or xz (450.102.04's era)")
	compression := flag.String("compression", "gzip", "layer compression: gzip or zstd")
	work := flag.String("work", ".cache/bench-fleet", "scratch directory")
	flag.Parse()
	if err := run(context.Background(), *payload, *compression, *work); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleet %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, payload, compression, work string) error {
	e := &env{runs: map[string]string{}, sums: map[string]string{}, compression: compression}
	work, _ = filepath.Abs(work)
	serveDir := filepath.Join(work, "serve")
	if err := os.MkdirAll(serveDir, 0o755); err != nil {
		return err
	}
	for _, v := range versions {
		p, err := standin.Cached(standin.Options{Version: v, Compression: payload, Scale: standin.ScaleRealistic})
		if err != nil {
			return err
		}
		dst := filepath.Join(serveDir, filepath.Base(p))
		_ = os.Remove(dst)
		if err := os.Link(p, dst); err != nil {
			return err
		}
		sum, _, err := drivers.FileSHA256(dst)
		if err != nil {
			return err
		}
		e.runs[v], e.sums[v] = dst, sum
	}
	// gpuimg and gpuimg-unpack side by side, as make build leaves them.
	e.extractorDir = filepath.Join(work, "bin")
	e.gpuimg, e.cacheDir = filepath.Join(e.extractorDir, "gpuimg"), filepath.Join(work, "drivers")
	for _, b := range []struct{ out, pkg string }{{"gpuimg-unpack", "./cmd/gpuimg-unpack"}, {"gpuimg", "./cmd/gpuimg"}} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(e.extractorDir, b.out), b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	var stop func()
	var err error
	if e.files, stop, err = benchenv.Serve(http.FileServer(http.Dir(serveDir))); err != nil {
		return err
	}
	defer stop()
	if e.reg, stop, err = benchenv.StartRegistry(); err != nil {
		return err
	}
	defer stop()
	if err := e.pushBases(envOr("GPUIMG_TEST_BASE", ".cache/base/debian-bookworm")); err != nil {
		return err
	}
	if e.d, err = testenv.StartBuildkitd(envOr("GPUIMG_BUILDKITD", "bin/buildkitd")); err != nil {
		return err
	}
	defer e.d.Stop()
	e.addr = e.d.Addr
	return e.scenarios(ctx, payload)
}

func (e *env) scenarios(ctx context.Context, payload string) error {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("payload %s, layers %s, %d CPUs, load average %s", payload, e.compression, runtime.NumCPU(), load)
	v := versions[0]
	a, b := e.bases[0].Name, e.bases[1].Name
	if err := benchenv.Prune(ctx, e.d); err != nil {
		return err
	}
	one, err := e.cli(ctx, "cold, one driver on one base", []string{v}, a)
	if err != nil {
		return err
	}
	one.row(one)
	again, err := e.cli(ctx, "unchanged rebuild", []string{v}, a)
	if err != nil {
		return err
	}
	again.row(one)
	if err := benchenv.Prune(ctx, e.d); err != nil {
		return err
	}
	two, err := e.cli(ctx, "cold, one driver on two bases of one family, one command", []string{v}, a+","+b)
	if err != nil {
		return err
	}
	two.row(one)
	fmt.Printf("  the second base's extra cost: %.2fx of one image's cold wall time, %.2fx of its builder CPU (target <= 0.3x)\n",
		(two.wall-one.wall)/one.wall, (two.cpu-one.cpu)/one.cpu)
	if err := e.stored([]string{v}); err != nil {
		return err
	}
	if err := benchenv.Prune(ctx, e.d); err != nil {
		return err
	}
	fleet, err := e.cli(ctx, "cold, fleet of 3 drivers x 2 bases, one command", versions, a+","+b)
	if err != nil {
		return err
	}
	fleet.row(one)
	fmt.Printf("  the fleet: %.2fx one image's cold wall time, %.2fx its builder CPU (target <= 3.5x)\n", fleet.wall/one.wall, fleet.cpu/one.cpu)
	if err := e.stored(versions); err != nil {
		return err
	}
	return e.clientSide(ctx, v)
}

// timing is one timed gpuimg build.
type timing struct {
	what                  string
	wall, cpu, clientCPU  float64
	installs, linkerCache int                // install and linker-cache steps that ran
	steps                 map[string]float64 // seconds per step that ran, by name
}

// row prints r, relative to the reference run, and r's longest steps.
func (r timing) row(ref timing) {
	fmt.Printf("%-58s %6.1f s wall (%.2fx) %6.1f s builder CPU (%.2fx) %5.1f s CLI CPU; %d install, %d linker cache steps\n",
		r.what, r.wall, r.wall/ref.wall, r.cpu, r.cpu/ref.cpu, r.clientCPU, r.installs, r.linkerCache)
	r.printSteps()
}

func (r timing) printSteps() {
	names := make([]string, 0, len(r.steps))
	for n, secs := range r.steps {
		if secs >= 0.5 {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return r.steps[names[i]] > r.steps[names[j]] })
	if len(names) > 0 {
		fmt.Println("    steps that ran, seconds (a step of several images at once is summed, so more than the wall time):")
	}
	for _, n := range names {
		fmt.Printf("    %6.1f s  %s\n", r.steps[n], n)
	}
}

// cli runs `gpuimg build` for drivers on bases (a comma list), pushing
// every image to the registry, with rawjson progress read for the steps.
func (e *env) cli(ctx context.Context, what string, drivers []string, bases string) (timing, error) {
	var sums []string
	for _, d := range drivers {
		sums = append(sums, e.sums[d])
	}
	tag := e.reg + "/fleet:{driver}"
	if strings.Contains(bases, ",") {
		tag += "-{base}"
	}
	cmd := exec.CommandContext(ctx, e.gpuimg, "build", "--driver", strings.Join(drivers, ","), "--sha256", strings.Join(sums, ","),
		"--mirror", "http://"+e.files+"/{file}", "--cache-dir", e.cacheDir, "--base", bases, "-t", tag, "--push",
		"--compression", e.compression, "--progress", "rawjson", "--addr", e.addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cpu0 := e.builderCPU()
	start := time.Now()
	err := cmd.Run()
	r := timing{what: what, wall: time.Since(start).Seconds(), cpu: e.builderCPU() - cpu0, steps: map[string]float64{}}
	if err != nil {
		return r, fmt.Errorf("%s: %v\n%s", what, err, tail(stderr.String(), 30))
	}
	r.clientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	r.readSteps(stderr.Bytes())
	say("%s: %.1f s", what, r.wall)
	return r, nil
}

// readSteps reads the rawjson progress: how long each step that ran took
// (steps of one name, such as the installs of three drivers, add up), and
// how many times an install and a linker-cache step ran.
func (r *timing) readSteps(progress []byte) {
	installs, caches := map[string]bool{}, map[string]bool{}
	ran := map[string]float64{}
	names := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(progress))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var st client.SolveStatus
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if v.Started == nil || v.Completed == nil || v.Cached {
				continue
			}
			d := v.Digest.String() + "@" + v.Started.String() // one run, however many builds share it
			ran[d], names[d] = v.Completed.Sub(*v.Started).Seconds(), shortName(v.Name)
			switch {
			case strings.HasPrefix(v.Name, "install NVIDIA driver"):
				installs[d] = true
			case strings.HasPrefix(v.Name, "linker cache for driver"):
				caches[d] = true
			}
		}
	}
	for d, secs := range ran {
		r.steps[names[d]] += secs
	}
	r.installs, r.linkerCache = len(installs), len(caches)
}

// shortName drops what tells drivers and bases apart from a step's name, so
// that the same step of several images adds up.
func shortName(n string) string {
	n = regexp.MustCompile(`999\.\d+\.01`).ReplaceAllString(n, "D")
	n = regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllString(n, "sha256:…")
	n = regexp.MustCompile(`127\.0\.0\.1:\d+/`).ReplaceAllString(n, "")
	if len(n) > 100 {
		n = n[:100] + "…"
	}
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stored reads the pushed images of drivers on both bases back: the layers
// each adds to its base, whether the driver layer is one blob on both, and
// the bytes the registry holds for them against two separate images each.
func (e *env) stored(drivers []string) error {
	var unique, referenced int64
	for _, v := range drivers {
		var added [][]v1.Descriptor
		for i := range e.bases {
			r, err := name.ParseReference(fmt.Sprintf("%s/fleet:%s-base%d-latest", e.reg, v, i), name.Insecure)
			if err != nil {
				return err
			}
			img, err := remote.Image(r)
			if err != nil {
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			added = append(added, m.Layers[1+i:]) // base 1 = base 0 + one file
		}
		seen := map[string]bool{}
		for i, ls := range added {
			var parts []string
			for _, l := range ls {
				parts = append(parts, fmt.Sprintf("%s %.1f MB", l.Digest.Hex[:12], float64(l.Size)/1e6))
				referenced += l.Size
				if !seen[l.Digest.String()] {
					seen[l.Digest.String()] = true
					unique += l.Size
				}
			}
			fmt.Printf("  driver %s, base %d adds: %s\n", v, i, strings.Join(parts, ", "))
		}
		// The last layer is each base's linker cache; the others are the
		// driver's files.
		same := len(added[0]) == len(added[1])
		for j, l := range added[0][:len(added[0])-1] {
			same = same && l.Digest == added[1][j].Digest
		}
		fmt.Printf("  driver %s: the driver layers are the same blobs on both bases: %v\n", v, same)
	}
	fmt.Printf("  the registry stores %.1f MB for the layers these %d images add to their bases, which reference %.1f MB\n",
		float64(unique)/1e6, 2*len(drivers), float64(referenced)/1e6)
	return nil
}

// clientSide measures the candidate "export the driver layer uncompressed
// and compress it on the client with every core": the builder sends the
// layer's files as a tar through the session (the driver layer is cached by
// now), and the client compresses it with pgzip (level 6, 1 MiB blocks) or
// zstd (default level, concurrent blocks) as it arrives.
func (e *env) clientSide(ctx context.Context, v string) error {
	c, err := client.New(ctx, e.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	spec := e.spec(v)
	plans, err := llb.Fleet(spec, e.bases[:1])
	if err != nil {
		return err
	}
	def, err := plans[0].DriverLayer.Marshal(ctx, bk.Platform(spec.Platform))
	if err != nil {
		return err
	}
	fs, err := fsutil.NewFS(e.extractorDir)
	if err != nil {
		return err
	}
	for _, comp := range []string{"pgzip", "zstd"} {
		var n counter
		var zw io.WriteCloser
		if comp == "pgzip" {
			w, _ := pgzip.NewWriterLevel(&n, 6)
			_ = w.SetConcurrency(1<<20, 2*runtime.NumCPU())
			zw = w
		} else {
			zw, _ = zstd.NewWriter(&n, zstd.WithEncoderConcurrency(runtime.NumCPU()))
		}
		var raw counter
		cpu0, start, clientCPU0 := e.builderCPU(), time.Now(), processCPU()
		_, err := c.Solve(ctx, def, client.SolveOpt{
			LocalMounts: map[string]fsutil.FS{extractorName: fs},
			Exports: []client.ExportEntry{{Type: client.ExporterTar, Output: func(map[string]string) (io.WriteCloser, error) {
				return nopCloser{io.MultiWriter(&raw, zw)}, nil
			}}},
		}, nil)
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return err
		}
		fmt.Printf("%-58s %6.1f s wall %6.1f s builder CPU %5.1f s client CPU, %.1f MB tar -> %.1f MB\n",
			"client-side "+comp+" of the cached driver layer (tar export)", time.Since(start).Seconds(), e.builderCPU()-cpu0,
			processCPU()-clientCPU0, float64(raw.n)/1e6, float64(n.n)/1e6)
	}
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// processCPU is this process's CPU time (user+sys), in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// builderCPU is the CPU time buildkitd and its build steps have used.
func (e *env) builderCPU() float64 {
	secs, err := e.d.CPUSeconds()
	if err != nil {
		say("builder CPU time: %v", err)
	}
	return secs
}

// spec is the split plan of driver v on the first base, as gpuimg build
// plans it for a base that shares its family's driver layer (the same
// extractor name, URL and flags: the CLI's fleet leaves it cached).
func (e *env) spec(v string) llb.Spec {
	file := filepath.Base(e.runs[v])
	platform := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	return llb.Spec{
		Driver: drivers.Resolved{
			Version: drivers.MustParseVersion(v), Arch: drivers.ArchX86_64, Variant: drivers.VariantFull,
			SHA256: e.sums[v], URLs: []string{"http://" + e.files + "/" + file}, VerifiedBy: drivers.VerifiedByFlag,
		},
		Platform:         platform,
		Base:             e.bases[0],
		Components:       llb.All,
		Extractor:        &llb.Extractor{LocalName: extractorName, FileName: "gpuimg-unpack", Platform: platform},
		SplitLinkerCache: true,
	}
}

// extractorName is gpuimg build's SolveOpt.LocalMounts key of the extractor.
const extractorName = "gpuimg-extractor"

// pushBases pushes the Debian base and a second base of the same family
// (the first plus one file) and pins both by digest.
func (e *env) pushBases(layoutDir string) error {
	l, err := ocilayout.Open(layoutDir)
	if err != nil {
		return err
	}
	if len(l.Entries) == 0 {
		return fmt.Errorf("base layout %s: no image", layoutDir)
	}
	// The layout's first entry: the amd64 image, or an index holding it.
	first, _, err := l.Image(l.Entries[0], ocispecs.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return fmt.Errorf("base layout %s: %w", layoutDir, err)
	}
	extra, err := oneFileLayer("etc/second-base", "a second base of the same family\n")
	if err != nil {
		return err
	}
	second, err := mutate.AppendLayers(first, extra)
	if err != nil {
		return err
	}
	for i, img := range []v1.Image{first, second} {
		ref := fmt.Sprintf("%s/base%d:latest", e.reg, i)
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img); err != nil {
			return err
		}
		dg, err := img.Digest()
		if err != nil {
			return err
		}
		pinned := fmt.Sprintf("%s/base%d@%s", e.reg, i, dg)
		e.bases = append(e.bases, llb.Base{Ref: pinned, Name: ref})
	}
	return nil
}

func oneFileLayer(path, content string) (v1.Layer, error) {
	var buf strings.Builder
	tw := newTar(&buf)
	if err := tw.add(path, content); err != nil {
		return nil, err
	}
	return static.NewLayer([]byte(buf.String()), types.DockerUncompressedLayer), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
