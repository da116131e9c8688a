// Command imgshow prints what a built image holds, read with
// go-containerregistry from a docker or OCI tarball: platform, labels, env,
// layers (base and added), and the added layers' files. The demo uses it so
// that it needs no Docker daemon to show the result.
//
//	go run ./internal/cmd/imgshow IMAGE.tar
package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: imgshow IMAGE.tar (a docker tarball, e.g. from gpuimg build --output type=docker,dest=…)")
		os.Exit(2)
	}
	if err := show(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "imgshow: "+err.Error())
		os.Exit(1)
	}
}

func show(path string) error {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("image      %s  (%s/%s)\n", digest, cfg.OS, cfg.Architecture)
	fmt.Println("labels")
	var keys []string
	for k := range cfg.Config.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-40s %s\n", k, cfg.Config.Labels[k])
	}
	fmt.Printf("env        %s\n", strings.Join(cfg.Config.Env, " "))
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	fmt.Println("layers")
	// A base without history leaves only gpuimg's entries: align from the top.
	made := layerHistory(cfg)
	offset := len(layers) - len(made)
	var added []v1.Layer
	for i, l := range layers {
		size, err := l.Size()
		if err != nil {
			return err
		}
		d, err := l.Digest()
		if err != nil {
			return err
		}
		what := "base"
		if j := i - offset; j >= 0 && j < len(made) && strings.HasPrefix(made[j], "gpuimg:") {
			what = "added: " + made[j]
			added = append(added, l)
		}
		fmt.Printf("  %d  %s  %8.1f MB  %s\n", i+1, d.String()[:19], float64(size)/1e6, what)
	}
	return listFiles(added)
}

// layerHistory is the CreatedBy of each layer, from the config's history
// entries that made one.
func layerHistory(cfg *v1.ConfigFile) []string {
	var out []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			out = append(out, h.CreatedBy)
		}
	}
	return out
}

// listFiles summarises the added layers per directory and shows the files
// that prove the driver is usable: libcuda and its SONAME link, nvidia-smi,
// the linker cache.
func listFiles(layers []v1.Layer) error {
	type dirStats struct {
		files, links int
		bytes        int64
	}
	dirs := map[string]*dirStats{}
	var key []string
	var headers []*tar.Header
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
			headers = append(headers, h)
		}
		rc.Close()
	}
	for _, h := range headers {
		if h.Typeflag == tar.TypeDir {
			continue
		}
		dir, base := path.Split(h.Name)
		st := dirs[dir]
		if st == nil {
			st = &dirStats{}
			dirs[dir] = st
		}
		if h.Typeflag == tar.TypeSymlink {
			st.links++
		} else {
			st.files++
			st.bytes += h.Size
		}
		if strings.HasPrefix(base, "libcuda.so") || base == "nvidia-smi" || base == "ld.so.cache" {
			if h.Typeflag == tar.TypeSymlink {
				key = append(key, fmt.Sprintf("  %s -> %s", h.Name, h.Linkname))
			} else {
				key = append(key, fmt.Sprintf("  %s  (%d bytes)", h.Name, h.Size))
			}
		}
	}
	fmt.Println("added layers, by directory")
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		st := dirs[d]
		fmt.Printf("  %-55s %3d files %3d links %8.1f KB\n", d, st.files, st.links, float64(st.bytes)/1e3)
	}
	fmt.Println("key files")
	fmt.Println(strings.Join(key, "\n"))
	return nil
}
