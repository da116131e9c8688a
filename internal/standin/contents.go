package standin

import (
	_ "embed"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
)

// The real driver userspace this package imitates: names, sizes, SONAMEs and
// symlinks of NVIDIA 580.159.04 as installed on a GPU host (a copy of
// ../shared/data/nvidia-580.159.04-userspace.tsv, so the generator needs no
// checkout beside the repository).
//
//go:embed userspace-580.159.04.tsv
var userspaceTSV string

const tsvVersion = "580.159.04"

// contentKind says how the generator produces a file's bytes.
type contentKind int

const (
	kindSharedLib contentKind = iota // ELF shared object built with gcc
	kindProgram                      // ELF executable built with gcc
	kindText                         // literal bytes (JSON, scripts, docs)
	kindBlob                         // seeded pseudo-random bytes (firmware, kernel blobs)
	kindSymlink                      // manifest-only: the installer creates it
	kindInstaller                    // the nvidia-installer script
)

// entry is one file of the package tree and, when manifest is true, one line
// of .manifest.
type entry struct {
	file      string // relative to the package root ("32/libcuda.so.<v>")
	perms     string // octal, as the manifest writes it ("0755", "0000", "04755")
	fileType  string // manifest TYPE
	arch      string // NATIVE, COMPAT32 or "" (types without an arch)
	pathToken string // for types with a path: "vdpau/", "man1/", "/usr/bin/"; "" is "/" (or INHERIT_PATH_DEPTH:1)
	target    string // symlink target
	module    string // MODULE: group
	manifest  bool   // listed in .manifest (installer plumbing is not)

	kind    contentKind
	soname  string // shared libraries
	flavor  string // which C source: "cuda", "nvml", "smi", "plain"
	text    []byte // kindText
	size    int64  // realistic size in bytes (0: whatever the content is)
	compat  bool   // 32-bit build
	symlink bool   // a symlink in the tar (nvidia-uninstall)
}

// line renders the manifest line as nvidia-installer reads it: after the
// type, exactly the optional tokens the release's table says the type takes
// (install-from-cwd.c parse_manifest), then MODULE:, which it ignores:
// <file> <perms> <TYPE> [NATIVE|COMPAT32] [path | INHERIT_PATH_DEPTH:n] [symlink-target] MODULE:<group>
func (e entry) line(caps manifesttypes.Caps) string {
	tokens := []string{e.file, e.perms, e.fileType}
	if caps.HasArch {
		tokens = append(tokens, e.arch)
	}
	switch {
	case caps.HasPath:
		tokens = append(tokens, orDefault(e.pathToken, "/"))
	case caps.InheritPath:
		tokens = append(tokens, orDefault(e.pathToken, "INHERIT_PATH_DEPTH:1"))
	}
	if caps.IsSymlink {
		tokens = append(tokens, e.target)
	}
	if e.module != "" {
		tokens = append(tokens, "MODULE:"+e.module)
	}
	return strings.Join(tokens, " ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// libInfo is how the real manifest files one library.
type libInfo struct {
	fileType  string
	module    string
	pathToken string
	flavor    string
	compat32  bool // a 32-bit copy ships under 32/
}

// userspaceLibs maps a library's base name (before ".so") to its manifest
// type and MODULE. Component groups follow REFERENCE 3.4 (lnc nvc_info.c).
var userspaceLibs = map[string]libInfo{
	"libcuda":                   {"CUDA_LIB", "gpgpu", "", "cuda", true},
	"libcudadebugger":           {"CUDA_LIB", "gpgpu", "", "plain", false},
	"libnvidia-ptxjitcompiler":  {"CUDA_LIB", "gpgpu", "", "plain", true},
	"libnvidia-nvvm":            {"CUDA_LIB", "gpgpu", "", "plain", false},
	"libnvidia-gpucomp":         {"CUDA_LIB", "gpgpu", "", "plain", true},
	"libnvidia-allocator":       {"CUDA_LIB", "gpgpu", "", "plain", true},
	"libnvidia-pkcs11-openssl3": {"CUDA_LIB", "gpgpu", "", "plain", false},
	"libnvidia-opencl":          {"OPENCL_LIB", "opencl", "", "plain", true},
	"libnvidia-ml":              {"UTILITY_LIB", "nvml", "", "nvml", true},
	"libnvidia-cfg":             {"UTILITY_LIB", "nvcfg", "", "plain", false},
	"libnvcuvid":                {"NVCUVID_LIB", "nvcuvid", "", "plain", true},
	"libnvidia-encode":          {"ENCODEAPI_LIB", "encodeapi", "", "plain", true},
	"libnvidia-opticalflow":     {"NVCUVID_LIB", "opticalflow", "", "plain", true},
	"libvdpau_nvidia":           {"VDPAU_LIB", "vdpau", "vdpau/", "plain", true},
	"libnvidia-fbc":             {"OPENGL_LIB", "nvfbc", "", "plain", true},
	// The GLX/EGL vendor libraries are OPENGL_LIB; GLX_CLIENT_* and
	// EGL_CLIENT_* are libglvnd's client libraries (libGL, libEGL, libGLES*),
	// which the installer skips with libglvnd (files.c check_libglvnd_files).
	"libEGL_nvidia":       {"OPENGL_LIB", "egl", "", "plain", true},
	"libGLESv1_CM_nvidia": {"OPENGL_LIB", "egl", "", "plain", true},
	"libGLESv2_nvidia":    {"OPENGL_LIB", "egl", "", "plain", true},
	"libGLX_nvidia":       {"OPENGL_LIB", "opengl", "", "plain", true},
	"libnvidia-eglcore":   {"OPENGL_LIB", "egl", "", "plain", true},
	"libnvidia-glcore":    {"OPENGL_LIB", "opengl", "", "plain", true},
	"libnvidia-glsi":      {"OPENGL_LIB", "opengl", "", "plain", true},
	"libnvidia-tls":       {"OPENGL_LIB", "opengl", "", "plain", true},
	"libnvidia-glvkspirv": {"OPENGL_LIB", "opengl", "", "plain", true},
	"libnvidia-rtcore":    {"OPENGL_LIB", "opengl", "", "plain", false},
	"libnvoptix":          {"OPENGL_LIB", "optix", "", "plain", false},
}

// userspaceBinaries maps the TSV's programs to their MODULE.
var userspaceBinaries = map[string]string{
	"nvidia-smi":              "nvml",
	"nvidia-debugdump":        "nvml",
	"nvidia-persistenced":     "nvpd",
	"nvidia-cuda-mps-control": "gpgpu",
	"nvidia-cuda-mps-server":  "gpgpu",
}

// symlinkType is the manifest type of a library type's symlink twin
// (installer manifest.c).
func symlinkType(libType string) string {
	switch libType {
	case "CUDA_LIB":
		return "CUDA_SYMLINK"
	case "OPENGL_LIB":
		return "OPENGL_SYMLINK"
	case "VDPAU_LIB":
		return "VDPAU_SYMLINK"
	case "GLVND_LIB":
		return "GLVND_SYMLINK"
	case "OPENCL_WRAPPER_LIB":
		return "OPENCL_WRAPPER_SYMLINK"
	case "GLX_MODULE_SHARED_LIB":
		return "GLX_MODULE_SYMLINK"
	case "GLX_CLIENT_LIB":
		return "GLX_CLIENT_SYMLINK"
	case "EGL_CLIENT_LIB":
		return "EGL_CLIENT_SYMLINK"
	default: // UTILITY_LIB, OPENCL_LIB, NVCUVID_LIB, ENCODEAPI_LIB, ...
		return libType + "_SYMLINK"
	}
}

// driverPackage is the whole stand-in: options and the tree's entries.
type driverPackage struct {
	opts    Options
	entries []entry
	tools   toolchain // builds the ELF files for opts.Arch
}

// newPackage lists the package's files for opts (already normalized).
func newPackage(opts Options) (*driverPackage, error) {
	p := &driverPackage{opts: opts}
	v := opts.Version
	if err := p.addUserspace(); err != nil {
		return nil, err
	}
	p.addGLVND()
	p.addDataFiles()
	p.addXModules()
	p.addHostOnly()
	p.addKernelSources()
	p.addDocs()
	if opts.hasCompat32() {
		p.addCompat32()
	}
	p.entries = append(p.entries,
		entry{file: "nvidia-installer", perms: "0755", fileType: "INSTALLER_BINARY", module: "installer", manifest: true, kind: kindInstaller},
		entry{file: "nvidia-uninstall", kind: kindText, symlink: true, target: "nvidia-installer"},
		entry{file: "nvidia-uninstall", perms: "0000", fileType: "UTILITY_BIN_SYMLINK", target: "nvidia-installer", module: "installer", manifest: true, kind: kindSymlink},
		entry{file: "makeself.sh", kind: kindText, text: []byte(makeselfScript)},
		entry{file: "libglvnd_install_checker/check-libglvnd-install.sh", perms: "0755", kind: kindText, text: []byte(libglvndChecker)},
		entry{file: "makeself-help-script.sh", kind: kindText, text: []byte("#!/bin/sh\n# makeself help text for the NVIDIA stand-in package\necho \"Run 'sh <package>.run --help' for the options.\"\n")},
		entry{file: "mkprecompiled", kind: kindProgram, flavor: "program"},
		entry{file: "pkg-history.txt", kind: kindText, text: []byte("Package history for NVIDIA-Linux-" + opts.Arch + "-" + v + "\n\n" + v + ": stand-in package generated by gpuimg internal/standin (no NVIDIA code)\n")},
	)
	return p, nil
}

// forVersion replaces the TSV's version with the package's.
func (p *driverPackage) forVersion(s string) string {
	return strings.ReplaceAll(s, tsvVersion, p.opts.Version)
}

// addUserspace adds every library and program of the real driver's TSV.
func (p *driverPackage) addUserspace() error {
	for _, row := range strings.Split(userspaceTSV, "\n") {
		if row == "" || strings.HasPrefix(row, "#") || strings.HasPrefix(row, "path\t") {
			continue
		}
		cols := strings.Split(row, "\t")
		if len(cols) != 4 {
			return fmt.Errorf("stand-in driver: embedded userspace TSV: row %q does not have 4 columns: fix userspace-%s.tsv", row, tsvVersion)
		}
		name := p.forVersion(path.Base(cols[0]))
		size, err := strconv.ParseInt(cols[1], 10, 64)
		if err != nil {
			return fmt.Errorf("stand-in driver: embedded userspace TSV: size of %s: %w", cols[0], err)
		}
		if strings.HasPrefix(cols[0], "bin/") {
			flavor := "program"
			if name == "nvidia-smi" {
				flavor = "smi"
			}
			p.entries = append(p.entries, entry{file: name, perms: "0755", fileType: "UTILITY_BINARY",
				module: userspaceBinaries[name], manifest: true, kind: kindProgram, flavor: flavor, size: size})
			continue
		}
		base, _, _ := strings.Cut(name, ".so")
		info, ok := userspaceLibs[base]
		if !ok {
			return fmt.Errorf("stand-in driver: embedded userspace TSV: library %s has no manifest type: add it to userspaceLibs", name)
		}
		arch := "NATIVE"
		if strings.HasPrefix(cols[2], "-> ") {
			p.entries = append(p.entries, entry{file: name, perms: "0000", fileType: symlinkType(info.fileType),
				arch: arch, pathToken: info.pathToken, target: p.forVersion(strings.TrimPrefix(cols[2], "-> ")),
				module: info.module, manifest: true, kind: kindSymlink})
			continue
		}
		p.entries = append(p.entries, entry{file: name, perms: "0755", fileType: info.fileType, arch: arch,
			pathToken: info.pathToken, module: info.module, manifest: true, kind: kindSharedLib,
			soname: p.forVersion(cols[2]), flavor: info.flavor, size: size})
	}
	return nil
}

// addGLVND adds NVIDIA's copies of libglvnd, which the installer installs
// only when the system lacks them, and the OpenCL ICD loader.
func (p *driverPackage) addGLVND() {
	glvnd := []struct{ file, soname, fileType, symlinkType string }{
		{"libGL.so.1.7.0", "libGL.so.1", "GLX_CLIENT_LIB", "GLX_CLIENT_SYMLINK"},
		{"libGLX.so.0", "libGLX.so.0", "GLVND_LIB", "GLVND_SYMLINK"},
		{"libGLdispatch.so.0", "libGLdispatch.so.0", "GLVND_LIB", "GLVND_SYMLINK"},
		{"libOpenGL.so.0", "libOpenGL.so.0", "GLVND_LIB", "GLVND_SYMLINK"},
		{"libEGL.so.1.1.0", "libEGL.so.1", "EGL_CLIENT_LIB", "EGL_CLIENT_SYMLINK"},
		{"libGLESv1_CM.so.1.2.0", "libGLESv1_CM.so.1", "EGL_CLIENT_LIB", "EGL_CLIENT_SYMLINK"},
		{"libGLESv2.so.2.1.0", "libGLESv2.so.2", "EGL_CLIENT_LIB", "EGL_CLIENT_SYMLINK"},
	}
	for _, l := range glvnd {
		p.entries = append(p.entries, entry{file: l.file, perms: "0755", fileType: l.fileType, arch: "NATIVE",
			module: "glvnd", manifest: true, kind: kindSharedLib, soname: l.soname, flavor: "plain"})
		if l.soname != l.file {
			p.addSymlink(l.symlinkType, "NATIVE", l.soname, l.file, "glvnd")
		}
		if dev := l.soname[:strings.Index(l.soname, ".so")+3]; dev != l.soname {
			p.addSymlink(l.symlinkType, "NATIVE", dev, l.soname, "glvnd")
		}
	}
	p.addSymlink("OPENGL_SYMLINK", "NATIVE", "libGLX_indirect.so.0", "libGLX_nvidia.so."+p.opts.Version, "opengl")

	p.entries = append(p.entries, entry{file: "libOpenCL.so.1.0.0", perms: "0755", fileType: "OPENCL_WRAPPER_LIB", arch: "NATIVE",
		module: "opencl", manifest: true, kind: kindSharedLib, soname: "libOpenCL.so.1", flavor: "plain"})
	p.addSymlink("OPENCL_WRAPPER_SYMLINK", "NATIVE", "libOpenCL.so.1", "libOpenCL.so.1.0.0", "opencl")
	p.addSymlink("OPENCL_WRAPPER_SYMLINK", "NATIVE", "libOpenCL.so", "libOpenCL.so.1", "opencl")

	for _, l := range []struct{ file, soname, json string }{
		{"libnvidia-egl-wayland.so.1.1.19", "libnvidia-egl-wayland.so.1", "10_nvidia_wayland.json"},
		{"libnvidia-egl-gbm.so.1.1.2", "libnvidia-egl-gbm.so.1", "15_nvidia_gbm.json"},
	} {
		p.entries = append(p.entries, entry{file: l.file, perms: "0755", fileType: "OPENGL_LIB", arch: "NATIVE",
			module: "egl", manifest: true, kind: kindSharedLib, soname: l.soname, flavor: "plain"})
		p.addSymlink("OPENGL_SYMLINK", "NATIVE", l.soname, l.file, "egl")
		platform := `{
    "file_format_version" : "1.0.0",
    "ICD" : {
        "library_path" : "` + l.soname + `"
    }
}
`
		p.entries = append(p.entries, entry{file: l.json, perms: "0644", fileType: "EGL_EXTERNAL_PLATFORM_JSON",
			module: "egl", manifest: true, kind: kindText, text: []byte(platform)})
	}
	// DLSS for Wine/Proton (the NGX DLLs) ships only in x86_64 packages.
	if versionAtLeast(p.opts.Version, "470.42.01") && p.opts.Arch == "x86_64" {
		for _, dll := range []string{"nvngx.dll", "_nvngx.dll"} {
			p.entries = append(p.entries, entry{file: dll, perms: "0644", fileType: "WINE_LIB", arch: "NATIVE",
				module: "ngx", manifest: true, kind: kindBlob, size: 4096})
		}
	}
}

func (p *driverPackage) addSymlink(fileType, arch, name, target, module string) {
	p.entries = append(p.entries, entry{file: name, perms: "0000", fileType: fileType, arch: arch,
		target: target, module: module, manifest: true, kind: kindSymlink})
}

// addDataFiles adds the ICD and vendor JSON files.
func (p *driverPackage) addDataFiles() {
	vulkan := `{
    "file_format_version" : "1.0.1",
    "ICD": {
        "library_path": "libGLX_nvidia.so.0",
        "api_version" : "1.4.312"
    }
}
`
	egl := `{
    "file_format_version" : "1.0.0",
    "ICD" : {
        "library_path" : "libEGL_nvidia.so.0"
    }
}
`
	p.entries = append(p.entries,
		entry{file: "nvidia.icd", perms: "0644", fileType: "CUDA_ICD", module: "opencl", manifest: true, kind: kindText, text: []byte("libnvidia-opencl.so.1\n")},
		entry{file: "nvidia_icd.json", perms: "0644", fileType: "VULKAN_ICD_JSON", pathToken: "icd.d/", module: "vulkan", manifest: true, kind: kindText, text: []byte(vulkan)},
		entry{file: "10_nvidia.json", perms: "0644", fileType: "GLVND_EGL_ICD_JSON", module: "egl", manifest: true, kind: kindText, text: []byte(egl)},
	)
}

// addXModules adds the X.Org driver and GLX server module (display group).
func (p *driverPackage) addXModules() {
	v := p.opts.Version
	p.entries = append(p.entries,
		entry{file: "nvidia_drv.so", perms: "0755", fileType: "XMODULE_SHARED_LIB", pathToken: "drivers/", module: "xdriver", manifest: true,
			kind: kindSharedLib, soname: "nvidia_drv.so", flavor: "plain"},
		entry{file: "libglxserver_nvidia.so." + v, perms: "0755", fileType: "GLX_MODULE_SHARED_LIB", pathToken: "extensions/", module: "xdriver",
			manifest: true, kind: kindSharedLib, soname: "libglxserver_nvidia.so." + v, flavor: "plain"},
		entry{file: "libglxserver_nvidia.so", perms: "0000", fileType: "GLX_MODULE_SYMLINK", pathToken: "extensions/", target: "libglxserver_nvidia.so." + v,
			module: "xdriver", manifest: true, kind: kindSymlink},
		entry{file: "nvidia-drm-outputclass.conf", perms: "0644", fileType: "XORG_OUTPUTCLASS_CONFIG", module: "xdriver", manifest: true, kind: kindText,
			text: []byte("Section \"OutputClass\"\n    Identifier \"nvidia\"\n    MatchDriver \"nvidia-drm\"\n    Driver \"nvidia\"\n    ModulePath \"/usr/lib/nvidia/xorg\"\nEndSection\n")},
	)
}

// addHostOnly adds what only a GPU host uses: nvidia-modprobe, GSP firmware,
// systemd power-management units.
func (p *driverPackage) addHostOnly() {
	v := p.opts.Version
	p.entries = append(p.entries,
		entry{file: "nvidia-modprobe", perms: "04755", fileType: "NVIDIA_MODPROBE", pathToken: "/usr/bin/", module: "installer", manifest: true, kind: kindProgram, flavor: "program"},
		entry{file: "nvidia-modprobe.1.gz", perms: "0644", fileType: "NVIDIA_MODPROBE_MANPAGE", pathToken: "man1/", module: "installer", manifest: true,
			kind: kindText, text: manPage("nvidia-modprobe", v)},
	)
	if versionAtLeast(v, "465.19.01") {
		for _, fw := range []string{"gsp_ga10x.bin", "gsp_tu10x.bin"} {
			p.entries = append(p.entries, entry{file: "firmware/" + fw, perms: "0644", fileType: "FIRMWARE", pathToken: "INHERIT_PATH_DEPTH:1",
				module: "resman", manifest: true, kind: kindBlob, size: 64 << 10})
		}
	}
	if versionAtLeast(v, "430.09") {
		for _, unit := range []string{"nvidia-suspend", "nvidia-hibernate", "nvidia-resume"} {
			p.entries = append(p.entries, entry{file: "systemd/system/" + unit + ".service", perms: "0644", fileType: "SYSTEMD_UNIT",
				module: "powermanagement", manifest: true, kind: kindText,
				text: []byte("[Unit]\nDescription=NVIDIA system " + strings.TrimPrefix(unit, "nvidia-") + " actions\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/nvidia-sleep.sh \"" + strings.TrimPrefix(unit, "nvidia-") + "\"\n")})
		}
		p.entries = append(p.entries,
			entry{file: "systemd/nvidia-sleep.sh", perms: "0755", fileType: "SYSTEMD_SLEEP_SCRIPT", module: "powermanagement", manifest: true,
				kind: kindText, text: []byte("#!/bin/sh\n# NVIDIA suspend/resume helper (stand-in)\nexit 0\n")},
			entry{file: "systemd/system-sleep/nvidia", perms: "0755", fileType: "SYSTEMD_SLEEP_SCRIPT", module: "powermanagement", manifest: true,
				kind: kindText, text: []byte("#!/bin/sh\n# systemd-sleep hook (stand-in)\nexit 0\n")},
		)
	}
}

// kernelModules are the module names on manifest header line 4.
func (p *driverPackage) kernelModules() []string {
	mods := []string{"nvidia", "nvidia-uvm", "nvidia-modeset", "nvidia-drm"}
	if versionAtLeast(p.opts.Version, "470.42.01") {
		mods = append(mods, "nvidia-peermem")
	}
	return mods
}

// addKernelSources adds a few files of kernel/ (and kernel-open/ from R515):
// enough for the manifest's KERNEL_MODULE_SRC entries to be real files.
func (p *driverPackage) addKernelSources() {
	trees := []string{"kernel"}
	if versionAtLeast(p.opts.Version, "515.43.04") {
		trees = append(trees, "kernel-open")
	}
	modules := map[string]string{"nvidia": "resman", "nvidia-uvm": "uvm", "nvidia-modeset": "nvkms", "nvidia-drm": "drm", "nvidia-peermem": "peermem"}
	for _, tree := range trees {
		add := func(file, module string, kind contentKind, text string) {
			p.entries = append(p.entries, entry{file: tree + "/" + file, perms: "0644", fileType: "KERNEL_MODULE_SRC",
				pathToken: "INHERIT_PATH_DEPTH:1", module: module, manifest: true, kind: kind, text: []byte(text), size: 16 << 10})
		}
		add("Makefile", "resman", kindText, "# Kbuild entry point for the NVIDIA kernel modules (stand-in; builds nothing)\nall:\n\t@echo 'stand-in package: no kernel module sources'; exit 1\n")
		add("conftest.sh", "resman", kindText, "#!/bin/sh\n# kernel feature probes (stand-in)\nexit 0\n")
		for _, mod := range p.kernelModules() {
			add(mod+"/"+mod+".Kbuild", modules[mod], kindText, "# "+mod+" Kbuild (stand-in)\nobj-m += "+mod+".o\n")
			add(mod+"/"+strings.TrimPrefix(mod, "nvidia-")+"-linux.c", modules[mod], kindText, "/* "+mod+" entry points (stand-in, no code) */\n")
		}
		add("nvidia/nv-kernel.o_binary", "resman", kindBlob, "")
	}
}

// addDocs adds documentation and man pages.
func (p *driverPackage) addDocs() {
	v := p.opts.Version
	docs := map[string]string{
		"README.txt":       "NVIDIA Accelerated Linux Graphics Driver README and Installation Guide\n\nVersion " + v + " (stand-in package generated by gpuimg; it contains no NVIDIA code).\n",
		"NVIDIA_Changelog": "Release " + v + " (stand-in)\n  * generated for tests\n",
		"LICENSE":          "This stand-in package is test data generated by gpuimg's internal/standin; it contains no NVIDIA software.\n",
	}
	for _, name := range []string{"README.txt", "NVIDIA_Changelog", "LICENSE"} {
		p.entries = append(p.entries, entry{file: name, perms: "0644", fileType: "DOCUMENTATION", pathToken: "NVIDIA_GLX-1.0/", module: "installer", manifest: true, kind: kindText, text: []byte(docs[name])})
	}
	for _, page := range []struct{ name, module string }{
		{"nvidia-installer", "installer"}, {"nvidia-smi", "nvml"}, {"nvidia-persistenced", "nvpd"}, {"nvidia-cuda-mps-control", "gpgpu"},
	} {
		p.entries = append(p.entries, entry{file: page.name + ".1.gz", perms: "0644", fileType: "MANPAGE", pathToken: "man1/", module: page.module,
			manifest: true, kind: kindText, text: manPage(page.name, v)})
	}
}

// addCompat32 adds 32-bit copies of the GL/CUDA libraries and their
// symlinks under 32/.
func (p *driverPackage) addCompat32() {
	var compat []entry
	for _, e := range p.entries {
		if e.arch != "NATIVE" {
			continue
		}
		base := e.file
		if i := strings.Index(base, ".so"); i > 0 {
			base = base[:i]
		}
		info, known := userspaceLibs[base]
		if (known && !info.compat32) || (!known && e.module != "glvnd") {
			continue
		}
		c := e
		c.file = "32/" + e.file
		c.arch = "COMPAT32"
		c.compat = true
		c.size = 0 // 32-bit copies stay small in every scale
		compat = append(compat, c)
	}
	p.entries = append(p.entries, compat...)
}

// libglvndChecker is the package's libglvnd_install_checker script, which
// the installer runs to decide whether to install NVIDIA's libglvnd (files.c
// run_libglvnd_script): exit 0 installed, 1 not installed, 2 partial (with a
// "Missing libglvnd libraries:" line). NVIDIA's asks a small program that
// dlopens the libraries; this one asks the linker cache.
const libglvndChecker = `#!/bin/sh
cache=$(ldconfig -p 2>/dev/null)
found= missing=
for lib in libGLdispatch.so.0 libGLX.so.0 libOpenGL.so.0 libEGL.so.1 libGLESv2.so.2 libGLESv1_CM.so.1 libGL.so.1; do
    case "$cache" in
    *"	$lib "*) found="$found $lib" ;;
    *) missing="$missing $lib" ;;
    esac
done
if [ -z "$found" ]; then
    echo "libglvnd is not installed."
    exit 1
elif [ -z "$missing" ]; then
    echo "libglvnd is installed."
    exit 0
fi
echo "Missing libglvnd libraries:$missing"
exit 2
`

// manPage returns a gzipped troff page (deterministic: no name, no mtime).
func manPage(name, version string) []byte {
	return mustGzip([]byte(".TH " + strings.ToUpper(name) + " 1 \"\" \"nvidia " + version + "\"\n.SH NAME\n" + name + " \\- stand-in for NVIDIA's " + name + "\n"))
}
