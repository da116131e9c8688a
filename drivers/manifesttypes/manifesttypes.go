// Package manifesttypes holds nvidia-installer's table of .manifest file
// types for each release gpuimg has NVIDIA's installer of (copied from that
// release's manifest.c): which optional tokens an entry of each type carries.
// The installer reads an entry positionally by this table, so a token a type
// does not take is read as the next field, and an unknown type makes the
// whole .manifest invalid. The drivers package reads manifests by it, and the
// stand-in packages are written by it.
//
// It has no dependencies so that both drivers and internal/standin (which the
// drivers tests use) can import it.
package manifesttypes

import (
	"embed"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Caps are one file type's capabilities, the columns of manifest.c's table.
type Caps struct {
	HasArch       bool // a NATIVE or COMPAT32 token follows the type
	Installable   bool
	HasPath       bool // a path token follows ("/", "vdpau/", "/usr/bin/", ...)
	IsSymlink     bool // a symlink target token follows
	IsSharedLib   bool
	IsOpenGL      bool
	IsTemporary   bool
	IsConflicting bool
	InheritPath   bool // an INHERIT_PATH_DEPTH:n token follows
}

// Table is one release's file types.
type Table struct {
	Release string // the nvidia-installer release the table was taken from
	caps    map[string]Caps
}

// Caps returns the capabilities of typ, and whether the release knows it.
func (t Table) Caps(typ string) (Caps, bool) {
	c, ok := t.caps[typ]
	return c, ok
}

// Types lists the release's types, sorted.
func (t Table) Types() []string {
	out := make([]string, 0, len(t.caps))
	for typ := range t.caps {
		out = append(out, typ)
	}
	sort.Strings(out)
	return out
}

//go:embed *.tsv
var tables embed.FS

// all holds every table, oldest release first.
var all = mustLoad()

func mustLoad() []Table {
	entries, err := tables.ReadDir(".")
	if err != nil {
		panic(err)
	}
	var out []Table
	for _, e := range entries {
		release := strings.TrimSuffix(e.Name(), ".tsv")
		b, err := tables.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		t, err := parse(release, string(b))
		if err != nil {
			panic(err) // embedded data: a test reads every table
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return Less(out[i].Release, out[j].Release) })
	return out
}

func parse(release, text string) (Table, error) {
	t := Table{Release: release, caps: map[string]Caps{}}
	for n, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 10 {
			return Table{}, fmt.Errorf("manifest types %s line %d: want 10 columns, got %d", release, n+1, len(f))
		}
		var b [9]bool
		for i, v := range f[1:] {
			switch v {
			case "T":
				b[i] = true
			case "F":
			default:
				return Table{}, fmt.Errorf("manifest types %s line %d: column %d is %q, not T or F", release, n+1, i+2, v)
			}
		}
		t.caps[f[0]] = Caps{HasArch: b[0], Installable: b[1], HasPath: b[2], IsSymlink: b[3], IsSharedLib: b[4],
			IsOpenGL: b[5], IsTemporary: b[6], IsConflicting: b[7], InheritPath: b[8]}
	}
	return t, nil
}

// Releases lists the releases that have a table, oldest first.
func Releases() []string {
	out := make([]string, len(all))
	for i, t := range all {
		out[i] = t.Release
	}
	return out
}

// For returns the table that reads a package of driver version v: that of
// the newest release not newer than v, or the oldest table for older
// packages (types only grow between releases, and none changed its tokens
// from 450 to 590).
func For(v string) Table {
	best := all[0]
	for _, t := range all[1:] {
		if !Less(v, t.Release) {
			best = t
		}
	}
	return best
}

// Less compares dotted numeric versions part by part ("470.82" < "470.256.02");
// a missing part counts as zero and a non-numeric one as zero.
func Less(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(x) || i < len(y); i++ {
		p, q := part(x, i), part(y, i)
		if p != q {
			return p < q
		}
	}
	return false
}

func part(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	n, _ := strconv.Atoi(parts[i])
	return n
}
