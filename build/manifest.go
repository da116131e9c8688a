package build

import (
	"archive/tar"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// manifestFiles reads just the .manifest of a local .run, for --components
// pruning: it decompresses the payload only up to the .manifest entry
// (drivers.Inspect reads the whole payload, seconds for a 400 MB package,
// to count sizes pruning does not need).
func manifestFiles(runPath string) ([]llb.ManifestFile, error) {
	f, err := os.Open(runPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr, err := drivers.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", runPath, err)
	}
	payload := io.NewSectionReader(f, hdr.PayloadOffset, 1<<62)
	var r io.Reader
	switch hdr.Compression {
	case "gzip":
		zr, err := gzip.NewReader(payload)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip payload: %w", runPath, err)
		}
		defer zr.Close()
		r = zr
	case "xz":
		// NVIDIA's xz payloads carry no integrity check (-C none).
		if r, err = (xz.ReaderConfig{SingleStream: true}).NewReader(payload); err != nil {
			return nil, fmt.Errorf("%s: xz payload: %w", runPath, err)
		}
	case "zstd":
		zr, err := zstd.NewReader(payload)
		if err != nil {
			return nil, fmt.Errorf("%s: zstd payload: %w", runPath, err)
		}
		defer zr.Close()
		r = zr
	case "bzip2":
		r = bzip2.NewReader(payload)
	default:
		return nil, fmt.Errorf("%s: payload compression %q is unknown, so --components cannot read its manifest: build with --components all", runPath, hdr.Compression)
	}
	tr := tar.NewReader(r)
	for {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s has no .manifest: it is not an NVIDIA driver package", runPath)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading the payload: %w", runPath, err)
		}
		if path.Base(th.Name) != ".manifest" {
			continue
		}
		m, err := drivers.ParseManifest(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", runPath, err)
		}
		files := make([]llb.ManifestFile, 0, len(m.Entries))
		for _, e := range m.Entries {
			files = append(files, llb.ManifestFile{Name: e.Path, Group: string(e.Group)})
		}
		return files, nil
	}
}
