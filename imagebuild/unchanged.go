package imagebuild

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// destUnchanged makes an unchanged rebuild nearly free when the output is a
// file or directory that already holds the image: it solves with the image
// exporter only (no transfer to this machine; fully cached on a rebuild), and
// when the destination already holds that manifest digest under the same
// names, nothing is sent or rewritten. It applies to jobs with one docker or
// oci export whose destination exists, plus any image exports (--push):
// those still run, in a second solve that only pushes what the probe built.
// The digest returned is the pushed image's when there is a push.
func destUnchanged(ctx context.Context, c *client.Client, opt client.SolveOpt, im *image,
	buildFunc gateway.BuildFunc, newStatus func() chan *client.SolveStatus) (bool, string, error) {
	var file *plannedExport
	var images []client.ExportEntry
	for i, pe := range im.exports {
		switch {
		case pe.spec.Type == client.ExporterImage:
			images = append(images, client.ExportEntry{Type: pe.spec.Type, Attrs: pe.attrs})
		case file == nil && pe.dest != "" && (pe.spec.Type == client.ExporterDocker || pe.spec.Type == client.ExporterOCI):
			file = &im.exports[i]
		default:
			return false, "", nil
		}
	}
	if file == nil {
		return false, "", nil
	}
	pe := *file
	have, haveNames, err := destImage(pe.dest, pe.spec.writesDir())
	if err != nil || have == "" {
		return false, "", nil // absent or unreadable: export as usual
	}
	attrs := map[string]string{}
	for k, v := range pe.attrs {
		switch k {
		case "name", "tar", "annotation":
		default:
			attrs[k] = v
		}
	}
	opt.Exports = []client.ExportEntry{{Type: client.ExporterImage, Attrs: attrs}}
	resp, err := c.Build(ctx, opt, "gpuimg", buildFunc, newStatus())
	if err != nil {
		return false, "", err
	}
	digest := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	var want []string
	for _, n := range strings.Split(pe.attrs["name"], ",") {
		if named, err := reference.ParseNormalizedNamed(n); err == nil {
			want = append(want, named.String())
		}
	}
	slices.Sort(want)
	slices.Sort(haveNames)
	if digest == "" || digest != have || !slices.Equal(want, haveNames) {
		return false, digest, nil
	}
	if len(images) > 0 {
		opt.Exports = images
		resp, err := c.Build(ctx, opt, "gpuimg", buildFunc, newStatus())
		if err != nil {
			return false, "", err
		}
		digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	}
	return true, digest, nil
}

// destImage reads the manifest digest and image names from the index.json of
// an OCI layout directory or of a docker/OCI tarball written by BuildKit.
func destImage(dest string, dir bool) (string, []string, error) {
	var data []byte
	if dir {
		var err error
		if data, err = os.ReadFile(filepath.Join(dest, "index.json")); err != nil {
			return "", nil, err
		}
	} else {
		f, err := os.Open(dest)
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		// tar.Reader skips file bodies by seeking: only headers are read.
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return "", nil, errors.New("no index.json")
			}
			if err != nil {
				return "", nil, err
			}
			if h.Name == "index.json" {
				if data, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
					return "", nil, err
				}
				break
			}
		}
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return "", nil, err
	}
	digest := ""
	var names []string
	for _, m := range idx.Manifests {
		if digest != "" && m.Digest.String() != digest {
			return "", nil, errors.New("several images")
		}
		digest = m.Digest.String()
		if n := m.Annotations["io.containerd.image.name"]; n != "" {
			names = append(names, n)
		}
	}
	return digest, names, nil
}
