package main

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// join writes out as an OCI layout holding one multi-platform index, tagged
// ref, of the single images in the layouts froms (one per platform, each made
// by run): the shape of `docker buildx build --output type=oci` for two
// platforms, which BuildKit's oci-layout source and gpuimg's base resolution
// descend into for the platform being built.
func join(out, ref string, froms []string) error {
	if out == "" || len(froms) == 0 {
		return fmt.Errorf("--join needs --out and at least one --from LAYOUT")
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s already exists: remove it to rebuild the base", out)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]string{}
	for _, from := range froms {
		img, platform, err := onlyImage(from)
		if err != nil {
			return err
		}
		key := platform.String()
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("%s and %s are both %s: one image per platform", prev, from, key)
		}
		seen[key] = from
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
	}
	return writeLayout(out, func(p layout.Path) error {
		return p.AppendIndex(idx, layout.WithAnnotations(refAnnotations(ref)))
	})
}

// onlyImage reads the one image of a layout that run wrote, and its platform
// from its config.
func onlyImage(dir string) (v1.Image, *v1.Platform, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 || !im.Manifests[0].MediaType.IsImage() {
		return nil, nil, fmt.Errorf("--from %s: want a layout of exactly one image (as mkbase --rootfs writes), it has %d entries", dir, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: %w", dir, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: config: %w", dir, err)
	}
	if cfg.OS == "" || cfg.Architecture == "" {
		return nil, nil, fmt.Errorf("--from %s: the image's config names no OS and architecture", dir)
	}
	return img, &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}
