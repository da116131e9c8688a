package launch_test

import (
	"testing"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
)

// Any selector either resolves to GPUs and MIG devices of this host or is
// rejected with ErrSelector; it never panics.
func FuzzSelect(f *testing.F) {
	for _, seed := range []string{"all", "0,2", "7", "GPU-00000003-1111-2222-3333-444444444443", "0000:3a:00.0", "3a:00.0", "0:1", "MIG-x", ",", "0,,1", "-1", "99999999999999999999"} {
		f.Add(seed)
	}
	h := hosttest.Read(f, testenv.HostFixture(f, "mig-535.183.01"))
	f.Fuzz(func(t *testing.T, selector string) {
		sel, err := launch.Select(h, selector)
		if err != nil {
			return
		}
		for _, g := range sel.GPUs {
			if g.Index < 0 || g.Index >= len(h.GPUs) || h.GPUs[g.Index] != g {
				t.Fatalf("%q selected a GPU the host does not have: %+v", selector, g)
			}
		}
		if len(sel.GPUs)+len(sel.MIG) == 0 {
			t.Fatalf("%q selected nothing without an error", selector)
		}
	})
}
