// Command mkimage packs a root filesystem directory into a docker-format image
// tarball with the given labels. hack/gpu-e2e.sh uses it on a GPU host that has
// no BuildKit or registry, to give gpuimg's driver guard a real image to read.
package main

import (
	"archive/tar"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type labelFlags map[string]string

func (l labelFlags) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

func main() {
	labels := labelFlags{}
	rootfs := flag.String("rootfs", "", "root filesystem directory to pack as the image's one layer")
	out := flag.String("o", "", "output docker-format tarball")
	tag := flag.String("t", "gpu-e2e:latest", "image reference recorded in the tarball")
	flag.Var(labels, "label", "KEY=VALUE image label (repeatable)")
	flag.Parse()
	if *rootfs == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkimage -rootfs DIR -o FILE.tar [-t REF] [-label K=V]...")
		os.Exit(2)
	}
	if err := run(*rootfs, *out, *tag, labels); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(rootfs, out, tag string, labels map[string]string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	layerTar := out + ".layer"
	defer os.Remove(layerTar)
	if err := tarDir(rootfs, layerTar); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Labels = labels
	cfg.Config.Env = []string{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=void"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// tarDir writes dir's tree (regular files, directories, symlinks) as a tar file.
func tarDir(dir, dest string) error {
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // device nodes and sockets do not belong in an image layer
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
