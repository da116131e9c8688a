package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
)

// driverLayer is the layer an image adds to the base, as read back from a
// design's docker tarball.
type driverLayer struct {
	digest    string
	diffID    string
	size      int64
	tarBytes  int64
	mediaType string
	// entries: every tar entry's name -> its type, mode, owner, mtime, size,
	// link target, xattrs and content digest.
	entries map[string]string
}

// check reads design result r's docker tarball and pushed image back and
// returns its driver layer. Both must be the base's layers (by diffID)
// plus one, the same in the file and the registry, with a diffID that is the sha256 of
// the layer's tar; and, against reference (design 0's, nil for design 0
// itself), the same blob or the same entries. Anything else is an error:
// the run stops rather than time a wrong image. extra receives the
// uncompressed tar when the layer is read (the gzip -6 and zstd -3 sizes).
func (e *env) check(r result, reference *driverLayer, extra ...io.Writer) (*driverLayer, error) {
	img, err := tarball.ImageFromPath(r.tarball, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.tarball, err)
	}
	layers, err := layerDigests(img)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	// By diffID: with zstd layers the base's blobs are recompressed too.
	n := len(e.baseDiffIDs)
	var diffIDs []string
	for _, d := range cfg.RootFS.DiffIDs {
		diffIDs = append(diffIDs, d.String())
	}
	if len(layers) != n+1 || len(diffIDs) != n+1 || strings.Join(diffIDs[:n], " ") != strings.Join(e.baseDiffIDs, " ") {
		return nil, fmt.Errorf("%s: layers with diffIDs %v, want the base's %v and one more", r.tarball, diffIDs, e.baseDiffIDs)
	}
	pushedRef, err := name.ParseReference(r.ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	pushed, err := remote.Image(pushedRef)
	if err != nil {
		return nil, fmt.Errorf("read the pushed %s: %w", r.ref, err)
	}
	if pl, err := layerDigests(pushed); err != nil || strings.Join(pl, " ") != strings.Join(layers, " ") {
		return nil, fmt.Errorf("pushed %s has layers %v (%v), the tarball %v", r.ref, pl, err, layers)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	desc := m.Layers[n]
	l := &driverLayer{digest: desc.Digest.String(), size: desc.Size, mediaType: string(desc.MediaType)}
	if reference != nil && l.digest == reference.digest && len(extra) == 0 {
		l.entries, l.tarBytes, l.diffID = reference.entries, reference.tarBytes, reference.diffID
		return l, nil
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	diffID, err := l.read(layer, extra...)
	if err != nil {
		return nil, fmt.Errorf("driver layer of %s: %w", r.tarball, err)
	}
	if want := diffIDs[n]; diffID != want {
		return nil, fmt.Errorf("driver layer of %s: the config's diffID is %s, its tar's sha256 %s", r.tarball, want, diffID)
	}
	l.diffID = diffID
	if reference != nil {
		if diff := compareEntries(reference.entries, l.entries); diff != "" {
			return nil, fmt.Errorf("the driver layer of %s differs from design (0)'s:\n%s", r.tarball, diff)
		}
	}
	return l, nil
}

// read decompresses the layer, fingerprints every entry and returns the
// tar's sha256 (its diffID).
func (l *driverLayer) read(layer v1.Layer, extra ...io.Writer) (string, error) {
	rc, err := layer.Compressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return "", err
	}
	var raw io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", err
		}
		raw = zr
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		raw = zr
	default:
		return "", fmt.Errorf("neither gzip nor zstd (starts %x)", magic)
	}
	h := sha256.New()
	var count counter
	tr := tar.NewReader(io.TeeReader(raw, io.MultiWriter(append([]io.Writer{h, &count}, extra...)...)))
	l.entries = map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		ch := sha256.New()
		if _, err := io.Copy(ch, tr); err != nil {
			return "", err
		}
		var xattrs []string
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs = append(xattrs, k+"="+hex.EncodeToString([]byte(v)))
			}
		}
		sort.Strings(xattrs)
		l.entries[hdr.Name] = fmt.Sprintf("type %c mode %o owner %d:%d mtime %d size %d link %q xattrs %v content %x",
			hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.Unix(), hdr.Size, hdr.Linkname, xattrs, ch.Sum(nil)[:8])
	}
	// The rest of the stream (the tar's end blocks) counts in the diffID.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return "", err
	}
	l.tarBytes = count.n
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// compareEntries lists (up to 20 of) the differences between two layers'
// entries, "" when there are none.
func compareEntries(want, got map[string]string) string {
	var diffs []string
	for n, w := range want {
		if g, ok := got[n]; !ok {
			diffs = append(diffs, fmt.Sprintf("  missing %s (%s)", n, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("  %s: %s, want %s", n, g, w))
		}
	}
	for n, g := range got {
		if _, ok := want[n]; !ok {
			diffs = append(diffs, fmt.Sprintf("  extra %s (%s)", n, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("  ... %d more", len(diffs)-20))
	}
	return strings.Join(diffs, "\n")
}

// compressedSize runs a compressor binary (gzip -6, zstd -3) over what is
// written to the returned writer; wait returns the bytes it wrote.
func compressedSize(args ...string) (io.WriteCloser, func() (int64, error), error) {
	cmd := exec.Command(args[0], args[1:]...)
	var out counter
	cmd.Stdout = &out
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return in, func() (int64, error) {
		err := cmd.Wait()
		return out.n, err
	}, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
