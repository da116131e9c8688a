package drivers

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
)

// Manifest is a package's .manifest (REFERENCE 3.1): what each file is and
// where the installer puts it.
type Manifest struct {
	Description string `json:"description"`
	Version     string `json:"version"`
	// Arch is line 3, the package's architecture (x86_64, aarch64). With it
	// empty, NVIDIA's installer reports success and installs nothing.
	Arch          string          `json:"arch"`
	KernelModules []string        `json:"kernel_modules,omitempty"`
	Entries       []ManifestEntry `json:"entries"`
	// TypeTable is the nvidia-installer release whose file-type table the
	// entries were read by (manifesttypes.For(Version)); empty for packages
	// older than every table, which are read by token shape.
	TypeTable string `json:"type_table,omitempty"`
	// Warnings are what NVIDIA's installer may refuse or read differently
	// (an unknown type, an empty architecture line).
	Warnings []string `json:"warnings,omitempty"`
}

// ManifestEntry is one file line:
// <file> <perms> <TYPE> [NATIVE|COMPAT32] [path | INHERIT_PATH_DEPTH:n] [symlink-target] [MODULE:<group>].
type ManifestEntry struct {
	// Path is the file's path inside the package (./32/... for compat libs).
	Path  string      `json:"path"`
	Perms fs.FileMode `json:"perms"`
	Type  string      `json:"type"`
	// Arch is NATIVE, COMPAT32 or "" for types without one.
	Arch string `json:"arch,omitempty"`
	// DestPath is the path token relative to the type's destination ("/",
	// "vdpau/", "/usr/bin/"), "" when the type has none.
	DestPath      string `json:"dest_path,omitempty"`
	InheritDepth  int    `json:"inherit_depth,omitempty"`
	SymlinkTarget string `json:"symlink_target,omitempty"`
	// Module is the MODULE: group (gpgpu, nvml, opengl, ...); the installer
	// ignores it.
	Module string `json:"module,omitempty"`
	// Flags holds era tokens the installer reads for some types (CLASSIC, NEW,
	// GLVND, NON_GLVND) and any token this reader does not know.
	Flags []string  `json:"flags,omitempty"`
	Group Component `json:"group"`
}

// IsSymlink reports whether the entry creates a symlink rather than a file.
func (e ManifestEntry) IsSymlink() bool { return isSymlinkType(e.Type) }

// manifestHeaderLines is the fixed header before the first entry (line 9).
const manifestHeaderLines = 8

// eraFlags are optional tokens of old packages (REFERENCE 3.2) that are neither
// a path nor a symlink target.
var eraFlags = map[string]bool{"CLASSIC": true, "NEW": true, "GLVND": true, "NON_GLVND": true}

// maxManifestSize bounds what ParseManifest reads; real manifests are tens
// of KiB.
const maxManifestSize = 16 << 20

// ParseManifest reads a .manifest as nvidia-installer does: lines as its
// get_next_line splits them (empty lines are skipped everywhere, so the
// header is the first 8 lines that are not empty), and entries by the file
// type table of the package's release. Line numbers in errors and warnings
// are the installer's, so they match its "error on line N". Unknown types
// and extra tokens are kept, not rejected: packages from every era must read.
func ParseManifest(r io.Reader) (Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("read .manifest: %w", err)
	}
	if len(data) > maxManifestSize {
		return Manifest{}, fmt.Errorf(".manifest is over %d MiB: the package is damaged or not NVIDIA's", maxManifestSize>>20)
	}
	lines := installerLines(data)
	if len(lines) < manifestHeaderLines {
		return Manifest{}, fmt.Errorf(".manifest has %d lines, fewer than its %d-line header: the package is damaged, download it again", len(lines), manifestHeaderLines)
	}
	m := Manifest{
		Description:   strings.TrimSpace(lines[0]),
		Version:       strings.TrimSpace(lines[1]),
		Arch:          strings.TrimSpace(lines[2]),
		KernelModules: strings.Fields(lines[3]),
	}
	if m.Arch != ArchX86_64 && m.Arch != ArchAarch64 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("header line 3 reads %q where the architecture (%s or %s) belongs: a header line is empty or missing, and NVIDIA's installer then misreads the package (the 580 installer reports success and installs nothing)", m.Arch, ArchX86_64, ArchAarch64))
	}
	var table *manifesttypes.Table
	if !manifesttypes.Less(m.Version, manifesttypes.Releases()[0]) {
		t := manifesttypes.For(m.Version)
		table, m.TypeTable = &t, t.Release
	}
	for i, line := range lines[manifestHeaderLines:] {
		lineNo := manifestHeaderLines + 1 + i
		e, warning, err := parseManifestEntry(line, table)
		if err != nil {
			return Manifest{}, fmt.Errorf(".manifest line %d: %w", lineNo, err)
		}
		if warning != "" {
			m.Warnings = append(m.Warnings, fmt.Sprintf("line %d: %s", lineNo, warning))
		}
		m.Entries = append(m.Entries, e)
	}
	return m, nil
}

// installerLines splits a manifest as the installer's get_next_line does: a
// line ends at \n, \r or NUL, and every run of unprintable bytes after it
// (further newlines, so empty lines, and leading tabs) is skipped; a NUL
// ends the text.
func installerLines(data []byte) []string {
	var lines []string
	for i := 0; i < len(data) && data[i] != 0; {
		j := i
		for j < len(data) && data[j] != '\n' && data[j] != '\r' && data[j] != 0 {
			j++
		}
		lines = append(lines, string(data[i:j]))
		for j < len(data) && data[j] != 0 && (data[j] < 0x20 || data[j] > 0x7e) {
			j++
		}
		i = j
	}
	return lines
}

// parseManifestEntry reads one entry. With a type table it reads as
// nvidia-installer does (install-from-cwd.c parse_manifest): after the type,
// exactly the tokens the type takes, in order (arch, path or
// INHERIT_PATH_DEPTH:n, symlink target); later tokens are ignored but for
// MODULE:. A type the table lacks, or a package older than every table, is
// read by token shape so that packages of every era still read; the warning
// says what NVIDIA's installer would do instead.
func parseManifestEntry(line string, table *manifesttypes.Table) (ManifestEntry, string, error) {
	tok := strings.Fields(line)
	if len(tok) < 3 {
		return ManifestEntry{}, "", fmt.Errorf("want <file> <perms> <TYPE> ..., got %q", line)
	}
	perms, err := strconv.ParseUint(tok[1], 8, 32)
	if err != nil || perms > 07777 {
		return ManifestEntry{}, "", fmt.Errorf("permissions %q of %s are not octal like 0755", tok[1], tok[0])
	}
	e := ManifestEntry{Path: tok[0], Perms: fileMode(uint32(perms)), Type: tok[2]}
	var warning string
	if table == nil {
		err = e.readByShape(tok[3:])
	} else if caps, known := table.Caps(e.Type); known {
		warning, err = e.readByCaps(caps, tok[3:], table.Release)
	} else {
		warning = fmt.Sprintf("type %s is unknown to nvidia-installer %s, which rejects a .manifest with it (\"Invalid .manifest file\")", e.Type, table.Release)
		err = e.readByShape(tok[3:])
	}
	if err != nil {
		return ManifestEntry{}, "", err
	}
	e.Group = ComponentOf(e.Type, e.Module, e.Path)
	return e, warning, nil
}

// readByCaps takes the optional tokens caps says the type carries, in the
// installer's order, whatever they say: a missing one is the installer's
// "Invalid .manifest file" error, and a MODULE: token in their place is
// taken as the installer takes it (as a path or a symlink target), with a
// warning.
func (e *ManifestEntry) readByCaps(caps manifesttypes.Caps, tok []string, release string) (warning string, err error) {
	next := func(what string) (string, error) {
		if len(tok) == 0 {
			return "", fmt.Errorf("%s %s takes %s, and the line has none: nvidia-installer %s rejects the package (\"Invalid .manifest file\")", e.Path, e.Type, what, release)
		}
		t := tok[0]
		tok = tok[1:]
		if strings.HasPrefix(t, "MODULE:") && warning == "" {
			warning = fmt.Sprintf("%s %s takes %s before MODULE:, and nvidia-installer %s reads %q as it", e.Path, e.Type, what, release, t)
		}
		return t, nil
	}
	if caps.HasArch {
		arch, err := next("an arch token (NATIVE or COMPAT32)")
		if err != nil {
			return "", err
		}
		if arch != "NATIVE" && arch != "COMPAT32" {
			return "", fmt.Errorf("%s %s: arch token %q is neither NATIVE nor COMPAT32: nvidia-installer %s rejects the package (\"Invalid .manifest file\")", e.Path, e.Type, arch, release)
		}
		e.Arch = arch
	}
	switch {
	case caps.HasPath:
		p, err := next("a path")
		if err != nil {
			return "", err
		}
		e.DestPath = p
	case caps.InheritPath:
		d, err := next("an INHERIT_PATH_DEPTH:n token")
		if err != nil {
			return "", err
		}
		if e.InheritDepth, err = inheritDepth(d); err != nil {
			return "", fmt.Errorf("%s of %s: %w", d, e.Path, err)
		}
	}
	if caps.IsSymlink {
		target, err := next("a symlink target")
		if err != nil {
			return "", err
		}
		e.SymlinkTarget = target
	}
	for _, t := range tok {
		if strings.HasPrefix(t, "MODULE:") {
			e.Module = strings.TrimPrefix(t, "MODULE:")
		} else {
			e.Flags = append(e.Flags, t)
		}
	}
	return warning, nil
}

// readByShape guesses each optional token's role from its form: the reading
// for packages older than every type table (era tokens such as CLASSIC and
// GLVND) and for types a table lacks.
func (e *ManifestEntry) readByShape(tok []string) error {
	var positional []string
	for _, t := range tok {
		switch {
		case t == "NATIVE" || t == "COMPAT32":
			e.Arch = t
		case strings.HasPrefix(t, "MODULE:"):
			e.Module = strings.TrimPrefix(t, "MODULE:")
		case strings.HasPrefix(t, "INHERIT_PATH_DEPTH:"):
			depth, err := inheritDepth(t)
			if err != nil {
				return fmt.Errorf("%s of %s: %w", t, e.Path, err)
			}
			e.InheritDepth = depth
		case eraFlags[t]:
			e.Flags = append(e.Flags, t)
		default:
			positional = append(positional, t)
		}
	}
	// A symlink's last positional token is its target, a path before it is
	// its directory; other types have at most a path.
	if e.IsSymlink() && len(positional) > 0 {
		e.SymlinkTarget = positional[len(positional)-1]
		positional = positional[:len(positional)-1]
	}
	if len(positional) > 0 {
		e.DestPath = positional[0]
		e.Flags = append(e.Flags, positional[1:]...)
	}
	return nil
}

func inheritDepth(t string) (int, error) {
	depth, err := strconv.Atoi(strings.TrimPrefix(t, "INHERIT_PATH_DEPTH:"))
	if err != nil || depth < 0 || !strings.HasPrefix(t, "INHERIT_PATH_DEPTH:") {
		return 0, fmt.Errorf("not a depth (want INHERIT_PATH_DEPTH:n)")
	}
	return depth, nil
}

// fileMode turns the manifest's octal permissions (04755 for the setuid
// nvidia-modprobe) into an fs.FileMode.
func fileMode(perms uint32) fs.FileMode {
	mode := fs.FileMode(perms & 0o777)
	if perms&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if perms&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if perms&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func isSymlinkType(typ string) bool {
	return strings.HasSuffix(typ, "_SYMLINK") || typ == "XMODULE_NEWSYM"
}

// Component is a group of driver files a container may want (REFERENCE 3.4,
// the NVIDIA container stack's capabilities), or a class it never needs.
type Component string

const (
	ComponentUtility  Component = "utility"
	ComponentCompute  Component = "compute"
	ComponentVideo    Component = "video"
	ComponentGraphics Component = "graphics"
	ComponentDisplay  Component = "display"
	ComponentNGX      Component = "ngx"
	// ComponentKernelOnly is what builds or loads the kernel module.
	ComponentKernelOnly Component = "kernel-only"
	// ComponentHostOnly is used by the host, not a container: firmware,
	// systemd units, the setuid nvidia-modprobe.
	ComponentHostOnly Component = "host-only"
	// ComponentOther is documentation, the installer and anything unknown.
	ComponentOther Component = "other"
)

// Components lists every group in report order.
var Components = []Component{
	ComponentUtility, ComponentCompute, ComponentVideo, ComponentGraphics, ComponentDisplay,
	ComponentNGX, ComponentKernelOnly, ComponentHostOnly, ComponentOther,
}

// ParseComponent validates a group name.
func ParseComponent(s string) (Component, error) {
	for _, c := range Components {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, len(Components))
	for i, c := range Components {
		names[i] = string(c)
	}
	return "", fmt.Errorf("component %q is unknown: use one of %s", s, strings.Join(names, ", "))
}

// typeGroups classifies types whose group does not depend on the file name.
var typeGroups = map[string]Component{
	"KERNEL_MODULE_SRC": ComponentKernelOnly, "KERNEL_MODULE": ComponentKernelOnly, "KERNEL_MODULE_CMD": ComponentKernelOnly,
	"DKMS_CONF": ComponentKernelOnly, "MODULE_SIGNING_KEY": ComponentKernelOnly,

	"FIRMWARE": ComponentHostOnly, "SYSTEMD_UNIT": ComponentHostOnly, "SYSTEMD_UNIT_SYMLINK": ComponentHostOnly,
	"SYSTEMD_SLEEP_SCRIPT": ComponentHostOnly, "NVIDIA_MODPROBE": ComponentHostOnly, "NVIDIA_MODPROBE_MANPAGE": ComponentHostOnly,

	"XMODULE_SHARED_LIB": ComponentDisplay, "XMODULE_SYMLINK": ComponentDisplay, "XMODULE_NEWSYM": ComponentDisplay,
	"GLX_MODULE_SHARED_LIB": ComponentDisplay, "GLX_MODULE_SYMLINK": ComponentDisplay, "XORG_OUTPUTCLASS_CONFIG": ComponentDisplay,

	"DOCUMENTATION": ComponentOther, "MANPAGE": ComponentOther, "DOT_DESKTOP": ComponentOther, "ICON": ComponentOther,
	"INSTALLER_BINARY": ComponentOther, "INTERNAL_UTILITY_BINARY": ComponentOther, "INTERNAL_UTILITY_LIB": ComponentOther,
	"INTERNAL_UTILITY_DATA": ComponentOther, "SANDBOXUTILS_FILELIST_JSON": ComponentOther,
}

// nameGroups classifies libraries (by the name before ".so") and binaries.
var nameGroups = map[string]Component{
	"libnvidia-ml": ComponentUtility, "libnvidia-cfg": ComponentUtility, "libnvidia-nscq": ComponentUtility,
	"nvidia-smi": ComponentUtility, "nvidia-debugdump": ComponentUtility, "nvidia-persistenced": ComponentUtility,
	"nv-fabricmanager": ComponentUtility,

	"libcuda": ComponentCompute, "libcudadebugger": ComponentCompute, "libnvidia-opencl": ComponentCompute,
	"libnvidia-ptxjitcompiler": ComponentCompute, "libnvidia-fatbinaryloader": ComponentCompute,
	"libnvidia-allocator": ComponentCompute, "libnvidia-compiler": ComponentCompute, "libnvidia-pkcs11": ComponentCompute,
	"libnvidia-pkcs11-openssl3": ComponentCompute, "libnvidia-nvvm": ComponentCompute, "libnvidia-gpucomp": ComponentCompute,
	"libnvidia-tileiras": ComponentCompute, "nvidia-cuda-mps-control": ComponentCompute, "nvidia-cuda-mps-server": ComponentCompute,

	"libvdpau_nvidia": ComponentVideo, "libnvidia-encode": ComponentVideo, "libnvidia-opticalflow": ComponentVideo,
	"libnvcuvid": ComponentVideo,

	"libnvidia-eglcore": ComponentGraphics, "libnvidia-glcore": ComponentGraphics, "libnvidia-tls": ComponentGraphics,
	"libnvidia-glsi": ComponentGraphics, "libnvidia-fbc": ComponentGraphics, "libnvidia-ifr": ComponentGraphics,
	"libnvidia-rtcore": ComponentGraphics, "libnvidia-glvkspirv": ComponentGraphics, "libnvidia-cbl": ComponentGraphics,
	"libnvoptix": ComponentGraphics, "libGLX_nvidia": ComponentGraphics, "libEGL_nvidia": ComponentGraphics,
	"libGLESv2_nvidia": ComponentGraphics, "libGLESv1_CM_nvidia": ComponentGraphics,

	"nvidia_drv": ComponentDisplay, "libglxserver_nvidia": ComponentDisplay,

	"libnvidia-ngx": ComponentNGX, "nvidia-ngx-updater": ComponentNGX,
}

// typePrefixGroups classifies the remaining library and data types.
var typePrefixGroups = []struct {
	prefix string
	group  Component
}{
	// The OpenCL ICD (nvidia.icd) names libnvidia-opencl, a compute library;
	// it goes with it so a compute-only image can load OpenCL.
	{"OPENGL_HEADER", ComponentOther},
	{"CUDA_", ComponentCompute}, {"OPENCL_", ComponentCompute},
	{"NVCUVID_", ComponentVideo}, {"ENCODEAPI_", ComponentVideo}, {"VDPAU_", ComponentVideo},
	{"OPENGL_", ComponentGraphics}, {"GLVND_", ComponentGraphics}, {"GLX_CLIENT_", ComponentGraphics},
	{"EGL_", ComponentGraphics}, {"GBM_", ComponentGraphics}, {"TLS_", ComponentGraphics},
	{"VULKAN", ComponentGraphics}, {"APPLICATION_PROFILE", ComponentGraphics}, {"LIBGL_LA", ComponentGraphics},
}

// moduleGroups is the last resort: the MODULE: token of an unknown type.
var moduleGroups = map[string]Component{
	"nvml": ComponentUtility, "nvpd": ComponentUtility,
	"gpgpu": ComponentCompute, "compiler": ComponentCompute, "uvm": ComponentCompute,
	"nvcuvid": ComponentVideo, "encodeapi": ComponentVideo, "vdpau": ComponentVideo,
	"opengl": ComponentGraphics, "egl": ComponentGraphics,
	"xdriver": ComponentDisplay,
	"resman":  ComponentKernelOnly, "nvkms": ComponentKernelOnly,
}

// ComponentOf maps a manifest entry's type, MODULE: group and file name to a
// component group, following REFERENCE 3.3 (what an image never needs) and
// 3.4 (the container stack's library groups). Types that decide on their own
// (kernel, firmware, X modules, docs) come first, then the library or binary
// name, then the type's family, then the module.
func ComponentOf(typ, module, file string) Component {
	if g, ok := typeGroups[typ]; ok {
		return g
	}
	clean := strings.TrimPrefix(file, "./")
	if strings.HasPrefix(clean, "kernel/") || strings.HasPrefix(clean, "kernel-open/") || path.Base(clean) == "mkprecompiled" {
		return ComponentKernelOnly
	}
	if strings.HasPrefix(clean, "firmware/") || strings.HasPrefix(clean, "systemd/") {
		return ComponentHostOnly
	}
	base := path.Base(clean)
	if i := strings.Index(base, ".so"); i > 0 {
		base = base[:i]
	}
	if g, ok := nameGroups[base]; ok {
		return g
	}
	for _, tp := range typePrefixGroups {
		if strings.HasPrefix(typ, tp.prefix) {
			return tp.group
		}
	}
	if g, ok := moduleGroups[module]; ok {
		return g
	}
	return ComponentOther
}
