package host_test

import (
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/templates"
)

func TestTemplatesGolden(t *testing.T) {
	data := templates.InitDevices{LoadModules: true, Gpuimg: "/usr/local/bin/gpuimg", IMEXChannels: []int{0, 1}, IMEXArg: "0,1"}
	for _, name := range []string{"init-devices.sh.tmpl", "nvidia-devices.service.tmpl"} {
		out, err := templates.Render(name, data)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Golden(t, strings.TrimSuffix(name, ".tmpl"), "\x00", out)
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
