package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMkrealrunWritesPackageAndReport(t *testing.T) {
	host := t.TempDir()
	for name, data := range map[string]string{
		"lib64/libcuda.so.580.159.04":             "real libcuda bytes",
		"bin/nvidia-smi":                          "real nvidia-smi bytes",
		"share/glvnd/egl_vendor.d/10_nvidia.json": `{"ICD": {"library_path": "libEGL_nvidia.so.0"}}`,
		"version": "580.159.04\n",
	} {
		full := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	installer := filepath.Join(t.TempDir(), "nvidia-installer")
	if err := os.WriteFile(installer, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, report := t.TempDir(), filepath.Join(t.TempDir(), "files.tsv")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-version", "580.159.04", "-installer", installer, "-search", host, "-o", out, "-report", report}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := filepath.Join(out, "NVIDIA-Linux-x86_64-580.159.04-no-compat32.run") + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	tsv, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"libcuda.so.580.159.04\tCUDA_LIB\t" + filepath.Join(host, "lib64/libcuda.so.580.159.04"),
		"nvidia-smi\tUTILITY_BINARY\t" + filepath.Join(host, "bin/nvidia-smi"),
		"10_nvidia.json\tGLVND_EGL_ICD_JSON\t" + filepath.Join(host, "share/glvnd/egl_vendor.d/10_nvidia.json"),
		"libGL.so.1.7.0\tGLX_CLIENT_LIB\tmissing",
		"libnvidia-ml.so.580.159.04\tUTILITY_LIB\tmissing",
		"-\t-\tnot packaged: " + filepath.Join(host, "version"),
	} {
		if !strings.Contains(string(tsv), line+"\n") {
			t.Errorf("report lacks %q:\n%s", line, tsv)
		}
	}
	for _, want := range []string{"3 files from the host", "missing on the host: libGL.so.1.7.0 (GLX_CLIENT_LIB)", "not packaged (no manifest entry): " + filepath.Join(host, "version")} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestMkrealrunUsage(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"no output":      {[]string{"-version", "580.159.04"}, 2, "pass -o DIR"},
		"stray argument": {[]string{"-o", t.TempDir(), "extra"}, 2, "unexpected arguments"},
		"no installer":   {[]string{"-version", "580.159.04", "-search", t.TempDir(), "-o", t.TempDir()}, 1, "no nvidia-installer given"},
		"unknown flag":   {[]string{"-bogus"}, 2, "flag provided but not defined"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) || stdout.Len() > 0 {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tc.code, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}
