package imagebuild_test

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// BuildKit keys a layer's blob without its compression: without
// force-compression, the first compression a builder made of a layer wins
// (a zstd build after a gzip one gave gzip, silently). Both orders, on one
// builder, each with its own driver so that its layer is new to it; every
// layer, the base's too, is read back: media type and magic bytes.
func TestCompressionIsWhatWasAskedInEitherOrder(t *testing.T) {
	e := setup(t)
	magic := map[string][]byte{"gzip": {0x1f, 0x8b}, "zstd": {0x28, 0xb5, 0x2f, 0xfd}}
	for _, c := range []struct {
		driver string
		order  []string
	}{
		{driverA, []string{"gzip", "zstd"}},
		{driverB, []string{"zstd", "gzip"}},
	} {
		run, sum := standinRun(t, c.driver)
		for _, comp := range c.order {
			dir := filepath.Join(t.TempDir(), "oci")
			e.mustBuild(t, "--driver-file", run, "--sha256", sum, "--base", e.base, "--compression", comp,
				"--output", "type=oci,dest="+dir+",tar=false")
			layers, err := onlyLayoutImage(t, dir).Layers()
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range layers {
				mt, err := l.MediaType()
				if err != nil {
					t.Fatal(err)
				}
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				head := make([]byte, 4)
				_, err = io.ReadFull(rc, head)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(string(mt), "+"+comp) || !bytes.HasPrefix(head, magic[comp]) {
					t.Errorf("driver %s, %s after %v: layer %d of %d is %s starting % x, want %s", c.driver, comp, c.order, i, len(layers), mt, head, comp)
				}
			}
		}
	}
}
