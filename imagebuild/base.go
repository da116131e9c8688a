package imagebuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gpuimg/gpuimg/internal/ocilayout"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

const ociLayoutScheme = "oci-layout://"

// baseSpec is a parsed --base.
type baseSpec struct {
	Given string // as the user wrote it
	// Layout is the OCI layout directory for oci-layout://DIR[:TAG|@DIGEST].
	Layout      string
	Tag, Digest string
	// Named is the normalised registry reference otherwise.
	Named reference.Named
	// Text is what {base} becomes in names and destinations (baseText).
	Text string
	// StoreID names the SolveOpt.OCIStores entry of Layout.
	StoreID string
}

// parseBases parses --base: one base as before, or a comma list of several,
// which must be distinct, non-empty, and give distinct {base} texts. Each
// layout directory gets one OCI store ID, the first the single base's.
func parseBases(s string) ([]baseSpec, error) {
	entries := strings.Split(s, ",")
	if len(entries) == 1 {
		b, err := parseBase(s)
		b.Text, b.StoreID = baseText(b), layoutStoreID
		return []baseSpec{b}, err
	}
	var out []baseSpec
	given := map[string]string{} // identity -> as written
	texts := map[string]string{} // {base} text -> as written
	stores := map[string]string{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("--base %q has an empty entry: list the bases as --base A,B", s)
		}
		b, err := parseBase(e)
		if err != nil {
			return nil, err
		}
		id := b.identity()
		if first, dup := given[id]; dup {
			return nil, fmt.Errorf("--base %s is given twice (as %s and %s): list each base once", e, first, e)
		}
		given[id] = e
		b.Text = baseText(b)
		if first, clash := texts[b.Text]; clash {
			return nil, fmt.Errorf("--base %s and %s would both become {base}=%s in image names and destinations: retag one of them (or use an OCI layout directory of another name), so that the last path element and tag differ", first, e, b.Text)
		}
		texts[b.Text] = e
		if b.Layout != "" {
			dir, _ := filepath.Abs(b.Layout)
			if stores[dir] == "" {
				stores[dir] = layoutStoreID
				if len(stores) > 1 {
					stores[dir] = fmt.Sprintf("%s-%d", layoutStoreID, len(stores))
				}
			}
			b.StoreID = stores[dir]
		}
		out = append(out, b)
	}
	return out, nil
}

// identity is what makes two bases the same one: the normalised reference,
// or the layout directory with its tag or digest.
func (b baseSpec) identity() string {
	if b.Layout == "" {
		return b.Named.String()
	}
	dir, _ := filepath.Abs(b.Layout)
	return ociLayoutScheme + dir + ":" + b.Tag + "@" + b.Digest
}

// baseText is what {base} becomes for b: the repository's last path element
// and the tag (127.0.0.1:5000/library/debian:bookworm: debian-bookworm); for
// an OCI layout the directory's name and the tag, unless the name already
// ends with it (oci-layout://./ubuntu:22.04: ubuntu-22.04); a base pinned by
// digest alone gets the digest's first 12 hex digits instead of a tag
// (ubuntu@sha256:0123456789ab…: ubuntu-0123456789ab). Lower case, with
// every character a tag or a repository path may not hold turned into "-".
func baseText(b baseSpec) string {
	var name, tag, dgst string
	if b.Layout != "" {
		name, tag, dgst = filepath.Base(filepath.Clean(b.Layout)), b.Tag, b.Digest
	} else if b.Named != nil {
		name = path.Base(reference.Path(b.Named))
		if tagged, ok := b.Named.(reference.Tagged); ok {
			tag = tagged.Tag()
		}
		if digested, ok := b.Named.(reference.Digested); ok {
			dgst = digested.Digest().String()
		}
	}
	suffix := tag
	if suffix == "" && dgst != "" {
		if _, hex, ok := strings.Cut(dgst, ":"); ok && len(hex) >= 12 {
			suffix = hex[:12]
		}
	}
	text := sanitizeName(name)
	if s := sanitizeName(suffix); s != "" && !strings.HasSuffix(text, "-"+s) && text != s {
		text += "-" + s
	}
	if text == "" {
		return "base"
	}
	return text
}

var (
	notNameChar = regexp.MustCompile(`[^a-z0-9._-]+`)
	separators  = regexp.MustCompile(`[._-]{2,}`)
)

// sanitizeName lowercases s and keeps it valid both in a tag and as a
// repository path element: other characters and runs of separators become
// one "-", and none leads or trails.
func sanitizeName(s string) string {
	s = notNameChar.ReplaceAllString(strings.ToLower(s), "-")
	s = separators.ReplaceAllString(s, "-")
	return strings.Trim(s, "-._")
}

func parseBase(s string) (baseSpec, error) {
	if s == "" {
		s = DefaultBase
	}
	b := baseSpec{Given: s}
	if rest, ok := strings.CutPrefix(s, ociLayoutScheme); ok {
		if i := strings.Index(rest, "@"); i >= 0 {
			b.Layout, b.Digest = rest[:i], rest[i+1:]
			if _, err := digest.Parse(b.Digest); err != nil {
				return b, fmt.Errorf("--base %s: %q is not a digest (want sha256:…)", s, b.Digest)
			}
		} else if slash := strings.LastIndex(rest, "/"); strings.Contains(rest[slash+1:], ":") {
			// The tag starts at the first colon of the last path element, so a
			// full name such as debian:bookworm can be the tag.
			i := slash + 1 + strings.Index(rest[slash+1:], ":")
			b.Layout, b.Tag = rest[:i], rest[i+1:]
		} else {
			b.Layout = rest
		}
		if b.Layout == "" {
			return b, fmt.Errorf("--base %s names no directory: use oci-layout://DIR[:TAG|@DIGEST]", s)
		}
		return b, nil
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return b, fmt.Errorf("--base %q is not an image reference (e.g. ubuntu:22.04, registry:5000/img@sha256:…) or oci-layout://DIR: %w", s, err)
	}
	b.Named = reference.TagNameOnly(named)
	return b, nil
}

// layoutImage is the base image picked from an OCI layout for one platform.
type layoutImage struct {
	// Name is the image's full name from the layout's annotations, or
	// "oci-layout:TAG": never the directory, which differs between machines.
	Name     string
	Manifest digest.Digest
	Config   []byte
}

// resolveLayout picks the image for platform p from the layout: by digest, by
// tag (containerd's image-name annotation, the full or short name, or
// org.opencontainers.image.ref.name), or the layout's only image; an index is
// descended into for the platform. Read on the client, so air-gapped bases
// need nothing from the builder or a registry.
func resolveLayout(b baseSpec, p ocispecs.Platform) (layoutImage, error) {
	if _, err := os.Stat(filepath.Join(b.Layout, "index.json")); err != nil {
		return layoutImage{}, fmt.Errorf("--base %s: no OCI layout at %s (index.json missing): create one with `crane pull --format=oci REF DIR` or `make base`", b.Given, b.Layout)
	}
	l, err := ocilayout.Open(b.Layout)
	if err != nil {
		return layoutImage{}, fmt.Errorf("--base %s: %w", b.Given, err)
	}
	top, err := pickDescriptor(b, l.Entries)
	if err != nil {
		return layoutImage{}, err
	}
	img, desc, err := l.Image(top, p)
	if errors.Is(err, ocilayout.ErrNoPlatform) {
		return layoutImage{}, fmt.Errorf("--base %s has no image for %s: pull that platform into the layout (crane pull --platform %s) or pick another --platform", b.Given, platforms.Format(p), platforms.Format(p))
	}
	if err != nil {
		return layoutImage{}, fmt.Errorf("--base %s: image %s: %w", b.Given, top.Digest, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return layoutImage{}, fmt.Errorf("--base %s: config of %s: %w", b.Given, desc.Digest, err)
	}
	if err := checkBaseArch(b.Given, cfg, p); err != nil {
		return layoutImage{}, err
	}
	name := top.Annotations["io.containerd.image.name"]
	if name == "" {
		name = "oci-layout:" + top.Annotations[ocispecs.AnnotationRefName]
	}
	return layoutImage{Name: name, Manifest: digest.Digest(desc.Digest.String()), Config: cfg}, nil
}

func pickDescriptor(b baseSpec, ms []v1.Descriptor) (v1.Descriptor, error) {
	var names []string
	for _, m := range ms {
		switch {
		case b.Digest != "" && m.Digest.String() == b.Digest:
			return m, nil
		case b.Tag != "" && slices.Contains(refNames(m.Annotations), b.Tag):
			return m, nil
		}
		if short := m.Annotations[ocispecs.AnnotationRefName]; short != "" {
			names = append(names, short)
		}
	}
	switch {
	case b.Digest != "":
		return v1.Descriptor{}, fmt.Errorf("--base %s: no image %s in the layout", b.Given, b.Digest)
	case b.Tag != "":
		return v1.Descriptor{}, fmt.Errorf("--base %s: no image tagged %q in the layout (it has: %s)", b.Given, b.Tag, strings.Join(names, ", "))
	case len(ms) == 1:
		return ms[0], nil
	case len(ms) == 0:
		return v1.Descriptor{}, fmt.Errorf("--base %s: the layout holds no image", b.Given)
	}
	return v1.Descriptor{}, fmt.Errorf("--base %s holds %d images: name one with oci-layout://DIR:TAG or @DIGEST (tags: %s)", b.Given, len(ms), strings.Join(names, ", "))
}

// refNames lists the names a layout entry answers to: containerd's full
// image name and org.opencontainers.image.ref.name (a tag, or a full reference
// as `crane pull --annotate-ref` writes it), each also in its familiar form
// (debian:bookworm) and as its bare tag (bookworm).
func refNames(annotations map[string]string) []string {
	var out []string
	for _, n := range []string{annotations["io.containerd.image.name"], annotations[ocispecs.AnnotationRefName]} {
		if n == "" {
			continue
		}
		out = append(out, n)
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		out = append(out, reference.FamiliarString(named))
		if tagged, ok := named.(reference.Tagged); ok {
			out = append(out, tagged.Tag())
		}
	}
	return out
}

// checkBaseArch refuses a base whose config names another OS/arch than the
// platform being built (the driver package is per arch).
func checkBaseArch(given string, config []byte, p ocispecs.Platform) error {
	var img ocispecs.Image
	if err := json.Unmarshal(config, &img); err != nil {
		return fmt.Errorf("--base %s: image config: %w", given, err)
	}
	if img.Architecture == "" {
		return nil
	}
	got := ocispecs.Platform{OS: img.OS, Architecture: img.Architecture, Variant: img.Variant}
	if !platforms.Only(p).Match(got) {
		return fmt.Errorf("--base %s is %s, but this image is for %s: use a %s base (or a multi-platform one) or change --platform",
			given, platforms.Format(got), platforms.Format(p), platforms.Format(p))
	}
	return nil
}
