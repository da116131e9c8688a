package imagebuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/gpuimg/gpuimg/drivers"
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
	Driver string `json:"driver"`
	// Base is the --base this image was built on, in a build of several.
	Base         string         `json:"base,omitempty"`
	Platforms    []string       `json:"platforms"`
	Components   string         `json:"components"`
	DriverSHA256 string         `json:"driver_sha256"`
	Verified     bool           `json:"verified"`
	Digest       string         `json:"digest,omitempty"`
	Outputs      []OutputResult `json:"outputs"`
	// DriverLayer says, in a build of several bases, which bases share this
	// image's driver layer, per platform.
	DriverLayer []DriverLayerUse `json:"driver_layer,omitempty"`
}

// OutputResult is one place an image went: a pushed/named reference or a file.
type OutputResult struct {
	Type string `json:"type"`
	// Ref is REF@sha256:… for image outputs.
	Ref string `json:"ref,omitempty"`
	// Dest is the file or directory for docker/oci/local/tar outputs.
	Dest string `json:"dest,omitempty"`
}

// Build connects to the builder and builds every image, showing BuildKit's
// progress display on progress. It returns one ImageResult per image, and
// warnings for the user's stderr.
//
// Every destination is taken (locked, under a temporary name) before the
// builder is even reached: a second build to the same file is refused at
// once, and whatever fails, no destination is left half-written.
func (b *Builder) Build(ctx context.Context, progress io.Writer) (*Summary, []string, error) {
	dests, err := b.openDests()
	defer func() {
		for _, pending := range dests {
			for _, pd := range pending {
				pd.discard() // after a commit: nothing
			}
		}
	}()
	if err != nil {
		return nil, nil, err
	}
	c, builder, err := b.in.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	if err := b.checkPlatforms(b.in.Address(), builder.platforms); err != nil {
		return nil, nil, err
	}
	var warnings []string
	if b.extractor != nil && !runsPlatform(builder.platforms, b.extractor.Platform) {
		// The extractor is this machine's binary: a builder of another arch
		// unpacks inside the install step, as without it.
		copied := *b
		copied.extractor = nil
		b = &copied
		if b.driverLayers > 1 {
			warnings = append(warnings, fmt.Sprintf("the builder at %s cannot run this machine's linux/%s programs: the driver's files go into one layer, not %d (the split runs this machine's gpuimg-unpack)",
				b.in.Address(), runtime.GOARCH, b.driverLayers))
		}
	}
	if !builder.storesImages && b.hasUnpushedImage() {
		warnings = append(warnings, fmt.Sprintf("type=image without push=true: the builder at %s (an OCI worker) keeps no images, so only the digest is printed; add push=true (or --push) or use type=docker,dest=FILE", b.in.Address()))
	}
	summary, more, err := b.solve(ctx, c, progress, dests)
	return summary, append(warnings, more...), err
}

// openDests starts every file or directory destination of every image, in
// the order of im.exports (nil for image outputs).
func (b *Builder) openDests() ([][]pendingDest, error) {
	dests := make([][]pendingDest, len(b.images))
	for i, im := range b.images {
		for _, pe := range im.exports {
			var pd pendingDest
			if pe.dest != "" {
				var err error
				if pd, err = newPendingDest(pe.dest, pe.spec.writesDir()); err != nil {
					return dests, err
				}
			}
			dests[i] = append(dests[i], pd)
		}
	}
	return dests, nil
}

// solve runs one BuildKit build per image, concurrently on one connection
// (the solver shares the base and any identical vertex), with one progress
// display for all of them; with several bases, after the pre-pass that
// groups them by family (solveBases).
func (b *Builder) solve(ctx context.Context, c *client.Client, progress io.Writer, dests [][]pendingDest) (*Summary, []string, error) {
	display, err := b.display(progress)
	if err != nil {
		return nil, nil, err
	}
	// containerd's content store (the OCI-layout base) logs probes such as
	// "failed check for fsverity support" as warnings: noise on a CLI's stderr.
	logrus.SetLevel(logrus.ErrorLevel)
	stores, err := b.layoutStores()
	if err != nil {
		return nil, nil, err
	}
	dockerCfg := dockerconfig.LoadDefaultConfigFile(progress)
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
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := newWatchdog(b.in.IdleTimeout, cancel)
	defer watch.stop()
	var forwarders sync.WaitGroup
	// Each c.Build closes its status channel; every one is forwarded to the
	// single display, and counts as the builder's sign of life.
	newStatus := func() chan *client.SolveStatus {
		ch := make(chan *client.SolveStatus)
		forwarders.Add(1)
		go func() {
			defer forwarders.Done()
			for s := range ch {
				tap.add(s)
				watch.status(s)
				merged <- s
			}
		}()
		return ch
	}
	// Images are independent: one failing does not stop the others, unless
	// --fail-fast asks for that.
	results := make([]ImageResult, len(b.images))
	errs := make([]error, len(b.images))
	var warnings []string
	if len(b.bases) > 1 {
		b, warnings = b.withBasePlan(bctx, c, stores, attachables, newStatus(), errs, cancel)
	}
	one := func(i int) {
		im := b.images[i]
		res, err := b.solveImage(bctx, c, im, dests[i], stores, attachables, newStatus, watch)
		if err != nil {
			errs[i] = tap.explain(im.driver(), b.explainBase(im, b.explainPush(im, b.builderGone(err))))
			if b.in.FailFast {
				cancel(errs[i])
			}
			return
		}
		results[i], errs[i] = res, nil
	}
	b.inFamilyOrder(errs, one)
	// BuildKit shares identical steps (the base) between concurrent builds,
	// and a shared step can end with the session of the build that failed
	// ("error reading from server: EOF"): each failed image is tried once
	// more, alone, so a healthy one is not lost to another's failure.
	if b.retryAlone(ctx, bctx, errs) {
		for i, err := range errs {
			if err == nil {
				continue
			}
			if dests[i], err = b.reopenDests(i, dests[i]); err != nil {
				errs[i] = err
				continue
			}
			one(i)
		}
	}
	forwarders.Wait()
	close(merged)
	<-displayDone
	summary, err := b.collect(ctx, bctx, c, results, errs, watch)
	return summary, warnings, err
}

// withBasePlan compares the bases of a several-base build (solveBases) and
// returns the Builder with that plan, and the warnings about the bases
// that share no driver layer. When the comparison fails, every image fails
// with it in errs (tried again alone later, each is built the full way).
func (b *Builder) withBasePlan(ctx context.Context, c *client.Client, stores map[string]content.Store, attachables []session.Attachable,
	status chan *client.SolveStatus, errs []error, cancel context.CancelCauseFunc) (*Builder, []string) {
	plan, err := b.solveBases(ctx, c, stores, attachables, status)
	if err != nil {
		err = fmt.Errorf("comparing the bases: %w", b.builderGone(err))
		for i := range errs {
			errs[i] = err
		}
		if b.in.FailFast {
			cancel(err)
		}
	}
	withPlan := *b
	withPlan.plan = plan
	return &withPlan, withPlan.sharingWarnings(plan)
}

// display is the progress display --progress (else BUILDKIT_PROGRESS, else
// auto) asks for.
func (b *Builder) display(progress io.Writer) (progressui.Display, error) {
	mode := progressui.DisplayMode(b.in.Progress)
	if mode == "" {
		mode = progressui.DisplayMode(os.Getenv("BUILDKIT_PROGRESS"))
	}
	if mode == "" {
		mode = progressui.AutoMode
	}
	display, err := progressui.NewDisplay(progress, mode)
	if err != nil {
		return display, fmt.Errorf("--progress %q: %w (use auto, plain, tty, quiet or rawjson)", b.in.Progress, err)
	}
	return display, nil
}

// inFamilyOrder runs one(i) for every image that has not failed already,
// concurrently, and waits for them. The images of a family start once the
// image installed on its first base is done (built or failed): they find
// its layers compressed and, pushed to the same registry, already there,
// instead of uploading the same blobs at the same time.
func (b *Builder) inFamilyOrder(errs []error, one func(i int)) {
	var images sync.WaitGroup
	done := make([]chan struct{}, len(b.images))
	for i := range done {
		done[i] = make(chan struct{})
	}
	for i := range b.images {
		if errs[i] != nil {
			close(done[i])
			continue
		}
		images.Add(1)
		go func() {
			defer images.Done()
			defer close(done[i])
			for _, j := range b.leaders(i) {
				<-done[j]
			}
			one(i)
		}()
	}
	images.Wait()
}

// layoutStores opens the OCI layout of every oci-layout:// base, one
// content store per directory, by the StoreID its bases name.
func (b *Builder) layoutStores() (map[string]content.Store, error) {
	stores := map[string]content.Store{}
	for _, base := range b.bases {
		if base.Layout == "" || stores[base.StoreID] != nil {
			continue
		}
		store, err := local.NewStore(base.Layout)
		if err != nil {
			return nil, fmt.Errorf("--base %s: %w", base.Given, err)
		}
		stores[base.StoreID] = store
	}
	if len(stores) == 0 {
		return nil, nil
	}
	return stores, nil
}

// retryAlone says whether the failed images of a several-image build are
// tried again one at a time: not with --fail-fast, after Ctrl-C or the
// watchdog, when the builder went away, or when nothing failed.
func (b *Builder) retryAlone(ctx, bctx context.Context, errs []error) bool {
	if b.in.FailFast || len(b.images) < 2 || ctx.Err() != nil || bctx.Err() != nil {
		return false
	}
	failed := false
	for _, err := range errs {
		var gone *builderGoneError
		if errors.As(err, &gone) {
			return false
		}
		failed = failed || err != nil
	}
	return failed
}

// reopenDests discards image i's pending destinations (a failed export may
// have written part of them) and starts them afresh.
func (b *Builder) reopenDests(i int, pending []pendingDest) ([]pendingDest, error) {
	for _, pd := range pending {
		pd.discard()
	}
	fresh := make([]pendingDest, len(pending))
	for j, pe := range b.images[i].exports {
		if pe.dest != "" {
			pd, err := newPendingDest(pe.dest, pe.spec.writesDir())
			if err != nil {
				return fresh, err
			}
			fresh[j] = pd
		}
	}
	return fresh, nil
}

// collect turns the images' outcomes into the summary of those built (nil
// when none was) and an error: Ctrl-C, a silent builder or registry, a
// builder that went away, or --fail-fast concern the whole build;
// otherwise each failed image is reported (a BuildError when there were
// several images). Images finished before a failure stay finished.
func (b *Builder) collect(ctx, bctx context.Context, c *client.Client, results []ImageResult, errs []error, watch *watchdog) (*Summary, error) {
	var built *Summary
	var failed []ImageError
	var gone *builderGoneError
	for i, im := range b.images {
		if errs[i] == nil {
			if built == nil {
				built = &Summary{}
			}
			built.Images = append(built.Images, results[i])
			continue
		}
		errors.As(errs[i], &gone)
		failed = append(failed, ImageError{Driver: im.driver().String(), Platforms: b.result(im).Platforms, Base: b.result(im).Base, Err: errs[i]})
	}
	switch {
	case ctx.Err() != nil:
		return built, fmt.Errorf("build interrupted; destinations not finished were discarded, none is left half-written: %w", context.Canceled)
	case errors.Is(context.Cause(bctx), errIdle):
		return built, b.idleError(watch, c)
	case gone != nil:
		return built, gone
	case len(failed) == 0:
		return built, nil
	case b.in.FailFast:
		cause := context.Cause(bctx)
		if len(b.images) > 1 {
			cause = fmt.Errorf("%w (--fail-fast: the images not finished were stopped, and nothing of them was left)", cause)
		}
		return built, cause
	case len(b.images) == 1:
		return nil, failed[0].Err
	}
	return built, &BuildError{Failed: failed, Built: len(b.images) - len(failed)}
}

// solveImage builds image im into its destinations, pending (one per
// export, nil for image outputs), committing them when the build succeeded.
func (b *Builder) solveImage(ctx context.Context, c *client.Client, im *image, pending []pendingDest, stores map[string]content.Store,
	attachables []session.Attachable, newStatus func() chan *client.SolveStatus, watch *watchdog) (ImageResult, error) {
	opt, err := b.solveOpt(im, stores, attachables)
	if err != nil {
		return ImageResult{}, err
	}
	res := b.result(im)
	cacheImports := make([]gateway.CacheOptionsEntry, 0, len(opt.CacheImports))
	for _, ci := range opt.CacheImports {
		cacheImports = append(cacheImports, gateway.CacheOptionsEntry{Type: ci.Type, Attrs: ci.Attrs})
	}
	buildFunc := b.buildFunc(im, cacheImports)
	if unchanged, digest, err := destUnchanged(ctx, c, opt, im, buildFunc, newStatus); err != nil {
		return res, err
	} else if unchanged {
		res.Digest = digest
		res.Outputs = outputsOf(im, digest)
		return res, nil
	}
	for i, pe := range im.exports {
		e := client.ExportEntry{Type: pe.spec.Type, Attrs: pe.attrs}
		if pe.dest != "" {
			if err := checkFreshDir(pe); err != nil {
				return res, err
			}
			pending[i].attach(&e, watch)
		}
		opt.Exports = append(opt.Exports, e)
	}
	resp, err := c.Build(ctx, opt, "gpuimg", buildFunc, newStatus())
	if err != nil {
		return res, explainFullDisk(im, err)
	}
	res.Digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	res.Outputs = outputsOf(im, res.Digest)
	for i, pe := range im.exports {
		if pe.dest != "" {
			if err := pending[i].commit(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// solveOpt is the SolveOpt of image im, without its exports: the epoch, the
// image's own cache records, registry credentials, the OCI-layout base and
// the local .run files.
func (b *Builder) solveOpt(im *image, stores map[string]content.Store, attachables []session.Attachable) (client.SolveOpt, error) {
	var plats []string
	for _, t := range im.targets {
		plats = append(plats, platforms.Format(t.platform))
	}
	opt := client.SolveOpt{
		CompatibilityVersion: compatibilityVersion,
		// platform: what the result is for, so BuildKit's exporters do not
		// compare it with the builder's own platform and warn.
		FrontendAttrs: map[string]string{"build-arg:SOURCE_DATE_EPOCH": strconv.FormatInt(b.epoch.Unix(), 10), "platform": strings.Join(plats, ",")},
		CacheImports:  jobCache(b.cacheFrom, im, len(b.images)),
		CacheExports:  jobCache(b.cacheTo, im, len(b.images)),
		Session:       attachables,
		LocalMounts:   map[string]fsutil.FS{},
	}
	// Every store: an image's graph may name the base its family's driver
	// layer is installed on.
	opt.OCIStores = stores
	if b.extractor != nil {
		fs, err := fsutil.NewFS(b.extractorDir)
		if err != nil {
			return opt, fmt.Errorf("payload extractor: %w", err)
		}
		opt.LocalMounts[b.extractor.LocalName] = fs
	}
	for _, t := range im.targets {
		if name := t.driver.LocalName(); name != "" {
			fs, err := fsutil.NewFS(filepath.Dir(t.driver.Path))
			if err != nil {
				return opt, fmt.Errorf("driver file %s: %w", t.driver.Path, err)
			}
			opt.LocalMounts[name] = fs
		}
	}
	return opt, nil
}

// result is what the summary says about image im before it is built.
func (b *Builder) result(im *image) ImageResult {
	res := ImageResult{
		Driver:       im.driver().String(),
		Components:   b.components.String(),
		DriverSHA256: im.targets[0].driver.SHA256,
		Verified:     true,
		DriverLayer:  b.layerUse(im),
	}
	if len(b.bases) > 1 {
		res.Base = b.bases[im.base].Given
	}
	for _, t := range im.targets {
		res.Platforms = append(res.Platforms, platforms.Format(t.platform))
		res.Verified = res.Verified && t.driver.Verified()
	}
	return res
}

// outputsOf lists where image digest went: REF@digest per name of an image
// output, the destination of a file output.
func outputsOf(im *image, digest string) []OutputResult {
	var outs []OutputResult
	for _, pe := range im.exports {
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

// buildFunc returns the gateway build of image im: per platform, pin the
// base, plan the LLB, solve it, and attach the image config.
func (b *Builder) buildFunc(im *image, cacheImports []gateway.CacheOptionsEntry) gateway.BuildFunc {
	return func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		out := gateway.NewResult()
		var plats exptypes.Platforms
		for _, t := range im.targets {
			ref, config, baseConfig, err := b.solveTarget(ctx, gw, im, t, cacheImports)
			if err != nil {
				return nil, err
			}
			if len(im.targets) == 1 {
				out.SetRef(ref)
				out.AddMeta(exptypes.ExporterImageConfigKey, config)
				out.AddMeta(exptypes.ExporterImageBaseConfigKey, baseConfig)
				continue
			}
			id := platforms.FormatAll(t.platform)
			out.AddRef(id, ref)
			out.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, config)
			out.AddMeta(exptypes.ExporterImageBaseConfigKey+"/"+id, baseConfig)
			plats.Platforms = append(plats.Platforms, exptypes.Platform{ID: id, Platform: t.platform})
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

// solveTarget solves one platform's graph of image im and returns its
// result with the image config and the base's.
func (b *Builder) solveTarget(ctx context.Context, gw gateway.Client, im *image, t target, cacheImports []gateway.CacheOptionsEntry) (gateway.Reference, []byte, []byte, error) {
	var base llb.Base
	var baseConfig []byte
	var err error
	if f := b.plan.lookup(im.base, t.platform); f != nil && f.resolved {
		base, baseConfig = f.pinned, f.config // as the bases were compared
	} else if base, baseConfig, err = b.resolveBase(ctx, gw, im.base, t.platform); err != nil {
		return nil, nil, nil, err
	}
	spec := b.spec(t, base)
	if b.extractor != nil && t.driver.Verified() {
		// Unpacked once per package, for every base, component set and
		// rebuild; an unverified package keeps the stub's own CRC/MD5 check.
		spec.Extractor = b.extractor
	}
	if b.extractor != nil {
		spec.DriverLayers, spec.Splitter = b.driverLayers, b.extractor
	}
	graph, spec, err := b.plannedGraph(im, t, spec)
	if err != nil {
		return nil, nil, nil, err
	}
	def, err := graph.Result.Marshal(ctx, bk.Platform(t.platform))
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: cacheImports})
	if err != nil {
		return nil, nil, nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, nil, nil, err
	}
	config, err := llb.ImageConfig(baseConfig, spec)
	return ref, config, baseConfig, err
}

// resolveBase pins base i for one platform: from the client-side OCI
// layout, or through the builder's resolver (registry images; the builder's
// credentials and mirrors apply, and nothing is queried from this machine).
func (b *Builder) resolveBase(ctx context.Context, gw gateway.Client, i int, pl ocispecs.Platform) (llb.Base, []byte, error) {
	base := b.bases[i]
	if base.Layout != "" {
		return layoutBase(base, pl)
	}
	_, dgst, config, err := gw.ResolveImageConfig(ctx, base.Named.String(), sourceresolver.Opt{
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &pl, ResolveMode: bk.ResolveModeDefault.String()},
	})
	if err != nil {
		return llb.Base{}, nil, unresolvableBase(base.Given, err)
	}
	if err := checkBaseArch(base.Given, config, pl); err != nil {
		return llb.Base{}, nil, err
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(base.Named), dgst)
	if err != nil {
		return llb.Base{}, nil, err
	}
	return llb.Base{Ref: pinned.String(), Name: base.Named.String()}, config, nil
}

// layoutBase is base from its client-side OCI layout, for platform pl.
func layoutBase(base baseSpec, pl ocispecs.Platform) (llb.Base, []byte, error) {
	img, err := resolveLayout(base, pl)
	if err != nil {
		return llb.Base{}, nil, err
	}
	return llb.Base{Ref: "gpuimg/base@" + img.Manifest.String(), OCIStoreID: base.StoreID, Name: img.Name}, img.Config, nil
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
func (t *logTap) explain(driver drivers.Version, err error) error {
	m := exitCodeRE.FindStringSubmatch(err.Error())
	if m != nil && m[1] == strconv.Itoa(llb.ExitBaseDoesNotFit) && strings.Contains(err.Error(), "/reference/"+llb.FitFile) {
		return fmt.Errorf("building driver %s: a base no longer shows NVIDIA's installer what the base its family's driver layer was installed on showed (did it change during the build?): run the build again, or build that base on its own (one --base): %w", driver, err)
	}
	if m == nil || !strings.Contains(err.Error(), "gpuimg-install") {
		return fmt.Errorf("building driver %s: %w", driver, err)
	}
	t.mu.Lock()
	var out []string
	var keys []string
	for d, name := range t.names {
		if strings.HasPrefix(name, "install NVIDIA driver "+driver.String()+" ") {
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
	case llb.ExitNothingInstalled:
		what = "the NVIDIA installer installed no driver library"
	}
	return &InstallError{Driver: driver.String(), Reason: what, Output: strings.Join(out, "\n"), ExitStatus: code}
}

// InstallError is a failed install step, with the step's last output.
type InstallError struct {
	Driver, Reason, Output string
	ExitStatus             int
}

func (e *InstallError) Error() string {
	return fmt.Sprintf("driver %s: %s (install step exit status %d); its last output:\n%s", e.Driver, e.Reason, e.ExitStatus, e.Output)
}
