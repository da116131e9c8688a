package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// `gpuimg host` and `gpuimg host --json` on every fixture.
func TestHostReportGolden(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(testenv.RepoRoot(t), "testdata", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "/usr/bin:/bin") // runtimes are looked up under the fixture root: none there
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			root := testenv.HostFixture(t, e.Name())
			text, js := renderHost(t, hosttest.Read(t, root))
			testenv.Golden(t, "host/"+e.Name()+".txt", root, text)
			testenv.Golden(t, "host/"+e.Name()+".json", root, js)
		})
	}
}

// hostRoot copies a fixture, with its node list, to a scratch root the test
// can add files to (read it with hosttest.Read).
func hostRoot(t *testing.T, fixture string) string {
	t.Helper()
	src := testenv.HostFixture(t, fixture)
	root := hosttest.ScratchRoot(t, src, false)
	data, err := os.ReadFile(filepath.Join(src, hosttest.DevNodesList))
	if err != nil {
		t.Fatal(err)
	}
	hosttest.WriteFile(t, root, hosttest.DevNodesList, data)
	return root
}

// `gpuimg host` text and JSON for a pending upgrade, an unreadable module
// and a kernel without one.
func TestHostReportPendingUpgradeGolden(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	const kernel = "6.1.0-18-amd64"
	withKernel := func() string {
		root := hostRoot(t, "8gpu-550.127.05")
		hosttest.WriteFile(t, root, "/proc/sys/kernel/osrelease", []byte(kernel+"\n"))
		return root
	}
	pending, unreadable, missing := withKernel(), withKernel(), withKernel()
	hosttest.WriteModule(t, pending, "/lib/modules/"+kernel+"/updates/dkms/nvidia.ko.zst", "550.144.03")
	hosttest.WriteFile(t, unreadable, "/lib/modules/"+kernel+"/updates/dkms/nvidia.ko.xz", []byte("not xz"))
	for name, root := range map[string]string{"upgrade-pending": pending, "module-unreadable": unreadable, "module-missing": missing} {
		t.Run(name, func(t *testing.T) {
			h := hosttest.Read(t, root)
			text, js := renderHost(t, h)
			warnings := "--- warnings\n" + strings.Join(h.Warnings, "\n") + "\n"
			testenv.Golden(t, "host/"+name+".txt", root, text+warnings)
			testenv.Golden(t, "host/"+name+".json", root, js)
		})
	}
}

// renderHost is `gpuimg host` and `gpuimg host --json` for h.
func renderHost(t *testing.T, h host.Host) (text, js string) {
	t.Helper()
	var tb, jb bytes.Buffer
	if err := writeHostReport(&tb, h); err != nil {
		t.Fatal(err)
	}
	if err := writeHostJSON(&jb, h); err != nil {
		t.Fatal(err)
	}
	return tb.String(), jb.String()
}
