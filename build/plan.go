package build

import (
	"context"
	"errors"
	"fmt"
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

// job is one image: a driver version for one platform, or for several when
// they share an index (no {arch} in names and destinations).
type job struct {
	driver    drivers.Version
	platforms []ocispecs.Platform
	inputs    []driverInput // per platform
	prune     [][]string    // per platform
	exports   []plannedExport
}

type plannedExport struct {
	spec  OutputSpec
	attrs map[string]string
	dest  string // expanded; "" for image
}

// plan is everything decided before talking to the builder.
type plan struct {
	base       baseSpec
	components llb.Components
	compat32   bool
	jobs       []*job
	epoch      time.Time
	cacheFrom  []client.CacheOptionsEntry
	cacheTo    []client.CacheOptionsEntry
}

// plan parses and checks every input and resolves and verifies the driver
// packages: all bad input is refused here, before any build starts.
func (o *Options) plan(ctx context.Context) (*plan, error) {
	p := &plan{}
	var err error
	if p.base, err = parseBase(o.Base); err != nil {
		return nil, err
	}
	if p.components, err = llb.ParseComponents(o.Components); err != nil {
		return nil, err
	}
	p.compat32 = o.Compat32
	switch o.Compression {
	case "", "gzip", "zstd":
	default:
		return nil, fmt.Errorf("--compression %q: use gzip (what every Docker loads) or zstd (faster; needs Docker ≥23 or containerd ≥1.5)", o.Compression)
	}
	switch o.Emit {
	case "", "dockerfile", "llb":
	default:
		return nil, fmt.Errorf("--emit %q: use dockerfile or llb", o.Emit)
	}
	p.epoch = time.Unix(0, 0).UTC()
	if o.SourceDateEpoch != nil {
		p.epoch = o.SourceDateEpoch.UTC()
	}
	if p.cacheFrom, err = parseCacheOptions("--cache-from", o.CacheFrom); err != nil {
		return nil, err
	}
	if p.cacheTo, err = parseCacheOptions("--cache-to", o.CacheTo); err != nil {
		return nil, err
	}
	plats, err := parsePlatforms(o.Platforms)
	if err != nil {
		return nil, err
	}
	versions, err := o.versions()
	if err != nil {
		return nil, err
	}
	if err := o.parseSHA256s(versions); err != nil {
		return nil, err
	}
	outputs, err := o.outputSpecs()
	if err != nil {
		return nil, err
	}
	tags := o.Tags
	if len(tags) == 0 {
		tags = []string{DefaultTag}
	}
	// Several platforms share one image (an index) unless a name or a
	// destination asks for one per arch, or the docker exporter (which cannot
	// hold an index) is used.
	perArch := len(plats) > 1 && (mentionsArch(tags, outputs) || hasType(outputs, client.ExporterDocker))
	if perArch && len(o.Tags) == 0 {
		tags = []string{DefaultTag + "-{arch}"}
	}
	if len(plats) > 1 && !perArch {
		for _, out := range outputs {
			if out.Dest != "" && !strings.Contains(out.Dest, "{arch}") && out.Type != client.ExporterOCI {
				return nil, fmt.Errorf("--output %s: %d platforms need {arch} in dest= (one file per platform)", out.Type, len(plats))
			}
		}
	}
	if len(versions) > 1 {
		if err := needsPlaceholder("{driver}", tags, outputs); err != nil {
			return nil, err
		}
	}
	if perArch {
		if err := needsPlaceholder("{arch}", tags, outputs); err != nil {
			return nil, err
		}
	}
	groups := [][]ocispecs.Platform{plats}
	if perArch {
		groups = nil
		for _, pl := range plats {
			groups = append(groups, []ocispecs.Platform{pl})
		}
	}
	dests := map[string]bool{}
	for _, v := range versions {
		for _, group := range groups {
			j := &job{driver: v, platforms: group}
			for _, pl := range group {
				arch, err := nvidiaArch(pl.Architecture)
				if err != nil {
					return nil, err
				}
				var in driverInput
				if o.DriverFile != "" {
					in, err = o.resolveDriverFile(v, arch)
				} else {
					in, err = o.resolveCatalog(ctx, v, arch)
				}
				if err != nil {
					return nil, err
				}
				if v.IsZero() {
					j.driver = in.Version
				}
				if p.compat32 && arch != drivers.ArchX86_64 {
					return nil, fmt.Errorf("--compat32: %s packages carry no 32-bit libraries (only x86_64 ones do): drop --compat32 for --platform %s", arch, platforms.Format(pl))
				}
				var prune []string
				if in.LocalPath != "" {
					files, err := checkedManifest(in.LocalPath, arch, p.compat32)
					if err != nil {
						return nil, err
					}
					prune = llb.PruneNames(p.components, files)
				} else if !p.components.IsAll() {
					return nil, fmt.Errorf("--components %s needs the driver's .manifest, so the .run must be on this machine: pass --driver-file, or put it in the cache (%s)", p.components, o.CacheDir)
				}
				j.inputs = append(j.inputs, in)
				j.prune = append(j.prune, prune)
			}
			archName := j.inputs[0].Arch
			if len(group) > 1 {
				archName = "multi"
			}
			for _, out := range outputs {
				pe := plannedExport{spec: out, attrs: map[string]string{}}
				for k, v := range out.Attrs {
					pe.attrs[k] = expand(v, j.driver.String(), archName)
				}
				if _, named := pe.attrs["name"]; !named && out.Type != client.ExporterLocal && out.Type != client.ExporterTar {
					var names []string
					for _, t := range tags {
						names = append(names, expand(t, j.driver.String(), archName))
					}
					pe.attrs["name"] = strings.Join(names, ",")
				}
				if err := checkNames(pe.attrs["name"]); err != nil {
					return nil, err
				}
				if out.Dest != "" {
					pe.dest = expand(out.Dest, j.driver.String(), archName)
					if dests[pe.dest] {
						return nil, fmt.Errorf("--output dest=%s is written by more than one image: add {driver} (and {arch}) to it", out.Dest)
					}
					dests[pe.dest] = true
					if err := checkWritable(pe.dest); err != nil {
						return nil, err
					}
				}
				o.compressionAttrs(pe)
				j.exports = append(j.exports, pe)
			}
			p.jobs = append(p.jobs, j)
		}
	}
	return p, nil
}

// compressionAttrs sets the layer compression on image-producing exporters.
// The base's layers are reused as they are (no force-compression): only the
// driver layer is compressed here, once. (File times need no exporter
// rewrite-timestamp pass, which would decompress and recompress the layer:
// the install step sets them to SOURCE_DATE_EPOCH itself.)
func (o *Options) compressionAttrs(pe plannedExport) {
	switch pe.spec.Type {
	case client.ExporterImage, client.ExporterDocker, client.ExporterOCI:
	default:
		return
	}
	if o.Compression == "zstd" {
		setDefault(pe.attrs, "compression", "zstd")
		// zstd layers need OCI media types.
		setDefault(pe.attrs, "oci-mediatypes", "true")
		if pe.spec.Type == client.ExporterDocker {
			o.warnf("--compression zstd with type=docker: Docker before 23.0 cannot load zstd layers; use gzip for older engines")
		}
	}
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// versions parses --driver (each value may be a comma list). With
// --driver-file alone, the version comes from the file's header (zero here).
func (o *Options) versions() ([]drivers.Version, error) {
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

func (o *Options) outputSpecs() ([]OutputSpec, error) {
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
		dest := "nvidia-driver-{driver}.tar"
		if len(o.Platforms) > 0 && len(strings.Split(strings.Join(o.Platforms, ","), ",")) > 1 {
			dest = "nvidia-driver-{driver}-{arch}.tar"
		}
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
			return fmt.Errorf("-t %s would tag several images: put %s in it (e.g. -t reg/nvidia:%s)", t, ph, ph)
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
// "-<driver>-<arch>" appended (local: the tag is "<driver>-<arch>" when none
// is given). A single image uses the entries as given.
func jobCache(entries []client.CacheOptionsEntry, j *job, jobs int) []client.CacheOptionsEntry {
	if jobs <= 1 {
		return entries
	}
	key := j.driver.String() + "-" + j.platforms[0].Architecture
	if len(j.platforms) > 1 {
		key = j.driver.String() + "-multi"
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
func hasUnpushedImage(p *plan) bool {
	for _, j := range p.jobs {
		for _, e := range j.exports {
			if e.spec.Type == client.ExporterImage && e.attrs["push"] != "true" {
				return true
			}
		}
	}
	return false
}

// checkPlatforms refuses, before solving, a platform the builder's workers
// cannot run: the install step executes the installer for that arch.
func checkPlatforms(addr string, p *plan, worker []ocispecs.Platform) error {
	var have []string
	for _, w := range worker {
		have = append(have, platforms.Format(w))
	}
	for _, j := range p.jobs {
		for _, want := range j.platforms {
			ok := false
			for _, w := range worker {
				if platforms.Only(w).Match(want) {
					ok = true
					break
				}
			}
			if !ok {
				return fmt.Errorf("the builder at %s cannot run %s programs (it runs %s), and the installer must run for that arch: install QEMU binfmt handlers on the builder host (e.g. `docker run --privileged --rm tonistiigi/binfmt --install %s`) or point --addr at a native %s builder",
					addr, platforms.Format(want), strings.Join(have, ", "), want.Architecture, want.Architecture)
			}
		}
	}
	return nil
}
