package drivers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Info is what a .run contains, read without running it.
type Info struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Header Header `json:"header"`
	// Version and Arch come from the header; ManifestVersion from .manifest.
	Version         string   `json:"version"`
	Arch            string   `json:"arch"`
	ManifestVersion string   `json:"manifest_version"`
	ManifestArch    string   `json:"manifest_arch"`
	Description     string   `json:"description"`
	KernelModules   []string `json:"kernel_modules,omitempty"`
	// TypeTable is the nvidia-installer release whose manifest type table
	// read the entries (empty for packages older than every table).
	TypeTable string `json:"type_table,omitempty"`
	// ManifestWarnings are what NVIDIA's installer would refuse or read
	// differently from what the package means.
	ManifestWarnings []string `json:"manifest_warnings,omitempty"`
	// Files and Bytes total the manifest's entries; Groups splits them.
	Files  int          `json:"files"`
	Bytes  int64        `json:"bytes"`
	Groups []GroupStats `json:"groups"`
	// Unlisted counts payload files the manifest does not name (installer
	// plumbing such as .manifest itself).
	Unlisted GroupStats `json:"unlisted"`
	// UnknownTypes lists manifest types the release's type table (else the
	// types gpuimg knows of every era) lacks; their files are counted under
	// "other" or by name.
	UnknownTypes []string `json:"unknown_types,omitempty"`
	// Missing lists manifest entries (not symlinks) absent from the payload.
	Missing  []string `json:"missing,omitempty"`
	Manifest Manifest `json:"-"`
}

// GroupStats counts a component group's files and bytes.
type GroupStats struct {
	Group Component `json:"group,omitempty"`
	Files int       `json:"files"`
	Bytes int64     `json:"bytes"`
}

// Group returns the stats of one component group.
func (i Info) Group(c Component) GroupStats {
	for _, g := range i.Groups {
		if g.Group == c {
			return g
		}
	}
	return GroupStats{Group: c}
}

// Inspect reads a .run's header, decompresses its payload in Go (gzip, xz
// without integrity check, zstd or bzip2, chosen by magic bytes), parses the
// .manifest, and counts files and bytes per component group.
func Inspect(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("open driver package: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	h, err := ReadHeader(f)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	info := Info{Path: path, Size: st.Size(), Header: h, Version: h.VersionString, Arch: h.TargetArch}
	payload := bufio.NewReaderSize(io.NewSectionReader(f, h.PayloadOffset, st.Size()-h.PayloadOffset), 1<<20)
	sizes, manifest, err := readPayload(payload, h.Compression)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	if manifest == nil {
		return Info{}, fmt.Errorf("%s: %w: the payload has no .manifest at its top directory; the file is damaged or not a driver package", path, ErrNotRun)
	}
	m, err := ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	summarize(&info, m, sizes)
	return info, nil
}

// ReadManifest reads only a .run's .manifest: it decompresses the payload up
// to the .manifest entry and stops, where Inspect reads the whole payload
// (seconds for a 400 MB package) to count sizes. The build's --components
// pruning needs only this.
func ReadManifest(path string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("open driver package: %w", err)
	}
	defer f.Close()
	h, err := ReadHeader(f)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	payload := bufio.NewReaderSize(io.NewSectionReader(f, h.PayloadOffset, 1<<62), 1<<20)
	dec, closeDec, err := decompressor(payload, h.Compression)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	defer closeDec()
	tr := tar.NewReader(dec)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return Manifest{}, fmt.Errorf("%s: %w: the payload has no .manifest at its top directory; the file is damaged or not a driver package", path, ErrNotRun)
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("%s: read the %s payload: %w (the file is truncated or damaged: download it again)", path, h.Compression, err)
		}
		if packageRelative(hdr.Name) != ".manifest" || hdr.Typeflag != tar.TypeReg {
			continue
		}
		m, err := ParseManifest(tr)
		if err != nil {
			return Manifest{}, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	}
}

// payloadFile is a regular file or symlink in the payload.
type payloadFile struct {
	size   int64
	listed bool
}

// readPayload decompresses and walks the payload's tar, returning every
// entry's size by path relative to the package directory, and .manifest.
func readPayload(r io.Reader, compression string) (map[string]*payloadFile, []byte, error) {
	dec, closeDec, err := decompressor(r, compression)
	if err != nil {
		return nil, nil, err
	}
	defer closeDec()
	tr := tar.NewReader(dec)
	sizes := map[string]*payloadFile{}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read the %s payload: %w (the file is truncated or damaged: download it again)", compression, err)
		}
		rel := packageRelative(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
		default:
			continue
		}
		if rel == ".manifest" && hdr.Typeflag == tar.TypeReg {
			if hdr.Size > 64<<20 {
				return nil, nil, fmt.Errorf("%w: .manifest is %d bytes", ErrNotRun, hdr.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, nil, fmt.Errorf("read .manifest: %w", err)
			}
		}
		size := hdr.Size
		if hdr.Typeflag != tar.TypeReg {
			size = 0
		}
		sizes[rel] = &payloadFile{size: size}
	}
	// Drain the compressed stream's trailer so truncation past the tar end is
	// still reported.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return nil, nil, fmt.Errorf("read the %s payload: %w (the file is truncated or damaged: download it again)", compression, err)
	}
	return sizes, manifest, nil
}

// packageRelative strips the NVIDIA-Linux-<arch>-<v>/ directory every payload
// path starts with.
func packageRelative(name string) string {
	name = strings.TrimPrefix(name, "./")
	if _, rest, ok := strings.Cut(name, "/"); ok {
		return rest
	}
	return name
}

func decompressor(r io.Reader, compression string) (io.Reader, func(), error) {
	nop := func() {}
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nop, fmt.Errorf("gzip payload: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case "xz":
		// NVIDIA compresses with `xz -C none`; ulikunitz/xz accepts check type None.
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, nop, fmt.Errorf("xz payload: %w", err)
		}
		return zr, nop, nil
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxMemory(4<<30))
		if err != nil {
			return nil, nop, fmt.Errorf("zstd payload: %w", err)
		}
		return zr, zr.Close, nil
	case "bzip2":
		return bzip2.NewReader(r), nop, nil
	}
	return nil, nop, fmt.Errorf("%w: unknown payload compression %q", ErrNotRun, compression)
}

// summarize attributes the payload's sizes to the manifest's groups.
func summarize(info *Info, m Manifest, sizes map[string]*payloadFile) {
	info.Manifest = m
	info.ManifestVersion = m.Version
	info.ManifestArch = m.Arch
	info.TypeTable = m.TypeTable
	info.ManifestWarnings = m.Warnings
	info.Description = m.Description
	info.KernelModules = m.KernelModules
	groups := map[Component]*GroupStats{}
	for _, c := range Components {
		groups[c] = &GroupStats{Group: c}
	}
	unknown := map[string]bool{}
	for _, e := range m.Entries {
		g := groups[e.Group]
		g.Files++
		info.Files++
		if !knownType(m, e.Type) {
			unknown[e.Type] = true
		}
		if e.IsSymlink() {
			continue // created by the installer; nothing in the payload
		}
		pf, ok := sizes[strings.TrimPrefix(e.Path, "./")]
		if !ok {
			info.Missing = append(info.Missing, e.Path)
			continue
		}
		if !pf.listed {
			pf.listed = true
			g.Bytes += pf.size
			info.Bytes += pf.size
		}
	}
	for _, c := range Components {
		info.Groups = append(info.Groups, *groups[c])
	}
	for _, pf := range sizes {
		if !pf.listed {
			info.Unlisted.Files++
			info.Unlisted.Bytes += pf.size
		}
	}
	for t := range unknown {
		info.UnknownTypes = append(info.UnknownTypes, t)
	}
	sort.Strings(info.UnknownTypes)
}

// knownTypes are the manifest types of REFERENCE 3.2, old-era ones included.
var knownTypes = func() map[string]bool {
	known := map[string]bool{}
	for _, t := range strings.Fields(`KERNEL_MODULE_SRC KERNEL_MODULE KERNEL_MODULE_CMD DKMS_CONF FIRMWARE MODULE_SIGNING_KEY
		CUDA_LIB CUDA_SYMLINK OPENCL_LIB OPENCL_LIB_SYMLINK OPENCL_WRAPPER_LIB OPENCL_WRAPPER_SYMLINK OPENGL_LIB OPENGL_SYMLINK
		TLS_LIB TLS_SYMLINK GLVND_LIB GLVND_SYMLINK GLX_CLIENT_LIB GLX_CLIENT_SYMLINK EGL_CLIENT_LIB EGL_CLIENT_SYMLINK
		GBM_BACKEND_LIB GBM_BACKEND_LIB_SYMLINK VDPAU_LIB VDPAU_SYMLINK NVCUVID_LIB NVCUVID_LIB_SYMLINK ENCODEAPI_LIB
		ENCODEAPI_LIB_SYMLINK UTILITY_LIB UTILITY_LIB_SYMLINK VGX_LIB VGX_LIB_SYMLINK GRID_LIB GRID_LIB_SYMLINK FLEXERA_LIB
		FLEXERA_LIB_SYMLINK WINE_LIB CUDA_ICD OPENGL_DATA GLVND_EGL_ICD_JSON EGL_EXTERNAL_PLATFORM_JSON VULKAN_ICD_JSON
		VULKANSC_ICD_JSON APPLICATION_PROFILE XORG_OUTPUTCLASS_CONFIG SANDBOXUTILS_FILELIST_JSON UTILITY_BINARY
		UTILITY_BIN_SYMLINK INSTALLER_BINARY INTERNAL_UTILITY_BINARY INTERNAL_UTILITY_LIB INTERNAL_UTILITY_DATA NVIDIA_MODPROBE
		NVIDIA_MODPROBE_MANPAGE XMODULE_SHARED_LIB GLX_MODULE_SHARED_LIB GLX_MODULE_SYMLINK DOCUMENTATION MANPAGE DOT_DESKTOP
		ICON EXPLICIT_PATH SYSTEMD_UNIT SYSTEMD_UNIT_SYMLINK SYSTEMD_SLEEP_SCRIPT LIBGL_LA OPENGL_HEADER NVIFR_LIB
		NVIFR_LIB_SYMLINK XMODULE_SYMLINK XMODULE_NEWSYM`) {
		known[t] = true
	}
	return known
}()

// knownType reports whether m's release's type table has t, or for a
// package older than every table, whether t is a type of some era.
func knownType(m Manifest, t string) bool {
	if m.TypeTable != "" {
		_, ok := manifesttypes.For(m.Version).Caps(t)
		return ok
	}
	return knownTypes[t]
}
