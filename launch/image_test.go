package launch_test

import (
	"archive/tar"
	"context"
	"errors"
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

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
	"github.com/gpuimg/gpuimg/llb"
)

var (
	amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispecs.Platform{OS: "linux", Architecture: "arm64"}
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
	img, err := launch.ReadImage(context.Background(), ref, "no-such-runtime", amd64)
	if err != nil {
		t.Fatal(err)
	}
	if img.Source != "registry" || img.Labels[llb.LabelDriverVersion] != "470.82.00" {
		t.Errorf("got %+v", img)
	}
	_, err = launch.ReadImage(context.Background(), u.Host+"/fleet/cuda:absent", "no-such-runtime", amd64)
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
	img, err := launch.ReadImage(context.Background(), dir, "", amd64)
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
	img, err = launch.ReadImage(context.Background(), tarPath, "", amd64)
	if err != nil || img.Source != "OCI tarball" || img.Labels[llb.LabelDriverVersion] != "535.261.03" {
		t.Fatalf("OCI tarball: %+v %v", img, err)
	}
}

// archImage is a driver image for one architecture: its config says the
// platform, its labels the driver and NVIDIA's arch.
func archImage(t *testing.T, version, arch string) v1.Image {
	t.Helper()
	img := labelledImage(t, version)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Labels[llb.LabelDriverArch] = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// fleetRegistry pushes REG/fleet:multi (an index of amd64 and arm64) and
// REG/fleet:amd64 (amd64 only) to a registry on 127.0.0.1.
func fleetRegistry(t *testing.T, version string) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	idx := mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json")
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: archImage(t, version, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	multi, err := name.NewTag(u.Host + "/fleet:multi")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(multi, idx); err != nil {
		t.Fatal(err)
	}
	only, err := name.NewTag(u.Host + "/fleet:amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(only, archImage(t, version, "amd64")); err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// An image is read for the host's platform: the variant of a
// multi-platform index, or refused when it has none (from a registry and
// from an OCI layout alike).
func TestReadImagePicksTheHostsPlatform(t *testing.T) {
	reg := fleetRegistry(t, "580.159.04")
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(archImage(t, "580.159.04", "amd64")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []ocispecs.Platform{amd64, arm64} {
		img, err := launch.ReadImage(context.Background(), reg+"/fleet:multi", "", want)
		wantArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[want.Architecture]
		if err != nil || img.Labels[llb.LabelDriverArch] != wantArch || img.Platform != "linux/"+want.Architecture || !img.MultiPlatform {
			t.Errorf("multi-platform image for %s: %+v %v", want.Architecture, img, err)
		}
	}
	for _, ref := range []string{reg + "/fleet:amd64", dir} {
		_, err := launch.ReadImage(context.Background(), ref, "", arm64)
		if !errors.Is(err, launch.ErrWrongPlatform) || !strings.Contains(err.Error(), "is for linux/amd64, and this host is linux/arm64") ||
			!strings.Contains(err.Error(), "gpuimg build --platform linux/arm64") {
			t.Errorf("amd64-only %s on arm64: %v", ref, err)
		}
	}
}

// `gpuimg run` on a Grace Hopper host (the gh200 fixture, aarch64): an
// amd64-only image is refused before anything starts, even with --force;
// a multi-platform image runs its arm64 variant, named to the engine.
func TestRunOnAarch64HostPicksArm64(t *testing.T) {
	h := hosttest.Read(t, testenv.HostFixture(t, "gh200-580.159.04"))
	reg := fleetRegistry(t, h.Driver.Version)
	opts := launch.RunOptions{Image: reg + "/fleet:multi", Runtime: "docker", DryRun: true, Plan: launch.Options{GPUs: "all"}}
	argv, _, err := launch.RunCommand(context.Background(), h, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(argv, " "); !strings.HasPrefix(got, "docker run --platform linux/arm64 ") || !strings.HasSuffix(got, " "+opts.Image) {
		t.Errorf("argv %q, want docker run --platform linux/arm64 … %s", got, opts.Image)
	}
	for _, force := range []bool{false, true} {
		opts.Image, opts.Force = reg+"/fleet:amd64", force
		if _, _, err := launch.RunCommand(context.Background(), h, opts); !errors.Is(err, launch.ErrWrongPlatform) || !strings.Contains(err.Error(), "this host is linux/arm64") {
			t.Errorf("amd64-only image, force=%v: %v", force, err)
		}
	}
}
