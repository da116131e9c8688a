package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestPackIsDeterministic(t *testing.T) {
	root := t.TempDir()
	for p, data := range map[string]string{"etc/os-release": "ID=debian\n", "usr/bin/tool": "#!/bin/sh\n", "dev/null": ""} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	created := time.Unix(1717200000, 0).UTC()
	var digests []string
	for i := 0; i < 2; i++ {
		// Touch the files between runs: host mtimes must not reach the image.
		if err := os.Chtimes(filepath.Join(root, "etc/os-release"), time.Now(), time.Now().Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "layout")
		labels := map[string]string{"io.gpuimg.driver.version": "580.159.04"}
		if err := run(root, out, "docker.io/library/debian:bookworm", "amd64", "test", labels, created); err != nil {
			t.Fatal(err)
		}
		idx, err := layout.ImageIndexFromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != 1 {
			t.Fatalf("index: %v %+v", err, im)
		}
		m := im.Manifests[0]
		if m.Annotations["io.containerd.image.name"] != "docker.io/library/debian:bookworm" || m.Annotations["org.opencontainers.image.ref.name"] != "bookworm" {
			t.Errorf("annotations %v", m.Annotations)
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != "amd64" || len(cfg.Config.Env) != 1 || cfg.Config.Cmd[0] != "bash" || !cfg.Created.Equal(created) ||
			cfg.Config.Labels["io.gpuimg.driver.version"] != "580.159.04" {
			t.Errorf("config %+v", cfg)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers: %v %d", err, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		entries := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			entries[h.Name] = h
		}
		rc.Close()
		if entries["dev/"] == nil || entries["dev/null"] != nil {
			t.Error("dev/ must be an empty directory (runtimes mount it)")
		}
		if h := entries["usr/bin/tool2"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/tool" {
			t.Errorf("hard link not kept: %+v", h)
		}
		if h := entries["bin"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "usr/bin" {
			t.Errorf("symlink not kept: %+v", h)
		}
		for name, h := range entries {
			if !h.ModTime.Equal(created) || h.Uname != "" {
				t.Errorf("%s: mtime %v uname %q", name, h.ModTime, h.Uname)
			}
		}
		digests = append(digests, m.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("two packs of one rootfs differ: %v", digests)
	}
	if err := run(root, filepath.Join(t.TempDir(), "x"), "debian:bookworm", "amd64", "test", nil, created); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesExistingOutput(t *testing.T) {
	if err := run(t.TempDir(), t.TempDir(), "debian:bookworm", "amd64", "test", nil, time.Unix(0, 0)); err == nil {
		t.Error("an existing output directory was accepted")
	}
}

func TestJoinMakesOneMultiPlatformIndex(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	created := time.Unix(1717200000, 0).UTC()
	parts := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		parts[arch] = filepath.Join(t.TempDir(), arch)
		if err := run(root, parts[arch], "docker.io/library/debian:bookworm", arch, "test", nil, created); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "joined")
	if err := join(out, "docker.io/library/debian:bookworm", []string{parts["amd64"], parts["arm64"]}); err != nil {
		t.Fatal(err)
	}
	top, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("index.json: %v %+v", err, tm)
	}
	if a := tm.Manifests[0].Annotations; a["org.opencontainers.image.ref.name"] != "bookworm" || a["io.containerd.image.name"] != "docker.io/library/debian:bookworm" {
		t.Errorf("annotations %v", a)
	}
	child, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := child.IndexManifest()
	if err != nil || len(cm.Manifests) != 2 {
		t.Fatalf("child index: %v %+v", err, cm)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := cm.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			t.Errorf("manifest %d platform %+v, want linux/%s", i, d.Platform, arch)
		}
		img, err := child.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil || cfg.Architecture != arch {
			t.Errorf("manifest %d config arch %v %v", i, cfg, err)
		}
	}
	if err := join(filepath.Join(t.TempDir(), "dup"), "debian:bookworm", []string{parts["arm64"], parts["arm64"]}); err == nil {
		t.Error("two arm64 layouts were joined")
	}
	if err := join(filepath.Join(t.TempDir(), "nested"), "debian:bookworm", []string{out}); err == nil {
		t.Error("a layout holding an index was taken as one image")
	}
}
