package drivers

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

const manifest39048 = `NVIDIA Accelerated Graphics Driver for Linux-x86_64
390.48
x86_64
nvidia nvidia-uvm nvidia-modeset nvidia-drm
./kernel/
./kernel/precompiled/
./kernel-open/
./kernel-open/precompiled/
libcuda.so.390.48 0755 CUDA_LIB NATIVE / MODULE:gpgpu
libcuda.so.1 0000 CUDA_SYMLINK NATIVE / libcuda.so.390.48 MODULE:gpgpu
./32/libcuda.so.390.48 0755 CUDA_LIB COMPAT32 / MODULE:gpgpu
nvidia-smi 0755 UTILITY_BINARY MODULE:nvml
kernel/nvidia/nv.c 0644 KERNEL_MODULE_SRC INHERIT_PATH_DEPTH:1 MODULE:resman
libnvidia-tls.so.390.48 0644 TLS_LIB NATIVE CLASSIC / MODULE:opengl
libGLX_nvidia.so.0 0000 GLX_CLIENT_SYMLINK NATIVE / libGLX_nvidia.so.390.48 GLVND MODULE:opengl
nvidia-modprobe 4755 NVIDIA_MODPROBE MODULE:installer
libvdpau_nvidia.so.390.48 0644 VDPAU_LIB NATIVE vdpau/ MODULE:vdpau
nvidia-uninstall 0000 UTILITY_BIN_SYMLINK nvidia-installer MODULE:installer
libfuture.so.390.48 0755 QUANTUM_LIB NATIVE / extra tokens MODULE:gpgpu
nvidia.icd 0644 CUDA_ICD MODULE:gpgpu
libnvidia-fbc.so.390.48 0755 OPENGL_LIB NATIVE / MODULE:opengl
`

func TestParseManifest39048(t *testing.T) {
	m, err := ParseManifest(strings.NewReader(manifest39048))
	if err != nil {
		t.Fatal(err)
	}
	if m.Description != "NVIDIA Accelerated Graphics Driver for Linux-x86_64" || m.Version != "390.48" ||
		!reflect.DeepEqual(m.KernelModules, []string{"nvidia", "nvidia-uvm", "nvidia-modeset", "nvidia-drm"}) {
		t.Errorf("header = %q %q %q", m.Description, m.Version, m.KernelModules)
	}
	if len(m.Entries) != 13 {
		t.Fatalf("%d entries, want 13 (the list ends at the empty line)", len(m.Entries))
	}
	want := []ManifestEntry{
		{Path: "libcuda.so.390.48", Perms: 0o755, Type: "CUDA_LIB", Arch: "NATIVE", DestPath: "/", Module: "gpgpu", Group: ComponentCompute},
		{Path: "libcuda.so.1", Perms: 0, Type: "CUDA_SYMLINK", Arch: "NATIVE", DestPath: "/", SymlinkTarget: "libcuda.so.390.48", Module: "gpgpu", Group: ComponentCompute},
		{Path: "./32/libcuda.so.390.48", Perms: 0o755, Type: "CUDA_LIB", Arch: "COMPAT32", DestPath: "/", Module: "gpgpu", Group: ComponentCompute},
		{Path: "nvidia-smi", Perms: 0o755, Type: "UTILITY_BINARY", Module: "nvml", Group: ComponentUtility},
		{Path: "kernel/nvidia/nv.c", Perms: 0o644, Type: "KERNEL_MODULE_SRC", InheritDepth: 1, Module: "resman", Group: ComponentKernelOnly},
		{Path: "libnvidia-tls.so.390.48", Perms: 0o644, Type: "TLS_LIB", Arch: "NATIVE", DestPath: "/", Flags: []string{"CLASSIC"}, Module: "opengl", Group: ComponentGraphics},
		{Path: "libGLX_nvidia.so.0", Type: "GLX_CLIENT_SYMLINK", Arch: "NATIVE", DestPath: "/", SymlinkTarget: "libGLX_nvidia.so.390.48", Flags: []string{"GLVND"}, Module: "opengl", Group: ComponentGraphics},
		{Path: "nvidia-modprobe", Perms: 0o755 | fs.ModeSetuid, Type: "NVIDIA_MODPROBE", Module: "installer", Group: ComponentHostOnly},
		{Path: "libvdpau_nvidia.so.390.48", Perms: 0o644, Type: "VDPAU_LIB", Arch: "NATIVE", DestPath: "vdpau/", Module: "vdpau", Group: ComponentVideo},
		{Path: "nvidia-uninstall", Type: "UTILITY_BIN_SYMLINK", SymlinkTarget: "nvidia-installer", Module: "installer", Group: ComponentOther},
		{Path: "libfuture.so.390.48", Perms: 0o755, Type: "QUANTUM_LIB", Arch: "NATIVE", DestPath: "/", Flags: []string{"extra", "tokens"}, Module: "gpgpu", Group: ComponentCompute},
		{Path: "nvidia.icd", Perms: 0o644, Type: "CUDA_ICD", Module: "gpgpu", Group: ComponentCompute},
		{Path: "libnvidia-fbc.so.390.48", Perms: 0o755, Type: "OPENGL_LIB", Arch: "NATIVE", DestPath: "/", Module: "opengl", Group: ComponentGraphics},
	}
	for i := range want {
		if !reflect.DeepEqual(m.Entries[i], want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, m.Entries[i], want[i])
		}
	}
	if !m.Entries[1].IsSymlink() || m.Entries[0].IsSymlink() {
		t.Errorf("IsSymlink wrong")
	}
}

func TestParseManifestErrors(t *testing.T) {
	header := "d\n1.2\nx86_64\nnvidia\n5\n6\n7\n8\n"
	for name, tc := range map[string]struct{ text, reason string }{
		"short header": {"d\n1.2\n", "fewer than its 8-line header"},
		"two tokens":   {header + "libcuda.so 0755\n", "line 9"},
		"bad perms":    {header + "libcuda.so 0x755 CUDA_LIB\n", "not octal"},
		"big perms":    {header + "libcuda.so 77777 CUDA_LIB\n", "not octal"},
		"bad depth":    {header + "a 0644 KERNEL_MODULE_SRC INHERIT_PATH_DEPTH:x\n", "not a depth"},
	} {
		_, err := ParseManifest(strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.reason)
		}
	}
}

func TestComponentOf(t *testing.T) {
	for _, tc := range []struct {
		typ, module, file string
		want              Component
	}{
		{"UTILITY_LIB", "nvml", "libnvidia-ml.so.580.159.04", ComponentUtility},
		{"UTILITY_LIB", "", "libnvidia-cfg.so.580.159.04", ComponentUtility},
		{"UTILITY_BINARY", "nvpd", "nvidia-persistenced", ComponentUtility},
		{"UTILITY_BINARY", "gpgpu", "nvidia-cuda-mps-control", ComponentCompute},
		{"OPENCL_LIB", "gpgpu", "./32/libnvidia-opencl.so.580.159.04", ComponentCompute},
		{"UTILITY_LIB", "", "libnvidia-nvvm.so.4", ComponentCompute},
		{"ENCODEAPI_LIB", "encodeapi", "libnvidia-encode.so.1", ComponentVideo},
		{"NVCUVID_LIB_SYMLINK", "nvcuvid", "libnvcuvid.so", ComponentVideo},
		{"OPENGL_LIB", "opengl", "libnvidia-rtcore.so.580.159.04", ComponentGraphics},
		{"GLVND_LIB", "opengl", "libGLdispatch.so.0", ComponentGraphics},
		{"GLVND_EGL_ICD_JSON", "egl", "10_nvidia.json", ComponentGraphics},
		{"VULKAN_ICD_JSON", "opengl", "nvidia_icd.json", ComponentGraphics},
		{"XMODULE_SHARED_LIB", "xdriver", "nvidia_drv.so", ComponentDisplay},
		{"GLX_MODULE_SHARED_LIB", "opengl", "libglxserver_nvidia.so.580.159.04", ComponentDisplay},
		{"UTILITY_LIB", "", "libnvidia-ngx.so.580.159.04", ComponentNGX},
		{"DKMS_CONF", "resman", "dkms.conf", ComponentKernelOnly},
		{"INSTALLER_BINARY", "installer", "mkprecompiled", ComponentOther},
		{"EXPLICIT_PATH", "", "kernel-open/nvidia/nv.c", ComponentKernelOnly},
		{"FIRMWARE", "resman", "firmware/gsp_tu10x.bin", ComponentHostOnly},
		{"SYSTEMD_UNIT", "nvpd", "systemd/system/nvidia-suspend.service", ComponentHostOnly},
		{"DOCUMENTATION", "", "README.txt", ComponentOther},
		{"MYSTERY", "", "mystery.bin", ComponentOther},
		{"MYSTERY", "vdpau", "mystery.bin", ComponentVideo},
	} {
		if got := ComponentOf(tc.typ, tc.module, tc.file); got != tc.want {
			t.Errorf("ComponentOf(%s, %s, %s) = %s, want %s", tc.typ, tc.module, tc.file, got, tc.want)
		}
	}
	if _, err := ParseComponent("compute"); err != nil {
		t.Error(err)
	}
	if _, err := ParseComponent("gpu"); err == nil || !strings.Contains(err.Error(), "utility") {
		t.Errorf("ParseComponent(gpu) = %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(manifest39048)
	f.Add("d\nv\n0\nnvidia\n\n\n\n\nlib 0755 T NATIVE / target MODULE:m\n")
	f.Add("d\nv\n0\n\n\n\n\n\nx 9999 T\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := ParseManifest(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, e := range m.Entries {
			if e.Path == "" || e.Type == "" || e.Group == "" || e.InheritDepth < 0 {
				t.Fatalf("accepted an incomplete entry %+v", e)
			}
			if e.Perms&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Fatalf("perms %v carry unexpected bits", e.Perms)
			}
			if _, err := ParseComponent(string(e.Group)); err != nil {
				t.Fatalf("entry got group %q outside Components", e.Group)
			}
		}
	})
}

// From 450 on, entries are read as NVIDIA's installer of the release reads
// them: exactly the tokens each type takes, whatever they say.
func TestParseManifestByTypeTable(t *testing.T) {
	header := "NVIDIA Accelerated Graphics Driver for Linux-x86_64\n580.119.02\nx86_64\nnvidia nvidia-uvm\n5\n6\n7\n8\n"
	m, err := ParseManifest(strings.NewReader(header +
		"libEGL_nvidia.so.0 0000 OPENGL_SYMLINK NATIVE / libEGL_nvidia.so.580.119.02 MODULE:egl\n" +
		"nvidia-modprobe 4755 NVIDIA_MODPROBE MODULE:installer\n" +
		"libfuture.so.1 0755 QUANTUM_LIB NATIVE / MODULE:gpgpu\n" +
		"libcuda.so.580.119.02 0755 CUDA_LIB NATIVE / MODULE:gpgpu\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.TypeTable != "580.119.02" || m.Arch != "x86_64" {
		t.Errorf("type table %q, arch %q", m.TypeTable, m.Arch)
	}
	// OPENGL_SYMLINK takes no path: the "/" is its target, as NVIDIA's installer reads it.
	if e := m.Entries[0]; e.SymlinkTarget != "/" || e.DestPath != "" || !reflect.DeepEqual(e.Flags, []string{"libEGL_nvidia.so.580.119.02"}) {
		t.Errorf("OPENGL_SYMLINK entry = %+v, want target / and the intended target left over", e)
	}
	if e := m.Entries[1]; e.DestPath != "MODULE:installer" {
		t.Errorf("NVIDIA_MODPROBE entry = %+v, want MODULE:installer read as its path", e)
	}
	if e := m.Entries[3]; e.DestPath != "/" || e.Arch != "NATIVE" || e.Module != "gpgpu" {
		t.Errorf("CUDA_LIB entry = %+v", e)
	}
	warnings := strings.Join(m.Warnings, "\n")
	for _, want := range []string{`line 10: nvidia-modprobe NVIDIA_MODPROBE takes a path before MODULE:, and nvidia-installer 580.119.02 reads "MODULE:installer" as it`,
		"line 11: type QUANTUM_LIB is unknown to nvidia-installer 580.119.02"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}

	// A type without the token it takes is the installer's "Invalid .manifest file".
	_, err = ParseManifest(strings.NewReader(strings.Replace(header, "580.119.02", "450.102.04", 1) + "libcuda.so.1 0000 CUDA_SYMLINK NATIVE /\n"))
	if err == nil || !strings.Contains(err.Error(), "line 9: libcuda.so.1 CUDA_SYMLINK takes a symlink target") || !strings.Contains(err.Error(), "nvidia-installer 450.102.04 rejects") {
		t.Errorf("missing target: err = %v", err)
	}
}

// The installer skips empty lines everywhere, so an empty header line moves
// the header down over the first entries, and an empty line 3 leaves the
// kernel-module line where the architecture belongs.
func TestParseManifestSkipsEmptyLinesLikeTheInstaller(t *testing.T) {
	text := "d\n580.119.02\n\nnvidia\n./kernel/\n\n./kernel/precompiled/\n./kernel-open/\n./kernel-open/precompiled/\n" +
		"first.so 0755 CUDA_LIB NATIVE / MODULE:gpgpu\n\nsecond.so 0755 CUDA_LIB NATIVE / MODULE:gpgpu\n"
	m, err := ParseManifest(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != "nvidia" || len(m.Entries) != 1 || m.Entries[0].Path != "second.so" {
		t.Errorf("arch %q, entries %+v: want the module line as line 3 and first.so eaten by the header", m.Arch, m.Entries)
	}
	if w := strings.Join(m.Warnings, "\n"); !strings.Contains(w, `header line 3 reads "nvidia" where the architecture`) {
		t.Errorf("warnings = %q", w)
	}
}
