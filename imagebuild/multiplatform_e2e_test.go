package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
)

// The fleet of TestTwoPlatformFleet: two drivers the catalog lacks.
const (
	fleetA = "999.50.01" // pinned by the mirror's .sha256sum files
	fleetB = "999.60.01" // pinned by --sha256 VERSION/ARCH=HEX
)

var fleetArchs = map[string]string{"amd64": drivers.ArchX86_64, "arm64": drivers.ArchAarch64}

// TestTwoPlatformFleet builds 2 drivers × 2 platforms in one invocation,
// linux/arm64 under QEMU: each platform from its own .run, downloaded by
// BuildKit from a mirror on 127.0.0.1 and verified against its own checksum
// (one driver by the mirror's .sha256sum, one by per-arch --sha256). It
// pushes one multi-platform index per driver and writes an OCI archive
// holding both platforms; then docker and podman run the arm64 variant
// under QEMU: ldconfig -p resolves libcuda.so.1 and nvidia-smi prints the
// version.
func TestTwoPlatformFleet(t *testing.T) {
	testenv.SkipIfShort(t, "end-to-end, arm64 under QEMU")
	testenv.RequireEmulator(t, "arm64")
	testenv.BaseLayoutFor(t, "arm64")
	e := setup(t)
	if !builderRuns(t, e.bk.Addr, "arm64") {
		testenv.SkipOrFail(t, "the builder at %s lists no linux/arm64 worker platform: QEMU was registered after it started?", e.bk.Addr)
	}
	mirror, sums := fleetMirror(t)
	reg := testenv.Registry(t)
	outDir := t.TempDir()
	stdout := e.mustBuild(t, "--driver", fleetA+","+fleetB, "--platform", "linux/amd64,linux/arm64",
		"--mirror", mirror+"/{file}", "--cache-dir", t.TempDir(),
		"--sha256", fleetB+"/x86_64="+sums[fleetB+"/x86_64"]+","+fleetB+"/aarch64="+sums[fleetB+"/aarch64"],
		"--base", e.base, "-t", reg+"/fleet:{driver}", "--push",
		"--output", "type=oci,dest="+filepath.Join(outDir, "fleet-{driver}.tar"))

	for _, v := range []string{fleetA, fleetB} {
		if !strings.Contains(stdout, reg+"/fleet:"+v+"@sha256:") {
			t.Errorf("stdout does not name the pushed %s index:\n%s", v, stdout)
		}
		pushed := pushedIndex(t, reg+"/fleet:"+v)
		archive := ociArchiveIndex(t, filepath.Join(outDir, "fleet-"+v+".tar"))
		for name, index := range map[string]v1.ImageIndex{"pushed": pushed, "oci archive": archive} {
			for platform, img := range platformImages(t, index) {
				arch, ok := fleetArchs[platform]
				if !ok {
					t.Errorf("%s %s index has an image for %s", name, v, platform)
					continue
				}
				checkFleetImage(t, e, img, v, arch, sums[v+"/"+arch])
			}
			if n := len(platformImages(t, index)); n != 2 {
				t.Errorf("%s %s index has %d platforms, want linux/amd64 and linux/arm64", name, v, n)
			}
		}
	}

	ref := reg + "/fleet:" + fleetA
	probe := "ldconfig -p | grep -F 'libcuda.so.1 (libc6,AArch64)'; nvidia-smi --version; uname -m"
	t.Run("docker runs the arm64 variant under QEMU", func(t *testing.T) {
		d := testenv.Dockerd(t)
		out, stderr, err := d.Run(t, "run", "--rm", "--platform", "linux/arm64", "--network", "none", ref, "sh", "-c", probe)
		checkArm64Run(t, "docker", out+stderr, err)
	})
	t.Run("podman runs the arm64 variant under QEMU", func(t *testing.T) {
		p := testenv.Podman(t)
		args := append([]string{"run", "--rm", "--platform", "linux/arm64", "--tls-verify=false"}, testenv.PodmanRunArgs...)
		out, stderr, err := p.Run(t, append(args, ref, "sh", "-c", probe)...)
		checkArm64Run(t, "podman", out+stderr, err)
	})
}

func checkArm64Run(t *testing.T, engine, out string, err error) {
	t.Helper()
	for _, want := range []string{"libcuda.so.1 (libc6,AArch64) => ", "DRIVER version      : " + fleetA, "aarch64"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s run --platform linux/arm64: %v; want %q in:\n%s", engine, err, want, out)
		}
	}
}

// fleetMirror serves the four stand-in packages on 127.0.0.1, with a
// .sha256sum beside fleetA's, and returns its URL and each package's
// sha256 by "VERSION/ARCH".
func fleetMirror(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	sums := map[string]string{}
	for _, v := range []string{fleetA, fleetB} {
		for _, arch := range []string{drivers.ArchX86_64, drivers.ArchAarch64} {
			path, err := standin.Cached(standin.Options{Version: v, Arch: arch})
			if err != nil {
				t.Fatalf("stand-in %s %s: %v", v, arch, err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(path)
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			sum, _, err := drivers.FileSHA256(path)
			if err != nil {
				t.Fatal(err)
			}
			sums[v+"/"+arch] = sum
			if v == fleetA {
				if err := os.WriteFile(filepath.Join(dir, name+".sha256sum"), []byte(sum+"  "+name+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL, sums
}

// checkFleetImage checks one platform's image: the base's layers for that
// platform plus the driver layer, labelled with its arch's checksum, whose
// libcuda is an ELF file of that arch.
func checkFleetImage(t *testing.T, e *e2e, img v1.Image, version, arch, sum string) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Config.Labels
	if l[llb.LabelDriverVersion] != version || l[llb.LabelDriverArch] != arch || l[llb.LabelDriverSHA256] != sum || l[llb.LabelDriverVerified] != "true" {
		t.Errorf("%s %s labels %v, want sha256 %s, verified", version, arch, l, sum)
	}
	ociArch := map[string]string{drivers.ArchX86_64: "amd64", drivers.ArchAarch64: "arm64"}[arch]
	if cfg.Architecture != ociArch {
		t.Errorf("%s %s config architecture %s", version, arch, cfg.Architecture)
	}
	base, err := testenv.LayoutImage(t, e.baseDir, ociArch).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.RootFS.DiffIDs), len(base.RootFS.DiffIDs)+1; got != want || cfg.RootFS.DiffIDs[0] != base.RootFS.DiffIDs[0] {
		t.Errorf("%s %s: %d layers, want the %s base's %d plus the driver's", version, arch, got, ociArch, want-1)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	lib := "usr/lib/" + arch + "-linux-gnu/libcuda.so." + version
	data := fileInLayer(t, layers[len(layers)-1], lib)
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s %s: %s: %v", version, arch, lib, err)
	}
	if want := map[string]elf.Machine{drivers.ArchX86_64: elf.EM_X86_64, drivers.ArchAarch64: elf.EM_AARCH64}[arch]; f.Machine != want {
		t.Errorf("%s %s: %s is %v, want %v", version, arch, lib, f.Machine, want)
	}
}

// fileInLayer returns the contents of path in layer.
func fileInLayer(t *testing.T, layer v1.Layer, path string) []byte {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s is not in the driver layer", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == path {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// platformImages maps "arch" to the image of each platform of index.
func platformImages(t *testing.T, index v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	for _, d := range m.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" {
			continue // attestations have platform unknown/unknown
		}
		img, err := index.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Platform.Architecture] = img
	}
	return out
}

// pushedIndex reads the multi-platform index ref names in the registry.
func pushedIndex(t *testing.T, ref string) v1.ImageIndex {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("%s is not an index in the registry: %v", ref, err)
	}
	return idx
}

// ociArchiveIndex unpacks an OCI archive and returns its one index.
func ociArchiveIndex(t *testing.T, path string) v1.ImageIndex {
	t.Helper()
	dir := unpackTar(t, path)
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("%s: want one multi-platform index in index.json: %v %+v", path, err, m)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
