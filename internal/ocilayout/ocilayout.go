// Package ocilayout reads images out of an OCI image layout directory, with
// one rule for which image of a multi-platform index serves a platform.
// `gpuimg build --base oci-layout://DIR` and the launcher's image reader
// both go through it.
package ocilayout

import (
	"fmt"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layout is an opened OCI layout.
type Layout struct {
	index v1.ImageIndex
	// Entries are index.json's manifests: images, or indexes of images.
	Entries []v1.Descriptor
}

// Open reads dir's index.json.
func Open(dir string) (*Layout, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	return &Layout{index: idx, Entries: m.Manifests}, nil
}

// Image returns the image entry stands for on platform p, and its
// descriptor: the entry itself when it is an image, else the index's first
// image whose platform p runs (an image of no stated platform runs anywhere).
func (l *Layout) Image(entry v1.Descriptor, p ocispecs.Platform) (v1.Image, v1.Descriptor, error) {
	if !entry.MediaType.IsIndex() {
		img, err := l.index.Image(entry.Digest)
		return img, entry, err
	}
	child, err := l.index.ImageIndex(entry.Digest)
	if err != nil {
		return nil, entry, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, entry, err
	}
	for _, m := range cm.Manifests {
		if Match(m, p) {
			// The image is listed in the child index, not in index.json.
			img, err := child.Image(m.Digest)
			return img, m, err
		}
	}
	return nil, entry, fmt.Errorf("%w %s", ErrNoPlatform, platforms.Format(p))
}

// Match is the one rule for which image of an index serves platform p: an
// image (not a nested index) whose platform p runs, or that states none.
func Match(d v1.Descriptor, p ocispecs.Platform) bool {
	if d.MediaType.IsIndex() {
		return false
	}
	if d.Platform == nil || d.Platform.Architecture == "" {
		return true
	}
	return platforms.Only(p).Match(ocispecs.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant})
}

// Platforms lists the platforms entry's images are for: its index's
// (attestations, platform unknown, left out), or nothing for an image.
func (l *Layout) Platforms(entry v1.Descriptor) ([]ocispecs.Platform, error) {
	if !entry.MediaType.IsIndex() {
		return nil, nil
	}
	child, err := l.index.ImageIndex(entry.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []ocispecs.Platform
	for _, m := range cm.Manifests {
		if m.Platform != nil && m.Platform.OS != "unknown" && !m.MediaType.IsIndex() {
			out = append(out, ocispecs.Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, Variant: m.Platform.Variant})
		}
	}
	return out, nil
}

// ErrNoPlatform is returned (wrapped) when an index has no image for the
// platform asked for.
var ErrNoPlatform = fmt.Errorf("no image for")
