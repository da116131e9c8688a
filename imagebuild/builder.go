package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/go-csvvalue"
)

// Builder holds what Prepare resolved: each fact once, read by Build and
// Emit. It is never changed after Prepare.
type Builder struct {
	in         Options    // connection, progress and output settings, as given
	bases      []baseSpec // one, or several: one image per base
	components llb.Components
	epoch      time.Time
	cacheFrom  []client.CacheOptionsEntry
	cacheTo    []client.CacheOptionsEntry
	images     []*image
	// extractor, when set, unpacks verified packages in a step of their own;
	// extractorDir holds its binary (synced to the builder).
	extractor    *llb.Extractor
	extractorDir string
	driverLayers int
	// plan is what the pre-pass of a build of several bases found (Build
	// sets it on its copy); nil with one base.
	plan basePlan
}

// DefaultDriverLayers is how many layers the driver's files take by
// default: BuildKit compresses each on a core of its own, so the big
// layer's compression (the longest part of a cold build) spreads over 4
// cores, which covers common CI runners; past that the largest single file
// (about a seventh of a full driver) bounds the gain.
const DefaultDriverLayers = 4

// image is one image: a driver version on one base for one platform, or
// for several when they share an index (no {arch} in names and
// destinations).
type image struct {
	targets []target // one per platform
	exports []plannedExport
	base    int // index in Builder.bases
	// cacheKey is the {base} text in a build of several bases (its cache
	// records are told apart by it), else "".
	cacheKey string
}

// target is what one platform of an image installs.
type target struct {
	platform ocispecs.Platform
	driver   drivers.Resolved
	prune    []string // --components: installed files to delete
}

// driver is the image's driver version (every target has the same).
func (im *image) driver() drivers.Version { return im.targets[0].driver.Version }

// archName is the {arch} of the image's names: NVIDIA's arch, or "multi"
// for an index.
func (im *image) archName() string {
	if len(im.targets) > 1 {
		return "multi"
	}
	return im.targets[0].driver.Arch
}

type plannedExport struct {
	spec  OutputSpec
	attrs map[string]string
	dest  string // expanded; "" for image
}

// extractorLocalName is the extractor's SolveOpt.LocalMounts key.
const extractorLocalName = "gpuimg-extractor"

// spec is the llb.Spec of target t on base.
func (b *Builder) spec(t target, base llb.Base) llb.Spec {
	return llb.Spec{Driver: t.driver, Platform: t.platform, Base: base, Components: b.components, Compat32: b.in.Compat32, Prune: t.prune, Epoch: b.epoch.Unix()}
}

// chooseDriverLayers settles Options.DriverLayers.
func (b *Builder) chooseDriverLayers() error {
	n := b.in.DriverLayers
	switch {
	case n == 0 && b.extractor != nil:
		n = DefaultDriverLayers
	case n == 0:
		n = 1
	case n < 0 || n > llb.MaxDriverLayers:
		return fmt.Errorf("--driver-layers %d: use 1 (the driver's files in one layer) to %d", n, llb.MaxDriverLayers)
	case n > 1 && b.extractor == nil:
		return fmt.Errorf("--driver-layers %d: splitting the driver's files needs the static gpuimg-unpack next to gpuimg (make build puts it there); or use --driver-layers 1", n)
	}
	b.driverLayers = n
	return nil
}

// Prepare parses and checks every input and resolves the driver packages:
// all bad input is refused here, before any build starts. The warnings are
// for the user's stderr, whether or not there is an error.
func Prepare(ctx context.Context, o Options) (*Builder, []string, error) {
	b := &Builder{in: o, epoch: time.Unix(0, 0).UTC()}
	if err := b.parseSettings(); err != nil {
		return nil, nil, err
	}
	plats, err := parsePlatforms(o.Platforms)
	if err != nil {
		return nil, nil, err
	}
	versions, err := o.versions()
	if err != nil {
		return nil, nil, err
	}
	sums, err := parseSHA256s(o.SHA256, versions, plats)
	if err != nil {
		return nil, nil, err
	}
	names, err := o.naming(plats, len(versions), len(b.bases))
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	dests := map[string]bool{}
	for _, v := range versions {
		for _, group := range names.groups {
			resolved, more, err := b.resolveImage(ctx, v, sums, group)
			warnings = append(warnings, more...)
			if err != nil {
				return nil, warnings, err
			}
			for i := range b.bases {
				im := &image{targets: resolved.targets, base: i}
				if len(b.bases) > 1 {
					im.cacheKey = b.bases[i].Text
				}
				for _, out := range names.outputs {
					pe, more, err := b.planExport(im, out, names.tags, dests)
					warnings = append(warnings, more...)
					if err != nil {
						return nil, warnings, err
					}
					im.exports = append(im.exports, pe)
				}
				b.images = append(b.images, im)
			}
		}
	}
	if o.Emit != "" && (len(b.images) != 1 || len(b.images[0].targets) != 1) {
		return nil, warnings, fmt.Errorf("--emit prints one image: pass one --driver, one --platform and one --base (a Dockerfile cannot share a driver layer between bases: emit one per base)")
	}
	return b, warnings, nil
}

// parseSettings checks the inputs every image shares.
func (b *Builder) parseSettings() error {
	o := b.in
	var err error
	if b.bases, err = parseBases(o.Base); err != nil {
		return err
	}
	if b.components, err = llb.ParseComponents(o.Components); err != nil {
		return err
	}
	switch o.Compression {
	case "", "gzip", "zstd":
	default:
		return fmt.Errorf("--compression %q: use gzip (what every Docker loads) or zstd (faster; needs Docker ≥23 or containerd ≥1.5)", o.Compression)
	}
	switch o.Emit {
	case "", "dockerfile", "llb":
	default:
		return fmt.Errorf("--emit %q: use dockerfile or llb", o.Emit)
	}
	if o.SourceDateEpoch != nil {
		b.epoch = o.SourceDateEpoch.UTC()
	}
	if o.Extractor != "" {
		if st, err := os.Stat(o.Extractor); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("payload extractor %s: not a file (make build puts gpuimg-unpack next to gpuimg): %v", o.Extractor, err)
		}
		b.extractorDir = filepath.Dir(o.Extractor)
		b.extractor = &llb.Extractor{LocalName: extractorLocalName, FileName: filepath.Base(o.Extractor),
			Platform: ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	}
	if err := b.chooseDriverLayers(); err != nil {
		return err
	}
	if b.cacheFrom, err = parseCacheOptions("--cache-from", o.CacheFrom); err != nil {
		return err
	}
	b.cacheTo, err = parseCacheOptions("--cache-to", o.CacheTo)
	return err
}

// naming is how images are grouped and named: the platform groups (one
// index for all, or one image per arch), the tags and the outputs.
type naming struct {
	groups  [][]ocispecs.Platform
	tags    []string
	outputs []OutputSpec
}

// naming decides the platform groups and checks that names and destinations
// tell every image apart.
func (o Options) naming(plats []ocispecs.Platform, versions, bases int) (naming, error) {
	outputs, err := o.outputSpecs(bases)
	if err != nil {
		return naming{}, err
	}
	tags := o.Tags
	if len(tags) == 0 {
		tags = []string{DefaultTag}
		if bases > 1 {
			tags = []string{DefaultTag + "-{base}"}
		}
	}
	// Several platforms share one image (an index) unless a name or a
	// destination asks for one per arch, or the docker exporter (which cannot
	// hold an index) is used.
	perArch := len(plats) > 1 && (mentionsArch(tags, outputs) || hasType(outputs, client.ExporterDocker))
	if perArch && len(o.Tags) == 0 {
		tags = []string{tags[0] + "-{arch}"}
	}
	if len(plats) > 1 && !perArch {
		for _, out := range outputs {
			if out.Dest != "" && !strings.Contains(out.Dest, "{arch}") && out.Type != client.ExporterOCI {
				return naming{}, fmt.Errorf("--output %s: %d platforms need {arch} in dest= (one file per platform)", out.Type, len(plats))
			}
		}
	}
	if versions > 1 {
		if err := needsPlaceholder("{driver}", tags, outputs); err != nil {
			return naming{}, err
		}
	}
	if bases > 1 {
		if err := needsPlaceholder("{base}", tags, outputs); err != nil {
			return naming{}, err
		}
	}
	n := naming{groups: [][]ocispecs.Platform{plats}, tags: tags, outputs: outputs}
	if perArch {
		if err := needsPlaceholder("{arch}", tags, outputs); err != nil {
			return naming{}, err
		}
		n.groups = nil
		for _, pl := range plats {
			n.groups = append(n.groups, []ocispecs.Platform{pl})
		}
	}
	return n, nil
}

// resolveImage resolves driver v for each platform of an image (a zero v:
// --driver-file's own version) and reads what --components prunes.
func (b *Builder) resolveImage(ctx context.Context, v drivers.Version, sums checksums, group []ocispecs.Platform) (*image, []string, error) {
	o := b.in
	im := &image{}
	var warnings []string
	for _, pl := range group {
		arch, err := nvidiaArch(pl.Architecture)
		if err != nil {
			return nil, warnings, err
		}
		resolved, more, err := drivers.Resolve(ctx, drivers.Want{
			Version: v, Arch: arch, File: o.DriverFile, SHA256: sums.forTarget(v, arch), AllowUnverified: o.AllowUnverified,
			CacheDir: o.CacheDir, Mirror: o.Mirror, Offline: o.Offline,
		})
		warnings = append(warnings, more...)
		if err != nil {
			if o.DriverFile != "" {
				err = fmt.Errorf("--driver-file for --platform %s: %w", platforms.Format(pl), err)
			}
			return nil, warnings, err
		}
		if o.Compat32 && arch != drivers.ArchX86_64 {
			return nil, warnings, fmt.Errorf("--compat32: %s packages carry no 32-bit libraries (only x86_64 ones do): drop --compat32 for --platform %s", arch, platforms.Format(pl))
		}
		t := target{platform: pl, driver: resolved}
		if t.prune, err = b.prune(resolved); err != nil {
			return nil, warnings, err
		}
		im.targets = append(im.targets, t)
	}
	return im, warnings, nil
}

// prune checks a local .run's .manifest the way NVIDIA's installer will
// read it (checkedManifest) and lists the installed files --components
// drops. A package that only BuildKit downloads has no manifest here.
func (b *Builder) prune(d drivers.Resolved) ([]string, error) {
	if d.Path == "" {
		if !b.components.IsAll() {
			return nil, fmt.Errorf("--components %s needs the driver's .manifest, so the .run must be on this machine: pass --driver-file, or put it in the cache (%s)", b.components, b.in.CacheDir)
		}
		return nil, nil
	}
	files, err := checkedManifest(d.Path, d.Arch, b.in.Compat32)
	if err != nil {
		return nil, err
	}
	return llb.PruneNames(b.components, files), nil
}

// planExport expands one --output for image im: names from the tags,
// {driver}, {arch} and {base} in attributes and dest, compression.
func (b *Builder) planExport(im *image, out OutputSpec, tags []string, dests map[string]bool) (plannedExport, []string, error) {
	driver, arch, base := im.driver().String(), im.archName(), b.bases[im.base].Text
	pe := plannedExport{spec: out, attrs: map[string]string{}}
	for k, v := range out.Attrs {
		pe.attrs[k] = expand(v, driver, arch, base)
	}
	if _, named := pe.attrs["name"]; !named && out.Type != client.ExporterLocal && out.Type != client.ExporterTar {
		var names []string
		for _, t := range tags {
			names = append(names, expand(t, driver, arch, base))
		}
		pe.attrs["name"] = strings.Join(names, ",")
	}
	if err := checkNames(pe.attrs["name"]); err != nil {
		return pe, nil, err
	}
	if out.Dest != "" {
		pe.dest = expand(out.Dest, driver, arch, base)
		if dests[pe.dest] {
			return pe, nil, fmt.Errorf("--output dest=%s is written by more than one image: add {driver} (and {arch}, {base}) to it", out.Dest)
		}
		dests[pe.dest] = true
		if err := checkWritable(pe.dest); err != nil {
			return pe, nil, err
		}
	}
	return pe, b.compressionAttrs(pe), nil
}

// compressionAttrs sets the layer compression on image-producing exporters,
// always with force-compression: BuildKit keys a layer's blob without its
// compression, so without it the first compression a builder made of a
// layer is reused whatever is asked later (a zstd build after a gzip one
// gave gzip). Forced, every layer is what was asked for: the driver layer,
// and the base's layers too, which are converted when they were stored
// otherwise (gzip bases are kept as they are with gzip; with zstd they are
// recompressed once, then cached by the builder). (File times need no
// exporter rewrite-timestamp pass, which would decompress and recompress
// the layer: the install step sets them to SOURCE_DATE_EPOCH itself.)
func (b *Builder) compressionAttrs(pe plannedExport) []string {
	switch pe.spec.Type {
	case client.ExporterImage, client.ExporterDocker, client.ExporterOCI:
	default:
		return nil
	}
	compression := b.in.Compression
	if compression == "" {
		compression = "gzip"
	}
	setDefault(pe.attrs, "compression", compression)
	setDefault(pe.attrs, "force-compression", "true")
	if compression != "zstd" {
		return nil
	}
	// zstd layers need OCI media types.
	setDefault(pe.attrs, "oci-mediatypes", "true")
	if pe.spec.Type == client.ExporterDocker {
		return []string{"--compression zstd with type=docker: Docker before 23.0 cannot load zstd layers; use gzip for older engines"}
	}
	return nil
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// versions parses --driver (each value may be a comma list). With
// --driver-file alone, the version comes from the file's header (zero here).
func (o Options) versions() ([]drivers.Version, error) {
	var out []drivers.Version
	seen := map[string]bool{}
	for _, arg := range o.Drivers {
		for _, s := range strings.Split(arg, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			v, err := drivers.ParseVersion(s)
			if err != nil {
				return nil, fmt.Errorf("--driver %q: %w", s, err)
			}
			if !seen[v.String()] {
				seen[v.String()] = true
				out = append(out, v)
			}
		}
	}
	if o.DriverFile != "" {
		if len(out) > 1 {
			return nil, fmt.Errorf("--driver-file is one package, but %d drivers were asked for: build them one at a time, or drop --driver-file to use the catalog", len(out))
		}
		if len(out) == 0 {
			out = []drivers.Version{{}}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no driver given: pass --driver VERSION[,VERSION...] (e.g. --driver 450.102.04) or --driver-file PATH")
	}
	return out, nil
}

func (o Options) outputSpecs(bases int) ([]OutputSpec, error) {
	var outs []OutputSpec
	for _, s := range o.Outputs {
		out, err := ParseOutput(s)
		if err != nil {
			return nil, err
		}
		if out.Type == client.ExporterImage && o.Push {
			out.Attrs["push"] = "true"
		}
		outs = append(outs, out)
	}
	if o.Push && !hasType(outs, client.ExporterImage) {
		outs = append(outs, OutputSpec{Type: client.ExporterImage, Attrs: map[string]string{"push": "true"}})
	}
	if len(outs) == 0 {
		dest := "nvidia-driver-{driver}"
		if bases > 1 {
			dest += "-{base}"
		}
		if len(o.Platforms) > 0 && len(strings.Split(strings.Join(o.Platforms, ","), ",")) > 1 {
			dest += "-{arch}"
		}
		dest += ".tar"
		outs = append(outs, OutputSpec{Type: client.ExporterDocker, Attrs: map[string]string{}, Dest: dest})
	}
	return outs, nil
}

func parsePlatforms(args []string) ([]ocispecs.Platform, error) {
	var out []ocispecs.Platform
	seen := map[string]bool{}
	for _, arg := range args {
		for _, s := range strings.Split(arg, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := platforms.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("--platform %q: %w (use linux/amd64 or linux/arm64)", s, err)
			}
			p = platforms.Normalize(p)
			if p.OS != "linux" {
				return nil, fmt.Errorf("--platform %q: NVIDIA's .run packages are for linux only", s)
			}
			if _, err := nvidiaArch(p.Architecture); err != nil {
				return nil, err
			}
			if k := platforms.Format(p); !seen[k] {
				seen[k] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, platforms.Normalize(ocispecs.Platform{OS: "linux", Architecture: "amd64"}))
	}
	return out, nil
}

func mentionsArch(tags []string, outs []OutputSpec) bool {
	for _, t := range tags {
		if strings.Contains(t, "{arch}") {
			return true
		}
	}
	for _, o := range outs {
		if strings.Contains(o.Dest, "{arch}") || strings.Contains(o.Attrs["name"], "{arch}") {
			return true
		}
	}
	return false
}

func needsPlaceholder(ph string, tags []string, outs []OutputSpec) error {
	for _, o := range outs {
		if o.Dest != "" && !strings.Contains(o.Dest, ph) {
			return fmt.Errorf("--output dest=%s would be written by several images: put %s in it", o.Dest, ph)
		}
		if name, ok := o.Attrs["name"]; ok && !strings.Contains(name, ph) {
			return fmt.Errorf("--output name=%s would name several images: put %s in it", name, ph)
		}
	}
	for _, t := range tags {
		if !strings.Contains(t, ph) {
			example := ph
			if ph == "{base}" {
				example = "{driver}-{base}"
			}
			return fmt.Errorf("-t %s would tag several images: put %s in it (e.g. -t reg/nvidia:%s)", t, ph, example)
		}
	}
	return nil
}

func hasType(outs []OutputSpec, typ string) bool {
	for _, o := range outs {
		if o.Type == typ {
			return true
		}
	}
	return false
}

func checkNames(names string) error {
	if names == "" {
		return nil
	}
	for _, n := range strings.Split(names, ",") {
		if _, err := reference.ParseNormalizedNamed(n); err != nil {
			return fmt.Errorf("image name %q: %w (use e.g. registry.example.com/nvidia-driver:{driver})", n, err)
		}
	}
	return nil
}

// parseCacheOptions parses --cache-from/--cache-to in BuildKit's syntax
// (type=registry,ref=REF[,mode=max] | type=local,src=DIR | type=local,dest=DIR | type=inline).
func parseCacheOptions(flag string, specs []string) ([]client.CacheOptionsEntry, error) {
	var out []client.CacheOptionsEntry
	for _, s := range specs {
		fields, err := csvvalue.Fields(s, nil)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, s, err)
		}
		e := client.CacheOptionsEntry{Attrs: map[string]string{}}
		for _, f := range fields {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("%s %q: %q is not key=value (expected type=registry,ref=REF or type=local,src=DIR|dest=DIR)", flag, s, f)
			}
			if k = strings.ToLower(k); k == "type" {
				e.Type = v
			} else {
				e.Attrs[k] = v
			}
		}
		if e.Type == "" {
			return nil, fmt.Errorf("%s %q has no type=: use type=registry,ref=REF or type=local,src=DIR|dest=DIR", flag, s)
		}
		out = append(out, e)
	}
	return out, nil
}

// jobCache gives each image of a multi-image build its own cache record:
// concurrent exports to one local directory or registry tag would otherwise
// overwrite each other's index, so a later import would find one image's
// cache only. The local tag, or the registry ref's tag, gets
// "-<driver>-<arch>" appended, and "-<base>" (the {base} text) with several
// bases (local: the tag is "<driver>-<arch>" when none is given). A single
// image uses the entries as given.
func jobCache(entries []client.CacheOptionsEntry, im *image, images int) []client.CacheOptionsEntry {
	if images <= 1 {
		return entries
	}
	key := im.driver().String() + "-" + im.targets[0].platform.Architecture
	if len(im.targets) > 1 {
		key = im.driver().String() + "-multi"
	}
	if im.cacheKey != "" {
		key += "-" + im.cacheKey
	}
	out := make([]client.CacheOptionsEntry, 0, len(entries))
	for _, e := range entries {
		attrs := map[string]string{}
		for k, v := range e.Attrs {
			attrs[k] = v
		}
		switch e.Type {
		case "local":
			if t := attrs["tag"]; t != "" {
				attrs["tag"] = t + "-" + key
			} else {
				attrs["tag"] = key
			}
		case "registry":
			if named, err := reference.ParseNormalizedNamed(attrs["ref"]); err == nil {
				tag := "latest"
				if tagged, ok := named.(reference.Tagged); ok {
					tag = tagged.Tag()
				}
				if withTag, err := reference.WithTag(reference.TrimNamed(named), tag+"-"+key); err == nil {
					attrs["ref"] = withTag.String()
				}
			}
		}
		out = append(out, client.CacheOptionsEntry{Type: e.Type, Attrs: attrs})
	}
	return out
}

// hasUnpushedImage reports an image output that does not push.
func (b *Builder) hasUnpushedImage() bool {
	for _, im := range b.images {
		for _, e := range im.exports {
			if e.spec.Type == client.ExporterImage && e.attrs["push"] != "true" {
				return true
			}
		}
	}
	return false
}

// runsPlatform reports whether one of the builder's worker platforms runs
// programs for want.
func runsPlatform(worker []ocispecs.Platform, want ocispecs.Platform) bool {
	for _, w := range worker {
		if platforms.Only(w).Match(want) {
			return true
		}
	}
	return false
}

// checkPlatforms refuses, before solving, a platform the builder's workers
// cannot run: the install step executes the installer for that arch.
func (b *Builder) checkPlatforms(addr string, worker []ocispecs.Platform) error {
	var have []string
	for _, w := range worker {
		have = append(have, platforms.Format(w))
	}
	for _, im := range b.images {
		for _, t := range im.targets {
			want := t.platform
			if !runsPlatform(worker, want) {
				return fmt.Errorf("the builder at %s cannot run %s programs (it runs %s), and the installer must run for that arch: install QEMU user emulation on the builder's host (Debian/Ubuntu: `apt-get install qemu-user-static binfmt-support`, which `make deps` does, or `docker run --privileged --rm tonistiigi/binfmt --install %s`), then restart buildkitd so its workers list %s; or point --addr at a native %s builder",
					addr, platforms.Format(want), strings.Join(have, ", "), want.Architecture, platforms.Format(want), want.Architecture)
			}
		}
	}
	return nil
}
