// Package launch turns a host view (package host), an image's driver label
// and a GPU selection into what a container runtime needs to give the image
// the GPU through device nodes only: runtime arguments for docker, podman and
// nerdctl, an OCI runtime-spec fragment, a compose snippet, a device-only CDI
// spec, or the explicit --privileged fallback. It never emits --gpus or
// anything else that needs nvidia-container-toolkit.
package launch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gpuimg/gpuimg/host"
)

// ErrSelector is wrapped by every selection error.
var ErrSelector = errors.New("bad GPU selection")

// Selection is the resolved --gpus value.
type Selection struct {
	// GPUs are whole GPUs, in the order first selected.
	GPUs []host.GPU
	// MIG are MIG devices (each needs its parent GPU's node and its caps).
	MIG []host.MIGDevice
}

// Select resolves a --gpus value against the host. It accepts, per comma
// separated item, the libnvidia-container forms in this order: "all",
// GPU-<uuid> (case-insensitive), a PCI bus id (any padding), a decimal NVML
// index (PCI bus order, not the device minor), MIG-<uuid>, and
// <gpu>:<mig> (GPU index : MIG device index as `gpuimg host` lists them).
// MIG UUIDs are known only to NVML: the old form MIG-GPU-<uuid>/<gi>/<ci>
// names its GI and CI, and the new one is mapped through `nvidia-smi -L`
// when nvidia-smi is on PATH.
// An empty selector is refused, never read as "all": a script whose $GPU is
// unset must not give away every GPU of the host.
func Select(h host.Host, selector string) (Selection, error) {
	selector = strings.TrimSpace(selector)
	if selector == "" {
		return Selection{}, fmt.Errorf("%w: the GPU selection is empty (an unset variable in --gpus \"$GPU\"?): name the GPUs, e.g. --gpus 0,2, or give every GPU with --gpus all", ErrSelector)
	}
	if len(h.GPUs) == 0 {
		return Selection{}, fmt.Errorf("%w: %q: the host under %s has no GPUs in /proc/driver/nvidia/gpus (is the driver loaded? see `gpuimg host`)", ErrSelector, selector, h.Root)
	}
	var sel Selection
	var smi *smiList // `nvidia-smi -L`, run at most once and only for MIG UUIDs
	seenGPU := map[int]bool{}
	seenMIG := map[string]bool{}
	addGPU := func(g host.GPU) {
		if !seenGPU[g.Index] {
			seenGPU[g.Index] = true
			sel.GPUs = append(sel.GPUs, g)
		}
	}
	for _, item := range strings.Split(selector, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			return Selection{}, fmt.Errorf("%w: %q has an empty item: write e.g. --gpus 0,2", ErrSelector, selector)
		case strings.EqualFold(item, "all"):
			for _, g := range h.GPUs {
				addGPU(g)
			}
		case hasPrefixFold(item, "GPU-"):
			g, ok := gpuByUUID(h, item)
			if !ok {
				return Selection{}, fmt.Errorf("%w: no GPU with UUID %s on this host; its GPUs are %s", ErrSelector, item, listGPUs(h))
			}
			addGPU(g)
		case hasPrefixFold(item, "MIG-"):
			m, err := migByUUID(h, item, &smi)
			if err != nil {
				return Selection{}, err
			}
			if !seenMIG[m.Name()] {
				seenMIG[m.Name()] = true
				sel.MIG = append(sel.MIG, m)
			}
		case host.NormalizeBusID(item) != "":
			bus := host.NormalizeBusID(item)
			g, ok := gpuByBus(h, bus)
			if !ok {
				return Selection{}, fmt.Errorf("%w: no GPU at PCI bus id %s; its GPUs are %s", ErrSelector, bus, listGPUs(h))
			}
			addGPU(g)
		case isDecimal(item):
			idx, err := strconv.Atoi(item)
			if err != nil || idx >= len(h.GPUs) {
				return Selection{}, fmt.Errorf("%w: GPU index %s does not exist: this host has %d GPU(s), indices 0-%d (%s)", ErrSelector, item, len(h.GPUs), len(h.GPUs)-1, listGPUs(h))
			}
			addGPU(h.GPUs[idx])
		case strings.Count(item, ":") == 1 && isDecimal(strings.Split(item, ":")[0]) && isDecimal(strings.Split(item, ":")[1]):
			m, ok := migByName(h, item)
			if !ok {
				return Selection{}, fmt.Errorf("%w: no MIG device %s on this host (%s)", ErrSelector, item, listMIG(h))
			}
			if !seenMIG[item] {
				seenMIG[item] = true
				sel.MIG = append(sel.MIG, m)
			}
		default:
			return Selection{}, fmt.Errorf("%w: %q is not a GPU: use all, an index (0,2), GPU-<uuid>, a PCI bus id (0000:3b:00.0) or <gpu>:<mig>", ErrSelector, item)
		}
	}
	return sel, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func gpuByUUID(h host.Host, uuid string) (host.GPU, bool) {
	for _, g := range h.GPUs {
		if strings.EqualFold(g.UUID, uuid) {
			return g, true
		}
	}
	return host.GPU{}, false
}

func gpuByBus(h host.Host, bus string) (host.GPU, bool) {
	for _, g := range h.GPUs {
		if g.BusID == bus {
			return g, true
		}
	}
	return host.GPU{}, false
}

func migByName(h host.Host, name string) (host.MIGDevice, bool) {
	for _, m := range h.MIG {
		if m.Name() == name {
			return m, true
		}
	}
	return host.MIGDevice{}, false
}

func listGPUs(h host.Host) string {
	parts := make([]string, 0, len(h.GPUs))
	for _, g := range h.GPUs {
		parts = append(parts, fmt.Sprintf("%d=%s (%s)", g.Index, g.UUID, g.BusID))
	}
	return strings.Join(parts, ", ")
}

func listMIG(h host.Host) string {
	if len(h.MIG) == 0 {
		return "this host has no MIG devices"
	}
	names := make([]string, 0, len(h.MIG))
	for _, m := range h.MIG {
		names = append(names, fmt.Sprintf("%s=gpu%d/gi%d/ci%d", m.Name(), m.GPUMinor, m.GI, m.CI))
	}
	sort.Strings(names)
	return "MIG devices: " + strings.Join(names, ", ")
}

// smiList is `nvidia-smi -L` parsed, or why it could not be had.
type smiList struct {
	gpus []host.SMIGPU
	err  error
}

var oldMIGUUID = regexp.MustCompile(`^(?i:MIG-)(GPU-[0-9A-Fa-f-]+)/(\d+)/(\d+)$`)

// migByUUID maps a MIG UUID to the host's MIG device: the R450 form
// MIG-GPU-<uuid>/<gi>/<ci> directly, the later MIG-<uuid> through the
// "Device N" of `nvidia-smi -L` on the GPU with the same UUID.
func migByUUID(h host.Host, uuid string, smi **smiList) (host.MIGDevice, error) {
	if m := oldMIGUUID.FindStringSubmatch(uuid); m != nil {
		g, ok := gpuByUUID(h, m[1])
		gi, _ := strconv.Atoi(m[2])
		ci, _ := strconv.Atoi(m[3])
		for _, d := range h.MIG {
			if ok && d.GPUIndex == g.Index && d.GI == gi && d.CI == ci {
				return d, nil
			}
		}
		return host.MIGDevice{}, fmt.Errorf("%w: no MIG device %s on this host (%s)", ErrSelector, uuid, listMIG(h))
	}
	if *smi == nil {
		gpus, err := host.NvidiaSMIList(context.Background())
		*smi = &smiList{gpus, err}
	}
	if err := (*smi).err; err != nil {
		return host.MIGDevice{}, fmt.Errorf("%w: %s: MIG UUIDs are known only to NVML, and `nvidia-smi -L` could not map it (%v): select the MIG device as <gpu>:<mig> instead (%s)", ErrSelector, uuid, err, listMIG(h))
	}
	var known []string
	for _, sg := range (*smi).gpus {
		for _, sm := range sg.MIG {
			known = append(known, sm.UUID)
			if !strings.EqualFold(sm.UUID, uuid) {
				continue
			}
			g, ok := gpuByUUID(h, sg.UUID)
			if !ok {
				return host.MIGDevice{}, fmt.Errorf("%w: nvidia-smi puts %s on GPU %s, which the host under %s does not have (%s)", ErrSelector, uuid, sg.UUID, h.Root, listGPUs(h))
			}
			if d, ok := migByName(h, fmt.Sprintf("%d:%d", g.Index, sm.Device)); ok {
				return d, nil
			}
			return host.MIGDevice{}, fmt.Errorf("%w: nvidia-smi lists %s as device %d of GPU %d, but no such MIG device has access capabilities under %s (%s)", ErrSelector, uuid, sm.Device, g.Index, h.Root, listMIG(h))
		}
	}
	if len(known) == 0 {
		known = []string{"none"}
	}
	return host.MIGDevice{}, fmt.Errorf("%w: no MIG device %s: nvidia-smi -L lists %s", ErrSelector, uuid, strings.Join(known, ", "))
}
