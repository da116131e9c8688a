package build

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// expand replaces {driver} and {arch} in s.
func expand(s, driver, arch string) string {
	return strings.NewReplacer("{driver}", driver, "{arch}", arch).Replace(s)
}

// checkWritable refuses, before any build starts, a destination whose
// directory cannot be created or written.
func checkWritable(dest string) error {
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("destination %s: cannot create its directory: %w", dest, err)
	}
	probe, err := os.CreateTemp(parent, ".gpuimg-probe-")
	if err != nil {
		return fmt.Errorf("destination %s is not writable: %w", dest, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// pendingDest is a destination being written under a temporary name; commit
// renames it into place, discard removes it. Nothing half-written is ever
// left at the destination.
type pendingDest struct {
	final, tmp string
	dir        bool
	file       *os.File
}

func newPendingDest(dest string, dir bool) (*pendingDest, error) {
	parent := filepath.Dir(dest)
	if fi, err := os.Stat(dest); err == nil {
		if dir {
			return nil, fmt.Errorf("destination %s already exists: remove it or choose another dest=", dest)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("destination %s is a directory: dest= must name a file for this exporter", dest)
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("destination %s: cannot create its directory: %w", dest, err)
	}
	p := &pendingDest{final: dest, dir: dir}
	if dir {
		tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".gpuimg-")
		if err != nil {
			return nil, fmt.Errorf("destination %s is not writable: %w", dest, err)
		}
		p.tmp = tmp
		return p, nil
	}
	f, err := os.CreateTemp(parent, "."+filepath.Base(dest)+".gpuimg-")
	if err != nil {
		return nil, fmt.Errorf("destination %s is not writable: %w", dest, err)
	}
	p.tmp, p.file = f.Name(), f
	return p, nil
}

// exportEntry returns the BuildKit export entry writing to the temporary name.
func (p *pendingDest) attach(e *client.ExportEntry) {
	if p.dir {
		e.OutputDir = p.tmp
		return
	}
	e.Output = func(map[string]string) (io.WriteCloser, error) { return p.file, nil }
}

func (p *pendingDest) commit() error {
	if !p.dir {
		// BuildKit closes the writer; a second Close only reports that.
		_ = p.file.Close()
		if err := os.Chmod(p.tmp, 0o644); err != nil {
			return err
		}
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		return fmt.Errorf("move the finished output to %s: %w", p.final, err)
	}
	return nil
}

func (p *pendingDest) discard() {
	if p.file != nil {
		_ = p.file.Close()
	}
	_ = os.RemoveAll(p.tmp)
}
