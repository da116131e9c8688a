package build

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gpuimg/gpuimg/llb"
	"github.com/gpuimg/gpuimg/templates"
	bk "github.com/moby/buildkit/client/llb"
)

// emit prints the build instead of running it: the equivalent Dockerfile, or
// the marshalled LLB definition (`gpuimg build --emit llb | buildctl debug
// dump-llb`). One image at a time: the output is a single document.
func (o *Options) emit(ctx context.Context, p *plan) error {
	if len(p.jobs) != 1 || len(p.jobs[0].platforms) != 1 {
		return fmt.Errorf("--emit prints one image: pass one --driver and one --platform")
	}
	j := p.jobs[0]
	in, pl := j.inputs[0], j.platforms[0]
	var base llb.Base
	if p.base.Layout != "" {
		img, err := resolveLayout(p.base, pl)
		if err != nil {
			return err
		}
		base = llb.Base{Ref: "gpuimg/base@" + img.Manifest.String(), OCIStoreID: layoutStoreID}
	} else {
		// Not pinned: pinning needs the builder's resolver; a build pins it.
		base = llb.Base{Ref: p.base.Named.String()}
	}
	spec := llb.Spec{Driver: in.Version, Platform: pl, Base: base, Source: in.Source, Components: p.components, Compat32: p.compat32, Prune: j.prune[0], Epoch: p.epoch.Unix(), Verified: in.Verified}
	switch o.Emit {
	case "llb":
		planned, err := llb.Build(spec)
		if err != nil {
			return err
		}
		def, err := planned.Result.Marshal(ctx, bk.Platform(pl))
		if err != nil {
			return err
		}
		return bk.WriteTo(def, o.Stdout)
	case "dockerfile":
		if in.Source.URL == "" {
			return fmt.Errorf("--emit dockerfile downloads the .run by URL, but driver %s has no URL here (a --driver-file or --offline build): use a catalog version or --mirror", in.Version)
		}
		if p.base.Layout != "" {
			return fmt.Errorf("--emit dockerfile needs a registry --base (a Dockerfile cannot name an OCI layout): push the base or use its registry name")
		}
		text, err := templates.Render("Dockerfile.tmpl", dockerfileData{
			Driver: in.Version.String(), Base: p.base.Given, Components: p.components.String(),
			SHA256: in.SHA256, URL: in.Source.URL, FileName: in.Source.FileName,
			Stubs: llb.StubUtilities(), StubScript: llb.StubScript,
			DriverDir: llb.DriverDir, ToolsDir: llb.ToolsDir, TmpDir: llb.TmpDir,
			Script: llb.InstallScript(spec),
			Labels: []string{
				llb.LabelDriverVersion + "=" + strconv.Quote(in.Version.String()),
				llb.LabelDriverSHA256 + "=" + strconv.Quote(in.SHA256),
				llb.LabelDriverComponents + "=" + strconv.Quote(p.components.String()),
				llb.LabelDriverArch + "=" + strconv.Quote(in.Arch),
				llb.LabelDriverVerified + "=" + strconv.Quote(strconv.FormatBool(in.Verified)),
			},
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(o.Stdout, text)
		return err
	}
	return nil
}

type dockerfileData struct {
	Driver, Base, Components    string
	SHA256, URL, FileName       string
	Stubs                       []string
	StubScript                  string
	DriverDir, ToolsDir, TmpDir string
	Script                      string
	Labels                      []string
}
