package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gpuimg/gpuimg/host"
)

// writeHostReport prints the host view for people (`gpuimg host`).
func writeHostReport(out io.Writer, h host.Host) error {
	var buf bytes.Buffer
	for _, section := range []func(io.Writer, host.Host){writeHostDriver, writeHostGPUs, writeHostMIG, writeHostNodes, writeHostAdvice} {
		section(&buf, h)
	}
	// tabwriter pads empty last columns; drop the trailing blanks.
	lines := strings.Split(buf.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(out, strings.Join(lines, "\n"))
	return err
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func writeHostDriver(w io.Writer, h host.Host) {
	tw := newTable(w)
	fmt.Fprintf(tw, "root:\t%s\n", h.Root)
	if h.Arch != "" {
		fmt.Fprintf(tw, "architecture:\t%s\n", h.Arch)
	}
	if !h.Driver.Loaded {
		fmt.Fprintf(tw, "driver:\tnot loaded (no %s, no %s): load it with `modprobe nvidia`\n", host.SysVersionPath, host.ProcVersionPath)
	} else {
		fmt.Fprintf(tw, "driver:\t%s (%s kernel module)\n", orDash(h.Driver.Version), orDash(h.Driver.Module))
		fmt.Fprintf(tw, "  %s:\t%s\n", host.SysVersionPath, orDash(h.Driver.SysVersion))
		fmt.Fprintf(tw, "  %s:\t%s\n", host.ProcVersionPath, orDash(h.Driver.ProcVersion))
		if m := h.Driver.Installed; m != nil {
			fmt.Fprintf(tw, "  installed for kernel %s:\t%s\n", m.Kernel, installedText(m))
		}
		if h.UpgradePending() {
			fmt.Fprintf(tw, "pending upgrade:\tafter a reboot this host runs %s; build it now: gpuimg build --driver %s\n", h.Driver.PendingUpgrade, h.Driver.PendingUpgrade)
		}
	}
	majors := []string{}
	if h.Majors.Frontend != 0 {
		majors = append(majors, fmt.Sprintf("%s=%d", h.Majors.FrontendName, h.Majors.Frontend))
	}
	for _, m := range []struct {
		name  string
		major int
	}{{"nvidia-uvm", h.Majors.UVM}, {"nvidia-caps", h.Majors.Caps}, {"nvidia-caps-imex-channels", h.Majors.ImexChannels}, {"nvidia-nvswitch", h.Majors.NVSwitch}, {"nvidia-nvlink", h.Majors.NVLink}} {
		if m.major != 0 {
			majors = append(majors, fmt.Sprintf("%s=%d", m.name, m.major))
		}
	}
	fmt.Fprintf(tw, "majors (/proc/devices):\t%s\n", orDash(strings.Join(majors, " ")))
	fmt.Fprintf(tw, "device files (params):\tuid %d gid %d mode %04o\n", h.Params.DeviceFileUID, h.Params.DeviceFileGID, h.Params.DeviceFileMode)
	tw.Flush()
}

// installedText describes the module on disk for the running kernel.
func installedText(m *host.InstalledModule) string {
	switch {
	case m.Path == "":
		return "no nvidia module found (reinstall the driver for this kernel, or it will not load after a reboot)"
	case m.Error != "":
		return fmt.Sprintf("%s is unreadable: %s", m.Path, m.Error)
	}
	return fmt.Sprintf("%s (%s)", m.Version, m.Path)
}

func writeHostGPUs(w io.Writer, h host.Host) {
	fmt.Fprintf(w, "\nGPUs (index = PCI bus order; node = /dev/nvidia<minor>):\n")
	tw := newTable(w)
	fmt.Fprintf(tw, "  INDEX\tMINOR\tBUS ID\tUUID\tMODEL\n")
	for _, g := range h.GPUs {
		model := g.Model
		if g.Excluded {
			model += " (excluded)"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\n", g.Index, g.Minor, g.BusID, g.UUID, model)
	}
	if len(h.GPUs) == 0 {
		fmt.Fprintf(tw, "  none\n")
	}
	tw.Flush()
}

func writeHostMIG(w io.Writer, h host.Host) {
	if len(h.MIG) == 0 {
		return
	}
	fmt.Fprintf(w, "\nMIG devices (select as <gpu>:<mig>):\n")
	tw := newTable(w)
	fmt.Fprintf(tw, "  NAME\tGPU MINOR\tGI\tCI\tCAPS\n")
	for _, m := range h.MIG {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\tnvidia-cap%d nvidia-cap%d\n", m.Name(), m.GPUMinor, m.GI, m.CI, m.GICapMinor, m.CICapMinor)
	}
	tw.Flush()
}

func writeHostNodes(w io.Writer, h host.Host) {
	fmt.Fprintf(w, "\ndevice nodes:\n")
	tw := newTable(w)
	fmt.Fprintf(tw, "  PATH\tMAJ:MIN\tMODE\tOWNER\t/dev/char LINK\tNOTE\n")
	for _, n := range h.Nodes {
		if n.Mismatch && !n.Exists {
			fmt.Fprintf(tw, "  %s\t%s\t-\t-\t-\tWRONG: %s, not a device node\n", n.Path, majMin(n), n.Found)
			continue
		}
		if !n.Exists {
			note := "missing"
			if !neededNode(n) {
				note = "absent (needed only for display/graphics)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t-\t-\t-\t%s\n", n.Path, majMin(n), note)
			continue
		}
		link := "ok"
		if !n.CharLink {
			link = "missing"
		}
		owner := fmt.Sprintf("%d:%d", n.UID, n.GID)
		if n.Group != "" {
			owner = fmt.Sprintf("%d:%s", n.UID, n.Group)
		}
		note := n.Cap
		if n.Mismatch {
			note = "WRONG: the node is " + n.Found
		}
		fmt.Fprintf(tw, "  %s\t%s\t%04o\t%s\t%s\t%s\n", n.Path, majMin(n), n.Mode.Perm(), owner, link, note)
	}
	tw.Flush()
}

// neededNode: modeset and DRI nodes matter only for display and graphics.
func neededNode(n host.Node) bool { return n.Kind != host.KindModeset && n.Kind != host.KindDRI }

// writeHostAdvice says what is installed and what to fix, with the
// init-devices command for this --root.
func writeHostAdvice(w io.Writer, h host.Host) {
	fmt.Fprintln(w)
	if len(h.Toolkit) > 0 {
		fmt.Fprintf(w, "nvidia-container-toolkit: installed (%s): gpuimg images set NVIDIA_VISIBLE_DEVICES=void so it injects nothing\n", strings.Join(h.Toolkit, ", "))
	} else {
		fmt.Fprintf(w, "nvidia-container-toolkit: not installed\n")
	}
	runtimes := []string{}
	for _, r := range h.Runtimes {
		runtimes = append(runtimes, r.Name+" ("+r.Path+")")
	}
	fmt.Fprintf(w, "container runtimes on PATH: %s\n", orDash(strings.Join(runtimes, ", ")))
	if h.Majors.ImexChannels != 0 {
		chans := []string{}
		for _, c := range h.IMEXChannels() {
			chans = append(chans, fmt.Sprint(c))
		}
		fmt.Fprintf(w, "IMEX channels: %s made (driver offers %d; pass with flags --imex-channels, make with init-devices --imex-channels)\n",
			orDash(strings.Join(chans, ",")), h.Params.ImexChannelCount)
	}
	if h.PersistencedSocket {
		fmt.Fprintf(w, "nvidia-persistenced: running (%s; pass it with --persistenced)\n", host.PersistencedSocket)
	} else if h.Driver.Loaded {
		fmt.Fprintf(w, "nvidia-persistenced: not running (no %s)\n", host.PersistencedSocket)
	}
	var missing, wrong, noLink []string
	for _, n := range h.Nodes {
		switch {
		case n.Mismatch:
			wrong = append(wrong, n.Path)
		case !n.Exists && neededNode(n):
			missing = append(missing, n.Path)
		case n.Exists && !n.CharLink:
			noLink = append(noLink, n.CharLinkPath())
		}
	}
	fix := host.InitDevicesCommand(h.Root)
	if len(missing) > 0 {
		fmt.Fprintf(w, "missing nodes: %s: run `%s`\n", strings.Join(missing, " "), fix)
	}
	if len(wrong) > 0 {
		fmt.Fprintf(w, "wrong nodes (never passed to a container): %s: run `%s` to replace them\n", strings.Join(wrong, " "), fix)
	}
	if len(noLink) > 0 {
		fmt.Fprintf(w, "missing /dev/char links: %s: run `%s` (else `systemctl daemon-reload` revokes GPU access: \"Failed to initialize NVML: Unknown Error\")\n", strings.Join(noLink, " "), fix)
	}
}

func majMin(n host.Node) string {
	if n.Major == 0 {
		return "?:" + fmt.Sprint(n.Minor)
	}
	return fmt.Sprintf("%d:%d", n.Major, n.Minor)
}

// writeHostJSON prints the host view as indented JSON (`gpuimg host --json`),
// with empty lists rather than null.
func writeHostJSON(w io.Writer, h host.Host) error {
	if h.GPUs == nil {
		h.GPUs = []host.GPU{}
	}
	if h.Nodes == nil {
		h.Nodes = []host.Node{}
	}
	return writeJSON(w, h)
}
