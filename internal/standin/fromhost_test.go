package standin

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
)

// tinyELF is an ELF header alone: enough for debug/elf to read the class
// and machine (a 32-bit x86 library, the GPU's RISC-V firmware).
func tinyELF(class elfClass, machine uint16) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = byte(class), 1, 1
	binary.LittleEndian.PutUint16(b[16:], 3) // ET_DYN
	binary.LittleEndian.PutUint16(b[18:], machine)
	binary.LittleEndian.PutUint32(b[20:], 1)
	if class == elfClass32 {
		binary.LittleEndian.PutUint16(b[40:], 52)
	} else {
		binary.LittleEndian.PutUint16(b[52:], 64)
	}
	return b
}

type elfClass byte

const (
	elfClass32 elfClass = 1
	elfClass64 elfClass = 2
)

// fakeHost lays out a driver directory like a GPU host's /usr/local/nvidia
// from a generated package's real ELF files: lib64/ with the libraries and
// their SONAME links, bin/nvidia-smi, share/ with the Vulkan ICD, the GSP
// firmware (RISC-V ELF), a 32-bit libcuda of the same name under lib32/
// (searched first by name order), and a file NVIDIA's package does not have.
// libglvnd, the X modules and everything else are not there.
func fakeHost(t *testing.T) string {
	t.Helper()
	run := cachedPackage(t, Options{Version: "580.159.04", NoCompat32: true})
	host := t.TempDir()
	tr, _ := payloadReader(t, run)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(h.Name)
		var dir string
		switch {
		case strings.HasPrefix(name, "libGL.") || strings.HasPrefix(name, "libEGL.") || strings.HasPrefix(name, "libnvidia-egl-"):
			continue // libglvnd and the EGL platform libraries: not on the host
		case h.Typeflag == '0' && strings.HasPrefix(name, "lib") && strings.Contains(name, ".so"):
			dir = "lib64"
		case name == "nvidia-smi":
			dir = "bin"
		case name == "nvidia_icd.json":
			dir = "share/vulkan/icd.d"
		default:
			continue
		}
		writeFile(t, filepath.Join(host, dir, name), mustReadAll(t, tr))
	}
	writeFile(t, filepath.Join(host, "firmware/nvidia/580.159.04/gsp_ga10x.bin"), tinyELF(elfClass64, 243)) // EM_RISCV
	writeFile(t, filepath.Join(host, "lib32/libcuda.so.580.159.04"), tinyELF(elfClass32, 3))                // EM_386
	writeFile(t, filepath.Join(host, "version"), []byte("580.159.04\n"))
	return host
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustReadAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateFromHost(t *testing.T) {
	host := fakeHost(t)
	installer := []byte("#!/bin/sh\necho NVIDIA's installer would run here\n")
	installerPath := filepath.Join(t.TempDir(), "nvidia-installer")
	writeFile(t, installerPath, installer)
	out := t.TempDir()
	run, report, err := GenerateFromHost(out, HostOptions{Version: "580.159.04", Installer: installerPath, Search: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(run) != "NVIDIA-Linux-x86_64-580.159.04-no-compat32.run" {
		t.Errorf("package name %s", filepath.Base(run))
	}

	// The manifest, as gpuimg reads it by the 580 type table.
	m, err := drivers.ReadManifest(run)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "580.159.04" || m.Arch != "x86_64" || len(m.Warnings) > 0 {
		t.Errorf("manifest header: version %q arch %q warnings %q", m.Version, m.Arch, m.Warnings)
	}
	entries := map[string]drivers.ManifestEntry{}
	for _, e := range m.Entries {
		entries[e.Path] = e
	}
	for path, typ := range map[string]string{
		"libcuda.so.580.159.04":      "CUDA_LIB",
		"libcuda.so.1":               "CUDA_SYMLINK",
		"libGLX_nvidia.so.0":         "OPENGL_SYMLINK",
		"libGLX_indirect.so.0":       "OPENGL_SYMLINK",
		"nvidia-smi":                 "UTILITY_BINARY",
		"nvidia_icd.json":            "VULKAN_ICD_JSON",
		"firmware/gsp_ga10x.bin":     "FIRMWARE",
		"nvidia-installer":           "INSTALLER_BINARY",
		"libnvidia-ml.so.1":          "UTILITY_LIB_SYMLINK",
		"libnvidia-ml.so.580.159.04": "UTILITY_LIB",
	} {
		if e, ok := entries[path]; !ok || e.Type != typ {
			t.Errorf("manifest entry %s: got %+v, want type %s", path, e, typ)
		}
	}
	// Left out with what they need: no libglvnd, so none of its links either.
	for _, path := range []string{"libGL.so.1.7.0", "libGL.so.1", "libEGL.so.1", "nvidia_drv.so", "firmware/gsp_tu10x.bin", "README.txt", "mkprecompiled"} {
		if _, ok := entries[path]; ok {
			t.Errorf("manifest lists %s, which the host does not have", path)
		}
	}
	missing := map[string]bool{}
	for _, f := range report.Missing {
		missing[f.File] = true
	}
	for _, f := range []string{"libGL.so.1.7.0", "libGL.so.1", "libEGL.so.1.1.0", "nvidia_drv.so", "firmware/gsp_tu10x.bin"} {
		if !missing[f] {
			t.Errorf("report does not list %s as missing: %+v", f, report.Missing)
		}
	}
	wantUnpackaged := []string{filepath.Join(host, "lib32/libcuda.so.580.159.04"), filepath.Join(host, "version")}
	if strings.Join(report.Unpackaged, "\n") != strings.Join(wantUnpackaged, "\n") {
		t.Errorf("unpackaged: got %q, want %q", report.Unpackaged, wantUnpackaged)
	}
	if len(report.SONAMEMismatches) > 0 {
		t.Errorf("SONAME mismatches: %q", report.SONAMEMismatches)
	}

	// Payload: the host's bytes (the 64-bit libcuda, not lib32's), NVIDIA's installer.
	want := map[string][]byte{
		"libcuda.so.580.159.04":  readFile(t, filepath.Join(host, "lib64/libcuda.so.580.159.04")),
		"nvidia-smi":             readFile(t, filepath.Join(host, "bin/nvidia-smi")),
		"firmware/gsp_ga10x.bin": readFile(t, filepath.Join(host, "firmware/nvidia/580.159.04/gsp_ga10x.bin")),
		"nvidia-installer":       installer,
	}
	tr, _ := payloadReader(t, run)
	seen := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "NVIDIA-Linux-x86_64-580.159.04/")
		if w, ok := want[name]; ok {
			seen++
			if got := mustReadAll(t, tr); !bytes.Equal(got, w) {
				t.Errorf("payload %s: %d bytes differ from the host's %d", name, len(got), len(w))
			}
		}
		if name == "mkprecompiled" || strings.HasPrefix(name, "kernel") {
			t.Errorf("payload has %s, which is not the host's", name)
		}
	}
	if seen != len(want) {
		t.Errorf("payload holds %d of the %d host files checked", seen, len(want))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, ".fromhost-*")); len(leftovers) > 0 {
		t.Errorf("work files left behind: %q", leftovers)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateFromHostRefusals(t *testing.T) {
	installer := filepath.Join(t.TempDir(), "nvidia-installer")
	writeFile(t, installer, []byte("#!/bin/sh\n"))
	host := t.TempDir()
	for name, tc := range map[string]struct {
		opts HostOptions
		want string
	}{
		"no installer":      {HostOptions{Version: "580.159.04", Search: []string{host}}, "no nvidia-installer given"},
		"no search":         {HostOptions{Version: "580.159.04", Installer: installer}, "pass the driver's root"},
		"bad version":       {HostOptions{Version: "580.x", Installer: installer, Search: []string{host}}, "is not a driver version"},
		"missing directory": {HostOptions{Version: "580.159.04", Installer: installer, Search: []string{filepath.Join(host, "nope")}}, "pass a directory that holds the driver's files"},
		"missing installer": {HostOptions{Version: "580.159.04", Installer: filepath.Join(host, "none"), Search: []string{host}}, "read the installer to ship"},
	} {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			_, _, err := GenerateFromHost(out, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if left, _ := os.ReadDir(out); len(left) > 0 {
				t.Errorf("left %d entries in the output directory", len(left))
			}
		})
	}
}
