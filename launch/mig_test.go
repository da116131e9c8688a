package launch_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/launch"
)

// withStandinSMI puts testdata/bin (a stand-in nvidia-smi) first on PATH.
func withStandinSMI(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestSelectMIGByUUID(t *testing.T) {
	h := hosttest.Read(t, testenv.HostFixture(t, "mig-535.183.01"))
	withStandinSMI(t)
	cases := []struct {
		selector string
		want     string // MIG names, or the error's words
		bad      bool
	}{
		{"MIG-11111111-2222-5333-8444-555555555501", "0:1", false},
		{"mig-11111111-2222-5333-8444-555555555502,0:2", "0:2", false},
		{"MIG-11111111-2222-5333-8444-555555555500,MIG-11111111-2222-5333-8444-555555555502", "0:0 0:2", false},
		// The R450 form names GPU, GI and CI itself: no nvidia-smi needed.
		{"MIG-GPU-9f7e6d5c-4b3a-2918-0706-a5b4c3d2e1f0/2/0", "0:2", false},
		{"MIG-GPU-9f7e6d5c-4b3a-2918-0706-a5b4c3d2e1f0/3/0", "no MIG device MIG-GPU-9f7e6d5c-4b3a-2918-0706-a5b4c3d2e1f0/3/0", true},
		{"MIG-99999999-2222-5333-8444-555555555500", "nvidia-smi -L lists MIG-11111111-2222-5333-8444-555555555500", true},
	}
	for _, c := range cases {
		sel, err := launch.Select(h, c.selector)
		if c.bad {
			if err == nil || !errors.Is(err, launch.ErrSelector) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error saying %q", c.selector, err, c.want)
			}
			continue
		}
		var names []string
		for _, m := range sel.MIG {
			names = append(names, m.Name())
		}
		if err != nil || strings.Join(names, " ") != c.want {
			t.Errorf("%s = %v, %v; want %s", c.selector, names, err, c.want)
		}
	}
}

// Without nvidia-smi, a MIG UUID is refused with the <gpu>:<mig> form.
func TestSelectMIGByUUIDWithoutNvidiaSMI(t *testing.T) {
	h := hosttest.Read(t, testenv.HostFixture(t, "mig-535.183.01"))
	t.Setenv("PATH", t.TempDir())
	_, err := launch.Select(h, "MIG-11111111-2222-5333-8444-555555555501")
	for _, s := range []string{"nvidia-smi not found on PATH", "<gpu>:<mig>", "0:1=gpu0/gi1/ci1"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("%v; want an error saying %q", err, s)
		}
	}
}
