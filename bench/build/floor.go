package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gpuimg/gpuimg/drivers"
)

// Floor is the physical lower bound on this machine: unpacking the .run's
// payload plus compressing the installed files (the gpuimg layer's own tar)
// with each layer compression, timed with the standard tools.
type Floor struct {
	UnpackCommand  string  `json:"unpack_command"`
	UnpackSeconds  float64 `json:"unpack_seconds"`
	LayerTarBytes  int64   `json:"layer_tar_bytes"`
	Gzip6Seconds   float64 `json:"gzip6_seconds"`
	Gzip6Bytes     int64   `json:"gzip6_bytes"`
	Gzip1Seconds   float64 `json:"gzip1_seconds"`
	Gzip1Bytes     int64   `json:"gzip1_bytes"`
	Zstd3Seconds   float64 `json:"zstd3_t2_seconds"`
	Zstd3Bytes     int64   `json:"zstd3_t2_bytes"`
	GzipFloor      float64 `json:"gzip_floor_seconds"`
	ZstdFloor      float64 `json:"zstd_floor_seconds"`
	GzipFloorRatio float64 `json:"gzip_floor_ratio"`
	ZstdFloorRatio float64 `json:"zstd_floor_ratio"`
}

func (b *bench) floor(ctx context.Context, res *Results) error {
	progress("floor: unpack the payload, compress the installed files")
	run := b.runs[versions[0]]
	hdr, err := drivers.ReadHeaderFile(run)
	if err != nil {
		return err
	}
	decompress := map[string]string{"xz": "xz -dc", "gzip": "gzip -dc", "zstd": "zstd -dc"}[hdr.Compression]
	if decompress == "" {
		return fmt.Errorf("floor: payload compression %q has no decompressor here", hdr.Compression)
	}
	dir := filepath.Join(b.cfg.work, "floor")
	_ = os.RemoveAll(dir)
	unpacked := filepath.Join(dir, "unpacked")
	if err := os.MkdirAll(unpacked, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f := &Floor{UnpackCommand: fmt.Sprintf("tail -c +%d RUN | %s | tar x", hdr.PayloadOffset+1, decompress)}
	script := fmt.Sprintf("tail -c +%d %q | %s | tar x -C %q", hdr.PayloadOffset+1, run, decompress, unpacked)
	if f.UnpackSeconds, err = timedShell(ctx, script); err != nil {
		return err
	}
	_ = os.RemoveAll(unpacked)

	// The installed files exactly as gpuimg's layer holds them, uncompressed.
	img, err := remoteImage(b.pushRef(sideGzip, versions[0]))
	if err != nil {
		return err
	}
	layerTar := filepath.Join(dir, "layer.tar")
	if err := writeAddedLayer(img, b.baseLays, layerTar); err != nil {
		return err
	}
	f.LayerTarBytes = fileSize(layerTar)
	for _, c := range []struct {
		cmd   string
		secs  *float64
		bytes *int64
	}{
		{"gzip -6 -c", &f.Gzip6Seconds, &f.Gzip6Bytes},
		{"gzip -1 -c", &f.Gzip1Seconds, &f.Gzip1Bytes},
		{"zstd -3 -T2 -q -c", &f.Zstd3Seconds, &f.Zstd3Bytes},
	} {
		out := filepath.Join(dir, "layer.out")
		if *c.secs, err = timedShell(ctx, fmt.Sprintf("%s < %q > %q", c.cmd, layerTar, out)); err != nil {
			return err
		}
		*c.bytes = fileSize(out)
		_ = os.Remove(out)
	}
	f.GzipFloor = f.UnpackSeconds + f.Gzip6Seconds
	f.ZstdFloor = f.UnpackSeconds + f.Zstd3Seconds
	res.Floor = f
	return nil
}

func timedShell(ctx context.Context, script string) (float64, error) {
	return timed(func() error {
		cmd := exec.CommandContext(ctx, "sh", "-c", "set -e; "+script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("floor: %s: %w\n%s", script, err, out)
		}
		return nil
	})
}

// writeAddedLayer writes the uncompressed tars of the layers img adds to the
// base (the driver's files, in one layer or several), one after the other.
func writeAddedLayer(img v1.Image, base map[string]bool, path string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var added []v1.Layer
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if !base[d.String()] {
			added = append(added, l)
		}
	}
	if len(added) == 0 {
		return fmt.Errorf("floor: the gpuimg image adds no layer to the base")
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	for _, l := range added {
		rc, err := l.Uncompressed()
		if err == nil {
			_, err = io.Copy(out, rc)
			rc.Close()
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// layerSet is the set of an image's layer digests.
func layerSet(img v1.Image) (map[string]bool, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, l := range m.Layers {
		set[l.Digest.String()] = true
	}
	return set, nil
}

// addedBytes sums the compressed sizes (from the manifest) of img's layers
// above the base's: by position, since --compression zstd converts the
// base's own layers to new blobs that add nothing.
func addedBytes(img v1.Image, base map[string]bool) (int64, int, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	if len(m.Layers) < len(base) {
		return 0, 0, fmt.Errorf("the image has %d layers, fewer than its base's %d", len(m.Layers), len(base))
	}
	var sum int64
	for _, l := range m.Layers[len(base):] {
		sum += l.Size
	}
	return sum, len(m.Layers) - len(base), nil
}

// parseFloat reads a number printed by a tool.
func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
