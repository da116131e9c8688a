package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/internal/atomicfile"
)

// CDIKind is gpuimg's own CDI vendor/class, so its spec never clashes with
// nvidia-ctk's nvidia.com/gpu. Use it as `--device gpuimg.dev/gpu=0`.
const CDIKind = "gpuimg.dev/gpu"

// CDISpec builds a device-only CDI spec: one device per NVML index, one per
// GPU UUID, one per MIG device (<gpu>:<mig>), "all", and one per IMEX channel
// node that exists (imex-channel-<N>); the control and uvm
// nodes and NVIDIA_VISIBLE_DEVICES=void as spec-wide edits. It mounts no
// host libraries: the driver userspace is in the image. Major, minor and
// mode are left to the runtime's stat at injection, so the spec stays right
// when dynamic majors move; cdiVersion is the lowest covering what is used.
func CDISpec(h host.Host) (*cdispec.Spec, error) {
	if err := h.RequireDriver(); err != nil {
		return nil, err
	}
	all, err := Select(h, "all")
	if err != nil {
		return nil, err
	}
	needed, missing, wrong := neededNodes(h, all, DefaultCapabilities)
	for _, m := range h.MIG {
		n, extra, bad := neededNodes(h, Selection{MIG: []host.MIGDevice{m}}, nil)
		needed, missing, wrong = append(needed, n...), append(missing, extra...), append(wrong, bad...)
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("%w: %s under %s: the runtime would inject what is there; replace it with `%s` before generating the CDI spec",
			ErrWrongNode, strings.Join(dedupe(wrong), "; "), h.Root, host.InitDevicesCommand(h.Root))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s not present under %s: create it with `%s` before generating the CDI spec (a spec made without them cannot inject them)",
			ErrMissingNode, strings.Join(dedupe(missing), ", "), h.Root, host.InitDevicesCommand(h.Root))
	}
	node := func(path string) *cdispec.DeviceNode {
		dn := &cdispec.DeviceNode{Path: path}
		if hp := h.HostPath(path); hp != path {
			dn.HostPath = hp
		}
		return dn
	}
	gids := map[int]bool{}
	for _, n := range needed {
		if !n.WorldUsable() && n.GID != 0 {
			gids[n.GID] = true
		}
	}

	spec := &cdispec.Spec{Kind: CDIKind}
	var allNodes []*cdispec.DeviceNode
	for _, g := range h.GPUs {
		path := fmt.Sprintf("/dev/nvidia%d", g.Minor)
		edits := cdispec.ContainerEdits{DeviceNodes: []*cdispec.DeviceNode{node(path)}}
		spec.Devices = append(spec.Devices,
			cdispec.Device{Name: strconv.Itoa(g.Index), ContainerEdits: edits},
			cdispec.Device{Name: g.UUID, ContainerEdits: edits},
		)
		allNodes = append(allNodes, node(path))
	}
	for _, m := range h.MIG {
		spec.Devices = append(spec.Devices, cdispec.Device{Name: m.Name(), ContainerEdits: cdispec.ContainerEdits{
			DeviceNodes: []*cdispec.DeviceNode{
				node(fmt.Sprintf("/dev/nvidia%d", m.GPUMinor)),
				node(fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", m.GICapMinor)),
				node(fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", m.CICapMinor)),
			},
		}})
	}
	spec.Devices = append(spec.Devices, cdispec.Device{Name: "all", ContainerEdits: cdispec.ContainerEdits{DeviceNodes: allNodes}})
	// IMEX channels that exist, asked for beside a GPU: --device gpuimg.dev/gpu=imex-channel-0.
	for _, c := range h.IMEXChannels() {
		spec.Devices = append(spec.Devices, cdispec.Device{Name: fmt.Sprintf("imex-channel-%d", c), ContainerEdits: cdispec.ContainerEdits{
			DeviceNodes: []*cdispec.DeviceNode{node(host.IMEXChannelPath(c))},
		}})
	}
	spec.ContainerEdits = cdispec.ContainerEdits{
		DeviceNodes: []*cdispec.DeviceNode{node("/dev/nvidiactl"), node("/dev/nvidia-uvm"), node("/dev/nvidia-uvm-tools")},
		Env:         []string{"NVIDIA_VISIBLE_DEVICES=void"},
	}
	for _, gid := range sortedKeys(gids) {
		spec.ContainerEdits.AdditionalGIDs = append(spec.ContainerEdits.AdditionalGIDs, uint32(gid))
	}
	if spec.Version, err = cdispec.MinimumRequiredVersion(spec); err != nil {
		return nil, fmt.Errorf("CDI spec version: %w", err)
	}
	return spec, nil
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// WriteCDISpec encodes the spec as YAML, validates those exact bytes with the
// CDI project's loader (strict fields, version, names), and writes them to
// path through a temporary file and a rename, so a reader never sees half a
// spec. An empty path returns the bytes without writing a file.
func WriteCDISpec(spec *cdispec.Spec, path string) ([]byte, error) {
	data, err := yaml.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode CDI spec: %w", err)
	}
	target := path
	if target == "" {
		// Validated through a file all the same, then discarded.
		target = filepath.Join(os.TempDir(), fmt.Sprintf("gpuimg-cdi-%d.yaml", os.Getpid()))
	}
	pending, err := atomicfile.Create(target)
	if err != nil {
		return nil, fmt.Errorf("write CDI spec: %w", err)
	}
	defer pending.Discard()
	if _, err := pending.File().Write(data); err != nil {
		return nil, fmt.Errorf("write CDI spec %s: %w", pending.Name(), err)
	}
	if err := pending.File().Close(); err != nil {
		return nil, fmt.Errorf("write CDI spec %s: %w", pending.Name(), err)
	}
	if _, err := cdi.ReadSpec(pending.Name(), 0); err != nil {
		return nil, fmt.Errorf("generated CDI spec does not validate (a gpuimg bug; please report it): %w", err)
	}
	if path == "" {
		return data, nil
	}
	if err := pending.Commit(0o644); err != nil {
		return nil, fmt.Errorf("write CDI spec %s: %w", path, err)
	}
	return data, nil
}

func sortedKeys(set map[int]bool) []int {
	keys := make([]int, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
