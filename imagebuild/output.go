package imagebuild

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gpuimg/gpuimg/internal/atomicfile"
	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/go-csvvalue"
)

// OutputSpec is one parsed --output: BuildKit's exporter type and attributes,
// with dest kept as a template until it is expanded per image.
type OutputSpec struct {
	Type  string
	Attrs map[string]string
	// Dest is the file or directory for docker/oci/local/tar exporters.
	Dest string
}

// ParseOutput parses BuildKit's --output syntax (CSV of key=value; type
// required), e.g. type=image,name=r/x:{driver},push=true or
// type=docker,dest=x.tar. Nothing is opened here: destinations are written
// to a temporary name and renamed only when the build succeeds.
func ParseOutput(s string) (OutputSpec, error) {
	fields, err := csvvalue.Fields(s, nil)
	if err != nil {
		return OutputSpec{}, fmt.Errorf("--output %q: %w (expected CSV such as type=docker,dest=image.tar)", s, err)
	}
	out := OutputSpec{Attrs: map[string]string{}}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return OutputSpec{}, fmt.Errorf("--output %q: %q is not key=value (expected e.g. type=image,name=REF,push=true)", s, f)
		}
		switch k = strings.ToLower(strings.TrimSpace(k)); k {
		case "type":
			out.Type = v
		case "dest":
			out.Dest = v
		default:
			out.Attrs[k] = v
		}
	}
	switch out.Type {
	case "":
		return OutputSpec{}, fmt.Errorf("--output %q has no type=: use type=image, type=docker, type=oci, type=local or type=tar", s)
	case client.ExporterImage, "registry":
		if out.Type == "registry" { // buildx's shorthand
			out.Type, out.Attrs["push"] = client.ExporterImage, "true"
		}
		if out.Dest != "" {
			return OutputSpec{}, fmt.Errorf("--output %q: type=image takes name=REF, not dest=", s)
		}
	case client.ExporterDocker, client.ExporterOCI, client.ExporterLocal, client.ExporterTar:
		if out.Dest == "" || out.Dest == "-" {
			return OutputSpec{}, fmt.Errorf("--output %q needs dest=PATH (a file for docker/oci/tar, a directory for local or tar=false)", s)
		}
	default:
		return OutputSpec{}, fmt.Errorf("--output %q: unknown type %q: use image, docker, oci, local or tar", s, out.Type)
	}
	if v, ok := out.Attrs["tar"]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return OutputSpec{}, fmt.Errorf("--output %q: tar=%q is not true or false", s, v)
		}
	}
	return out, nil
}

// writesDir reports whether the exporter writes a directory rather than a file.
func (o OutputSpec) writesDir() bool {
	switch o.Type {
	case client.ExporterLocal:
		return true
	case client.ExporterOCI, client.ExporterDocker:
		tar, err := strconv.ParseBool(o.Attrs["tar"])
		return err == nil && !tar
	}
	return false
}

// expand replaces {driver}, {arch} and {base} in s.
func expand(s, driver, arch, base string) string {
	return strings.NewReplacer("{driver}", driver, "{arch}", arch, "{base}", base).Replace(s)
}

// checkWritable refuses, before any build starts, a destination whose
// directory cannot be created or written. It creates nothing: the
// directory is made when the build writes, and removed again if it fails.
func checkWritable(dest string) error {
	if err := atomicfile.ProbeDir(filepath.Dir(dest)); err != nil {
		return fmt.Errorf("destination %s is not writable: %w", dest, err)
	}
	return nil
}

// pendingDest is a destination being written under a temporary name; it is
// renamed into place only when the build succeeds, so nothing half-written
// is ever left at the destination.
type pendingDest struct{ *atomicfile.Pending }

// A directory destination that already exists is refused only when it is
// about to be written (checkFreshDir): an unchanged one is left as it is.
func newPendingDest(dest string, dir bool) (pendingDest, error) {
	if fi, err := os.Stat(dest); err == nil && !dir && fi.IsDir() {
		return pendingDest{}, fmt.Errorf("destination %s is a directory: dest= must name a file for this exporter", dest)
	}
	create := atomicfile.Create
	if dir {
		create = atomicfile.CreateDir
	}
	p, err := create(dest)
	if errors.Is(err, atomicfile.ErrBusy) {
		return pendingDest{}, fmt.Errorf("destination %s is being written by another gpuimg build right now (%w): wait for it to finish, or choose another dest= (two builds to one file would leave only one image)", dest, err)
	}
	if err != nil {
		return pendingDest{}, fmt.Errorf("destination %s is not writable: %w", dest, err)
	}
	return pendingDest{p}, nil
}

// checkFreshDir refuses to export into a directory destination that exists
// (a rename cannot replace it).
func checkFreshDir(pe plannedExport) error {
	if _, err := os.Stat(pe.dest); err == nil && pe.spec.writesDir() {
		return fmt.Errorf("destination %s already exists: remove it or choose another dest=", pe.dest)
	}
	return nil
}

// attach points BuildKit's export entry at the temporary name.
// Its bytes count as signs of life for the watchdog.
func (p pendingDest) attach(e *client.ExportEntry, watch *watchdog) {
	if f := p.File(); f != nil {
		e.Output = func(map[string]string) (io.WriteCloser, error) { return watch.writer(f), nil }
		return
	}
	e.OutputDir = p.Name()
}

func (p pendingDest) commit() error { return p.Commit(0o644) }

func (p pendingDest) discard() {
	if p.Pending != nil {
		p.Discard()
	}
}
