package imagebuild_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/imagebuild"
	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
)

// Stand-in driver versions: not in the catalog, so --sha256 pins them.
const (
	driverA = "999.10.01"
	driverB = "999.20.01"
	libdir  = "usr/lib/x86_64-linux-gnu/"
)

// e2e is the shared fixture of the end-to-end tests: the binary, the
// builder and the base. Every helper takes the calling (sub)test's t.
type e2e struct {
	bin     string
	bk      *testenv.BuildkitDaemon
	base    string // oci-layout://DIR:bookworm
	baseDir string
}

func setup(t *testing.T) *e2e {
	t.Helper()
	testenv.SkipIfShort(t, "end-to-end")
	baseDir := testenv.BaseLayout(t)
	bk := testenv.Buildkitd(t)
	return &e2e{bin: testenv.Gpuimg(t), bk: bk, base: "oci-layout://" + baseDir + ":bookworm", baseDir: baseDir}
}

// standinRun generates a stand-in .run and returns its path and sha256.
func standinRun(t *testing.T, version string) (string, string) {
	t.Helper()
	return standinRunArch(t, version, "x86_64")
}

// standinRunArch is standinRun for NVIDIA's arch (x86_64, aarch64).
func standinRunArch(t *testing.T, version, arch string) (string, string) {
	t.Helper()
	path, err := standin.Generate(t.TempDir(), standin.Options{Version: version, Arch: arch})
	if err != nil {
		t.Fatalf("stand-in driver %s: %v", version, err)
	}
	sum, _, err := drivers.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sum
}

// gpuimg runs the CLI as a user would; it returns stdout and stderr.
func (e *e2e) gpuimg(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(e.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "BUILDKIT_HOST="+e.bk.Addr, "BUILDKIT_PROGRESS=plain", "SOURCE_DATE_EPOCH=")
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (e *e2e) mustBuild(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := e.gpuimg(t, append([]string{"build"}, args...)...)
	if err != nil {
		t.Fatalf("gpuimg build %s: %v\nstderr:\n%s", strings.Join(args, " "), err, tailLines(stderr, 40))
	}
	return stdout
}

// baseLayers returns the base image's layer diff IDs.
func (e *e2e) baseLayers(t *testing.T) []v1.Hash {
	t.Helper()
	cfg, err := baseImage(t, e.baseDir).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootFS.DiffIDs
}

// addedLayer checks img is the base plus exactly one layer and returns that
// layer's entries by path.
func (e *e2e) addedLayer(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	entries, _ := e.addedLayers(t, img, 1)
	return entries
}

// addedLayers checks img is the base plus n layers and returns what those
// layers hold together, applied in order (whiteouts delete), by path: the
// entries and the sha256 of each regular file's contents.
func (e *e2e) addedLayers(t *testing.T, img v1.Image, n int) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	base := e.baseLayers(t)
	got := cfg.RootFS.DiffIDs
	if len(got) != len(base)+n {
		t.Fatalf("image has %d layers, want the base's %d plus %d", len(got), len(base), n)
	}
	for i := range base {
		if got[i] != base[i] {
			t.Fatalf("layer %d is %s, not the base's %s", i, got[i], base[i])
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return readLayers(t, layers[len(base):]...)
}

// readLayers is what layers hold together, applied in order (whiteouts
// delete), by path: the entries and the sha256 of each regular file's
// contents.
func readLayers(t *testing.T, layers ...v1.Layer) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	entries, sums := map[string]*tar.Header{}, map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
			if dir, file := path.Split(p); strings.HasPrefix(file, ".wh.") {
				delete(entries, dir+strings.TrimPrefix(file, ".wh."))
				continue
			}
			entries[p] = h
			if h.Typeflag == tar.TypeReg {
				sum := sha256.New()
				if _, err := io.Copy(sum, tr); err != nil {
					t.Fatal(err)
				}
				sums[p] = fmt.Sprintf("%x", sum.Sum(nil))
			}
		}
		rc.Close()
	}
	return entries, sums
}

// checkDriverLayer asserts the added layer holds the driver userspace and
// nothing a classic recipe leaves behind.
func checkDriverLayer(t *testing.T, entries map[string]*tar.Header, version string) {
	t.Helper()
	lib := entries[libdir+"libcuda.so."+version]
	if lib == nil || lib.Typeflag != tar.TypeReg || lib.Size == 0 {
		t.Errorf("no libcuda.so.%s in %s", version, libdir)
	}
	if l := entries[libdir+"libcuda.so.1"]; l == nil || l.Typeflag != tar.TypeSymlink || l.Linkname != "libcuda.so."+version {
		t.Errorf("libcuda.so.1 is not the SONAME link to libcuda.so.%s: %+v", version, l)
	}
	if entries["usr/bin/nvidia-smi"] == nil || entries["etc/ld.so.cache"] == nil {
		t.Error("nvidia-smi or the linker cache is missing")
	}
	for p, h := range entries {
		switch {
		case strings.HasPrefix(p, "var/lib/apt/lists/"), strings.HasPrefix(p, "var/cache/apt/"),
			strings.HasSuffix(p, ".run"), strings.HasPrefix(p, "tmp/"), p == "gpuimg" || strings.HasPrefix(p, "gpuimg/"),
			strings.HasPrefix(p, "var/log/nvidia"), strings.HasPrefix(p, "var/lib/nvidia"),
			strings.HasSuffix(p, "/kmod"), strings.HasSuffix(p, "bin/modprobe"), strings.HasSuffix(p, "bin/wget"):
			t.Errorf("the driver layer holds %s", p)
		case h.ModTime.Unix() != 0:
			t.Errorf("%s has mtime %v, not SOURCE_DATE_EPOCH (0)", p, h.ModTime)
		}
	}
}

func TestBuildEndToEnd(t *testing.T) {
	e := setup(t)
	runA, sumA := standinRun(t, driverA)
	out := t.TempDir()

	t.Run("debian base then docker load and run", func(t *testing.T) {
		dest := filepath.Join(out, "a.tar")
		stdout := e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base,
			"-t", "gpuimg-e2e:{driver}", "--output", "type=docker,dest="+dest)
		if strings.TrimSpace(stdout) != dest {
			t.Errorf("stdout = %q, want the destination %s", stdout, dest)
		}
		img, err := tarball.ImageFromPath(dest, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != "amd64" || cfg.OS != "linux" {
			t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
		}
		labels := cfg.Config.Labels
		for k, want := range map[string]string{
			"io.gpuimg.driver.version": driverA, "io.gpuimg.driver.sha256": sumA, "io.gpuimg.driver.components": "all",
			"io.gpuimg.driver.verified": "true", "org.opencontainers.image.version": driverA,
			"org.opencontainers.image.base.name": testenv.BaseRef,
		} {
			if labels[k] != want {
				t.Errorf("label %s = %q, want %q", k, labels[k], want)
			}
		}
		env := strings.Join(cfg.Config.Env, " ")
		if !strings.Contains(env, "NVIDIA_VISIBLE_DEVICES=void") || !strings.Contains(env, "PATH=/usr/local/sbin") {
			t.Errorf("env = %v", cfg.Config.Env)
		}
		if len(cfg.Config.Cmd) != 1 || cfg.Config.Cmd[0] != "bash" {
			t.Errorf("base Cmd lost: %v", cfg.Config.Cmd)
		}
		checkDriverLayer(t, e.addedLayer(t, img), driverA)

		// An unchanged rebuild leaves the destination alone; a new name rewrites it.
		before, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		stdout = e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base,
			"-t", "gpuimg-e2e:{driver}", "--output", "type=docker,dest="+dest)
		if after, err := os.Stat(dest); err != nil || !after.ModTime().Equal(before.ModTime()) || strings.TrimSpace(stdout) != dest {
			t.Errorf("unchanged rebuild rewrote %s (or printed %q)", dest, stdout)
		}
		e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base,
			"-t", "gpuimg-e2e-renamed:{driver}", "--output", "type=docker,dest="+dest)
		renamed, err := tarball.ImageFromPath(dest, mustTag(t, "gpuimg-e2e-renamed:"+driverA))
		if err != nil {
			t.Errorf("a rebuild under a new name did not rewrite %s: %v", dest, err)
		} else if d1, d2 := digestOf(t, img), digestOf(t, renamed); d1 != d2 {
			t.Errorf("same inputs, different digests: %s vs %s", d1, d2)
		}
		e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base,
			"-t", "gpuimg-e2e:{driver}", "--output", "type=docker,dest="+dest)

		d := testenv.Dockerd(t)
		d.Load(t, dest)
		ref := "gpuimg-e2e:" + driverA
		stdoutLd, stderrLd, err := d.Run(t, "run", "--rm", "--network", "none", ref, "sh", "-c", "ldconfig -p")
		if err != nil || !strings.Contains(stdoutLd, "\tlibcuda.so.1 (libc6,x86-64) => ") || !strings.Contains(stdoutLd, "x86_64-linux-gnu/libcuda.so.1\n") {
			t.Errorf("ldconfig -p in the image does not resolve libcuda.so.1: %v\n%s%s", err, stdoutLd, stderrLd)
		}
		smi, smiErr, err := d.Run(t, "run", "--rm", "--network", "none", ref, "nvidia-smi")
		if !strings.Contains(smi+smiErr, "Driver Version: "+driverA) {
			t.Errorf("nvidia-smi in the image (%v):\n%s%s", err, smi, smiErr)
		}
	})

	t.Run("components compute drops graphics and video", func(t *testing.T) {
		dest := filepath.Join(out, "compute.tar")
		e.mustBuild(t, "--driver-file", runA, "--sha256", sumA, "--base", e.base, "--components", "compute",
			"--output", "type=docker,dest="+dest)
		img, err := tarball.ImageFromPath(dest, nil)
		if err != nil {
			t.Fatal(err)
		}
		entries := e.addedLayer(t, img)
		checkDriverLayer(t, entries, driverA)
		for _, gone := range []string{libdir + "libGLX_nvidia.so." + driverA, libdir + "libnvcuvid.so." + driverA,
			"usr/lib/xorg/modules/drivers/nvidia_drv.so"} {
			if entries[gone] != nil {
				t.Errorf("--components compute kept %s", gone)
			}
		}
		for _, kept := range []string{libdir + "libnvidia-ml.so." + driverA, libdir + "libnvidia-ptxjitcompiler.so." + driverA} {
			if entries[kept] == nil {
				t.Errorf("--components compute dropped %s", kept)
			}
		}
		cfg, _ := img.ConfigFile()
		if got := cfg.Config.Labels["io.gpuimg.driver.components"]; got != "compute,utility" {
			t.Errorf("components label = %q", got)
		}
	})

	// gpuimg as make build installs it: the driver's files in
	// DefaultDriverLayers layers, split inside the install step, which the
	// remote builder and the exported cache handle like any other.
	t.Run("two drivers pushed to a registry and the same digests from a second builder over mutual TLS", func(t *testing.T) {
		e := *e
		e.bin = testenv.GpuimgWithExtractor(t)
		reg := testenv.Registry(t)
		runB, _ := standinRun(t, driverB)
		cache := t.TempDir()
		for _, run := range []string{runA, runB} {
			if _, _, err := drivers.Resolve(context.Background(), drivers.Want{File: run, Download: true, CacheDir: cache, AllowUnverified: true}); err != nil {
				t.Fatal(err)
			}
		}
		// The base comes from the registry this time, resolved by the builder.
		baseRef := reg + "/debian:bookworm"
		if err := crane.Push(baseImage(t, e.baseDir), baseRef); err != nil {
			t.Fatal(err)
		}
		baseDigest, err := crane.Digest(baseRef)
		if err != nil {
			t.Fatal(err)
		}
		buildCache := t.TempDir()
		args := []string{"--driver", driverA + "," + driverB, "--cache-dir", cache, "--allow-unverified", "--offline",
			"--base", baseRef, "-t", reg + "/nvidia:{driver}", "--push", "--json"}
		stdout := e.mustBuild(t, append(args, "--cache-to", "type=local,dest="+buildCache+",mode=max")...)
		var summary imagebuild.Summary
		if err := json.Unmarshal([]byte(stdout), &summary); err != nil {
			t.Fatalf("--json output: %v\n%s", err, stdout)
		}
		if len(summary.Images) != 2 {
			t.Fatalf("want 2 images, got %+v", summary)
		}
		digests := map[string]string{}
		for _, img := range summary.Images {
			if len(img.Outputs) != 1 || !strings.HasPrefix(img.Outputs[0].Ref, reg+"/nvidia:"+img.Driver+"@sha256:") {
				t.Errorf("outputs of %s: %+v", img.Driver, img.Outputs)
				continue
			}
			ref, err := name.ParseReference(img.Outputs[0].Ref)
			if err != nil {
				t.Fatal(err)
			}
			pushed, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pull back %s: %v", ref, err)
			}
			cfg, err := pushed.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Config.Labels["org.opencontainers.image.base.digest"] != baseDigest || cfg.Config.Labels["org.opencontainers.image.base.name"] != baseRef {
				t.Errorf("base labels %v, want %s@%s", cfg.Config.Labels, baseRef, baseDigest)
			}
			if cfg.Config.Labels["io.gpuimg.driver.version"] != img.Driver || cfg.Config.Labels["io.gpuimg.driver.verified"] != "false" {
				t.Errorf("pushed %s has labels %v", ref, cfg.Config.Labels)
			}
			entries, _ := e.addedLayers(t, pushed, imagebuild.DefaultDriverLayers)
			checkDriverLayer(t, entries, img.Driver)
			digests[img.Driver] = img.Digest
		}

		// The same inputs on a fresh builder reached over tcp:// with mutual
		// TLS give the same digest: reproducible, and the remote path works.
		remoteBK := testenv.Buildkitd(t, testenv.WithTLS())
		tlsArgs := []string{"--addr", remoteBK.Addr, "--tlscacert", remoteBK.TLS.CA,
			"--tlscert", remoteBK.TLS.ClientCert, "--tlskey", remoteBK.TLS.ClientKey}
		// It starts from the first builder's exported cache: the install steps
		// are not run again.
		_, stderr, err := e.gpuimg(t, append(append(append([]string{"build"}, args...), tlsArgs...),
			"--cache-from", "type=local,src="+buildCache)...)
		if err != nil {
			t.Fatalf("build on the TLS builder: %v\n%s", err, tailLines(stderr, 30))
		}
		for _, d := range []string{driverA, driverB} {
			if !regexpMatch(`(?m)^#\d+ \[linux/amd64\] install NVIDIA driver `+regexpQuote(d)+`.*\n#\d+ CACHED`, stderr) &&
				!regexpMatch(`(?m)^#\d+ install NVIDIA driver `+regexpQuote(d)+`.*\n#\d+ CACHED`, stderr) {
				t.Errorf("the install step of %s ran again despite --cache-from:\n%s", d, tailLines(stderr, 60))
			}
		}
		stdout = e.mustBuild(t, append(append([]string{}, args...), tlsArgs...)...)
		var again imagebuild.Summary
		if err := json.Unmarshal([]byte(stdout), &again); err != nil {
			t.Fatal(err)
		}
		for _, img := range again.Images {
			if img.Digest == "" || img.Digest != digests[img.Driver] {
				t.Errorf("driver %s: digest %s on the second builder, %s on the first", img.Driver, img.Digest, digests[img.Driver])
			}
		}
		// Without a client certificate the remote builder refuses.
		_, stderr, err = e.gpuimg(t, append([]string{"build"}, append(args, "--addr", remoteBK.Addr, "--tlscacert", remoteBK.TLS.CA)...)...)
		if err == nil || !strings.Contains(stderr, "no BuildKit answering at "+remoteBK.Addr) {
			t.Errorf("build without a client certificate: %v\n%s", err, stderr)
		}
	})

	t.Run("bad input fails clearly and leaves nothing", func(t *testing.T) {
		musl := muslLayout(t)
		noDmesg := withoutFile(t, e.baseDir, "usr/bin/dmesg")
		reg := testenv.Registry(t)
		for _, tc := range []struct {
			name    string
			args    []string
			wantErr []string
		}{
			{"musl base", []string{"--base", "oci-layout://" + musl}, []string{"musl libc (Alpine)", "glibc base"}},
			{"installer failure", []string{"--base", "oci-layout://" + noDmesg},
				[]string{"the NVIDIA installer failed", "Unable to find the system utility `dmesg`"}},
			{"base of another arch", []string{"--base", "oci-layout://" + withArch(t, e.baseDir, "arm64")},
				[]string{"is linux/arm64, but this image is for linux/amd64"}},
			{"missing base", []string{"--base", "oci-layout://" + filepath.Join(t.TempDir(), "none")}, []string{"no OCI layout at"}},
			{"unreachable push target", []string{"--base", e.base, "--output", "type=image,name=127.0.0.1:1/x:y,push=true"}, []string{"127.0.0.1:1"}},
		} {
			dest := filepath.Join(t.TempDir(), "out.tar")
			args := append([]string{"build", "--driver-file", runA, "--sha256", sumA, "--output", "type=docker,dest=" + dest}, tc.args...)
			stdout, stderr, err := e.gpuimg(t, args...)
			if err == nil {
				t.Errorf("%s: succeeded\n%s", tc.name, stdout)
				continue
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("%s: stderr lacks %q:\n%s", tc.name, want, tailLines(stderr, 25))
				}
			}
			if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 0 {
				t.Errorf("%s: left %v behind", tc.name, entries)
			}
		}
		// Nothing was pushed by the failed push.
		if _, err := crane.ListTags(reg + "/x"); err == nil {
			t.Error("a tag exists after a failed build")
		}
	})

	t.Run("arm64 without QEMU or on a base without arm64 is refused", func(t *testing.T) {
		arm, sum := standinRunArch(t, driverA, "aarch64")
		amd64Only := "oci-layout://" + withArch(t, e.baseDir, "amd64")
		dest := filepath.Join(t.TempDir(), "x.tar")
		_, stderr, err := e.gpuimg(t, "build", "--driver-file", arm, "--sha256", sum, "--platform", "linux/arm64",
			"--base", amd64Only, "--output", "type=docker,dest="+dest)
		// The refusal follows what the builder's workers report: with QEMU's
		// binfmt handlers on this machine (make deps) they run arm64
		// programs, and the base is what is refused, by name. (BuildKit
		// lists the platforms QEMU gives even with --oci-worker-platform, so
		// TestCheckPlatformsRefuses covers the QEMU refusal on any machine.)
		want := []string{"cannot run linux/arm64 programs", "apt-get install qemu-user-static binfmt-support", "restart buildkitd"}
		if builderRuns(t, e.bk.Addr, "arm64") {
			want = []string{"--base " + amd64Only + " is linux/amd64, but this image is for linux/arm64"}
		}
		for _, w := range want {
			if err == nil || !strings.Contains(stderr, w) {
				t.Errorf("arm64 build: %v; want stderr to say %q:\n%s", err, w, stderr)
			}
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("a refused build left %s (%v)", dest, err)
		}
	})

	t.Run("a .run of another arch than the platform is refused naming both", func(t *testing.T) {
		run, sum := standinRun(t, driverA)
		_, stderr, err := e.gpuimg(t, "build", "--driver-file", run, "--sha256", sum, "--platform", "linux/arm64",
			"--base", e.base, "--output", "type=docker,dest="+filepath.Join(t.TempDir(), "x.tar"))
		if err == nil || !strings.Contains(stderr, "--platform linux/arm64") || !strings.Contains(stderr, `is for "x86_64", not aarch64`) {
			t.Errorf("x86_64 .run for linux/arm64: %v\n%s", err, stderr)
		}
	})

	t.Run("Ctrl-C stops the build and leaves no file", func(t *testing.T) {
		dir := t.TempDir()
		dest := filepath.Join(dir, "x.tar")
		slow, sum := standinRun(t, "999.30.01")
		cmd := exec.Command(e.bin, "build", "--driver-file", slow, "--sha256", sum, "--base", e.base, "--output", "type=docker,dest="+dest)
		cmd.Env = append(os.Environ(), "BUILDKIT_HOST="+e.bk.Addr, "BUILDKIT_PROGRESS=plain")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var seen strings.Builder
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "load NVIDIA-Linux") {
				_ = cmd.Process.Signal(syscall.SIGINT)
				break
			}
		}
		go func() { _, _ = io.Copy(&seen, stderr) }()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("gpuimg did not stop after SIGINT")
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit after SIGINT: %v (want status 130)\n%s", err, seen.String())
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("left %v behind", entries)
		}
	})
}

// TestBuildWithoutNetwork builds from the OCI-layout base with --offline on a
// builder that has no network device but loopback.
func TestBuildWithoutNetwork(t *testing.T) {
	testenv.SkipIfShort(t, "end-to-end")
	baseDir := testenv.BaseLayout(t)
	bk := testenv.Buildkitd(t, testenv.WithoutNetwork())
	run, sum := standinRun(t, driverA)
	dest := filepath.Join(t.TempDir(), "offline.tar")
	e := &e2e{bin: testenv.Gpuimg(t), bk: bk, base: "oci-layout://" + baseDir, baseDir: baseDir}
	e.mustBuild(t, "--offline", "--driver-file", run, "--sha256", sum, "--base", e.base, "--output", "type=oci,dest="+dest)
	img := ociTarImage(t, dest)
	checkDriverLayer(t, e.addedLayer(t, img), driverA)

	// The same image as an OCI layout directory (tar=false), readable by ggcr.
	dir := filepath.Join(t.TempDir(), "layout")
	stdout := e.mustBuild(t, "--offline", "--driver-file", run, "--sha256", sum, "--base", e.base, "--output", "type=oci,dest="+dir+",tar=false")
	if strings.TrimSpace(stdout) != dir {
		t.Errorf("stdout = %q, want %s", stdout, dir)
	}
	fromDir := onlyLayoutImage(t, dir)
	if digestOf(t, fromDir) != digestOf(t, img) {
		t.Errorf("the layout holds %s, the tarball %s", digestOf(t, fromDir), digestOf(t, img))
	}
}

// ociTarImage reads the single image of an OCI tarball (BuildKit's oci
// exporter writes no manifest.json) by unpacking it to a layout.
func ociTarImage(t *testing.T, path string) v1.Image {
	t.Helper()
	return onlyLayoutImage(t, unpackTar(t, path))
}

// unpackTar unpacks the regular files of a tarball into a new directory.
func unpackTar(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// builderRuns reports whether the builder at addr has a worker for arch.
func builderRuns(t *testing.T, addr, arch string) bool {
	t.Helper()
	c, err := client.New(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	workers, err := c.ListWorkers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		for _, p := range w.Platforms {
			if p.Architecture == arch {
				return true
			}
		}
	}
	return false
}

// onlyLayoutImage is the one image of the OCI layout in dir.
func onlyLayoutImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("layout index of %s: %v %+v", dir, err, im)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// muslLayout writes an Alpine-like base: busybox as /bin/sh, a musl loader
// and /etc/alpine-release.
func muslLayout(t *testing.T) string {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.SkipOrFail(t, "busybox-static not installed (`make deps`): %v", err)
	}
	return writeLayout(t, withFiles(t, emptyAmd64(t),
		tarFile{"bin/sh", 0o755, busybox},
		tarFile{"lib/ld-musl-x86_64.so.1", 0o755, nil},
		tarFile{"etc/alpine-release", 0o644, []byte("3.20.0\n")}))
}

// tarFile is a regular file of a test layer.
type tarFile struct {
	name string
	mode int64
	data []byte
}

// withFiles is img with one more layer holding files.
func withFiles(t *testing.T, img v1.Image, files ...tarFile) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func emptyAmd64(t *testing.T) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Env: []string{"PATH=/bin"}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// withoutFile is the base with one more layer deleting path (a whiteout).
func withoutFile(t *testing.T, baseDir, path string) string {
	t.Helper()
	dir, file := filepath.Split(path)
	return writeLayout(t, withFiles(t, baseImage(t, baseDir), tarFile{name: dir + ".wh." + file, mode: 0o644}))
}

// withArch is the base with its config claiming another architecture.
func withArch(t *testing.T, baseDir, arch string) string {
	t.Helper()
	img := baseImage(t, baseDir)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture = arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return writeLayout(t, img)
}

// baseImage is the test base's linux/amd64 image (make base writes an index
// of amd64 and arm64; an older layout holds the amd64 image alone).
func baseImage(t *testing.T, baseDir string) v1.Image {
	return testenv.LayoutImage(t, baseDir, "amd64")
}

func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustTag(t *testing.T, s string) *name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return &tag
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestEmittedDockerfileBuilds builds what --emit dockerfile prints with
// BuildKit's Dockerfile frontend and checks it gives the same driver layer
// and the same image config (labels, environment) as gpuimg's own build of
// the same inputs.
func TestEmittedDockerfileBuilds(t *testing.T) {
	e := setup(t)
	run, sum := standinRun(t, driverA)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(run))))
	defer srv.Close()
	reg := testenv.Registry(t)
	baseRef := reg + "/debian:bookworm"
	if err := crane.Push(baseImage(t, e.baseDir), baseRef); err != nil {
		t.Fatal(err)
	}
	baseDigest, err := crane.Digest(baseRef)
	if err != nil {
		t.Fatal(err)
	}
	// Pinned, so that the Dockerfile can carry the base digest label too.
	inputs := []string{"--driver", driverA, "--sha256", sum, "--mirror", srv.URL + "/{file}", "--cache-dir", t.TempDir(),
		"--base", baseRef + "@" + baseDigest}
	dockerfile, stderr, err := e.gpuimg(t, append([]string{"build", "--emit", "dockerfile"}, inputs...)...)
	if err != nil {
		t.Fatalf("--emit dockerfile: %v\n%s", err, stderr)
	}
	// The builder here cannot fetch the pinned frontend image from Docker Hub;
	// its built-in Dockerfile frontend reads the same syntax.
	dockerfile = strings.Replace(dockerfile, "# syntax=docker/dockerfile:1.7\n", "", 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.New(ctx, e.bk.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "dockerfile.tar")
	out, err := os.Create(dest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Solve(ctx, nil, client.SolveOpt{
		Frontend:    "dockerfile.v0",
		LocalMounts: map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports: []client.ExportEntry{{Type: client.ExporterDocker, Attrs: map[string]string{"name": "dockerfile-built:x"},
			Output: func(map[string]string) (io.WriteCloser, error) { return out, nil }}},
	}, nil)
	if err != nil {
		t.Fatalf("building the emitted Dockerfile: %v\n%s", err, dockerfile)
	}
	img, err := tarball.ImageFromPath(dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := e.addedLayer(t, img)
	if lib := entries[libdir+"libcuda.so."+driverA]; lib == nil {
		t.Errorf("the Dockerfile's layer has no libcuda.so.%s", driverA)
	}
	for p := range entries {
		if strings.HasSuffix(p, ".run") || strings.HasPrefix(p, "gpuimg/") || strings.HasPrefix(p, "var/log/nvidia") || strings.HasSuffix(p, "bin/modprobe") {
			t.Errorf("the Dockerfile's layer holds %s", p)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Labels["io.gpuimg.driver.version"] != driverA || !slices.Contains(cfg.Config.Env, "NVIDIA_VISIBLE_DEVICES=void") {
		t.Errorf("config: labels %v env %v", cfg.Config.Labels, cfg.Config.Env)
	}

	llbTar := filepath.Join(t.TempDir(), "llb.tar")
	e.mustBuild(t, append(inputs, "--output", "type=docker,dest="+llbTar)...)
	llbImg, err := tarball.ImageFromPath(llbTar, nil)
	if err != nil {
		t.Fatal(err)
	}
	llbCfg, err := llbImg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(cfg.Config.Labels, llbCfg.Config.Labels) {
		t.Errorf("labels differ:\n  Dockerfile %v\n  gpuimg     %v", cfg.Config.Labels, llbCfg.Config.Labels)
	}
	if len(llbCfg.Config.Labels) < 11 {
		t.Errorf("gpuimg's image has only %d labels: %v", len(llbCfg.Config.Labels), llbCfg.Config.Labels)
	}
	if !slices.Equal(cfg.Config.Env, llbCfg.Config.Env) {
		t.Errorf("environment differs:\n  Dockerfile %v\n  gpuimg     %v", cfg.Config.Env, llbCfg.Config.Env)
	}
}

// TestExtractionStepGivesTheSameImage: gpuimg with gpuimg-unpack next to it
// (make build) unpacks a verified package in a step of its own and runs the
// installer from that tree; with --driver-layers 1 the image is byte for
// byte the one the .run's own unpacking gives, and by default the same files
// spread over DefaultDriverLayers layers. Another component set reuses the
// extraction, and an unverified package keeps the .run's own unpacking (and
// its CRC/MD5 check).
func TestExtractionStepGivesTheSameImage(t *testing.T) {
	e := setup(t)
	run, sum := standinRun(t, driverA)
	withExtractor := *e
	withExtractor.bin = testenv.GpuimgWithExtractor(t)
	digests := map[string]string{}
	for name, x := range map[string]*e2e{"in the install step": e, "extraction step": &withExtractor} {
		dest := filepath.Join(t.TempDir(), "image.tar")
		_, stderr, err := x.gpuimg(t, "build", "--driver-file", run, "--sha256", sum, "--base", e.base, "--driver-layers", "1", "--output", "type=oci,dest="+dest)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, tailLines(stderr, 40))
		}
		if got := strings.Contains(stderr, "extract "+filepath.Base(run)+" (once per package"); got != (x == &withExtractor) {
			t.Errorf("%s: extraction step in the progress: %v", name, got)
		}
		img := ociTarImage(t, dest)
		checkDriverLayer(t, e.addedLayer(t, img), driverA)
		digests[name] = digestOf(t, img)
		if x == e {
			checkSplitLayers(t, e, img, driverA, func(args ...string) (string, error) {
				_, stderr, err := withExtractor.gpuimg(t, append([]string{"build", "--driver-file", run, "--sha256", sum, "--base", e.base}, args...)...)
				return stderr, err
			})
		}
	}
	if digests["in the install step"] != digests["extraction step"] {
		t.Errorf("the extraction step changed the image: %v", digests)
	}

	_, stderr, err := withExtractor.gpuimg(t, "build", "--driver-file", run, "--sha256", sum, "--base", e.base, "--components", "compute",
		"--output", "type=oci,dest="+filepath.Join(t.TempDir(), "compute.tar"))
	if err != nil {
		t.Fatalf("compute: %v\n%s", err, tailLines(stderr, 40))
	}
	if !extractionCached(stderr, filepath.Base(run)) {
		t.Errorf("--components compute unpacked the package again:\n%s", tailLines(stderr, 60))
	}

	_, stderr, err = withExtractor.gpuimg(t, "build", "--driver-file", run, "--allow-unverified", "--base", e.base,
		"--output", "type=oci,dest="+filepath.Join(t.TempDir(), "unverified.tar"))
	if err != nil {
		t.Fatalf("unverified: %v\n%s", err, tailLines(stderr, 40))
	}
	if strings.Contains(stderr, "(once per package") {
		t.Error("an unverified package was unpacked outside its stub, skipping the stub's integrity check")
	}
}

// checkSplitLayers: by default the driver's files are spread over
// DefaultDriverLayers layers, each holding some of them, and together they
// are the one-layer image's files (path, type, mode, owner, times, link,
// contents); the config has a history entry per layer and says why.
func checkSplitLayers(t *testing.T, e *e2e, oneLayer v1.Image, version string, build func(args ...string) (string, error)) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "split.tar")
	if stderr, err := build("--output", "type=oci,dest="+dest); err != nil {
		t.Fatalf("split build: %v\n%s", err, tailLines(stderr, 40))
	}
	img := ociTarImage(t, dest)
	want, wantSums := e.addedLayers(t, oneLayer, 1)
	got, gotSums := e.addedLayers(t, img, imagebuild.DefaultDriverLayers)
	checkDriverLayer(t, got, version)
	for p, w := range want {
		g := got[p]
		if g == nil {
			t.Errorf("%s: missing from the split layers", p)
			continue
		}
		if g.Typeflag != w.Typeflag || g.Mode != w.Mode || g.Uid != w.Uid || g.Gid != w.Gid || g.Linkname != w.Linkname ||
			!g.ModTime.Equal(w.ModTime) || gotSums[p] != wantSums[p] {
			t.Errorf("%s: split %+v (sha256 %s), one layer %+v (sha256 %s)", p, g, gotSums[p], w, wantSums[p])
		}
	}
	for p := range got {
		if want[p] == nil {
			t.Errorf("%s: only in the split layers", p)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers[len(e.baseLayers(t)):] {
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		// An empty tar compresses to well under 100 bytes.
		if size < 1000 {
			t.Errorf("driver layer %d holds nothing (%d bytes compressed)", i+1, size)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.History) - len(e.baseLayers(t)); n != imagebuild.DefaultDriverLayers {
		t.Errorf("%d history entries after the base's, want one per driver layer", n)
	}
	if note := cfg.Config.Labels[llb.LabelDriverLayers]; !strings.HasPrefix(note, fmt.Sprintf("%d: ", imagebuild.DefaultDriverLayers)) {
		t.Errorf("label %s = %q", llb.LabelDriverLayers, note)
	}
}

// extractionCached reports whether plain progress shows the extraction step
// of file as a cache hit ("#N [..] extract FILE ..." then "#N CACHED").
func extractionCached(progress, file string) bool {
	var id string
	for _, line := range strings.Split(progress, "\n") {
		if strings.Contains(line, "extract "+file+" (once per package") {
			if f := strings.Fields(line); len(f) > 0 {
				id = f[0]
			}
		}
		if id != "" && strings.HasPrefix(line, id+" CACHED") {
			return true
		}
	}
	return false
}
