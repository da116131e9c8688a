package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// compatibilityVersion pins BuildKit's output-affecting defaults (media types
// among them) so digests do not move when the builder is upgraded. 20 is
// BuildKit 0.15's behaviour: Docker media types unless OCI ones are asked for,
// which Docker 20.10's `docker load` reads.
const compatibilityVersion = 20

// layoutStoreID names the client-side OCI store of an oci-layout:// base.
const layoutStoreID = "gpuimg-base"

// Summary is what --json prints: one entry per image built.
type Summary struct {
	Images []ImageResult `json:"images"`
}

// ImageResult describes one built image.
type ImageResult struct {
	Driver       string         `json:"driver"`
	Platforms    []string       `json:"platforms"`
	Components   string         `json:"components"`
	DriverSHA256 string         `json:"driver_sha256"`
	Verified     bool           `json:"verified"`
	Digest       string         `json:"digest,omitempty"`
	Outputs      []OutputResult `json:"outputs"`
}

// OutputResult is one place an image went: a pushed/named reference or a file.
type OutputResult struct {
	Type string `json:"type"`
	// Ref is REF@sha256:… for image outputs.
	Ref string `json:"ref,omitempty"`
	// Dest is the file or directory for docker/oci/local/tar outputs.
	Dest string `json:"dest,omitempty"`
}

func (o *Options) setDefaults() {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
}

// Run builds the images o describes and prints one line per image output on
// stdout (REF@sha256:… or the destination), or the --json summary.
func Run(ctx context.Context, o Options) error {
	o.setDefaults()
	p, err := o.plan(ctx)
	if err != nil {
		return err
	}
	if o.Emit != "" {
		return o.emit(ctx, p)
	}
	c, builder, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkPlatforms(o.Address(), p, builder.platforms); err != nil {
		return err
	}
	if !builder.storesImages && hasUnpushedImage(p) {
		o.warnf("type=image without push=true: the builder at %s (an OCI worker) keeps no images, so only the digest is printed; add push=true (or --push) or use type=docker,dest=FILE", o.Address())
	}
	summary, err := o.solve(ctx, c, p)
	if err != nil {
		return err
	}
	return o.report(summary)
}

func (o *Options) report(s *Summary) error {
	if o.JSON {
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	for _, img := range s.Images {
		for _, out := range img.Outputs {
			line := out.Ref
			if line == "" {
				line = out.Dest
			}
			fmt.Fprintln(o.Stdout, line)
		}
	}
	return nil
}

// solve runs one BuildKit build per image, concurrently on one connection
// (the solver shares the base and any identical vertex), with one progress
// display for all of them.
func (o *Options) solve(ctx context.Context, c *client.Client, p *plan) (*Summary, error) {
	mode := progressui.DisplayMode(o.Progress)
	if mode == "" {
		mode = progressui.DisplayMode(os.Getenv("BUILDKIT_PROGRESS"))
	}
	if mode == "" {
		mode = progressui.AutoMode
	}
	display, err := progressui.NewDisplay(o.Stderr, mode)
	if err != nil {
		return nil, fmt.Errorf("--progress %q: %w (use auto, plain, tty, quiet or rawjson)", o.Progress, err)
	}
	// containerd's content store (the OCI-layout base) logs probes such as
	// "failed check for fsverity support" as warnings: noise on a CLI's stderr.
	logrus.SetLevel(logrus.ErrorLevel)
	var layoutStore content.Store
	if p.base.Layout != "" {
		if layoutStore, err = local.NewStore(p.base.Layout); err != nil {
			return nil, fmt.Errorf("--base %s: %w", p.base.Given, err)
		}
	}
	dockerCfg := dockerconfig.LoadDefaultConfigFile(o.Stderr)
	attachables := []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(dockerCfg),
	})}

	merged := make(chan *client.SolveStatus)
	tap := newLogTap()
	displayDone := make(chan struct{})
	go func() {
		defer close(displayDone)
		// Runs on its own context so the last lines show even on Ctrl-C.
		_, _ = display.UpdateFrom(context.Background(), merged)
	}()
	var forwarders sync.WaitGroup
	results := make([]ImageResult, len(p.jobs))
	eg, ectx := errgroup.WithContext(ctx)
	// Each c.Build closes its status channel; every one is forwarded to the
	// single display.
	newStatus := func() chan *client.SolveStatus {
		ch := make(chan *client.SolveStatus)
		forwarders.Add(1)
		go func() {
			defer forwarders.Done()
			for s := range ch {
				tap.add(s)
				merged <- s
			}
		}()
		return ch
	}
	for i, j := range p.jobs {
		eg.Go(func() error {
			res, err := o.solveJob(ectx, c, p, j, layoutStore, attachables, newStatus)
			if err != nil {
				return tap.explain(j, err)
			}
			results[i] = res
			return nil
		})
	}
	err = eg.Wait()
	forwarders.Wait()
	close(merged)
	<-displayDone
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build interrupted; destinations not finished were discarded, none is left half-written: %w", context.Canceled)
		}
		return nil, err
	}
	return &Summary{Images: results}, nil
}

func (o *Options) solveJob(ctx context.Context, c *client.Client, p *plan, j *job, layoutStore content.Store,
	attachables []session.Attachable, newStatus func() chan *client.SolveStatus) (ImageResult, error) {
	res := ImageResult{
		Driver:       j.driver.String(),
		Components:   p.components.String(),
		DriverSHA256: j.inputs[0].SHA256,
		Verified:     true,
	}
	opt := client.SolveOpt{
		CompatibilityVersion: compatibilityVersion,
		FrontendAttrs:        map[string]string{"build-arg:SOURCE_DATE_EPOCH": strconv.FormatInt(p.epoch.Unix(), 10)},
		CacheImports:         jobCache(p.cacheFrom, j, len(p.jobs)),
		CacheExports:         jobCache(p.cacheTo, j, len(p.jobs)),
		Session:              attachables,
		LocalMounts:          map[string]fsutil.FS{},
	}
	if layoutStore != nil {
		opt.OCIStores = map[string]content.Store{layoutStoreID: layoutStore}
	}
	for _, in := range j.inputs {
		res.Platforms = append(res.Platforms, "")
		res.Verified = res.Verified && in.Verified
		if in.Source.LocalName != "" {
			fs, err := fsutil.NewFS(filepath.Dir(in.LocalPath))
			if err != nil {
				return res, fmt.Errorf("driver file %s: %w", in.LocalPath, err)
			}
			opt.LocalMounts[in.Source.LocalName] = fs
		}
	}
	for i, pl := range j.platforms {
		res.Platforms[i] = platforms.Format(pl)
	}
	cacheImports := make([]gateway.CacheOptionsEntry, 0, len(p.cacheFrom))
	for _, ci := range opt.CacheImports {
		cacheImports = append(cacheImports, gateway.CacheOptionsEntry{Type: ci.Type, Attrs: ci.Attrs})
	}
	buildFunc := o.buildFunc(p, j, cacheImports)
	if unchanged, digest, err := o.destUnchanged(ctx, c, opt, j, buildFunc, newStatus); err != nil {
		return res, err
	} else if unchanged {
		res.Digest = digest
		res.Outputs = outputsOf(j, digest)
		return res, nil
	}
	var pending []*pendingDest
	defer func() {
		for _, pd := range pending {
			pd.discard()
		}
	}()
	for _, pe := range j.exports {
		e := client.ExportEntry{Type: pe.spec.Type, Attrs: pe.attrs}
		if pe.dest != "" {
			pd, err := newPendingDest(pe.dest, pe.spec.writesDir())
			if err != nil {
				return res, err
			}
			pending = append(pending, pd)
			pd.attach(&e)
		}
		opt.Exports = append(opt.Exports, e)
	}
	resp, err := c.Build(ctx, opt, "gpuimg", buildFunc, newStatus())
	if err != nil {
		return res, err
	}
	res.Digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	res.Outputs = outputsOf(j, res.Digest)
	for _, pd := range pending {
		if err := pd.commit(); err != nil {
			return res, err
		}
	}
	pending = nil
	return res, nil
}

// outputsOf lists where image digest went: REF@digest per name of an image
// output, the destination of a file output.
func outputsOf(j *job, digest string) []OutputResult {
	var outs []OutputResult
	for _, pe := range j.exports {
		if pe.spec.Type == client.ExporterImage {
			for _, n := range strings.Split(pe.attrs["name"], ",") {
				if n != "" {
					outs = append(outs, OutputResult{Type: pe.spec.Type, Ref: n + "@" + digest})
				}
			}
			continue
		}
		outs = append(outs, OutputResult{Type: pe.spec.Type, Dest: pe.dest})
	}
	return outs
}

// buildFunc returns the gateway build of job j: per platform, pin the base,
// plan the LLB, solve it, and attach the image config.
func (o *Options) buildFunc(p *plan, j *job, cacheImports []gateway.CacheOptionsEntry) gateway.BuildFunc {
	return func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		out := gateway.NewResult()
		var plats exptypes.Platforms
		for i, pl := range j.platforms {
			in := j.inputs[i]
			base, baseConfig, err := o.resolveBase(ctx, gw, p.base, pl)
			if err != nil {
				return nil, err
			}
			spec := llb.Spec{
				Driver: in.Version, Platform: pl, Base: base, Source: in.Source,
				Components: p.components, Compat32: p.compat32, Prune: j.prune[i], Epoch: p.epoch.Unix(), Verified: in.Verified,
			}
			planned, err := llb.Build(spec)
			if err != nil {
				return nil, err
			}
			def, err := planned.Result.Marshal(ctx, bk.Platform(pl))
			if err != nil {
				return nil, err
			}
			r, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: cacheImports})
			if err != nil {
				return nil, err
			}
			ref, err := r.SingleRef()
			if err != nil {
				return nil, err
			}
			config, err := llb.ImageConfig(baseConfig, llb.ImageMeta{
				Spec: spec, SHA256: in.SHA256, Verified: in.Verified, DriverArch: in.Arch,
				BaseName: base.Name, BaseDigest: baseDigest(base), Created: p.epoch,
			})
			if err != nil {
				return nil, err
			}
			if len(j.platforms) == 1 {
				out.SetRef(ref)
				out.AddMeta(exptypes.ExporterImageConfigKey, config)
				out.AddMeta(exptypes.ExporterImageBaseConfigKey, baseConfig)
				continue
			}
			id := platforms.FormatAll(pl)
			out.AddRef(id, ref)
			out.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, config)
			out.AddMeta(exptypes.ExporterImageBaseConfigKey+"/"+id, baseConfig)
			plats.Platforms = append(plats.Platforms, exptypes.Platform{ID: id, Platform: pl})
		}
		if len(plats.Platforms) > 0 {
			dt, err := json.Marshal(plats)
			if err != nil {
				return nil, err
			}
			out.AddMeta(exptypes.ExporterPlatformsKey, dt)
		}
		return out, nil
	}
}

// resolveBase pins the base for one platform: from the client-side OCI
// layout, or through the builder's resolver (registry images; the builder's
// credentials and mirrors apply, and nothing is queried from this machine).
func (o *Options) resolveBase(ctx context.Context, gw gateway.Client, b baseSpec, pl ocispecs.Platform) (llb.Base, []byte, error) {
	if b.Layout != "" {
		img, err := resolveLayout(b, pl)
		if err != nil {
			return llb.Base{}, nil, err
		}
		return llb.Base{Ref: "gpuimg/base@" + img.Manifest.String(), OCIStoreID: layoutStoreID, Name: img.Name}, img.Config, nil
	}
	_, dgst, config, err := gw.ResolveImageConfig(ctx, b.Named.String(), sourceresolver.Opt{
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &pl, ResolveMode: bk.ResolveModeDefault.String()},
	})
	if err != nil {
		return llb.Base{}, nil, fmt.Errorf("--base %s: cannot resolve it on the builder: %w (check the name, the registry's reachability from the builder, and `docker login`; air-gapped: use oci-layout://DIR)", b.Given, err)
	}
	if err := checkBaseArch(b.Given, config, pl); err != nil {
		return llb.Base{}, nil, err
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(b.Named), dgst)
	if err != nil {
		return llb.Base{}, nil, err
	}
	return llb.Base{Ref: pinned.String(), Name: b.Named.String()}, config, nil
}

func baseDigest(b llb.Base) string {
	if i := strings.LastIndex(b.Ref, "@"); i >= 0 {
		return b.Ref[i+1:]
	}
	return ""
}

// logTap keeps the last lines each vertex printed, so a failed install step's
// message (the musl refusal, the installer log's tail) can be put in the
// error even with --progress quiet.
type logTap struct {
	mu    sync.Mutex
	names map[digest.Digest]string
	lines map[digest.Digest][]string
}

func newLogTap() *logTap {
	return &logTap{names: map[digest.Digest]string{}, lines: map[digest.Digest][]string{}}
}

const tapLines = 45

func (t *logTap) add(s *client.SolveStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range s.Vertexes {
		t.names[v.Digest] = v.Name
	}
	for _, l := range s.Logs {
		text := strings.TrimRight(string(l.Data), "\n")
		if text == "" {
			continue
		}
		lines := append(t.lines[l.Vertex], strings.Split(text, "\n")...)
		if len(lines) > tapLines {
			lines = lines[len(lines)-tapLines:]
		}
		t.lines[l.Vertex] = lines
	}
}

var exitCodeRE = regexp.MustCompile(`exit code: (\d+)`)

// explain turns a failed install step into an error that says what happened
// and shows the step's last output (which includes the installer log's tail).
func (t *logTap) explain(j *job, err error) error {
	m := exitCodeRE.FindStringSubmatch(err.Error())
	if m == nil || !strings.Contains(err.Error(), "gpuimg-install") {
		return fmt.Errorf("building driver %s: %w", j.driver, err)
	}
	t.mu.Lock()
	var out []string
	var keys []string
	for d, name := range t.names {
		if strings.HasPrefix(name, "install NVIDIA driver "+j.driver.String()+" ") {
			keys = append(keys, string(d))
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, t.lines[digest.Digest(k)]...)
	}
	t.mu.Unlock()
	code, _ := strconv.Atoi(m[1])
	what := "the NVIDIA installer failed"
	switch code {
	case llb.ExitNotGlibc:
		what = "the base image cannot take the driver"
	case llb.ExitMissingICDs:
		what = "the install is incomplete"
	}
	return &InstallError{Driver: j.driver.String(), Reason: what, Output: strings.Join(out, "\n"), ExitStatus: code}
}

// InstallError is a failed install step, with the step's last output.
type InstallError struct {
	Driver, Reason, Output string
	ExitStatus             int
}

func (e *InstallError) Error() string {
	return fmt.Sprintf("driver %s: %s (install step exit status %d); its last output:\n%s", e.Driver, e.Reason, e.ExitStatus, e.Output)
}
