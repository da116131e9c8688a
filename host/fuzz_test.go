package host_test

import (
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
)

func FuzzParseProcVersion(f *testing.F) {
	f.Add("NVRM version: NVIDIA UNIX x86_64 Kernel Module  595.58.03  Tue Mar 17 19:54:55 UTC 2026\n")
	f.Add("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \n")
	f.Add("Kernel Module")
	f.Fuzz(func(t *testing.T, text string) {
		v, module, ok := host.ParseProcVersion(text)
		if ok && (v == "" || (module != "open" && module != "proprietary")) {
			t.Fatalf("%q → %q %q", text, v, module)
		}
	})
}

func FuzzNormalizeBusID(f *testing.F) {
	for _, s := range []string{"0000:00:06.0", "3b:00.0", "0:6:0.0", "x", "::", "0:0:0."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := host.NormalizeBusID(s)
		if n != "" && host.NormalizeBusID(n) != n {
			t.Fatalf("%q → %q is not a fixed point", s, n)
		}
	})
}

// Whatever nvidia-smi prints, the parser returns GPUs with MIG devices or an
// error, never a MIG device without its GPU or a panic.
func FuzzParseNvidiaSMIList(f *testing.F) {
	f.Add("GPU 0: NVIDIA A100 (UUID: GPU-1)\n  MIG 1g.5gb Device 0: (UUID: MIG-2)\n")
	f.Add("No devices found.\n")
	f.Add("  MIG 1g.5gb Device 0: (UUID: MIG-2)\n")
	f.Fuzz(func(t *testing.T, text string) {
		gpus, err := host.ParseNvidiaSMIList(text)
		if err != nil {
			return
		}
		for _, g := range gpus {
			if !strings.HasPrefix(g.UUID, "GPU-") {
				t.Fatalf("%q: GPU UUID %q", text, g.UUID)
			}
			for _, m := range g.MIG {
				if !strings.HasPrefix(m.UUID, "MIG-") || m.Device < 0 {
					t.Fatalf("%q: MIG %+v", text, m)
				}
			}
		}
	})
}
