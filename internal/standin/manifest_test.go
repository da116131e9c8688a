package standin

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// payloadReader decompresses the payload of run (from line skip), by its
// magic bytes, as a consumer of the format would.
func payloadReader(t *testing.T, run string) (*tar.Reader, int64) {
	t.Helper()
	h := runHeader(t, run)
	skip, err := strconv.Atoi(h["skip"])
	if err != nil {
		t.Fatal(err)
	}
	payload := payloadBytes(t, run, skip)
	var r io.Reader
	switch {
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		r, err = gzip.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		r, err = xz.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(payload))
		r = d
	default:
		t.Fatalf("unknown payload magic % x", payload[:6])
	}
	if err != nil {
		t.Fatal(err)
	}
	return tar.NewReader(r), int64(len(payload))
}

// componentGroup is the TYPE/MODULE -> component group mapping documented
// in doc.go (REFERENCE 3.3/3.4); drivers/ implements the product's copy.
func componentGroup(fileType, module string) string {
	switch fileType {
	case "KERNEL_MODULE_SRC", "KERNEL_MODULE", "DKMS_CONF", "MODULE_SIGNING_KEY":
		return "kernel-only"
	case "FIRMWARE", "SYSTEMD_UNIT", "SYSTEMD_UNIT_SYMLINK", "SYSTEMD_SLEEP_SCRIPT", "NVIDIA_MODPROBE", "NVIDIA_MODPROBE_MANPAGE":
		return "host-only"
	case "XMODULE_SHARED_LIB", "GLX_MODULE_SHARED_LIB", "GLX_MODULE_SYMLINK", "XORG_OUTPUTCLASS_CONFIG":
		return "display"
	case "CUDA_ICD", "VULKAN_ICD_JSON", "GLVND_EGL_ICD_JSON", "EGL_EXTERNAL_PLATFORM_JSON":
		return "graphics"
	case "DOCUMENTATION", "MANPAGE", "INSTALLER_BINARY":
		return "other"
	}
	switch module {
	case "nvml", "nvcfg", "nvpd":
		return "utility"
	case "gpgpu", "opencl":
		return "compute"
	case "vdpau", "nvcuvid", "encodeapi", "opticalflow":
		return "video"
	case "opengl", "egl", "glvnd", "vulkan", "optix", "nvfbc", "ngx":
		return "graphics"
	case "xdriver":
		return "display"
	}
	return "other"
}

type manifestEntry struct {
	file, perms, fileType, arch, pathToken, target, module string
}

// parseManifestLine splits a line as nvidia-installer does: after the type,
// exactly the tokens the release's table says it takes (arch, path or
// INHERIT_PATH_DEPTH:n, symlink target), then MODULE:.
func parseManifestLine(t *testing.T, table manifesttypes.Table, line string) (manifestEntry, manifesttypes.Caps) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 3 {
		t.Fatalf("manifest line %q has fewer than 3 tokens", line)
	}
	e := manifestEntry{file: f[0], perms: f[1], fileType: f[2]}
	caps, known := table.Caps(e.fileType)
	if !known {
		t.Fatalf("manifest line %q: type %s is unknown to nvidia-installer %s", line, e.fileType, table.Release)
	}
	rest := f[3:]
	take := func(what string) string {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "MODULE:") {
			t.Fatalf("manifest line %q: %s takes %s", line, e.fileType, what)
		}
		tok := rest[0]
		rest = rest[1:]
		return tok
	}
	if caps.HasArch {
		e.arch = take("an arch")
	}
	if caps.HasPath || caps.InheritPath {
		e.pathToken = take("a path")
	}
	if caps.IsSymlink {
		e.target = take("a target")
	}
	if len(rest) != 1 || !strings.HasPrefix(rest[0], "MODULE:") {
		t.Fatalf("manifest line %q: after the type's tokens, want exactly MODULE:, got %q", line, rest)
	}
	e.module = strings.TrimPrefix(rest[0], "MODULE:")
	return e, caps
}

func TestManifestMatchesTheRealDriver(t *testing.T) {
	const v = "580.159.04"
	run := generate(t, Options{Version: v})
	tr, _ := payloadReader(t, run)
	members := map[string]*tar.Header{}
	var manifest []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Name, "NVIDIA-Linux-x86_64-"+v+"/") {
			t.Errorf("payload member %s is outside NVIDIA-Linux-x86_64-%s/", h.Name, v)
		}
		name := strings.TrimPrefix(h.Name, "NVIDIA-Linux-x86_64-"+v+"/")
		members[name] = h
		if name == ".manifest" {
			manifest, _ = io.ReadAll(tr)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(payloadTime) {
			t.Errorf("%s: uid %d gid %d mtime %v: want fixed owners and mtime", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(manifest), "\n"), "\n")
	if len(lines) < 9 {
		t.Fatalf(".manifest has %d lines", len(lines))
	}
	wantHeader := []string{"NVIDIA Accelerated Graphics Driver for Linux-x86_64", v, "x86_64", "nvidia nvidia-uvm nvidia-modeset nvidia-drm nvidia-peermem"}
	for i, want := range wantHeader {
		if lines[i] != want {
			t.Errorf("manifest line %d = %q, want %q", i+1, lines[i], want)
		}
	}

	entries := map[string]manifestEntry{}
	types := map[string]int{}
	table := manifesttypes.For(v)
	for _, line := range lines[8:] {
		e, caps := parseManifestLine(t, table, line)
		entries[e.file] = e
		types[e.fileType]++
		rendered := entry{file: e.file, perms: e.perms, fileType: e.fileType, arch: e.arch, pathToken: e.pathToken, target: e.target, module: e.module}.line(caps)
		if rendered != line {
			t.Errorf("token order: %q re-renders as %q", line, rendered)
		}
		if e.module == "" {
			t.Errorf("%s has no MODULE: token", e.file)
		}
		if strings.HasSuffix(e.fileType, "_SYMLINK") {
			if e.perms != "0000" || e.target == "" {
				t.Errorf("symlink entry %q: want perms 0000 and a target", line)
			}
			continue
		}
		m, ok := members[e.file]
		if !ok {
			t.Errorf("manifest lists %s, the payload lacks it", e.file)
			continue
		}
		perms, _ := strconv.ParseInt(e.perms, 8, 64)
		if m.Mode != perms {
			t.Errorf("%s: tar mode %o, manifest perms %s", e.file, m.Mode, e.perms)
		}
		if strings.HasPrefix(e.file, "32/") != (e.arch == "COMPAT32") {
			t.Errorf("%s: arch %s; COMPAT32 entries are exactly those under 32/", e.file, e.arch)
		}
	}
	for _, want := range []string{"CUDA_LIB", "CUDA_SYMLINK", "UTILITY_LIB", "OPENGL_LIB", "GLVND_LIB", "GLX_CLIENT_LIB", "EGL_CLIENT_LIB", "VDPAU_LIB",
		"NVCUVID_LIB", "ENCODEAPI_LIB", "OPENCL_LIB", "UTILITY_BINARY", "CUDA_ICD", "GLVND_EGL_ICD_JSON", "VULKAN_ICD_JSON", "EGL_EXTERNAL_PLATFORM_JSON",
		"XMODULE_SHARED_LIB", "GLX_MODULE_SHARED_LIB", "FIRMWARE", "KERNEL_MODULE_SRC", "DOCUMENTATION", "MANPAGE", "NVIDIA_MODPROBE", "SYSTEMD_UNIT", "INSTALLER_BINARY"} {
		if types[want] == 0 {
			t.Errorf("no %s entry in the manifest", want)
		}
	}
	if e := entries["nvidia-modprobe"]; e.perms != "04755" {
		t.Errorf("nvidia-modprobe perms %q, want 04755", e.perms)
	}
	if e := entries["firmware/gsp_ga10x.bin"]; e.pathToken != "INHERIT_PATH_DEPTH:1" {
		t.Errorf("firmware entry %+v, want INHERIT_PATH_DEPTH:1", e)
	}
	if e := entries["32/libcuda.so."+v]; e.fileType != "CUDA_LIB" || e.arch != "COMPAT32" {
		t.Errorf("32/libcuda entry %+v", e)
	}

	// Every file of the real driver's TSV is in the manifest, with its
	// type's symlink twin and target, and in its component group.
	for _, row := range strings.Split(userspaceTSV, "\n") {
		cols := strings.Split(row, "\t")
		if len(cols) != 4 || strings.HasPrefix(row, "#") || cols[0] == "path" {
			continue
		}
		name := path.Base(cols[0])
		e, ok := entries[name]
		if !ok {
			t.Errorf("TSV file %s is not in the manifest", name)
			continue
		}
		if target, isLink := strings.CutPrefix(cols[2], "-> "); isLink {
			if !strings.HasSuffix(e.fileType, "_SYMLINK") || e.target != target {
				t.Errorf("%s: %s -> %s, TSV says a symlink to %s", name, e.fileType, e.target, target)
			}
		}
		group := componentGroup(e.fileType, e.module)
		want := cols[3]
		// REFERENCE 3.4 (lnc) differs from the TSV for these; it wins.
		switch {
		case strings.HasPrefix(name, "libnvidia-fbc."):
			want = "graphics" // the TSV says video
		case strings.HasPrefix(name, "nvidia-cuda-mps-"):
			want = "compute" // the TSV says utility
		}
		if group != want {
			t.Errorf("%s: group %s (%s MODULE:%s), TSV says %s", name, group, e.fileType, e.module, want)
		}
	}
	groups := map[string]bool{}
	for _, e := range entries {
		groups[componentGroup(e.fileType, e.module)] = true
	}
	for _, g := range []string{"utility", "compute", "video", "graphics", "display", "kernel-only", "host-only", "other"} {
		if !groups[g] {
			t.Errorf("no manifest entry falls in group %s", g)
		}
	}
}

func TestRealisticScale(t *testing.T) {
	testenv.SkipIfShort(t, "generates a ~230 MB package")
	requireTools(t, "gcc", "objcopy")
	run, err := Cached(Options{Version: tsvVersion, Scale: ScaleRealistic})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, row := range strings.Split(userspaceTSV, "\n") {
		cols := strings.Split(row, "\t")
		if len(cols) == 4 && cols[1] != "0" && cols[1] != "size" {
			n, _ := strconv.ParseInt(cols[1], 10, 64)
			want[path.Base(cols[0])] = n
		}
	}
	tr, compressed := payloadReader(t, run)
	var unpacked int64
	seen := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		unpacked += h.Size
		name := path.Base(h.Name)
		size, listed := want[name]
		if !listed || strings.Contains(h.Name, "/32/") {
			continue
		}
		seen++
		if h.Size != size {
			t.Errorf("%s: %d bytes, the real driver's is %d", name, h.Size, size)
		}
		if name == "libnvidia-ml.so."+tsvVersion {
			b, _ := io.ReadAll(tr)
			f, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("padded %s is no longer an ELF file: %v", name, err)
			}
			if sonames, _ := f.DynString(elf.DT_SONAME); len(sonames) != 1 || sonames[0] != "libnvidia-ml.so.1" {
				t.Errorf("padded %s SONAME %v", name, sonames)
			}
			if f.Section(padSection) == nil {
				t.Errorf("padded %s has no %s section", name, padSection)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the TSV's %d files", seen, len(want))
	}
	if unpacked < 650<<20 || unpacked > 720<<20 {
		t.Errorf("unpacked size %d MiB, want about 676 MiB", unpacked>>20)
	}
	// Real driver code compresses about 2.5:1; much more would make the
	// benchmarks' download and extraction unrealistically cheap.
	if ratio := float64(unpacked) / float64(compressed); ratio < 2.0 || ratio > 3.2 {
		t.Errorf("gzip ratio %.2f:1, want about 2.5:1", ratio)
	}
}
