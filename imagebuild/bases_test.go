package imagebuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBaseText(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000/library/debian:bookworm":  "debian-bookworm",
		"ubuntu:22.04":                            "ubuntu-22.04",
		"ubuntu":                                  "ubuntu-latest",
		"registry.access.redhat.com/ubi9/ubi:9.4": "ubi-9.4",
		"reg.example/team/cuda@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "cuda-0123456789ab",
		"reg.example/cuda:12.4@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "cuda-12.4",
		"oci-layout://./ubuntu:22.04":                       "ubuntu-22.04",
		"oci-layout:///cache/base/debian-bookworm:bookworm": "debian-bookworm",
		"oci-layout://./Base_Dir":                           "base_dir",
		"oci-layout://./x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "x-0123456789ab",
		"oci-layout://./images/debian:bookworm":                                                    "debian-bookworm",
		"oci-layout://./my..odd--dir:Tag":                                                          "my-odd-dir-tag",
	} {
		b, err := parseBase(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := baseText(b); got != want {
			t.Errorf("{base} of %s = %q, want %q", in, got, want)
		}
	}
}

// Several bases: duplicates, empty entries and two bases that would name
// their images alike are refused, saying how to fix it; each layout
// directory gets its own OCI store, the first the single base's.
func TestParseBases(t *testing.T) {
	for in, wantErr := range map[string]string{
		"debian:bookworm,,ubuntu:22.04":                       "empty entry",
		"debian:bookworm,":                                    "empty entry",
		"debian:bookworm,docker.io/library/debian:bookworm":   "given twice",
		"ubuntu,ubuntu:latest":                                "given twice",
		"a.example/debian:bookworm,b.example/debian:bookworm": "both become {base}=debian-bookworm",
		"debian:bookworm,UPPER:x":                             "not an image reference",
	} {
		if _, err := parseBases(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("--base %s: error %v, want %q", in, err, wantErr)
		}
	}
	got, err := parseBases("oci-layout://./a:bookworm, oci-layout://./b:bookworm ,debian:bookworm,oci-layout://./a:trixie")
	if err != nil {
		t.Fatal(err)
	}
	var texts, stores []string
	for _, b := range got {
		texts, stores = append(texts, b.Text), append(stores, b.StoreID)
	}
	if !slices.Equal(texts, []string{"a-bookworm", "b-bookworm", "debian-bookworm", "a-trixie"}) ||
		!slices.Equal(stores, []string{"gpuimg-base", "gpuimg-base-2", "", "gpuimg-base"}) {
		t.Errorf("texts %v, stores %v", texts, stores)
	}
	one, err := parseBases("")
	if err != nil || len(one) != 1 || one[0].Given != DefaultBase || one[0].StoreID != layoutStoreID {
		t.Errorf("no --base: %+v, %v", one, err)
	}
}

func TestGroupByFit(t *testing.T) {
	debian, rhel := "/lib -> usr/lib\ndir /usr/lib/x86_64-linux-gnu\n", "/lib -> usr/lib\ndir /usr/lib64\n"
	got := groupByFit([]string{debian, rhel, "", debian, rhel, "glvnd libGL.so.1\n"})
	want := [][]int{{0, 3}, {1, 4}, {2}, {0, 3}, {1, 4}, {5}}
	if len(got) != len(want) {
		t.Fatalf("groups %v", got)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("base %d: group %v, want %v", i, got[i], want[i])
		}
	}
	if a, b := firstDifference(debian, rhel); a != "dir /usr/lib/x86_64-linux-gnu" || b != "dir /usr/lib64" {
		t.Errorf("first difference %q %q", a, b)
	}
	if a, b := firstDifference(debian, debian+"glvnd libGL.so.1\n"); a != "(nothing)" || b != "glvnd libGL.so.1" {
		t.Errorf("first difference past the end %q %q", a, b)
	}
}

// Two bases share nothing and give two images: default names and
// destinations gain {base}; given ones must hold it.
func TestPlanNamesEveryBase(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	dir := t.TempDir()
	two := "oci-layout://" + filepath.Join(dir, "debian") + ":bookworm,oci-layout://" + filepath.Join(dir, "ubuntu") + ":22.04"
	p, _, err := Prepare(context.Background(), Options{DriverFile: run, SHA256: sum, Base: two,
		Outputs: []string{"type=oci,dest=" + filepath.Join(dir, "{driver}-{base}.tar")}, Push: true, Tags: []string{"reg.example/nvidia:{driver}-{base}"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range p.images {
		for _, e := range im.exports {
			got = append(got, e.attrs["name"]+" "+filepath.Base(e.dest))
		}
		if im.cacheKey != p.bases[im.base].Text {
			t.Errorf("cache key %q for base %s", im.cacheKey, p.bases[im.base].Given)
		}
	}
	want := []string{"reg.example/nvidia:999.10.01-debian-bookworm 999.10.01-debian-bookworm.tar", "reg.example/nvidia:999.10.01-debian-bookworm .",
		"reg.example/nvidia:999.10.01-ubuntu-22.04 999.10.01-ubuntu-22.04.tar", "reg.example/nvidia:999.10.01-ubuntu-22.04 ."}
	if !slices.Equal(got, want) {
		t.Errorf("names and destinations:\n%q\nwant\n%q", got, want)
	}
	entries := []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "reg.example/x:cache"}}}
	if c := jobCache(entries, p.images[1], len(p.images)); c[0].Attrs["ref"] != "reg.example/x:cache-999.10.01-amd64-ubuntu-22.04" {
		t.Errorf("cache record of the second base: %v", c[0].Attrs)
	}

	def, _, err := Prepare(context.Background(), Options{DriverFile: run, SHA256: sum, Base: two})
	if err != nil {
		t.Fatal(err)
	}
	for i, im := range def.images {
		e := im.exports[0]
		wantName := "nvidia-driver:999.10.01-" + def.bases[i].Text
		wantDest := "nvidia-driver-999.10.01-" + def.bases[i].Text + ".tar"
		if e.attrs["name"] != wantName || e.dest != wantDest {
			t.Errorf("default name %q dest %q, want %q %q", e.attrs["name"], e.dest, wantName, wantDest)
		}
	}
}

// Several bases without {base} where it is needed, and --emit with
// several bases, are refused before anything is built or written.
func TestPlanRefusesSeveralBasesWithoutBase(t *testing.T) {
	run, sum := writeRun(t, "999.10.01")
	dir := t.TempDir()
	two := "oci-layout://" + filepath.Join(dir, "debian") + ":bookworm,oci-layout://" + filepath.Join(dir, "ubuntu") + ":22.04"
	for name, tc := range map[string]struct {
		o       Options
		wantErr string
	}{
		"tag":         {Options{Tags: []string{"reg.example/nvidia:{driver}"}, Push: true}, "put {base} in it (e.g. -t reg/nvidia:{driver}-{base})"},
		"dest":        {Options{Outputs: []string{"type=docker,dest=" + filepath.Join(dir, "{driver}.tar")}}, "put {base} in it"},
		"name":        {Options{Outputs: []string{"type=image,name=reg.example/x:{driver},push=true"}}, "put {base} in it"},
		"emit":        {Options{Emit: "dockerfile"}, "one --base"},
		"empty entry": {Options{Base: two + ","}, "empty entry"},
	} {
		tc.o.DriverFile, tc.o.SHA256 = run, sum
		if tc.o.Base == "" {
			tc.o.Base = two
		}
		if _, _, err := Prepare(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", name, err, tc.wantErr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused builds left %d files", len(entries))
	}
}

// A linker-cache step that finds its base changed since the bases were
// compared (exit 45) says so and how to go on.
func TestExplainBaseThatNoLongerFits(t *testing.T) {
	err := errors.New(`process "/bin/sh -c set -u\nif [ \"$(cat /gpuimg/fit/reference/fit)\" != ..." did not complete successfully: exit code: 45`)
	got := newLogTap().explain(drivers.MustParseVersion("999.10.01"), err)
	if !strings.Contains(got.Error(), "no longer shows NVIDIA's installer") || !strings.Contains(got.Error(), "one --base") || !errors.Is(got, err) {
		t.Errorf("got %v", got)
	}
}

// The images of a family wait for the one installed on its first base, per
// driver; a base alone waits for nobody.
func TestLeaders(t *testing.T) {
	amd64 := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	var images []*image
	for _, v := range []string{"999.10.01", "999.20.01"} {
		targets := []target{{platform: amd64, driver: drivers.Resolved{Version: drivers.MustParseVersion(v)}}}
		for base := range 3 {
			images = append(images, &image{targets: targets, base: base})
		}
	}
	fits := make([]baseFit, 3)
	for i, g := range groupByFit([]string{"debian\n", "debian\n", "rhel\n"}) {
		fits[i].group = g
	}
	b := &Builder{bases: make([]baseSpec, 3), images: images, plan: basePlan{"linux/amd64": fits}}
	want := [][]int{nil, {0}, nil, nil, {3}, nil}
	for i := range images {
		if got := b.leaders(i); !slices.Equal(got, want[i]) {
			t.Errorf("image %d (driver %s, base %d) waits for %v, want %v", i, images[i].driver(), images[i].base, got, want[i])
		}
	}
	if got := (&Builder{images: images}).leaders(1); got != nil {
		t.Errorf("without a plan, image 1 waits for %v", got)
	}
}
