package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/gpuimg/gpuimg/llb"
	"github.com/gpuimg/gpuimg/templates"
	bk "github.com/moby/buildkit/client/llb"
)

// Emit returns the build instead of running it (Options.Emit): the
// equivalent Dockerfile, or the marshalled LLB definition (`gpuimg build
// --emit llb | buildctl debug dump-llb`). Prepare has checked that there is
// one image for one platform: the output is a single document.
func (b *Builder) Emit(ctx context.Context) ([]byte, error) {
	t := b.images[0].targets[0]
	given := b.bases[0]
	var base llb.Base
	if given.Layout != "" {
		var err error
		if base, _, err = layoutBase(given, t.platform); err != nil {
			return nil, err
		}
	} else {
		// Pinned only when --base names a digest: pinning needs the builder's
		// resolver, which a build asks.
		base = llb.Base{Ref: given.Named.String(), Name: given.Named.String()}
	}
	spec := b.spec(t, base)
	switch b.in.Emit {
	case "llb":
		graph, err := llb.Build(spec)
		if err != nil {
			return nil, err
		}
		def, err := graph.Result.Marshal(ctx, bk.Platform(t.platform))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		err = bk.WriteTo(def, &buf)
		return buf.Bytes(), err
	case "dockerfile":
		return b.dockerfile(spec)
	}
	return nil, fmt.Errorf("--emit %q: use dockerfile or llb", b.in.Emit)
}

// dockerfile renders the Dockerfile equivalent of spec. Its image config
// has the same labels and environment as the LLB build's (llb.Labels,
// llb.VisibleDevicesEnv); only a base pinned by digest gets the base
// digest label, as a Dockerfile cannot pin it.
func (b *Builder) dockerfile(spec llb.Spec) ([]byte, error) {
	d := spec.Driver
	if d.Path != "" {
		return nil, fmt.Errorf("--emit dockerfile downloads the .run by URL, but driver %s has no URL here (a --driver-file or a cached copy): use a catalog version without --offline, or --mirror", d.Version)
	}
	if b.bases[0].Layout != "" {
		return nil, fmt.Errorf("--emit dockerfile needs a registry --base (a Dockerfile cannot name an OCI layout): push the base or use its registry name")
	}
	labels := llb.Labels(spec)
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		lines = append(lines, k+"="+strconv.Quote(labels[k]))
	}
	text, err := templates.Render("Dockerfile.tmpl", dockerfileData{
		Driver: d.Version.String(), Base: b.bases[0].Given, Components: b.components.String(),
		SHA256: d.SHA256, URL: d.URLs[0], FileName: d.FileName(),
		Stubs: llb.StubUtilities(), StubScript: llb.StubScript,
		DriverDir: llb.DriverDir, ToolsDir: llb.ToolsDir, TmpDir: llb.TmpDir,
		Script: llb.InstallScript(spec),
		Env:    llb.VisibleDevicesEnv,
		Labels: lines,
	})
	return []byte(text), err
}

type dockerfileData struct {
	Driver, Base, Components    string
	SHA256, URL, FileName       string
	Stubs                       []string
	StubScript                  string
	DriverDir, ToolsDir, TmpDir string
	Script                      string
	Env                         string
	Labels                      []string
}
