package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/gpuimg/gpuimg/bench/cores/packed"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/tonistiigi/fsutil"
)

// Names the solves share with the builder.
const (
	toolsLocalName = "bench-cores-tools" // gpuimg-unpack and the packer
	packerName     = "gpuimg-pack"
	layoutStoreID  = "bench-cores-layer" // design (a)'s OCI layout
	packerDir      = "/gpuimg/packer"
)

// design is one way to build the image.
type design struct {
	name string
	// pack: a build step compresses the layer on every core (design a).
	pack bool
	// concurrent: the docker tarball and the push are two solves (design b).
	concurrent bool
}

var designs = []design{
	{name: "(0) today: BuildKit compresses, one solve, both exporters"},
	{name: "(b) BuildKit compresses, tarball and push concurrent", concurrent: true},
	{name: "(a) packer step on all cores, blob through an OCI layout", pack: true},
	{name: "(a+b) packer step, tarball and push concurrent", pack: true, concurrent: true},
}

// result is one cold build of a design.
type result struct {
	wall, builder, client, server float64
	steps                         *stepLog
	tarball, ref                  string
	packed                        packed.Layer // design (a)'s packer output
}

// build builds design d cold: the builder's cache pruned, no output file.
// cache, when set, adds --cache-to/--cache-from entries to the solves.
func (e *env) build(ctx context.Context, d design, tag string, cache *cacheOpts) (result, error) {
	r := result{tarball: filepath.Join(e.out, tag+".tar"), ref: e.reg + "/cores:" + tag, steps: newStepLog()}
	if err := os.Remove(r.tarball); err != nil && !os.IsNotExist(err) {
		return r, err
	}
	c, err := client.New(ctx, e.d.Addr)
	if err != nil {
		return r, err
	}
	defer c.Close()
	b0, c0, s0 := e.builderCPU(), processCPU(), e.serverCPU()
	start := time.Now()
	r.steps.start = start
	def, config, err := e.imageDef(ctx)
	if err != nil {
		return r, err
	}
	opt, err := e.solveOpt()
	if err != nil {
		return r, err
	}
	if d.pack {
		layout := filepath.Join(e.out, tag+"-layout")
		_ = os.RemoveAll(layout)
		manifest, err := e.packSolve(ctx, c, layout, &r, cache)
		if err != nil {
			return r, err
		}
		store, err := local.NewStore(layout)
		if err != nil {
			return r, err
		}
		opt.OCIStores = map[string]content.Store{layoutStoreID: store}
		def = e.layerOnBase(manifest)
	}
	if cache != nil {
		opt.CacheExports, opt.CacheImports = cache.entries("image")
	}
	if err := e.export(ctx, c, opt, def, config, &r, d.concurrent); err != nil {
		return r, fmt.Errorf("%s: %w", d.name, err)
	}
	r.wall = time.Since(start).Seconds()
	r.builder, r.client, r.server = e.builderCPU()-b0, processCPU()-c0, e.serverCPU()-s0
	return r, nil
}

// imageDef is today's graph (gpuimg build's plan with one driver layer)
// and the image config.
func (e *env) imageDef(ctx context.Context) (func() (*pb.Definition, error), []byte, error) {
	graph, err := llb.Build(e.spec)
	if err != nil {
		return nil, nil, err
	}
	config, err := llb.ImageConfig(e.baseConfig, e.spec)
	return func() (*pb.Definition, error) { return marshal(ctx, graph.Result, e) }, config, err
}

func marshal(ctx context.Context, st bk.State, e *env) (*pb.Definition, error) {
	def, err := st.Marshal(ctx, bk.Platform(e.spec.Platform))
	if err != nil {
		return nil, err
	}
	return def.ToPB(), nil
}

// solveOpt is what gpuimg build passes: its compatibility version, the
// epoch and platform, and the static tools synced from the client.
func (e *env) solveOpt() (client.SolveOpt, error) {
	fs, err := fsutil.NewFS(e.toolsDir)
	if err != nil {
		return client.SolveOpt{}, err
	}
	return client.SolveOpt{
		CompatibilityVersion: 20,
		FrontendAttrs: map[string]string{
			"build-arg:SOURCE_DATE_EPOCH": strconv.FormatInt(e.spec.Epoch, 10),
			"platform":                    e.spec.Platform.OS + "/" + e.spec.Platform.Architecture,
		},
		LocalMounts: map[string]fsutil.FS{toolsLocalName: fs},
	}, nil
}

// packStep is design (a)'s step: the packer diffs the base against the
// installed tree and writes the compressed layer and its diffID to /out.
// No mount is read-only: BuildKit would key the step by a checksum of a
// read-only mount's contents (the whole tree read and hashed); writable,
// the key is the install step's, and nothing written there is kept.
func (e *env) packStep() (bk.State, error) {
	graph, err := llb.Build(e.spec)
	if err != nil {
		return bk.State{}, err
	}
	tools := bk.Local(toolsLocalName, bk.IncludePatterns([]string{packerName}),
		bk.SharedKeyHint(toolsLocalName+"-packer"), bk.LocalUniqueID(toolsLocalName+"-packer"),
		bk.WithCustomName("load the static layer packer"))
	st := bk.Scratch().Run(
		bk.Args([]string{packerDir + "/" + packerName, "-compression", e.compression, "-lower", "/lower", "-upper", "/upper", "-out", "/out"}),
		bk.Dir("/"),
		bk.User("0:0"),
		bk.Network(pb.NetMode_NONE),
		bk.AddMount(packerDir, tools, bk.Readonly),
		bk.AddMount("/lower", graph.Base),
		bk.AddMount("/upper", graph.Installed),
		bk.Platform(e.spec.Platform),
		bk.WithCustomNamef("pack the driver layer on every core (%s)", e.compression))
	return st.AddMount("/out", bk.Scratch()), nil
}

// packSolve runs the packer step and brings its output (the blob and
// layer.json) to layout with the local exporter, then completes the OCI
// layout there (config, manifest, index) and returns the manifest digest.
func (e *env) packSolve(ctx context.Context, c *client.Client, layout string, r *result, cache *cacheOpts) (string, error) {
	st, err := e.packStep()
	if err != nil {
		return "", err
	}
	opt, err := e.solveOpt()
	if err != nil {
		return "", err
	}
	opt.Exports = []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: layout}}
	if cache != nil {
		opt.CacheExports, opt.CacheImports = cache.entries("pack")
	}
	_, err = c.Build(ctx, opt, "", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		def, err := marshal(ctx, st, e)
		if err != nil {
			return nil, err
		}
		return gw.Solve(ctx, gateway.SolveRequest{Definition: def, CacheImports: gatewayCache(opt.CacheImports)})
	}, r.steps.channel("pack solve"))
	if err != nil {
		return "", fmt.Errorf("packer step: %w", err)
	}
	t := time.Now()
	manifest, err := writeLayout(layout, e.spec.Platform, &r.packed)
	r.steps.client("write the OCI layout's config and manifest", t)
	return manifest, err
}

// layerOnBase is design (a)'s image: the base and the packed layer, taken
// from the client's OCI layout as an already compressed blob.
func (e *env) layerOnBase(manifest string) func() (*pb.Definition, error) {
	platform := bk.Platform(e.spec.Platform)
	base := bk.Image(e.spec.Base.Ref, platform, bk.WithCustomNamef("base %s", e.spec.Base.Ref))
	layer := bk.OCILayout("bench-cores/driver-layer@"+manifest, bk.OCIStore("", layoutStoreID), platform,
		bk.WithCustomName("the packed driver layer (OCI layout on the client)"))
	merged := bk.Merge([]bk.State{base, layer}, platform, bk.WithCustomName("base + packed driver layer"))
	return func() (*pb.Definition, error) { return marshal(context.Background(), merged, e) }
}

// exportAttrs are gpuimg build's for an image-producing exporter.
func (e *env) exportAttrs(ref string, push bool) map[string]string {
	a := map[string]string{"name": ref, "compression": e.compression, "force-compression": "true"}
	if e.compression == "zstd" {
		a["oci-mediatypes"] = "true"
	}
	if push {
		a["push"] = "true"
	}
	return a
}

// export solves def with the docker-tarball and push exporters: in one
// solve, or as two concurrent solves of the same definition.
func (e *env) export(ctx context.Context, c *client.Client, opt client.SolveOpt, def func() (*pb.Definition, error), config []byte, r *result, concurrent bool) error {
	tmp := r.tarball + ".tmp"
	tarball := client.ExportEntry{Type: client.ExporterDocker, Attrs: e.exportAttrs(r.ref, false),
		Output: func(map[string]string) (io.WriteCloser, error) { return os.Create(tmp) }}
	push := client.ExportEntry{Type: client.ExporterImage, Attrs: e.exportAttrs(r.ref, true)}
	buildFunc := func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		pbDef, err := def()
		if err != nil {
			return nil, err
		}
		res, err := gw.Solve(ctx, gateway.SolveRequest{Definition: pbDef, CacheImports: gatewayCache(opt.CacheImports)})
		if err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterImageConfigKey, config)
		res.AddMeta(exptypes.ExporterImageBaseConfigKey, e.baseConfig)
		return res, nil
	}
	solves := [][]client.ExportEntry{{tarball, push}}
	if concurrent {
		solves = [][]client.ExportEntry{{tarball}, {push}}
	}
	errs := make([]error, len(solves))
	var wg sync.WaitGroup
	// With a blob from the client's OCI layout, the push solve starts once
	// the tarball solve has fetched the blob to the builder: the builder
	// reads a layout's blob through any one session of the solves sharing
	// it, and two solves fetching it at once failed ("failed to copy:
	// context canceled"); tried again, the partial fetch could not be
	// resumed ("unsupported offset").
	gate := make(chan struct{})
	if opt.OCIStores == nil || !concurrent {
		close(gate)
	}
	for i, exports := range solves {
		o := opt
		o.Exports = exports
		label := "export: " + exportName(exports)
		ch := r.steps.channel(label)
		if i == 0 && concurrent && opt.OCIStores != nil {
			ch = r.steps.channelUntil(label, r.packed.Digest, gate)
		}
		if i > 0 {
			o.CacheExports = nil // the first solve exports the cache
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				<-gate
			}
			_, errs[i] = c.Build(ctx, o, "", buildFunc, ch)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	return os.Rename(tmp, r.tarball)
}

func exportName(exports []client.ExportEntry) string {
	if len(exports) > 1 {
		return "tarball + push"
	}
	return exports[0].Type
}
