package imagebuild_test

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/gpuimg/gpuimg/imagebuild"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
)

// One command, three bases: the Debian test base and a variant with one
// extra file share one install and its driver layers (the same blobs), each
// with its own linker cache layer that resolves libcuda.so.1; a third base
// with a 32-bit C library shows NVIDIA's installer something else, so it is
// built the full way (its own install), with a warning naming the
// difference. Bad lists of bases are refused with nothing written.
func TestSeveralBasesShareOneDriverLayer(t *testing.T) {
	e := setup(t)
	e.bin = testenv.GpuimgWithExtractor(t) // as make build leaves it: the driver's files in 4 layers
	const parts = imagebuild.DefaultDriverLayers
	run, sum := standinRun(t, driverA)
	work := t.TempDir()
	second := "oci-layout://" + layoutWith(t, filepath.Join(work, "second"), e.baseDir, map[string]string{"etc/second-base": "one extra file\n"}) + ":latest"
	i386 := "oci-layout://" + layoutWith(t, filepath.Join(work, "with-i386"), e.baseDir, map[string]string{"usr/lib/i386-linux-gnu/ld-linux.so.2": ""}) + ":latest"
	out := filepath.Join(work, "out")

	t.Run("bad lists are refused", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--base", e.base + "," + second, "-t", "x:{driver}"}, "put {base} in it"},
			{[]string{"--base", e.base + "," + second, "--output", "type=oci,dest=" + filepath.Join(out, "{driver}.tar")}, "put {base} in it"},
			{[]string{"--base", e.base + ",," + second}, "empty entry"},
			{[]string{"--base", e.base + "," + e.base}, "given twice"},
			{[]string{"--base", e.base + "," + second, "--emit", "llb"}, "one --base"},
		} {
			_, stderr, err := e.gpuimg(t, append([]string{"build", "--driver-file", run, "--sha256", sum}, tc.args...)...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: %v, stderr %q; want %q", tc.args, err, stderr, tc.want)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a refused build wrote %s: %v", out, err)
		}
	})

	stdout, stderr, err := e.gpuimg(t, "build", "--driver-file", run, "--sha256", sum, "--base", e.base+","+second+","+i386,
		"--output", "type=oci,dest="+filepath.Join(out, "{driver}-{base}.tar"), "--json", "--progress", "rawjson")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tailLines(stderr, 40))
	}
	var summary imagebuild.Summary
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil || len(summary.Images) != 3 {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	for _, im := range summary.Images {
		if len(im.DriverLayer) != 1 {
			t.Fatalf("%s: driver layer %+v", im.Base, im.DriverLayer)
		}
		use := im.DriverLayer[0]
		shared := im.Base != i386
		if got := slices.Equal(use.SharedWith, []string{e.base, second}); got != shared {
			t.Errorf("%s: shares %v", im.Base, use.SharedWith)
		}
		if !shared && !strings.Contains(use.NotShared, "/usr/lib/i386-linux-gnu") {
			t.Errorf("%s: not shared because %q", im.Base, use.NotShared)
		}
	}
	warning := "gpuimg: warning: base " + i386 + " shares no driver layer with the other bases: it shows NVIDIA's installer \"/usr/lib/i386-linux-gnu directory 755 0 0\""
	if !strings.Contains(stderr, warning) || strings.Count(stderr, "shares no driver layer") != 1 {
		t.Errorf("want one warning %q:\n%s", warning, grepLines(stderr, "warning"))
	}
	// One install for the two bases of the family, one for the third, in
	// the three concurrent builds.
	installs, caches := vertexRuns(t, stderr, "install NVIDIA driver "+driverA+" "), vertexRuns(t, stderr, "linker cache for driver "+driverA)
	if len(installs) != 2 || len(caches) != 2 {
		t.Errorf("install steps ran %d times (want 2: one per family), linker cache steps %d times (want 2): %v %v", len(installs), len(caches), installs, caches)
	}

	baseLayers := map[string]int{e.base: len(e.baseLayers(t)), second: len(e.baseLayers(t)) + 1, i386: len(e.baseLayers(t)) + 1}
	var driverLayers [][]v1.Hash
	for _, im := range summary.Images {
		img := ociTarImage(t, im.Outputs[0].Dest)
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		added := layers[baseLayers[im.Base]:]
		// Together, whatever the split: the driver userspace, its linker
		// cache, and nothing a build leaves behind.
		checkDriverLayer(t, layerEntries(t, added...), driverA)
		label := cfg.Config.Labels[llb.LabelDriverLayers]
		if im.Base == i386 {
			if len(added) != parts || !strings.HasPrefix(label, "4: ") || strings.Contains(label, "linker cache") {
				t.Errorf("%s: %d layers added, layers label %q; want an install of its own, %d driver layers", im.Base, len(added), label, parts)
			}
		} else {
			if len(added) != parts+1 {
				t.Fatalf("%s: %d layers added, want %d driver layers and the linker cache layer", im.Base, len(added), parts)
			}
			var digests []v1.Hash
			for _, l := range added[:parts] {
				d, err := l.Digest()
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, d)
				if slices.Contains(layerFiles(t, l), "etc/ld.so.cache") {
					t.Errorf("%s: a driver layer holds the linker cache", im.Base)
				}
			}
			driverLayers = append(driverLayers, digests)
			if files := layerFiles(t, added[parts]); !slices.Equal(files, []string{"etc", "etc/ld.so.cache"}) {
				t.Errorf("%s: the linker cache layer holds %v", im.Base, files)
			}
			last := cfg.History[len(cfg.History)-1]
			if !strings.HasPrefix(label, "5: ") || !strings.Contains(label, "the same blobs on every base of the family") ||
				!strings.Contains(label, "linker cache") || last.CreatedBy != "gpuimg: ldconfig" {
				t.Errorf("%s: layers label %q, last history %+v", im.Base, label, last)
			}
		}
		if cfg.Config.Labels["io.gpuimg.driver.version"] != driverA {
			t.Errorf("%s: labels %v", im.Base, cfg.Config.Labels)
		}
		if cache := ldconfigP(t, img); !strings.Contains(cache, "libcuda.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcuda.so.1") &&
			!strings.Contains(cache, "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1") {
			t.Errorf("%s: ldconfig -p in the image does not resolve libcuda.so.1:\n%s", im.Base, grepLines(cache, "cuda"))
		}
	}
	if len(driverLayers) != 2 || !slices.Equal(driverLayers[0], driverLayers[1]) {
		t.Errorf("the two bases of the family got driver layers %v, want the same blobs", driverLayers)
	}
}

// layoutWith writes, at dir, the test base plus one layer of files.
func layoutWith(t *testing.T, dir, baseDir string, files map[string]string) string {
	t.Helper()
	var entries []tarFile
	for _, name := range slices.Sorted(maps.Keys(files)) {
		entries = append(entries, tarFile{name, 0o644, []byte(files[name])})
	}
	img := withFiles(t, baseImage(t, baseDir), entries...)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vertexRuns lists the runs of the vertices whose name starts with prefix
// (not cache hits), from --progress rawjson output: digest and start time,
// so that a vertex two builds share counts once, and one run twice counts
// twice.
func vertexRuns(t *testing.T, progress, prefix string) []string {
	t.Helper()
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(progress))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var st client.SolveStatus
		if !strings.HasPrefix(sc.Text(), "{") || json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if strings.HasPrefix(v.Name, prefix) && v.Completed != nil && !v.Cached {
				seen[v.Digest.String()+"@"+v.Started.String()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// layerFiles lists a layer's paths, sorted.
func layerFiles(t *testing.T, l v1.Layer) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(layerEntries(t, l)))
}

// layerEntries is what the layers hold together, by path.
func layerEntries(t *testing.T, layers ...v1.Layer) map[string]*tar.Header {
	t.Helper()
	entries, _ := readLayers(t, layers...)
	return entries
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
