package launch_test

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

func labelledImage(t *testing.T, version string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{llb.LabelDriverVersion: version}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Labels from a registry: the local engine does not know the image.
func TestReadImageFromRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	ref := u.Host + "/fleet/cuda:470.82.00"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, labelledImage(t, "470.82.00")); err != nil {
		t.Fatal(err)
	}
	img, err := launch.ReadImage(context.Background(), ref, "no-such-runtime")
	if err != nil {
		t.Fatal(err)
	}
	if img.Source != "registry" || img.Labels[llb.LabelDriverVersion] != "470.82.00" {
		t.Errorf("got %+v", img)
	}
	_, err = launch.ReadImage(context.Background(), u.Host+"/fleet/cuda:absent", "no-such-runtime")
	if err == nil || !strings.Contains(err.Error(), "cannot read the image") || !strings.Contains(err.Error(), "no-such-runtime") {
		t.Errorf("absent tag: %v", err)
	}
}

// Labels from an OCI layout directory and from the same layout as a tarball.
func TestReadImageFromOCILayoutAndTarball(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(labelledImage(t, "535.261.03")); err != nil {
		t.Fatal(err)
	}
	img, err := launch.ReadImage(context.Background(), dir, "")
	if err != nil || img.Source != "OCI layout" || img.Labels[llb.LabelDriverVersion] != "535.261.03" {
		t.Fatalf("layout: %+v %v", img, err)
	}

	tarPath := filepath.Join(t.TempDir(), "oci.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil || tw.Close() != nil || f.Close() != nil {
		t.Fatalf("writing the OCI tarball: %v", err)
	}
	img, err = launch.ReadImage(context.Background(), tarPath, "")
	if err != nil || img.Source != "OCI tarball" || img.Labels[llb.LabelDriverVersion] != "535.261.03" {
		t.Fatalf("OCI tarball: %+v %v", img, err)
	}
}
