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
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/internal/ocilayout"
)

// ErrImageUnreadable is wrapped when no source can give an image's config.
var ErrImageUnreadable = errors.New("cannot read the image")

// ErrWrongPlatform is wrapped when an image has no variant for the host's
// platform: its driver libraries could not load there, --force or not.
var ErrWrongPlatform = errors.New("no image for this host's platform")

// Image is what the launcher knows about an image.
type Image struct {
	Ref string
	// Source says where the labels came from: "docker tarball",
	// "OCI layout", "OCI tarball", "<runtime> (local)" or "registry".
	Source string
	Labels map[string]string
	// Platform is the variant read (os/arch); MultiPlatform says it was
	// picked from an index, so the engine must be told which.
	Platform      string
	MultiPlatform bool
}

// ReadImage reads the labels of an image's variant for platform (the
// host's). A path that exists is a docker tarball (`docker save`), an OCI
// tarball or an OCI layout directory. Otherwise the local engine is asked
// first (`<runtime> image inspect`, which honours DOCKER_HOST, contexts and
// podman's storage, and needs no Docker SDK), then the registry, through
// go-containerregistry with the docker keychain. An image with no variant
// for platform is refused (ErrWrongPlatform).
func ReadImage(ctx context.Context, ref, runtime string, platform ocispecs.Platform) (Image, error) {
	if st, err := os.Stat(ref); err == nil {
		img, source, err := imageFromPath(ref, st.IsDir(), platform)
		if err != nil {
			if errors.Is(err, ErrWrongPlatform) {
				return Image{}, err
			}
			return Image{}, fmt.Errorf("%w %s: %w: pass a `docker save` tarball, an OCI tarball or an OCI layout directory", ErrImageUnreadable, ref, err)
		}
		return configLabels(ref, source, img, platform)
	}
	localErr := errors.New("not tried")
	if runtime != "" {
		var local Image
		local, localErr = inspectLocal(ctx, runtime, ref)
		if localErr == nil {
			return local, checkPlatform(local, platform)
		}
	}
	img, remoteErr := remoteImage(ctx, ref, platform)
	if remoteErr == nil {
		return configLabels(ref, "registry", img, platform)
	}
	if errors.Is(remoteErr, ErrWrongPlatform) {
		return Image{}, remoteErr
	}
	return Image{}, fmt.Errorf("%w %s: local %s: %v; registry: %v: build, pull or load it first (or pass --force to skip the driver check)",
		ErrImageUnreadable, ref, runtime, localErr, remoteErr)
}

// checkPlatform refuses an image built for another platform than the host's.
func checkPlatform(img Image, want ocispecs.Platform) error {
	if img.Platform == "" {
		return nil // an image that names no platform runs anywhere
	}
	got, err := platforms.Parse(img.Platform)
	if err != nil || platforms.Only(want).Match(got) {
		return nil
	}
	return wrongPlatform(img.Ref, []string{img.Platform}, want)
}

func wrongPlatform(ref string, has []string, want ocispecs.Platform) error {
	w := platforms.Format(want)
	return fmt.Errorf("%w: image %s is for %s, and this host is %s: its driver libraries cannot load here; build it for this host with `gpuimg build --platform %s` (or --platform linux/amd64,linux/arm64 for one multi-platform image)",
		ErrWrongPlatform, ref, strings.Join(has, ", "), w, w)
}

// configReader is the part of an image the launcher reads.
type configReader interface {
	ConfigFile() (*v1.ConfigFile, error)
}

func configLabels(ref, source string, img configReader, platform ocispecs.Platform) (Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("%w %s (%s): config: %w", ErrImageUnreadable, ref, source, err)
	}
	labels := cfg.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := Image{Ref: ref, Source: source, Labels: labels}
	if cfg.Architecture != "" {
		out.Platform = platforms.Format(ocispecs.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	}
	if picked, ok := img.(pickedImage); ok {
		out.MultiPlatform = picked.multi
	}
	return out, checkPlatform(out, platform)
}

// pickedImage is an image read for a platform, remembering whether it was
// chosen from a multi-platform index.
type pickedImage struct {
	configReader
	multi bool
}

func imageFromPath(path string, isDir bool, platform ocispecs.Platform) (configReader, string, error) {
	if isDir {
		img, multi, err := layoutImage(path, path, platform)
		return pickedImage{img, multi}, "OCI layout", err
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
	img, multi, lerr := layoutImage(path, dir, platform)
	if errors.Is(lerr, ErrWrongPlatform) {
		return nil, "", lerr
	}
	if lerr != nil {
		return nil, "", fmt.Errorf("neither a docker tarball (%v) nor an OCI tarball (%v)", err, lerr)
	}
	// Read the config now: the layout's files go away with dir.
	cfg, cerr := img.RawConfigFile()
	if cerr != nil {
		return nil, "", cerr
	}
	return pickedImage{configOnlyImage{raw: cfg}, multi}, "OCI tarball", nil
}

// configOnlyImage keeps an image's config after its files are gone.
type configOnlyImage struct{ raw []byte }

func (c configOnlyImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(c.raw))
}

// layoutImage is the layout's first image, its variant for platform when it
// is an index; ref names the image in errors.
func layoutImage(ref, dir string, platform ocispecs.Platform) (v1.Image, bool, error) {
	l, err := ocilayout.Open(dir)
	if err != nil {
		return nil, false, err
	}
	if len(l.Entries) == 0 {
		return nil, false, errors.New("no image in index.json")
	}
	img, _, err := l.Image(l.Entries[0], platform)
	if errors.Is(err, ocilayout.ErrNoPlatform) {
		has, _ := l.Platforms(l.Entries[0])
		return nil, false, wrongPlatform(ref, formatAll(has), platform)
	}
	return img, l.Entries[0].MediaType.IsIndex(), err
}

func formatAll(ps []ocispecs.Platform) []string {
	var out []string
	for _, p := range ps {
		out = append(out, platforms.Format(p))
	}
	return out
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

func inspectLocal(ctx context.Context, runtime, ref string) (Image, error) {
	if _, err := exec.LookPath(runtime); err != nil {
		return Image{}, fmt.Errorf("%s not on PATH", runtime)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, runtime, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}} {{json .Config.Labels}}", ref)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Image{}, fmt.Errorf("%s image inspect: %s", runtime, firstNonEmpty(strings.TrimSpace(stderr.String()), err.Error()))
	}
	img := Image{Ref: ref, Source: runtime + " (local)", Labels: map[string]string{}}
	platform, out, _ := strings.Cut(strings.TrimSpace(stdout.String()), " ")
	if platform != "/" {
		img.Platform = platform
	}
	if out != "null" && out != "" {
		if err := json.Unmarshal([]byte(out), &img.Labels); err != nil {
			return Image{}, fmt.Errorf("%s image inspect printed %q: %w", runtime, stdout.String(), err)
		}
	}
	return img, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// remoteImage fetches the config of the image's variant for platform while
// its request context lives (ggcr fetches blobs lazily, after remote.Get
// returns).
func remoteImage(ctx context.Context, ref string, platform ocispecs.Platform) (configReader, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, err
	}
	multi := desc.MediaType.IsIndex()
	var img v1.Image
	if multi {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		if img, err = indexImage(ref, idx, platform); err != nil {
			return nil, err
		}
	} else if img, err = desc.Image(); err != nil {
		return nil, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	return pickedImage{configOnlyImage{raw: raw}, multi}, nil
}

// indexImage is the image of idx for platform, by the one rule of
// ocilayout.Match.
func indexImage(ref string, idx v1.ImageIndex, platform ocispecs.Platform) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var has []ocispecs.Platform
	for _, d := range m.Manifests {
		if ocilayout.Match(d, platform) {
			return idx.Image(d.Digest)
		}
		if d.Platform != nil && d.Platform.OS != "unknown" {
			has = append(has, ocispecs.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant})
		}
	}
	return nil, wrongPlatform(ref, formatAll(has), platform)
}
