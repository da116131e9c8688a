package host_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

func TestParseNvidiaSMIList(t *testing.T) {
	real, err := os.ReadFile(filepath.Join(testenv.HostFixture(t, "h200-580.159.04"), "nvidia-smi-L.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, text string
		want       []host.SMIGPU
		bad        bool
	}{
		{"real H200", string(real), []host.SMIGPU{{Index: 0, Model: "NVIDIA H200", UUID: "GPU-d804f6e6-68f7-18bd-cf74-9138264a912a"}}, false},
		{"MIG R535", "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n  MIG 3g.20gb     Device  1: (UUID: MIG-a28ad590-3fda-56dd-84fc-0a0b96edc58d)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-6d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n",
			[]host.SMIGPU{
				{Index: 0, Model: "NVIDIA A100-SXM4-40GB", UUID: "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77", MIG: []host.SMIMIG{
					{Profile: "1g.5gb", Device: 0, UUID: "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"},
					{Profile: "3g.20gb", Device: 1, UUID: "MIG-a28ad590-3fda-56dd-84fc-0a0b96edc58d"}}},
				{Index: 1, Model: "NVIDIA A100-SXM4-40GB", UUID: "GPU-6d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"},
			}, false},
		{"MIG R450", "GPU 0: A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n  MIG 1g.5gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0)\n",
			[]host.SMIGPU{{Index: 0, Model: "A100-SXM4-40GB", UUID: "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77", MIG: []host.SMIMIG{
				{Profile: "1g.5gb", Device: 0, UUID: "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0"}}}}, false},
		{"no GPUs", "No devices found.\n", nil, false},
		{"NVML error", "Failed to initialize NVML: Driver/library version mismatch\n", nil, false},
		{"MIG first", "  MIG 1g.5gb Device 0: (UUID: MIG-x)\n", nil, true},
		{"huge index", "GPU 99999999999999999999: X (UUID: GPU-1)\n", nil, true},
	}
	for _, c := range cases {
		got, err := host.ParseNvidiaSMIList(c.text)
		if (err != nil) != c.bad || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v (error: %v)", c.name, got, err, c.want, c.bad)
		}
	}
}
