package host_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

func TestParseIMEXChannels(t *testing.T) {
	cases := []struct {
		in   string
		all  bool
		want []int
		bad  bool
	}{
		{"", false, nil, false},
		{"all", true, nil, false},
		{"ALL", true, nil, false},
		{"0", false, []int{0}, false},
		{"0,1", false, []int{0, 1}, false},
		{" 3 , 1,3 ", false, []int{3, 1}, false},
		{"1048575", false, []int{1048575}, false},
		{"1048576", false, nil, true},
		{"-1", false, nil, true},
		{"+1", false, nil, true},
		{"01", false, nil, true},
		{"0,,1", false, nil, true},
		{"0,", false, nil, true},
		{"channel0", false, nil, true},
		{"0x1", false, nil, true},
		{"all,0", false, nil, true},
		{"1 2", false, nil, true},
		{"99999999999999999999", false, nil, true},
	}
	for _, c := range cases {
		all, got, err := host.ParseIMEXChannels(c.in)
		if c.bad {
			if err == nil || !errors.Is(err, host.ErrIMEXChannel) || !strings.Contains(err.Error(), "--imex-channels") {
				t.Errorf("%q: %v %v %v, want an --imex-channels error", c.in, all, got, err)
			}
			continue
		}
		if err != nil || all != c.all || !slices.Equal(got, c.want) {
			t.Errorf("%q = %v %v %v, want %v %v", c.in, all, got, err, c.all, c.want)
		}
	}
}

func FuzzParseIMEXChannels(f *testing.F) {
	for _, s := range []string{"all", "0,1", "", "-1", "01", "1048575", ",", "0,,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		all, chans, err := host.ParseIMEXChannels(s)
		if err != nil {
			if !errors.Is(err, host.ErrIMEXChannel) {
				t.Fatalf("%q: error %v is not ErrIMEXChannel", s, err)
			}
			return
		}
		if all && len(chans) > 0 {
			t.Fatalf("%q: all and a list", s)
		}
		seen := map[int]bool{}
		for _, c := range chans {
			if c < 0 || c > 1<<20-1 || seen[c] {
				t.Fatalf("%q → %v: out of range or repeated", s, chans)
			}
			seen[c] = true
		}
	})
}

func TestIMEXChannelNodes(t *testing.T) {
	h := read(t, testenv.HostFixture(t, "hgx-imex-570.124.06"))
	if got := h.IMEXChannels(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("channels %v, want 0,1", got)
	}
	nodes, err := h.IMEXChannelNodes(true, nil)
	if err != nil || len(nodes) != 2 || nodes[1].Path != "/dev/nvidia-caps-imex-channels/channel1" || nodes[1].Major != 242 || nodes[1].Minor != 1 {
		t.Fatalf("all: %+v %v", nodes, err)
	}
	for _, c := range []struct {
		host     host.Host
		channels []int
		says     string
	}{
		{h, []int{2}, "IMEX channel 2 does not exist (no /dev/nvidia-caps-imex-channels/channel2"},
		{h, []int{2}, "sudo gpuimg host init-devices --imex-channels 2"},
		{h, []int{2048}, "the driver offers channels 0-2047"},
		{read(t, testenv.HostFixture(t, "8gpu-550.127.05")), []int{0}, "no nvidia-caps-imex-channels line"},
	} {
		if _, err := c.host.IMEXChannelNodes(false, c.channels); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want an error saying %q", c.channels, err, c.says)
		}
	}
	if _, err := read(t, testenv.HostFixture(t, "h200-580.159.04")).IMEXChannelNodes(true, nil); err == nil || !strings.Contains(err.Error(), "init-devices --imex-channels 0") {
		t.Errorf("all on a host without channel nodes: %v", err)
	}
}

// init-devices --imex-channels makes the channel node with the major from
// /proc/devices and its /dev/char link, once.
func TestInitDevicesMakesIMEXChannels(t *testing.T) {
	testenv.RequireRoot(t)
	root := hosttest.ScratchRoot(t, testenv.HostFixture(t, "hgx-imex-570.124.06"), true)
	actions, err := host.InitDevices(host.InitOptions{Root: root, IMEXChannels: []int{1, 5}})
	if err != nil {
		t.Fatal(err)
	}
	tree := strings.Join(devTree(t, root), "\n")
	for _, want := range []string{
		"/dev/nvidia-caps-imex-channels/channel5 c 242:5 0666 0:0",
		"/dev/char/242:5 -> ../nvidia-caps-imex-channels/channel5",
	} {
		if !strings.Contains(tree, want) {
			t.Errorf("after %v the tree lacks %q:\n%s", actions, want, tree)
		}
	}
	if len(actions) != 2 {
		t.Errorf("actions %v: channel 1 existed, want only channel 5's node and link", actions)
	}
	if again, err := host.InitDevices(host.InitOptions{Root: root, IMEXChannels: []int{1, 5}}); err != nil || len(again) != 0 {
		t.Errorf("second run: %v %v, want nothing to do", again, err)
	}
	if _, err := host.InitDevices(host.InitOptions{Root: root, IMEXChannels: []int{4096}}); err == nil || !strings.Contains(err.Error(), "0-2047") {
		t.Errorf("channel 4096: %v", err)
	}
	if _, err := host.InitDevices(host.InitOptions{Root: hosttest.ScratchRoot(t, testenv.HostFixture(t, "8gpu-550.127.05"), true), IMEXChannels: []int{0}}); err == nil || !strings.Contains(err.Error(), "no nvidia-caps-imex-channels") {
		t.Errorf("host without IMEX: %v", err)
	}
}
