package ocilayout

import (
	"errors"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImageOfMultiPlatformIndex reads each platform's image out of a layout
// whose index.json holds one multi-platform index (what `make base` and
// `gpuimg build --output type=oci` with two platforms write): the images are
// listed in the child index only.
func TestImageOfMultiPlatformIndex(t *testing.T) {
	want := map[string]v1.Image{}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		want[arch] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for arch, img := range want {
		got, desc, err := l.Image(l.Entries[0], ocispecs.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		gotDigest, _ := got.Digest()
		wantDigest, _ := img.Digest()
		if gotDigest != wantDigest || desc.Digest != wantDigest {
			t.Errorf("%s: got %s (descriptor %s), want %s", arch, gotDigest, desc.Digest, wantDigest)
		}
	}
	if _, _, err := l.Image(l.Entries[0], ocispecs.Platform{OS: "linux", Architecture: "ppc64le"}); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("ppc64le: %v, want ErrNoPlatform", err)
	}
}
