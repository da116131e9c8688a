package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildCommandRefusesBadInputWithTheFix(t *testing.T) {
	noBuilder := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		env     []string
		args    []string
		wantErr string
	}{
		{[]string{"SOURCE_DATE_EPOCH=yesterday"}, []string{"build", "--driver", "535.261.03"}, "SOURCE_DATE_EPOCH=\"yesterday\" is not Unix seconds"},
		{nil, []string{"build"}, "no driver given: pass --driver"},
		{nil, []string{"build", "--driver", "535.261.03", "--output", "type=docker"}, "needs dest="},
		{nil, []string{"build", "--driver", "535.261.03", "--progress", "fancy", "--addr", noBuilder}, "no BuildKit answering"},
		{nil, []string{"build", "--driver", "535.261.03", "extra"}, "unknown command"},
		{nil, []string{"build", "--driver", "535.261.03", "--base", "debian:bookworm,,ubuntu:22.04"}, "empty entry"},
		{nil, []string{"build", "--driver", "535.261.03", "--base", "debian:bookworm,ubuntu:22.04", "-t", "x:{driver}"}, "put {base} in it"},
		{nil, []string{"build", "--driver", "535.261.03", "--base", "debian:bookworm,debian:bookworm"}, "given twice"},
	} {
		_, stderr, code := gpuimg(t, tc.env, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.wantErr)
		}
	}
}

func TestBuildCommandEmitsWithoutABuilder(t *testing.T) {
	stdout, stderr, code := gpuimg(t, []string{"BUILDKIT_HOST=unix:///nonexistent"}, "build", "--driver", "535.261.03", "--emit", "dockerfile", "--cache-dir", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "FROM ubuntu:22.04") || !strings.Contains(stdout, "NVIDIA-Linux-x86_64-535.261.03.run") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
