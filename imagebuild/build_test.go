package imagebuild

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/driverstest"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		in      string
		typ     string
		dest    string
		attrs   map[string]string
		wantErr string
	}{
		{in: "type=image,name=r.example/x:{driver},push=true", typ: "image", attrs: map[string]string{"name": "r.example/x:{driver}", "push": "true"}},
		{in: "type=registry,name=r/x", typ: "image", attrs: map[string]string{"push": "true"}},
		{in: "type=docker,dest=out.tar", typ: "docker", dest: "out.tar"},
		{in: "type=oci,dest=dir,tar=false", typ: "oci", dest: "dir", attrs: map[string]string{"tar": "false"}},
		{in: `type=image,"name=a/b:1,a/b:2"`, typ: "image", attrs: map[string]string{"name": "a/b:1,a/b:2"}},
		{in: "dest=out.tar", wantErr: "no type="},
		{in: "type=docker", wantErr: "needs dest="},
		{in: "type=docker,dest=-", wantErr: "needs dest="},
		{in: "type=image,dest=x", wantErr: "not dest="},
		{in: "type=s3,dest=x", wantErr: "unknown type"},
		{in: "type=docker,dest", wantErr: "not key=value"},
		{in: "type=oci,dest=x,tar=maybe", wantErr: "tar="},
	} {
		got, err := ParseOutput(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got.Type != tc.typ || got.Dest != tc.dest {
			t.Errorf("%s: got %+v", tc.in, got)
		}
		for k, v := range tc.attrs {
			if got.Attrs[k] != v {
				t.Errorf("%s: attr %s = %q, want %q", tc.in, k, got.Attrs[k], v)
			}
		}
	}
}

func TestParseBase(t *testing.T) {
	for in, want := range map[string]baseSpec{
		"":                                  {Named: mustNamed(t, "docker.io/library/ubuntu:22.04")},
		"debian":                            {Named: mustNamed(t, "docker.io/library/debian:latest")},
		"oci-layout:///srv/base":            {Layout: "/srv/base"},
		"oci-layout://./base:bookworm":      {Layout: "./base", Tag: "bookworm"},
		"oci-layout://base@sha256:" + hex64: {Layout: "base", Digest: "sha256:" + hex64},
		"oci-layout://host:5000/dir/base":   {Layout: "host:5000/dir/base"},
	} {
		got, err := parseBase(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got.Layout != want.Layout || got.Tag != want.Tag || got.Digest != want.Digest {
			t.Errorf("%q: got %+v, want %+v", in, got, want)
		}
		if want.Named != nil && (got.Named == nil || got.Named.String() != want.Named.String()) {
			t.Errorf("%q: named %v, want %v", in, got.Named, want.Named)
		}
	}
	for _, bad := range []string{"oci-layout://", "oci-layout://x@sha256:zz", "a b"} {
		if _, err := parseBase(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestResolveLayout(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	amd := randomImage(t, "amd64")
	arm := randomImage(t, "arm64")
	if err := p.AppendImage(amd, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": "docker.io/library/debian:bookworm", ocispecs.AnnotationRefName: "bookworm"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(arm, layout.WithAnnotations(map[string]string{ocispecs.AnnotationRefName: "index.docker.io/library/ubuntu:arm"})); err != nil {
		t.Fatal(err)
	}
	amd64 := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	amdDigest, _ := amd.Digest()
	for _, ref := range []string{":bookworm", ":debian:bookworm", "@" + amdDigest.String()} {
		b, err := parseBase("oci-layout://" + dir + ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := resolveLayout(b, amd64)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if img.Manifest.String() != amdDigest.String() || img.Name != "docker.io/library/debian:bookworm" {
			t.Errorf("%s: got %+v", ref, img)
		}
	}
	for ref, wantErr := range map[string]string{
		"":                 "holds 2 images",
		":nope":            `no image tagged "nope"`,
		":arm":             "is linux/arm64, but this image is for linux/amd64",
		"/missing:x":       "no OCI layout",
		"@sha256:" + hex64: "no image sha256:",
	} {
		b, err := parseBase("oci-layout://" + dir + ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resolveLayout(b, amd64); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want %q", ref, err, wantErr)
		}
	}
}

func randomImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeRun writes a small real-format .run for version v.
func writeRun(t *testing.T, v string) (string, string) {
	t.Helper()
	path, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: v, Files: driverstest.DefaultFiles(v)})
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := drivers.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

func TestPlanRefusesBadInputBeforeBuilding(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	catalogRun, _ := writeRun(t, "580.159.04") // in the catalog, with another sha256
	base := "oci-layout://" + t.TempDir()
	for name, tc := range map[string]struct {
		o       Options
		wantErr string
	}{
		"no driver":           {Options{}, "no driver given"},
		"bad version":         {Options{Drivers: []string{"450.102"}, DriverFile: run}, "--driver"},
		"bad output":          {Options{DriverFile: run, SHA256: sum, Outputs: []string{"type=docker"}}, "needs dest="},
		"bad components":      {Options{DriverFile: run, SHA256: sum, Components: "cuda"}, "unknown component"},
		"bad compression":     {Options{DriverFile: run, SHA256: sum, Compression: "lz4"}, "--compression"},
		"other arch":          {Options{DriverFile: run, SHA256: sum, Platforms: []string{"linux/arm64"}}, `is for "x86_64", not aarch64`},
		"wrong version":       {Options{Drivers: []string{"535.261.03"}, DriverFile: run, SHA256: sum}, `holds driver "999.10.01", not 535.261.03`},
		"no checksum":         {Options{DriverFile: run}, "cannot be verified"},
		"wrong --sha256":      {Options{DriverFile: run, SHA256: hex64}, "not the --sha256"},
		"catalog mismatch":    {Options{DriverFile: catalogRun}, "the catalog's 580.159.04 x86_64 package has"},
		"two drivers, file":   {Options{Drivers: []string{"470.256.02,535.261.03"}, DriverFile: run}, "one package"},
		"two drivers, 1 tag":  {Options{Drivers: []string{"470.256.02,535.261.03"}, Tags: []string{"x:1"}, Offline: true}, "put {driver} in it"},
		"offline, no cache":   {Options{Drivers: []string{"470.256.02"}, Offline: true, CacheDir: t.TempDir()}, "--offline"},
		"not in catalog":      {Options{Drivers: []string{"999.1.01"}, Mirror: "http://127.0.0.1:1/{file}"}, "not in gpuimg's catalog"},
		"bad tag":             {Options{DriverFile: run, SHA256: sum, Tags: []string{"UPPER:x"}}, "image name"},
		"bad cache-to":        {Options{DriverFile: run, SHA256: sum, CacheTo: []string{"dest=x"}}, "--cache-to"},
		"unwritable dest":     {Options{DriverFile: run, SHA256: sum, Outputs: []string{"type=docker,dest=/proc/gpuimg/x.tar"}}, "destination /proc/gpuimg/x.tar"},
		"sha256 per driver":   {Options{Drivers: []string{"999.1.01,999.2.01"}, SHA256: hex64, Tags: []string{"x:{driver}"}}, "1 values for 2 drivers"},
		"bad sha256":          {Options{DriverFile: run, SHA256: "abc"}, "--sha256"},
		"emit two":            {Options{Drivers: []string{"470.256.02"}, Platforms: []string{"linux/amd64,linux/arm64"}, Emit: "llb", Tags: []string{"x:{arch}"}}, "one image"},
		"layers, no splitter": {Options{DriverFile: run, SHA256: sum, DriverLayers: 4}, "needs the static gpuimg-unpack"},
		"too many layers":     {Options{DriverFile: run, SHA256: sum, DriverLayers: 17}, "--driver-layers 17: use 1"},
		"negative layers":     {Options{DriverFile: run, SHA256: sum, DriverLayers: -1}, "--driver-layers -1: use 1"},
	} {
		tc.o.Base = base
		_, _, err := Prepare(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", name, err, tc.wantErr)
		}
	}
}

// The driver's files take DefaultDriverLayers layers when gpuimg-unpack
// can split them, one layer otherwise, and what --driver-layers says.
func TestDriverLayersDefault(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	unpack := filepath.Join(t.TempDir(), "gpuimg-unpack")
	if err := os.WriteFile(unpack, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		extractor string
		asked     int
		want      int
	}{{"", 0, 1}, {unpack, 0, DefaultDriverLayers}, {unpack, 1, 1}, {unpack, 7, 7}} {
		b, _, err := Prepare(context.Background(), Options{DriverFile: run, SHA256: sum, Base: "debian:bookworm", Extractor: c.extractor, DriverLayers: c.asked})
		if err != nil {
			t.Fatal(err)
		}
		if b.driverLayers != c.want {
			t.Errorf("extractor %q, --driver-layers %d: %d layers, want %d", c.extractor, c.asked, b.driverLayers, c.want)
		}
	}
}

func TestAllowUnverifiedWarnsAndLabels(t *testing.T) {
	catalogRun, _ := writeRun(t, "580.159.04")
	o := Options{DriverFile: catalogRun, AllowUnverified: true, Base: "debian:bookworm"}
	b, warnings, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d := b.images[0].targets[0].driver; d.Verified() || d.Version.String() != "580.159.04" {
		t.Errorf("driver = %+v, want unverified 580.159.04", d)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "UNVERIFIED") {
		t.Errorf("no loud warning: %q", warnings)
	}
}

func TestPlanExpandsTheFleetMatrix(t *testing.T) {
	o := Options{
		Drivers: []string{"470.256.02,535.261.03"}, Platforms: []string{"linux/amd64,linux/arm64"},
		Tags: []string{"reg.example/nvidia:{driver}-{arch}"}, Push: true, Base: "debian:bookworm",
		CacheDir: t.TempDir(),
	}
	p, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range p.images {
		if d := im.targets[0].driver; len(im.targets) != 1 || len(d.URLs) == 0 || d.SHA256 == "" {
			t.Errorf("image %s: %+v", im.driver(), im.targets)
		}
		for _, e := range im.exports {
			names = append(names, e.attrs["name"])
			if e.attrs["push"] != "true" {
				t.Errorf("export attrs %v", e.attrs)
			}
		}
	}
	want := "reg.example/nvidia:470.256.02-x86_64 reg.example/nvidia:470.256.02-aarch64 reg.example/nvidia:535.261.03-x86_64 reg.example/nvidia:535.261.03-aarch64"
	if strings.Join(names, " ") != want {
		t.Errorf("names = %v", names)
	}
}

func TestEmitDockerfile(t *testing.T) {
	o := Options{Drivers: []string{"535.261.03"}, Emit: "dockerfile", Base: "ubuntu:22.04", CacheDir: t.TempDir()}
	df := string(emit(t, o))
	for _, want := range []string{
		"FROM ubuntu:22.04", "ADD --checksum=sha256:", "--network=none", "--mount=type=tmpfs,target=/tmp",
		"--mount=type=bind,from=driver,target=/gpuimg/driver", "COPY --chmod=755 <<depmod <<insmod <<lsmod <<modprobe <<rmmod /",
		"sh /gpuimg/driver/NVIDIA-Linux-x86_64-535.261.03.run --silent --no-kernel-module", "ENV NVIDIA_VISIBLE_DEVICES=void",
		`io.gpuimg.driver.version="535.261.03"`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, df)
		}
	}
	if strings.Contains(df, "apt-get") || strings.Contains(df, "wget") {
		t.Errorf("Dockerfile installs tools:\n%s", df)
	}
}

func TestEmitLLBNeedsNoBuilder(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	o := Options{DriverFile: run, SHA256: sum, Emit: "llb", Base: "debian:bookworm",
		Addr: "unix://" + filepath.Join(t.TempDir(), "none.sock")}
	out := emit(t, o)
	if !bytes.Contains(out, []byte("local://driver-"+sum[:16])) || !bytes.Contains(out, []byte("docker-image://docker.io/library/debian:bookworm")) {
		t.Errorf("definition lacks the sources (%d bytes)", len(out))
	}
}

func TestUnreachableBuilderFailsFast(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	o := Options{DriverFile: run, SHA256: sum, Base: "debian:bookworm", Addr: "unix://" + sock,
		Outputs: []string{"type=docker,dest=" + filepath.Join(t.TempDir(), "x.tar")}}
	b, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Build(context.Background(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no BuildKit answering at unix://"+sock) || !strings.Contains(err.Error(), "BUILDKIT_HOST") {
		t.Fatalf("error = %v", err)
	}
}

func TestPendingDestLeavesNothingOnDiscard(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.tar")
	pd, err := newPendingDest(dest, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pd.File().WriteString("partial"); err != nil {
		t.Fatal(err)
	}
	pd.discard()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := newPendingDest(filepath.Join("/proc/gpuimg-no", "x.tar"), false); err == nil || !strings.Contains(err.Error(), "/proc/gpuimg-no") {
		t.Errorf("unwritable destination error = %v", err)
	}
}

func mustNamed(t *testing.T, s string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestParseCacheOptions(t *testing.T) {
	got, err := parseCacheOptions("--cache-to", []string{"type=local,dest=/c,mode=max", "type=registry,ref=r/x:cache"})
	if err != nil || len(got) != 2 || got[0].Type != "local" || got[0].Attrs["dest"] != "/c" || got[0].Attrs["mode"] != "max" ||
		got[1].Type != "registry" || got[1].Attrs["ref"] != "r/x:cache" {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestJobCacheSeparatesImages(t *testing.T) {
	entries := []client.CacheOptionsEntry{
		{Type: "local", Attrs: map[string]string{"dest": "/c"}},
		{Type: "registry", Attrs: map[string]string{"ref": "reg.example/x:cache", "mode": "max"}},
	}
	j := &image{targets: []target{{driver: drivers.Resolved{Version: drivers.MustParseVersion("535.261.03")}, platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"}}}}
	got := jobCache(entries, j, 2)
	if got[0].Attrs["tag"] != "535.261.03-amd64" || got[1].Attrs["ref"] != "reg.example/x:cache-535.261.03-amd64" || got[1].Attrs["mode"] != "max" {
		t.Errorf("got %+v", got)
	}
	if entries[0].Attrs["tag"] != "" {
		t.Error("the shared entries were modified")
	}
	if one := jobCache(entries, j, 1); one[1].Attrs["ref"] != "reg.example/x:cache" {
		t.Errorf("a single image must use the ref as given: %+v", one)
	}
}

func TestCheckedManifestEveryCompression(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		v := "999.10.01"
		path, err := driverstest.Write(t.TempDir(), driverstest.Run{Version: v, Compression: comp, Files: driverstest.DefaultFiles(v)})
		if err != nil {
			t.Fatal(err)
		}
		files, err := checkedManifest(path, "x86_64", false)
		if err != nil {
			t.Errorf("%s: %v", comp, err)
			continue
		}
		groups := map[string]string{}
		for _, f := range files {
			groups[f.Name] = f.Group
		}
		if groups["libcuda.so."+v] != "compute" || groups["nvidia_drv.so"] != "display" || groups["libGLX_nvidia.so."+v] != "graphics" {
			t.Errorf("%s: groups %v", comp, groups)
		}
	}
	if _, err := checkedManifest("/dev/null", "x86_64", false); err == nil {
		t.Error("/dev/null read as a package")
	}
}

// A package NVIDIA's installer would misread, or that cannot give what was
// asked for, is refused before the build, naming the package.
func TestCheckedManifestRefuses(t *testing.T) {
	v := "999.10.01"
	noArch := strings.Replace(driverstest.DefaultManifest(v, "x86_64"), "\nx86_64\n", "\n\n", 1)
	for name, tc := range map[string]struct {
		run      driverstest.Run
		arch     string
		compat32 bool
		want     string
	}{
		"empty line 3": {driverstest.Run{Version: v, Manifest: noArch, Files: driverstest.DefaultFiles(v)}, "x86_64", false,
			`reads "nvidia nvidia-uvm nvidia-modeset nvidia-drm" where the architecture (x86_64) belongs`},
		"compat32 without 32-bit libraries": {driverstest.Run{Version: v, Files: driverstest.DefaultFiles(v)}, "x86_64", true,
			"carries no 32-bit libraries"},
	} {
		path, err := driverstest.Write(t.TempDir(), tc.run)
		if err != nil {
			t.Fatal(err)
		}
		_, err = checkedManifest(path, tc.arch, tc.compat32)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want it to name %s and say %q", name, err, path, tc.want)
		}
	}
}

func TestPlanSharesAnIndexAcrossPlatforms(t *testing.T) {
	o := Options{
		Drivers: []string{"535.261.03"}, Platforms: []string{"linux/amd64", "linux/arm64"},
		Tags: []string{"reg.example/nvidia:{driver}"}, Push: true, Base: "ubuntu:22.04",
		CacheDir: t.TempDir(),
	}
	p, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.images) != 1 || len(p.images[0].targets) != 2 {
		t.Fatalf("want one image for both platforms (an index), got %d images", len(p.images))
	}
	ts := p.images[0].targets
	if ts[0].driver.Arch != "x86_64" || ts[1].driver.Arch != "aarch64" || ts[0].driver.SHA256 == ts[1].driver.SHA256 {
		t.Errorf("per-platform packages: %+v", ts)
	}
	// The docker exporter cannot hold an index: one tarball per arch.
	o.Push, o.Tags = false, nil
	o.Outputs = []string{"type=docker,dest=out-{driver}.tar"}
	if _, _, err := Prepare(context.Background(), o); err == nil || !strings.Contains(err.Error(), "{arch}") {
		t.Errorf("docker output for two platforms without {arch}: %v", err)
	}
}

func TestDefaultTagSplitsPerArch(t *testing.T) {
	o := Options{Drivers: []string{"535.261.03"}, Platforms: []string{"linux/amd64,linux/arm64"}, Base: "ubuntu:22.04",
		Outputs: []string{"type=docker,dest=out-{driver}-{arch}.tar"}, CacheDir: t.TempDir()}
	p, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range p.images {
		got = append(got, j.exports[0].attrs["name"]+" "+j.exports[0].dest)
	}
	want := "nvidia-driver:535.261.03-x86_64 out-535.261.03-x86_64.tar|nvidia-driver:535.261.03-aarch64 out-535.261.03-aarch64.tar"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q", got)
	}
}

func TestSHA256PerDriver(t *testing.T) {
	other := strings.Repeat("fe", 32)
	o := Options{Drivers: []string{"999.1.01,999.2.01"}, SHA256: hex64 + "," + strings.ToUpper(other), Base: "debian:bookworm",
		Tags: []string{"r/x:{driver}"}, Push: true, CacheDir: t.TempDir(), Mirror: "http://127.0.0.1:1/{file}"}
	p, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	first, second := p.images[0].targets[0].driver, p.images[1].targets[0].driver
	if got := []string{first.SHA256, second.SHA256}; got[0] != hex64 || got[1] != other {
		t.Errorf("sha256 per driver = %v", got)
	}
	if !second.Verified() || second.URLs[0] != "http://127.0.0.1:1/NVIDIA-Linux-x86_64-999.2.01.run" {
		t.Errorf("second driver: %+v", second)
	}
}

// Each platform installs its own .run, so a version the catalog lacks takes
// one checksum per arch: ARCH=HEX for one driver, VERSION/ARCH=HEX for a
// fleet of several.
func TestSHA256PerArch(t *testing.T) {
	amd, arm, amd2, arm2 := strings.Repeat("1a", 32), strings.Repeat("2b", 32), strings.Repeat("3c", 32), strings.Repeat("4d", 32)
	two := []string{"linux/amd64,linux/arm64"}
	for name, tc := range map[string]struct {
		drivers string
		sha256  string
		want    []string // driver/arch=sha256 per target, in build order
	}{
		"one driver": {"999.1.01", "x86_64=" + amd + ",aarch64=" + strings.ToUpper(arm), []string{"999.1.01/x86_64=" + amd, "999.1.01/aarch64=" + arm}},
		"two drivers": {"999.1.01,999.2.01", "999.1.01/x86_64=" + amd + ",999.1.01/aarch64=" + arm + ",999.2.01/x86_64=" + amd2 + ",999.2.01/aarch64=" + arm2,
			[]string{"999.1.01/x86_64=" + amd, "999.1.01/aarch64=" + arm, "999.2.01/x86_64=" + amd2, "999.2.01/aarch64=" + arm2}},
	} {
		o := Options{Drivers: []string{tc.drivers}, SHA256: tc.sha256, Platforms: two, Base: "debian:bookworm",
			Tags: []string{"r/x:{driver}"}, Push: true, CacheDir: t.TempDir(), Mirror: "http://127.0.0.1:1/{file}"}
		p, _, err := Prepare(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, im := range p.images {
			for _, tg := range im.targets {
				d := tg.driver
				got = append(got, d.Version.String()+"/"+d.Arch+"="+d.SHA256)
				if d.VerifiedBy != drivers.VerifiedByFlag || !strings.HasSuffix(d.URLs[0], "/"+d.FileName()) || !strings.Contains(d.FileName(), d.Arch) {
					t.Errorf("%s: %+v", name, d)
				}
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		drivers, sha256 string
		platforms       []string
		wantErr         string
	}{
		"plain for two platforms": {"999.1.01", amd, two, "give one per arch, e.g. --sha256 x86_64=HEX,aarch64=HEX"},
		"mixed forms":             {"999.1.01", amd + ",aarch64=" + arm, two, "mixes plain checksums"},
		"unknown arch":            {"999.1.01", "arm64=" + arm, two, "arm64"},
		"arch not built":          {"999.1.01", "aarch64=" + arm, nil, "no --platform builds aarch64"},
		"arch twice":              {"999.1.01", "aarch64=" + arm + ",aarch64=" + amd, two, "gives 999.1.01/aarch64 twice"},
		"which driver":            {"999.1.01,999.2.01", "x86_64=" + amd, two, "name the driver, VERSION/x86_64=HEX"},
		"driver not built":        {"999.1.01", "999.3.01/x86_64=" + amd, two, "driver 999.3.01 is not among --driver's"},
		"one arch missing":        {"999.1.01", "x86_64=" + amd, two, "NVIDIA-Linux-aarch64-999.1.01.run.sha256sum"},
	} {
		o := Options{Drivers: []string{tc.drivers}, SHA256: tc.sha256, Platforms: tc.platforms, Base: "debian:bookworm",
			Tags: []string{"r/x:{driver}"}, Push: true, CacheDir: t.TempDir(), Mirror: "http://127.0.0.1:1/{file}"}
		if _, _, err := Prepare(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want %q", name, err, tc.wantErr)
		}
	}
}

// emit is `gpuimg build --emit`: Prepare, then Emit.
func emit(t *testing.T, o Options) []byte {
	t.Helper()
	b, _, err := Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Emit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The builder's workers decide: a platform none of them runs is refused
// before anything is solved, with the QEMU fix; one they run is not.
func TestCheckPlatformsRefuses(t *testing.T) {
	amd64 := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	b := &Builder{images: []*image{{targets: []target{{platform: amd64}, {platform: arm64}}}}}
	err := b.checkPlatforms("unix:///b.sock", []ocispecs.Platform{amd64})
	if err == nil || !strings.Contains(err.Error(), "cannot run linux/arm64 programs (it runs linux/amd64)") || !strings.Contains(err.Error(), "apt-get install qemu-user-static binfmt-support") {
		t.Errorf("amd64-only builder: %v", err)
	}
	if err := b.checkPlatforms("unix:///b.sock", []ocispecs.Platform{amd64, arm64}); err != nil {
		t.Errorf("a builder that runs both: %v", err)
	}
}
