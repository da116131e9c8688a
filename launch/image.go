package launch

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gpuimg/gpuimg/internal/ocilayout"
)

// ErrImageUnreadable is wrapped when no source can give an image's config.
var ErrImageUnreadable = errors.New("cannot read the image")

// Image is what the launcher knows about an image.
type Image struct {
	Ref string
	// Source says where the labels came from: "docker tarball",
	// "OCI layout", "OCI tarball", "<runtime> (local)" or "registry".
	Source string
	Labels map[string]string
}

// ReadImage reads an image's labels. A path that exists is a docker tarball
// (`docker save`), an OCI tarball or an OCI layout directory. Otherwise the
// local engine is asked first (`<runtime> image inspect`, which honours
// DOCKER_HOST, contexts and podman's storage, and needs no Docker SDK), then
// the registry, through go-containerregistry with the docker keychain.
func ReadImage(ctx context.Context, ref, runtime string) (Image, error) {
	if st, err := os.Stat(ref); err == nil {
		img, source, err := imageFromPath(ref, st.IsDir())
		if err != nil {
			return Image{}, fmt.Errorf("%w %s: %w: pass a `docker save` tarball, an OCI tarball or an OCI layout directory", ErrImageUnreadable, ref, err)
		}
		return configLabels(ref, source, img)
	}
	localErr := errors.New("not tried")
	if runtime != "" {
		var labels map[string]string
		labels, localErr = inspectLocal(ctx, runtime, ref)
		if localErr == nil {
			return Image{Ref: ref, Source: runtime + " (local)", Labels: labels}, nil
		}
	}
	img, remoteErr := remoteImage(ctx, ref)
	if remoteErr == nil {
		return configLabels(ref, "registry", img)
	}
	return Image{}, fmt.Errorf("%w %s: local %s: %v; registry: %v: build, pull or load it first (or pass --force to skip the driver check)",
		ErrImageUnreadable, ref, runtime, localErr, remoteErr)
}

// configReader is the part of an image the launcher reads.
type configReader interface {
	ConfigFile() (*v1.ConfigFile, error)
}

func configLabels(ref, source string, img configReader) (Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("%w %s (%s): config: %w", ErrImageUnreadable, ref, source, err)
	}
	labels := cfg.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return Image{Ref: ref, Source: source, Labels: labels}, nil
}

func imageFromPath(path string, isDir bool) (configReader, string, error) {
	if isDir {
		img, err := firstLayoutImage(path)
		return img, "OCI layout", err
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err == nil {
		return img, "docker tarball", nil
	}
	// Not a docker tarball: an OCI tarball is a layout in a tar.
	dir, terr := extractTar(path)
	if terr != nil {
		return nil, "", fmt.Errorf("neither a docker tarball (%v) nor an OCI tarball (%v)", err, terr)
	}
	defer os.RemoveAll(dir)
	img, lerr := firstLayoutImage(dir)
	if lerr != nil {
		return nil, "", fmt.Errorf("neither a docker tarball (%v) nor an OCI tarball (%v)", err, lerr)
	}
	// Read the config now: the layout's files go away with dir.
	cfg, cerr := img.RawConfigFile()
	if cerr != nil {
		return nil, "", cerr
	}
	return configOnlyImage{raw: cfg}, "OCI tarball", nil
}

// configOnlyImage keeps an image's config after its files are gone.
type configOnlyImage struct{ raw []byte }

func (c configOnlyImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(c.raw))
}

// firstLayoutImage is the layout's first image, for this machine's
// platform when it is an index.
func firstLayoutImage(dir string) (v1.Image, error) {
	l, err := ocilayout.Open(dir)
	if err != nil {
		return nil, err
	}
	if len(l.Entries) == 0 {
		return nil, errors.New("no image in index.json")
	}
	img, _, err := l.Image(l.Entries[0], platforms.DefaultSpec())
	return img, err
}

// extractTar unpacks a tarball (config and manifests only matter) into a
// temporary directory.
func extractTar(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir, err := os.MkdirTemp("", "gpuimg-oci-")
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		clean := filepath.Clean("/" + hdr.Name)
		target := filepath.Join(dir, clean)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				err = writeFile(target, tr)
			}
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func inspectLocal(ctx context.Context, runtime, ref string) (map[string]string, error) {
	if _, err := exec.LookPath(runtime); err != nil {
		return nil, fmt.Errorf("%s not on PATH", runtime)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, runtime, "image", "inspect", "--format", "{{json .Config.Labels}}", ref)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s image inspect: %s", runtime, firstNonEmpty(strings.TrimSpace(stderr.String()), err.Error()))
	}
	labels := map[string]string{}
	out := strings.TrimSpace(stdout.String())
	if out != "null" && out != "" {
		if err := json.Unmarshal([]byte(out), &labels); err != nil {
			return nil, fmt.Errorf("%s image inspect printed %q: %w", runtime, out, err)
		}
	}
	return labels, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// remoteImage fetches the image's config while its request context lives
// (ggcr fetches blobs lazily, after remote.Image returns).
func remoteImage(ctx context.Context, ref string) (configReader, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	here := platforms.DefaultSpec()
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: here.OS, Architecture: here.Architecture, Variant: here.Variant}))
	if err != nil {
		return nil, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	return configOnlyImage{raw: raw}, nil
}
