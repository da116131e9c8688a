package host_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func golden(t *testing.T, name, root, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, root, "<ROOT>")
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./host -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// `gpuimg host` and `gpuimg host --json` on every fixture.
func TestReportGolden(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("..", "testdata", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "/usr/bin:/bin") // runtimes are looked up under the fixture root: none there
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			root := fixture(t, e.Name())
			h := read(t, root)
			var text, js bytes.Buffer
			if err := h.WriteReport(&text); err != nil {
				t.Fatal(err)
			}
			if err := h.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			golden(t, e.Name()+".txt", root, text.String())
			golden(t, e.Name()+".json", root, js.String())
		})
	}
}

func TestTemplatesGolden(t *testing.T) {
	data := struct {
		LoadModules bool
		Gpuimg      string
	}{true, "/usr/local/bin/gpuimg"}
	for _, name := range []string{"init-devices.sh.tmpl", "nvidia-devices.service.tmpl"} {
		out, err := templates.Render(name, data)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, strings.TrimSuffix(name, ".tmpl"), "\x00", out)
	}
}

// DRM nodes come from sysfs and are passed for graphics and video.
func TestReadDRINodes(t *testing.T) {
	root := t.TempDir()
	write(t, root, "sys/module/nvidia/version", "550.54.15\n")
	write(t, root, "proc/devices", "Character devices:\n195 nvidia\n511 nvidia-uvm\n226 drm\n")
	write(t, root, "proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: \t\t L4\nGPU UUID: \t GPU-1\nBus Location: \t 0000:01:00.0\nDevice Minor: \t 0\n")
	write(t, root, "sys/bus/pci/devices/0000:01:00.0/drm/card1/dev", "226:1\n")
	write(t, root, "sys/bus/pci/devices/0000:01:00.0/drm/renderD128/dev", "226:128\n")
	h := read(t, root)
	for path, minor := range map[string]int{"/dev/dri/card1": 1, "/dev/dri/renderD128": 128} {
		n, ok := h.Node(path)
		if !ok || n.Kind != host.KindDRI || n.Major != 226 || n.Minor != minor || n.GPUMinor != 0 {
			t.Errorf("%s = %+v", path, n)
		}
	}
}
