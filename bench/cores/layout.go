package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/gpuimg/gpuimg/bench/cores/packed"
	"github.com/gpuimg/gpuimg/llb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeLayout turns the packer's output in dir (the blob and layer.json)
// into an OCI layout of a one-layer image: its config (the diffID) and
// manifest go into the same content store. It returns the manifest digest.
func writeLayout(dir string, platform ocispecs.Platform, l *packed.Layer) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, packed.FileName))
	if err == nil {
		err = json.Unmarshal(data, l)
	}
	if err != nil {
		return "", fmt.Errorf("the packer's layer.json: %w", err)
	}
	config, err := json.Marshal(ocispecs.Image{
		Platform: platform,
		RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.Digest(l.DiffID)}},
	})
	if err != nil {
		return "", err
	}
	configDesc, err := putBlob(dir, ocispecs.MediaTypeImageConfig, config)
	if err != nil {
		return "", err
	}
	m := ocispecs.Manifest{
		MediaType: ocispecs.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispecs.Descriptor{{MediaType: l.MediaType, Digest: digest.Digest(l.Digest), Size: l.Size}},
	}
	m.SchemaVersion = 2
	manifest, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	manifestDesc, err := putBlob(dir, ocispecs.MediaTypeImageManifest, manifest)
	if err != nil {
		return "", err
	}
	index, err := json.Marshal(ocispecs.Index{Versioned: m.Versioned, MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{manifestDesc}})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return "", err
	}
	return manifestDesc.Digest.String(), os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func putBlob(dir, mediaType string, data []byte) (ocispecs.Descriptor, error) {
	d := digest.FromBytes(data)
	err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), data, 0o644)
	return ocispecs.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, err
}

// pushBase pushes the base's OCI layout (an image or the multi-platform
// index `make base` writes) to the registry, and pins the build's base to
// its linux image by digest: its config and layers are what every design's
// image must start with.
func (e *env) pushBase(dir string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("base layout %s: %w (`make base` makes it)", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("base layout %s holds %d manifests, want 1", dir, len(m.Manifests))
	}
	ref, err := name.ParseReference(e.reg+"/debian:bookworm", name.Insecure)
	if err != nil {
		return err
	}
	if m.Manifests[0].MediaType.IsIndex() {
		multi, err := idx.ImageIndex(m.Manifests[0].Digest)
		if err == nil {
			err = remote.WriteIndex(ref, multi)
		}
		if err != nil {
			return fmt.Errorf("push the base: %w", err)
		}
	} else {
		img, err := p.Image(m.Manifests[0].Digest)
		if err == nil {
			err = remote.Write(ref, img)
		}
		if err != nil {
			return fmt.Errorf("push the base: %w", err)
		}
	}
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: e.spec.Platform.Architecture}))
	if err != nil {
		return err
	}
	dg, err := img.Digest()
	if err != nil {
		return err
	}
	if e.baseConfig, err = img.RawConfigFile(); err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	e.baseDiffIDs = nil
	for _, d := range cfg.RootFS.DiffIDs {
		e.baseDiffIDs = append(e.baseDiffIDs, d.String())
	}
	e.spec.Base = llb.Base{Ref: ref.Context().String() + "@" + dg.String(), Name: ref.String()}
	return nil
}

func layerDigests(img v1.Image) ([]string, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out, nil
}
