package launch_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gpuimg/gpuimg/internal/testenv"
)

// Debian's busybox-static: one static binary, so the test image needs no base.
const busyboxPath = "/bin/busybox"

var busyboxApplets = []string{"sh", "ls", "find", "stat", "cat", "env", "id", "sort", "wc", "true", "sleep"}

// busyboxImage writes a docker-format tarball (what dockerd 20.10 and podman
// load) of a one-layer image holding a static busybox, tagged tag, with the
// given labels, and returns its path.
func busyboxImage(t *testing.T, tag string, labels map[string]string) string {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, ref, busybox(t, labels)); err != nil {
		t.Fatal(err)
	}
	return path
}

// busybox is the one-layer busybox image with the given labels.
func busybox(t *testing.T, labels map[string]string) v1.Image {
	t.Helper()
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		testenv.SkipOrFail(t, "%s not found (Debian's busybox-static; `make deps` installs it)", busyboxPath)
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}))
	must(tw.WriteHeader(&tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}))
	must(tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}))
	_, err = tw.Write(bb)
	must(err)
	for _, applet := range busyboxApplets {
		must(tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}))
	}
	must(tw.Close())
	data := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	must(err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(err)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		Config: v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, Labels: labels},
		RootFS: v1.RootFS{Type: "layers"},
	})
	must(err)
	// mutate.ConfigFile replaced the diff ids; put the layer's back.
	diffID, err := layer.DiffID()
	must(err)
	cfg, err := img.ConfigFile()
	must(err)
	cfg.RootFS.DiffIDs = []v1.Hash{diffID}
	img, err = mutate.ConfigFile(img, cfg)
	must(err)
	return img
}
