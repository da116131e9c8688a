package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// One driver layer for several bases. Before any install, a session of its
// own pins every base for every platform and runs llb.Fingerprint on it (a
// tiny step, no network); bases whose fingerprints are equal form a group,
// and each (driver, platform) is installed once per group, on the group's
// first base: every image of the group is its base + that same driver layer
// + its own linker cache layer (llb.Fleet). The other images of the group
// start when the first base's image is done (leaders): the install, the
// compression and, to one registry, the upload of the driver layer happen
// once, and each later image adds an ldconfig, its small layer and its
// manifest. A
// base alone in its group gets today's plan, base + one layer, and a warning
// naming the first difference.

// basePlan is what the pre-pass found: per platform (platforms.Format), one
// baseFit per base, in --base order.
type basePlan map[string][]baseFit

// baseFit is one base on one platform.
type baseFit struct {
	resolved bool // pinned and config are set
	pinned   llb.Base
	config   []byte
	// fit is llb.FitScript's output; "" when it could not be read, and then
	// the base shares nothing (fitErr says why).
	fit    string
	fitErr error
	// group lists the bases sharing this one's driver layer, this one
	// included, in --base order; the install runs on group[0]. Alone: the
	// base is built the full way.
	group []int
}

// lookup is base i's entry for platform p, or nil without a pre-pass.
func (p basePlan) lookup(i int, pl ocispecs.Platform) *baseFit {
	fits := p[platforms.Format(pl)]
	if i >= len(fits) {
		return nil
	}
	return &fits[i]
}

// groupByFit groups bases by equal, non-empty fingerprint: groups[i] lists
// the bases in base i's group (i included), in order. A base with no
// fingerprint is alone.
func groupByFit(fits []string) [][]int {
	groups := make([][]int, len(fits))
	byFit := map[string][]int{}
	var order []string
	for i, f := range fits {
		if f == "" {
			continue
		}
		if _, seen := byFit[f]; !seen {
			order = append(order, f)
		}
		byFit[f] = append(byFit[f], i)
	}
	for i, f := range fits {
		if f == "" {
			groups[i] = []int{i}
			continue
		}
		groups[i] = byFit[f]
	}
	return groups
}

// firstDifference is the first line in which two fingerprints differ, as
// each shows it ("(nothing)" past one's end).
func firstDifference(a, b string) (string, string) {
	la, lb := strings.Split(strings.TrimRight(a, "\n"), "\n"), strings.Split(strings.TrimRight(b, "\n"), "\n")
	line := func(ls []string, i int) string {
		if i < len(ls) {
			return ls[i]
		}
		return "(nothing)"
	}
	for i := 0; i < len(la) || i < len(lb); i++ {
		if line(la, i) != line(lb, i) {
			return line(la, i), line(lb, i)
		}
	}
	return "", ""
}

// platformsOf lists the platforms of every image, each once, in order.
func (b *Builder) platformsOf() []ocispecs.Platform {
	var out []ocispecs.Platform
	seen := map[string]bool{}
	for _, im := range b.images {
		for _, t := range im.targets {
			if k := platforms.Format(t.platform); !seen[k] {
				seen[k] = true
				out = append(out, t.platform)
			}
		}
	}
	return out
}

// solveBases is the pre-pass of a build of several bases: every base pinned
// and fingerprinted on every platform, concurrently, in one session with no
// export. A base that cannot be resolved or fingerprinted is alone (its
// own build then reports why); the error is the session's only.
func (b *Builder) solveBases(ctx context.Context, c *client.Client, stores map[string]content.Store,
	attachables []session.Attachable, status chan *client.SolveStatus) (basePlan, error) {
	plan := basePlan{}
	opt := client.SolveOpt{Session: attachables, OCIStores: stores}
	_, err := c.Build(ctx, opt, "gpuimg", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		var wg sync.WaitGroup
		for _, pl := range b.platformsOf() {
			fits := make([]baseFit, len(b.bases))
			for i := range b.bases {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fits[i] = b.fitBase(ctx, gw, i, pl)
				}()
			}
			plan[platforms.Format(pl)] = fits
		}
		wg.Wait()
		return gateway.NewResult(), nil
	}, status)
	if err != nil {
		return nil, err
	}
	for _, fits := range plan {
		texts := make([]string, len(fits))
		for i, f := range fits {
			texts[i] = f.fit
		}
		for i, g := range groupByFit(texts) {
			fits[i].group = g
		}
	}
	return plan, nil
}

// fitBase pins base i for platform pl and reads its fingerprint.
func (b *Builder) fitBase(ctx context.Context, gw gateway.Client, i int, pl ocispecs.Platform) baseFit {
	pinned, config, err := b.resolveBase(ctx, gw, i, pl)
	if err != nil {
		return baseFit{}
	}
	f := baseFit{resolved: true, pinned: pinned, config: config}
	def, err := llb.Fingerprint(pinned, pl).Marshal(ctx, bk.Platform(pl))
	if err != nil {
		f.fitErr = err
		return f
	}
	r, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err == nil {
		var ref gateway.Reference
		if ref, err = r.SingleRef(); err == nil {
			var data []byte
			data, err = ref.ReadFile(ctx, gateway.ReadRequest{Filename: llb.FitFile})
			if f.fit = string(data); err == nil && f.fit == "" {
				err = errors.New("the step printed nothing")
			}
		}
	}
	f.fitErr = err
	return f
}

// sharingWarnings says, for each base built the full way in a build of
// several bases, why it shares no driver layer: the first line in which it
// shows NVIDIA's installer something else than the first base of another
// group, or that it could not be asked.
func (b *Builder) sharingWarnings(plan basePlan) []string {
	var out []string
	plats := b.platformsOf()
	for _, pl := range plats {
		fits := plan[platforms.Format(pl)]
		where := ""
		if len(plats) > 1 {
			where = " for " + platforms.Format(pl)
		}
		for i, f := range fits {
			if len(f.group) != 1 || !f.resolved {
				continue
			}
			if msg := b.notShared(fits, i); msg != "" {
				out = append(out, fmt.Sprintf("base %s%s shares no driver layer with the other bases: %s; it gets an install of its own, as a single base does",
					b.bases[i].Given, where, msg))
			}
		}
	}
	return out
}

// notShared is why base i (alone in its group) shares nothing: "" when no
// other base could be compared.
func (b *Builder) notShared(fits []baseFit, i int) string {
	if fits[i].fit == "" {
		return fmt.Sprintf("what NVIDIA's installer looks at in it could not be read (%v)", fits[i].fitErr)
	}
	for j, other := range fits {
		if j == i || other.fit == "" {
			continue
		}
		mine, theirs := firstDifference(fits[i].fit, other.fit)
		return fmt.Sprintf("it shows NVIDIA's installer %q where %s shows %q", mine, b.bases[j].Given, theirs)
	}
	return ""
}

// layerUse is the summary's account of image im's driver layer per
// platform, in a build of several bases (nil otherwise).
func (b *Builder) layerUse(im *image) []DriverLayerUse {
	if b.plan == nil {
		return nil
	}
	var out []DriverLayerUse
	for _, t := range im.targets {
		f := b.plan.lookup(im.base, t.platform)
		if f == nil {
			continue
		}
		use := DriverLayerUse{Platform: platforms.Format(t.platform)}
		if len(f.group) > 1 {
			for _, j := range f.group {
				use.SharedWith = append(use.SharedWith, b.bases[j].Given)
			}
		} else {
			use.NotShared = b.notShared(b.plan[use.Platform], im.base)
			if use.NotShared == "" {
				use.NotShared = "no other base of its family in this build"
			}
		}
		out = append(out, use)
	}
	return out
}

// leaders lists the images whose driver layers image i shares, installed on
// another base of its family (one per platform at most; none with one base).
func (b *Builder) leaders(i int) []int {
	im := b.images[i]
	var out []int
	for _, t := range im.targets {
		f := b.plan.lookup(im.base, t.platform)
		if f == nil || len(f.group) < 2 || f.group[0] == im.base {
			continue
		}
		for j, other := range b.images {
			if other.base == f.group[0] && sameTargets(im, other) && !slices.Contains(out, j) {
				out = append(out, j)
			}
		}
	}
	return out
}

// sameTargets reports whether two images are the same driver on the same
// platforms (on two bases).
func sameTargets(a, b *image) bool {
	if a.driver() != b.driver() || len(a.targets) != len(b.targets) {
		return false
	}
	for i := range a.targets {
		if platforms.Format(a.targets[i].platform) != platforms.Format(b.targets[i].platform) {
			return false
		}
	}
	return true
}

// DriverLayerUse says, in a build of several bases, where one platform of
// an image got its driver layer.
type DriverLayerUse struct {
	Platform string `json:"platform"`
	// SharedWith lists the bases whose images carry this same driver layer
	// (one install, one blob), this image's base included, in --base order;
	// the install ran on the first. Empty when the base was built the full
	// way: base + one layer.
	SharedWith []string `json:"shared_with,omitempty"`
	// NotShared says why the base was built the full way.
	NotShared string `json:"not_shared,omitempty"`
}

// plannedGraph is the graph of target t of image im on base (pinned): with
// a base that shares its family's driver layer, the install on the group's
// first base and this base's linker cache layer (llb.Fleet); otherwise
// today's plan, base + one layer. spec is the image's own (its labels name
// its base).
func (b *Builder) plannedGraph(im *image, t target, spec llb.Spec) (llb.Graph, llb.Spec, error) {
	f := b.plan.lookup(im.base, t.platform)
	if f == nil || len(f.group) < 2 {
		g, err := llb.Build(spec)
		return g, spec, err
	}
	spec.SplitLinkerCache = true
	first := b.plan.lookup(f.group[0], t.platform).pinned
	bases := []llb.Base{first}
	if f.group[0] != im.base {
		bases = append(bases, spec.Base)
	}
	install := spec
	install.Base = first
	graphs, err := llb.Fleet(install, bases)
	if err != nil {
		return llb.Graph{}, spec, err
	}
	return graphs[len(graphs)-1], spec, nil
}
