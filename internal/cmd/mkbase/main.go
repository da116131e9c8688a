// Command mkbase packs a root filesystem directory into an OCI image layout with
// one layer, deterministically: entries sorted, owners numeric, every mtime set
// to one fixed time, no host user names. The test and demo base image comes from
// here (debootstrap's tree; Docker Hub is out of reach), and so does the labelled
// image hack/gpu-e2e.sh makes on a GPU host that has no BuildKit.
//
//	go run ./internal/cmd/mkbase --rootfs DIR --out LAYOUT --ref docker.io/library/debian:bookworm [--arch arm64] [--label K=V]...
//	go run ./internal/cmd/mkbase --join --out LAYOUT --ref docker.io/library/debian:bookworm --from AMD64-LAYOUT --from ARM64-LAYOUT
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imageNameAnnotation is containerd's (and BuildKit's client/ociindex) key for
// the full image name; org.opencontainers.image.ref.name carries the tag.
const imageNameAnnotation = "io.containerd.image.name"

func main() {
	rootfs := flag.String("rootfs", "", "root filesystem directory to pack")
	out := flag.String("out", "", "OCI layout directory to create (must not exist)")
	ref := flag.String("ref", "docker.io/library/debian:bookworm", "full image reference recorded in index.json")
	epoch := flag.Int64("epoch", 1717200000, "fixed time (Unix seconds) for every file and the image's created date")
	arch := flag.String("arch", "amd64", "image architecture")
	createdBy := flag.String("created-by", "debootstrap --variant=minbase bookworm (gpuimg mkbase)", "the layer's history entry")
	labels := labelFlag{}
	flag.Var(labels, "label", "KEY=VALUE image label (repeatable)")
	joinLayouts := flag.Bool("join", false, "join the single-image layouts given with --from into one multi-platform index")
	var froms listFlag
	flag.Var(&froms, "from", "with --join: a layout of one image, one per platform (repeatable)")
	flag.Parse()
	if *joinLayouts {
		if err := join(*out, *ref, froms); err != nil {
			fmt.Fprintln(os.Stderr, "mkbase: "+err.Error())
			os.Exit(1)
		}
		return
	}
	if err := run(*rootfs, *out, *ref, *arch, *createdBy, labels, time.Unix(*epoch, 0).UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase: "+err.Error())
		os.Exit(1)
	}
}

// listFlag collects a repeated flag's values in order.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// labelFlag collects repeated --label KEY=VALUE flags.
type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

func run(rootfs, out, ref, arch, createdBy string, labels map[string]string, created time.Time) error {
	if rootfs == "" || out == "" {
		return errors.New("--rootfs and --out are required")
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s already exists: remove it to rebuild the base", out)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, rootfs, created)) }()
		return pr, nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("pack %s: %w", rootfs, err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: createdBy},
	})
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Created = v1.Time{Time: created}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"bash"}
	if len(labels) > 0 {
		cfg.Config.Labels = labels
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	return writeLayout(out, func(p layout.Path) error {
		return p.AppendImage(img, layout.WithAnnotations(refAnnotations(ref)))
	})
}

// writeLayout writes the OCI layout out with the one entry add appends,
// next to it first, so a failure leaves no half-written out.
func writeLayout(out string, add func(layout.Path) error) error {
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := add(p); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, out)
}

// refAnnotations names a layout entry: the full reference and its tag.
func refAnnotations(ref string) map[string]string {
	tag := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		tag = ref[i+1:]
	}
	return map[string]string{imageNameAnnotation: ref, "org.opencontainers.image.ref.name": tag}
}

// writeTar writes rootfs as a tar stream: sorted, numeric owners, fixed mtimes,
// hard links kept as links. /dev, /proc and /sys are kept as empty directories
// (runtimes mount them).
func writeTar(w io.Writer, rootfs string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := walkSorted(rootfs, "", func(rel string, fi os.FileInfo) error {
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		full := filepath.Join(rootfs, rel)
		if fi.Mode()&os.ModeSymlink != 0 {
			if hdr.Linkname, err = os.Readlink(full); err != nil {
				return err
			}
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = mtime, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, seen := links[key]; seen {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[key] = rel
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			f, err := os.Open(full)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func walkSorted(root, rel string, fn func(rel string, fi os.FileInfo) error) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		child := filepath.Join(rel, name)
		fi, err := os.Lstat(filepath.Join(root, child))
		if err != nil {
			return err
		}
		if err := fn(child, fi); err != nil {
			return err
		}
		if fi.IsDir() && !skipContents(child) {
			if err := walkSorted(root, child, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func skipContents(rel string) bool {
	return rel == "dev" || rel == "proc" || rel == "sys"
}
