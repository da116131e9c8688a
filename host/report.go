package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteReport prints the host view for people (`gpuimg host`).
func (h Host) WriteReport(out io.Writer) error {
	var buf bytes.Buffer
	h.writeReport(&buf)
	// tabwriter pads empty last columns; drop the trailing blanks.
	lines := strings.Split(buf.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(out, strings.Join(lines, "\n"))
	return err
}

func (h Host) writeReport(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	p("root:\t%s\n", h.Root)
	if !h.Driver.Loaded {
		p("driver:\tnot loaded (no %s, no %s): load it with `modprobe nvidia`\n", sysVersionPath, procVersionPath)
	} else {
		p("driver:\t%s (%s kernel module)\n", orDash(h.Driver.Version), orDash(h.Driver.Module))
		p("  %s:\t%s\n", sysVersionPath, orDash(h.Driver.SysVersion))
		p("  %s:\t%s\n", procVersionPath, orDash(h.Driver.ProcVersion))
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
	p("majors (/proc/devices):\t%s\n", orDash(strings.Join(majors, " ")))
	p("device files (params):\tuid %d gid %d mode %04o\n", h.Params.DeviceFileUID, h.Params.DeviceFileGID, h.Params.DeviceFileMode)
	tw.Flush()

	fmt.Fprintf(w, "\nGPUs (index = PCI bus order; node = /dev/nvidia<minor>):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p("  INDEX\tMINOR\tBUS ID\tUUID\tMODEL\n")
	for _, g := range h.GPUs {
		model := g.Model
		if g.Excluded {
			model += " (excluded)"
		}
		p("  %d\t%d\t%s\t%s\t%s\n", g.Index, g.Minor, g.BusID, g.UUID, model)
	}
	if len(h.GPUs) == 0 {
		p("  none\n")
	}
	tw.Flush()

	if len(h.MIG) > 0 {
		fmt.Fprintf(w, "\nMIG devices (select as <gpu>:<mig>):\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		p("  NAME\tGPU MINOR\tGI\tCI\tCAPS\n")
		for _, m := range h.MIG {
			p("  %s\t%d\t%d\t%d\tnvidia-cap%d nvidia-cap%d\n", m.Name(), m.GPUMinor, m.GI, m.CI, m.GICapMinor, m.CICapMinor)
		}
		tw.Flush()
	}

	source := "stat"
	if h.NodesFromList {
		source = DevNodesList
	}
	fmt.Fprintf(w, "\ndevice nodes (from %s):\n", source)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p("  PATH\tMAJ:MIN\tMODE\tOWNER\t/dev/char LINK\tNOTE\n")
	var missing, noLink []string
	for _, n := range h.Nodes {
		link := "ok"
		if !n.CharLink {
			link = "missing"
		}
		if !n.Exists {
			note := "missing"
			if n.Kind == KindModeset || n.Kind == KindDRI {
				note = "absent (needed only for display/graphics)"
			} else {
				missing = append(missing, n.Path)
			}
			p("  %s\t%s\t-\t-\t-\t%s\n", n.Path, majMin(n), note)
			continue
		}
		if !n.CharLink {
			noLink = append(noLink, n.CharLinkPath())
		}
		owner := fmt.Sprintf("%d:%d", n.UID, n.GID)
		if n.Group != "" {
			owner = fmt.Sprintf("%d:%s", n.UID, n.Group)
		}
		note := n.Cap
		if n.Mismatch {
			note = "WRONG NUMBERS"
		}
		p("  %s\t%s\t%04o\t%s\t%s\t%s\n", n.Path, majMin(n), n.Mode.Perm(), owner, link, note)
	}
	tw.Flush()

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
	if len(missing) > 0 {
		fmt.Fprintf(w, "missing nodes: %s: run `sudo gpuimg host init-devices`\n", strings.Join(missing, " "))
	}
	if len(noLink) > 0 {
		fmt.Fprintf(w, "missing /dev/char links: %s: run `sudo gpuimg host init-devices` (else `systemctl daemon-reload` revokes GPU access: \"Failed to initialize NVML: Unknown Error\")\n", strings.Join(noLink, " "))
	}
}

func majMin(n Node) string {
	if n.Major == 0 {
		return "?:" + fmt.Sprint(n.Minor)
	}
	return fmt.Sprintf("%d:%d", n.Major, n.Minor)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON prints the host view as indented JSON (`gpuimg host --json`).
func (h Host) WriteJSON(w io.Writer) error {
	if h.GPUs == nil {
		h.GPUs = []GPU{}
	}
	if h.Nodes == nil {
		h.Nodes = []Node{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(h)
}
