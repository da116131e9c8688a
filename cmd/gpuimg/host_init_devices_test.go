package main

import (
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/internal/testenv"
)

// Bad --imex-channels values are refused before anything is read or made;
// a good one reaches the plan (a dry run on the IMEX fixture).
func TestInitDevicesIMEXChannelsFlag(t *testing.T) {
	root := testenv.HostFixture(t, "hgx-imex-570.124.06")
	for _, c := range []struct {
		value, says string
	}{
		{"all", "name the channels to make"},
		{"0,,1", "use channel numbers such as 0,1"},
		{"-1", "use channel numbers such as 0,1"},
		{"channel0", "use channel numbers such as 0,1"},
		{"4096", "the driver offers channels 0-2047"},
	} {
		out, stderr, code := gpuimg(t, nil, "host", "init-devices", "--root", root, "--dry-run", "--imex-channels", c.value)
		if code == 0 || out != "" || !strings.Contains(stderr, c.says) {
			t.Errorf("--imex-channels %q: exit %d, stdout %q, stderr %q; want an error saying %q", c.value, code, out, stderr, c.says)
		}
	}
	out, stderr, code := gpuimg(t, nil, "host", "init-devices", "--root", root, "--dry-run", "--imex-channels", "5")
	if code != 0 || !strings.Contains(out, "mknod -m 0666 /dev/nvidia-caps-imex-channels/channel5 c 242 5") {
		t.Errorf("--imex-channels 5: exit %d\n%s%s", code, out, stderr)
	}
	script, _, code := gpuimg(t, nil, "host", "init-devices", "--print-script", "--imex-channels", "0,3")
	if code != 0 || !strings.Contains(script, `node /dev/nvidia-caps-imex-channels/channel3 "$imex" 3 666 0:0`) || !strings.Contains(script, "--imex-channels 0,3") {
		t.Errorf("--print-script --imex-channels 0,3: exit %d\n%s", code, script)
	}
}
