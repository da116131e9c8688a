package drivers

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Manifest is a package's .manifest (REFERENCE 3.1): what each file is and
// where the installer puts it.
type Manifest struct {
	Description   string          `json:"description"`
	Version       string          `json:"version"`
	KernelModules []string        `json:"kernel_modules,omitempty"`
	Entries       []ManifestEntry `json:"entries"`
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

// ParseManifest reads a .manifest. Unknown types and extra tokens are kept,
// not rejected: packages from every era must read.
func ParseManifest(r io.Reader) (Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var m Manifest
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case lineNo == 1:
			m.Description = strings.TrimSpace(line)
		case lineNo == 2:
			m.Version = strings.TrimSpace(line)
		case lineNo == 4:
			m.KernelModules = strings.Fields(line)
		case lineNo <= manifestHeaderLines:
		default:
			if strings.TrimSpace(line) == "" {
				return m, nil // an empty line ends the entries
			}
			e, err := parseManifestEntry(line)
			if err != nil {
				return Manifest{}, fmt.Errorf(".manifest line %d: %w", lineNo, err)
			}
			m.Entries = append(m.Entries, e)
		}
	}
	if err := sc.Err(); err != nil {
		return Manifest{}, fmt.Errorf("read .manifest: %w", err)
	}
	if lineNo < manifestHeaderLines {
		return Manifest{}, fmt.Errorf(".manifest has %d lines, fewer than its %d-line header: the package is damaged, download it again", lineNo, manifestHeaderLines)
	}
	return m, nil
}

func parseManifestEntry(line string) (ManifestEntry, error) {
	tok := strings.Fields(line)
	if len(tok) < 3 {
		return ManifestEntry{}, fmt.Errorf("want <file> <perms> <TYPE> ..., got %q", line)
	}
	perms, err := strconv.ParseUint(tok[1], 8, 32)
	if err != nil || perms > 07777 {
		return ManifestEntry{}, fmt.Errorf("permissions %q of %s are not octal like 0755", tok[1], tok[0])
	}
	e := ManifestEntry{Path: tok[0], Perms: fileMode(uint32(perms)), Type: tok[2]}
	var positional []string
	for _, t := range tok[3:] {
		switch {
		case t == "NATIVE" || t == "COMPAT32":
			e.Arch = t
		case strings.HasPrefix(t, "MODULE:"):
			e.Module = strings.TrimPrefix(t, "MODULE:")
		case strings.HasPrefix(t, "INHERIT_PATH_DEPTH:"):
			depth, err := strconv.Atoi(strings.TrimPrefix(t, "INHERIT_PATH_DEPTH:"))
			if err != nil || depth < 0 {
				return ManifestEntry{}, fmt.Errorf("%s of %s is not a depth", t, tok[0])
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
	e.Group = ComponentOf(e.Type, e.Module, e.Path)
	return e, nil
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
