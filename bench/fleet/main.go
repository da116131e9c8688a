// Command fleet measures the issue-11 plans on one private buildkitd, next
// to today's: extraction once per package (a step keyed by the .run, not the
// base) and one driver layer for many bases (the linker cache in a layer of
// its own). It solves the llb package's plans directly through the BuildKit
// client and pushes each image to a registry on 127.0.0.1 (no docker
// tarball): cold today, cold split, the same driver on a second base of the
// family right after, an unchanged rebuild, and a fleet of 3 drivers x 2
// bases in one session; then it reads the pushed manifests back (is the
// driver layer one blob on both bases? how big are the layers?). A
// benchmark, not a test: it never fails on a number.
//
//	go run ./bench/fleet [-payload zstd|xz] [-compression gzip|zstd]
//
// With FLEET_STEPS=1 it also prints, on stderr, every step and exporter
// phase of 0.2 s or more of each build.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/gpuimg/gpuimg/bench/benchenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
)

var versions = []string{"999.10.01", "999.20.01", "999.30.01"}

type env struct {
	addr, reg, files string
	runs, sums       map[string]string
	bases            []llb.Base
	configs          [][]byte
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
	e.extractorDir = filepath.Join(work, "extractor")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(e.extractorDir, "gpuimg-unpack"), "./cmd/gpuimg-unpack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the extractor: %v\n%s", err, out)
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
	fmt.Printf("payload %s, layers %s, load average %s", payload, e.compression, load)
	v := versions[0]
	row := func(what string, secs float64) {
		fmt.Printf("%-62s %6.1f s wall %6.1f s builder CPU\n", what, secs, lastCPU)
	}
	for _, sc := range []struct {
		name  string
		split bool
	}{{"today: install from the .run, one layer", false}, {"split: extract step, driver layer + cache layer", true}} {
		if err := benchenv.Prune(ctx, e.d); err != nil {
			return err
		}
		t, err := e.timed(ctx, []image{{v, 0, sc.split}})
		if err != nil {
			return err
		}
		row("cold, "+sc.name, t)
		c1 := lastCPU
		t2, err := e.timed(ctx, []image{{v, 1, sc.split}})
		if err != nil {
			return err
		}
		row(fmt.Sprintf("  second base right after (%.2fx wall, %.2fx CPU)", t2/t, lastCPU/c1), t2)
		t3, err := e.timed(ctx, []image{{v, 0, sc.split}})
		if err != nil {
			return err
		}
		row(fmt.Sprintf("  unchanged rebuild (%.2fx wall, %.2fx CPU)", t3/t, lastCPU/c1), t3)
		if err := e.layers(v, sc.split); err != nil {
			return err
		}
	}
	if err := benchenv.Prune(ctx, e.d); err != nil {
		return err
	}
	one, err := e.timed(ctx, []image{{v, 0, true}})
	if err != nil {
		return err
	}
	row("cold, one image (split)", one)
	oneCPU := lastCPU
	if err := benchenv.Prune(ctx, e.d); err != nil {
		return err
	}
	var fleet []image
	for _, d := range versions {
		fleet = append(fleet, image{d, 0, true}, image{d, 1, true})
	}
	t, err := e.timed(ctx, fleet)
	if err != nil {
		return err
	}
	row(fmt.Sprintf("cold, fleet 3 drivers x 2 bases, one session (%.2fx wall, %.2fx CPU)", t/one, lastCPU/oneCPU), t)
	return e.clientSide(ctx, v)
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
	spec := e.spec(image{v, 0, true})
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
			LocalMounts: map[string]fsutil.FS{"extractor": fs},
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
		lastCPU = e.builderCPU() - cpu0
		fmt.Printf("%-62s %6.1f s wall %6.1f s builder CPU %5.1f s client CPU, %.1f MB tar -> %.1f MB\n",
			"client-side "+comp+" of the cached driver layer (tar export)", time.Since(start).Seconds(), lastCPU,
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

// image is one build: a driver on base i, split or today's plan.
type image struct {
	driver string
	base   int
	split  bool
}

func (e *env) ref(im image) string {
	kind := "today"
	if im.split {
		kind = "split"
	}
	return fmt.Sprintf("%s/%s-base%d:%s", e.reg, kind, im.base, im.driver)
}

// builderCPU is the CPU time buildkitd and its build steps have used.
func (e *env) builderCPU() float64 {
	secs, err := e.d.CPUSeconds()
	if err != nil {
		say("builder CPU time: %v", err)
	}
	return secs
}

// lastCPU is the builder CPU time of the last timed call.
var lastCPU float64

// timed builds the images concurrently on one client and returns the time.
func (e *env) timed(ctx context.Context, ims []image) (float64, error) {
	cpu0 := e.builderCPU()
	defer func() { lastCPU = e.builderCPU() - cpu0 }()
	c, err := client.New(ctx, e.addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(ims))
	for i, im := range ims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.solve(ctx, c, im)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start).Seconds(), nil
}

func (e *env) spec(im image) llb.Spec {
	file := filepath.Base(e.runs[im.driver])
	spec := llb.Spec{
		Driver: drivers.Resolved{
			Version: drivers.MustParseVersion(im.driver), Arch: drivers.ArchX86_64, Variant: drivers.VariantFull,
			SHA256: e.sums[im.driver], URLs: []string{"http://" + e.files + "/" + file}, VerifiedBy: drivers.VerifiedByFlag,
		},
		Platform:   ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Base:       e.bases[im.base],
		Components: llb.All,
	}
	if im.split {
		spec.Extractor = &llb.Extractor{LocalName: "extractor", FileName: "gpuimg-unpack", Platform: spec.Platform}
		spec.SplitLinkerCache = true
	}
	return spec
}

func (e *env) solve(ctx context.Context, c *client.Client, im image) error {
	spec := e.spec(im)
	var st bk.State
	if im.split {
		plans, err := llb.Fleet(spec, []llb.Base{e.bases[0], e.bases[1]})
		if err != nil {
			return err
		}
		st = plans[im.base].Result
	} else {
		p, err := llb.Build(spec)
		if err != nil {
			return err
		}
		st = p.Result
	}
	fs, err := fsutil.NewFS(e.extractorDir)
	if err != nil {
		return err
	}
	attrs := map[string]string{"name": e.ref(im), "push": "true", "compression": e.compression}
	if e.compression == "zstd" {
		attrs["oci-mediatypes"] = "true"
	}
	opt := client.SolveOpt{
		Exports:     []client.ExportEntry{{Type: client.ExporterImage, Attrs: attrs}},
		LocalMounts: map[string]fsutil.FS{"extractor": fs},
	}
	config, err := llb.ImageConfig(e.configs[im.base], spec)
	if err != nil {
		return err
	}
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	steps := map[string]float64{}
	go func() {
		defer close(done)
		for st := range ch {
			for _, v := range st.Vertexes {
				if v.Started != nil && v.Completed != nil && !v.Cached {
					steps[v.Name] = v.Completed.Sub(*v.Started).Seconds()
				}
			}
			for _, s := range st.Statuses {
				if s.Started != nil && s.Completed != nil {
					steps["  "+s.ID] = s.Completed.Sub(*s.Started).Seconds()
				}
			}
		}
	}()
	defer func() {
		<-done
		if os.Getenv("FLEET_STEPS") != "" {
			for n, secs := range steps {
				if secs >= 0.2 {
					fmt.Fprintf(os.Stderr, "  step %5.1f s  %s: %s\n", secs, e.ref(im), n)
				}
			}
		}
	}()
	_, err = c.Build(ctx, opt, "", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		def, err := st.Marshal(ctx, bk.Platform(spec.Platform))
		if err != nil {
			return nil, err
		}
		r, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		r.AddMeta(exptypes.ExporterImageConfigKey, config)
		return r, nil
	}, ch)
	if err != nil {
		return fmt.Errorf("%s: %w", e.ref(im), err)
	}
	return nil
}

// layers prints the layers each base's image adds, and whether the driver
// layer is one blob on both bases.
func (e *env) layers(v string, split bool) error {
	var added [][]v1.Descriptor
	for i := range e.bases {
		r, err := name.ParseReference(e.ref(image{v, i, split}), name.Insecure)
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
		baseLayers := 1 + i // base 1 = base 0 + one layer
		added = append(added, m.Layers[baseLayers:])
	}
	for i, ls := range added {
		var parts []string
		for _, l := range ls {
			parts = append(parts, fmt.Sprintf("%s %.1f MB", l.Digest.Hex[:12], float64(l.Size)/1e6))
		}
		fmt.Printf("  base %d adds: %s\n", i, strings.Join(parts, ", "))
	}
	fmt.Printf("  driver layer one blob on both bases: %v\n", added[0][0].Digest == added[1][0].Digest)
	return nil
}

// pushBases pushes the Debian base and a second base of the same family
// (the first plus one file) and pins both by digest.
func (e *env) pushBases(layoutDir string) error {
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	first, err := p.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
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
		cfg, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		pinned := fmt.Sprintf("%s/base%d@%s", e.reg, i, dg)
		e.bases = append(e.bases, llb.Base{Ref: pinned, Name: ref})
		e.configs = append(e.configs, cfg)
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
