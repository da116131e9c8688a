package main

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushBase copies the OCI layout's base to ref, so the recipe's FROM and
// gpuimg's --base name the very same image: a single image, or the
// multi-platform index `make base` writes (amd64 and arm64), pushed whole.
// It returns the linux/amd64 image.
func pushBase(layoutDir, ref string) (v1.Image, error) {
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return nil, fmt.Errorf("base layout %s: %w (`make base` makes it)", layoutDir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("base layout %s holds %d manifests, want 1", layoutDir, len(m.Manifests))
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	if !m.Manifests[0].MediaType.IsIndex() {
		img, err := p.Image(m.Manifests[0].Digest)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r, img); err != nil {
			return nil, fmt.Errorf("push the base to %s: %w", ref, err)
		}
		return img, nil
	}
	multi, err := idx.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(r, multi); err != nil {
		return nil, fmt.Errorf("push the base to %s: %w", ref, err)
	}
	return remoteImage(ref)
}

// remoteImage reads ref's image (linux/amd64) from the local registry.
func remoteImage(ref string) (v1.Image, error) {
	r, err := name.ParseReference(strings.TrimPrefix(ref, "docker-image://"), name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
}
