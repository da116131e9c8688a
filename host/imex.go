package host

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrIMEXChannel is wrapped by every bad or unavailable IMEX channel.
var ErrIMEXChannel = errors.New("bad IMEX channel")

// maxMinor is the largest minor a Linux character device can have (20 bits).
const maxMinor = 1<<20 - 1

// ParseIMEXChannels reads an --imex-channels value: "all", or a comma list
// of channel numbers ("0,1"). Numbers are plain decimals (no sign, no
// spaces inside) within the minor range; duplicates collapse, order is kept.
// "" means none.
func ParseIMEXChannels(s string) (all bool, channels []int, err error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return false, nil, nil
	case strings.EqualFold(s, "all"):
		return true, nil, nil
	}
	seen := map[int]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		n, err := strconv.Atoi(item)
		if err != nil || item == "" || item[0] == '+' || item[0] == '-' || n > maxMinor || (len(item) > 1 && item[0] == '0') {
			return false, nil, fmt.Errorf("%w: %q in --imex-channels %q: use channel numbers such as 0,1 (or all)", ErrIMEXChannel, item, s)
		}
		if !seen[n] {
			seen[n] = true
			channels = append(channels, n)
		}
	}
	return false, channels, nil
}

// IMEXChannelNodes returns the nodes of the chosen channels ("all": every
// channel whose node exists), refusing a channel that does not exist, with
// the command that makes it.
func (h Host) IMEXChannelNodes(all bool, channels []int) ([]Node, error) {
	if !all && len(channels) == 0 {
		return nil, nil
	}
	if h.Majors.ImexChannels == 0 {
		return nil, fmt.Errorf("%w: %s has no nvidia-caps-imex-channels line: the loaded driver offers no IMEX channels (R550 or newer with IMEX; see `gpuimg doctor`)", ErrIMEXChannel, procDevicesPath)
	}
	if all {
		channels = h.IMEXChannels()
		if len(channels) == 0 {
			return nil, fmt.Errorf("%w: --imex-channels all: no channel node exists in %s: make one with `sudo gpuimg host init-devices --imex-channels 0`", ErrIMEXChannel, IMEXChannelDir)
		}
	}
	var nodes []Node
	for _, c := range channels {
		if err := h.checkChannelNumber(c); err != nil {
			return nil, err
		}
		n, ok := h.Node(IMEXChannelPath(c))
		if ok && n.Mismatch {
			return nil, fmt.Errorf("%w: %s under %s is %s, not the channel's %d:%d: replace it with `sudo gpuimg host init-devices --imex-channels %d`",
				ErrIMEXChannel, IMEXChannelPath(c), h.Root, n.Found, n.Major, n.Minor, c)
		}
		if !ok || !n.Exists {
			return nil, fmt.Errorf("%w: IMEX channel %d does not exist (no %s under %s; channels made: %s): make it with `sudo gpuimg host init-devices --imex-channels %d`",
				ErrIMEXChannel, c, IMEXChannelPath(c), h.Root, orNone(h.IMEXChannels()), c)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// checkChannelNumber refuses a channel beyond the driver's ImexChannelCount.
func (h Host) checkChannelNumber(c int) error {
	if count := h.Params.ImexChannelCount; count > 0 && c >= count {
		return fmt.Errorf("%w: IMEX channel %d does not exist: the driver offers channels 0-%d (ImexChannelCount in %s)", ErrIMEXChannel, c, count-1, procParamsPath)
	}
	return nil
}

func orNone(nums []int) string {
	if len(nums) == 0 {
		return "none"
	}
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// planIMEXChannels lists the actions that make the chosen channels' nodes
// (0666 root, like the driver's own channel0) and their /dev/char links.
func planIMEXChannels(h Host, channels []int) ([]Action, error) {
	if len(channels) == 0 {
		return nil, nil
	}
	if h.Majors.ImexChannels == 0 {
		return nil, fmt.Errorf("%w: %s has no nvidia-caps-imex-channels line, so the channels' major is unknown: the loaded driver offers no IMEX channels", ErrIMEXChannel, procDevicesPath)
	}
	var actions []Action
	for _, c := range channels {
		if err := h.checkChannelNumber(c); err != nil {
			return nil, err
		}
		if _, ok := h.Node(IMEXChannelPath(c)); ok {
			continue // present: PlanInitDevices already handles its link
		}
		n := Node{Path: IMEXChannelPath(c), Major: h.Majors.ImexChannels, Minor: c}
		actions = append(actions,
			Action{Kind: ActionMknod, Path: n.Path, Major: n.Major, Minor: n.Minor, Mode: 0o666},
			Action{Kind: ActionSymlink, Path: n.CharLinkPath(), Target: "../nvidia-caps-imex-channels/" + fmt.Sprintf("channel%d", c)},
		)
	}
	return actions, nil
}
