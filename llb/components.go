package llb

import (
	"fmt"
	"sort"
	"strings"
)

// Component groups of the driver userspace, as the NVIDIA container stack
// groups libraries (REFERENCE 3.4), plus what the manifest marks otherwise.
const (
	Utility  = "utility"
	Compute  = "compute"
	Video    = "video"
	Graphics = "graphics"
	Display  = "display"
)

// selectable are the groups --components may name.
var selectable = []string{Utility, Compute, Video, Graphics, Display}

// Components is a selection of component groups; the zero value (All) keeps
// everything the installer installs.
type Components struct {
	groups map[string]bool // nil = all
}

// All keeps every file the installer installs.
var All = Components{}

// ParseComponents parses --components: "all" (the default), or a comma list of
// groups; "compute" implies "utility" (CUDA needs NVML and nvidia-smi).
func ParseComponents(s string) (Components, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return All, nil
	}
	groups := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		g := strings.TrimSpace(part)
		if !isSelectable(g) {
			return Components{}, fmt.Errorf("unknown component %q in --components %q: use all, or a comma list of %s", g, s, strings.Join(selectable, ", "))
		}
		groups[g] = true
	}
	if groups[Compute] {
		groups[Utility] = true
	}
	if groups[Display] {
		groups[Graphics] = true
	}
	return Components{groups: groups}, nil
}

func isSelectable(g string) bool {
	for _, s := range selectable {
		if s == g {
			return true
		}
	}
	return false
}

// IsAll reports whether nothing is pruned.
func (c Components) IsAll() bool { return c.groups == nil }

// Has reports whether group g is kept.
func (c Components) Has(g string) bool { return c.groups == nil || c.groups[g] }

// String is the canonical form used in labels: "all" or the sorted groups.
func (c Components) String() string {
	if c.IsAll() {
		return "all"
	}
	var gs []string
	for g := range c.groups {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	return strings.Join(gs, ",")
}

// ManifestFile is what pruning needs from one .manifest entry: the file's
// name as installed and its component group (utility, compute, video,
// graphics, display, kernel-only, host-only, other).
type ManifestFile struct {
	Name  string
	Group string
}

// PruneNames returns the sorted, unique base names of the installed files the
// selection drops: every manifest entry whose group is not kept (kernel-only,
// host-only and other entries are dropped by any explicit selection).
func PruneNames(c Components, files []ManifestFile) []string {
	if c.IsAll() {
		return nil
	}
	drop := map[string]bool{}
	keep := map[string]bool{}
	for _, f := range files {
		name := baseName(f.Name)
		if name == "" {
			continue
		}
		if c.groups[f.Group] {
			keep[name] = true
		} else {
			drop[name] = true
		}
	}
	var out []string
	for name := range drop {
		// A name some kept entry also installs (a 32-bit twin, say) stays.
		if !keep[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return p
}
