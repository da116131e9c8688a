package launch

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gpuimg/gpuimg/internal/shell"
)

// Runtimes whose `run` takes --device, --group-add and -e the docker way.
var Runtimes = []string{"docker", "podman", "nerdctl"}

// Formats of `gpuimg flags`.
var Formats = []string{"args", "json", "compose", "oci"}

// CheckRuntime rejects a runtime the launcher cannot write arguments for.
func CheckRuntime(runtime string) error {
	for _, r := range Runtimes {
		if r == runtime {
			return nil
		}
	}
	return fmt.Errorf("unknown runtime %q: use one of %s (for runc/crun bundles use --format oci)", runtime, strings.Join(Runtimes, ", "))
}

// Args returns the arguments to add to `<runtime> run`. docker, podman and
// nerdctl share this syntax; a device whose host path differs from its
// container path (a --root other than /) is written host:container.
func (p Plan) Args(runtime string) ([]string, error) {
	if err := CheckRuntime(runtime); err != nil {
		return nil, err
	}
	var args []string
	if p.Privileged {
		args = append(args, "--privileged")
	}
	for _, d := range p.Devices {
		spec := d.Path
		if d.HostPath != d.Path {
			spec = d.HostPath + ":" + d.Path
		}
		args = append(args, "--device", spec)
	}
	switch {
	case len(p.GroupAdd) > 0 && p.Rootless && runtime == "podman":
		// A rootless user cannot add host groups, but keeps its own
		// (the nodes' group must be one of them); crun only.
		args = append(args, "--group-add", "keep-groups")
	default:
		for _, gid := range p.GroupAdd {
			args = append(args, "--group-add", strconv.Itoa(gid))
		}
	}
	for _, m := range p.Mounts {
		args = append(args, "-v", m.HostPath+":"+m.Path)
	}
	for _, e := range p.Env {
		args = append(args, "-e", e)
	}
	return args, nil
}

// Render writes the plan in one of Formats.
func (p Plan) Render(format, runtime string) (string, error) {
	switch format {
	case "args", "":
		args, err := p.Args(runtime)
		if err != nil {
			return "", err
		}
		return shell.Join(args) + "\n", nil
	case "json":
		args, err := p.Args(runtime)
		if err != nil {
			return "", err
		}
		out := struct {
			Runtime string   `json:"runtime"`
			Args    []string `json:"args"`
			Plan
		}{runtime, args, p}
		if out.GroupAdd == nil {
			out.GroupAdd = []int{}
		}
		if out.Devices == nil {
			out.Devices = []Device{}
		}
		b, err := json.MarshalIndent(out, "", "  ")
		return string(b) + "\n", err
	case "compose":
		return p.Compose(), nil
	case "oci":
		b, err := json.MarshalIndent(p.OCI(), "", "  ")
		return string(b) + "\n", err
	}
	return "", fmt.Errorf("unknown --format %q: use one of %s", format, strings.Join(Formats, ", "))
}

// Compose returns the service keys to merge into a compose service: a
// devices: list (never deploy.resources.reservations.devices with driver
// nvidia, which needs the toolkit).
func (p Plan) Compose() string {
	var b strings.Builder
	b.WriteString("# merge into your service in compose.yaml (gpuimg flags --format compose)\n")
	if p.Privileged {
		b.WriteString("privileged: true\n")
	}
	if len(p.Devices) > 0 {
		b.WriteString("devices:\n")
		for _, d := range p.Devices {
			fmt.Fprintf(&b, "  - %q\n", d.HostPath+":"+d.Path)
		}
	}
	if len(p.GroupAdd) > 0 {
		b.WriteString("group_add:\n")
		for _, gid := range p.GroupAdd {
			fmt.Fprintf(&b, "  - %q\n", strconv.Itoa(gid))
		}
	}
	if len(p.Mounts) > 0 {
		b.WriteString("volumes:\n")
		for _, m := range p.Mounts {
			fmt.Fprintf(&b, "  - %q\n", m.HostPath+":"+m.Path)
		}
	}
	b.WriteString("environment:\n")
	for _, e := range p.Env {
		fmt.Fprintf(&b, "  - %q\n", e)
	}
	return b.String()
}

// OCIFragment is the part of a runtime-spec config.json the launcher sets:
// merge linux.devices, linux.resources.devices, mounts and
// process.env/additionalGids into a runc or crun bundle's config.
type OCIFragment struct {
	Process OCIProcess    `json:"process"`
	Mounts  []rspec.Mount `json:"mounts,omitempty"`
	Linux   OCILinux      `json:"linux"`
}

// OCIProcess holds the environment and groups.
type OCIProcess struct {
	Env  []string `json:"env"`
	User OCIUser  `json:"user"`
}

// OCIUser holds only the additional groups.
type OCIUser struct {
	AdditionalGids []uint32 `json:"additionalGids,omitempty"`
}

// OCILinux holds the device nodes and their cgroup rules.
type OCILinux struct {
	Devices   []rspec.LinuxDevice `json:"devices,omitempty"`
	Resources OCIResources        `json:"resources"`
}

// OCIResources holds the device allow rules.
type OCIResources struct {
	Devices []rspec.LinuxDeviceCgroup `json:"devices"`
}

// OCI returns the runtime-spec fragment for the plan. A privileged plan
// allows every device (what docker's --privileged does) and lists no nodes:
// the bundle must bind /dev itself.
func (p Plan) OCI() OCIFragment {
	f := OCIFragment{Process: OCIProcess{Env: p.Env}}
	for _, m := range p.Mounts {
		f.Mounts = append(f.Mounts, rspec.Mount{Destination: m.Path, Type: "bind", Source: m.HostPath, Options: []string{"bind", "nosuid", "nodev", "noexec"}})
	}
	if p.Privileged {
		f.Linux.Resources.Devices = []rspec.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return f
	}
	for _, d := range p.Devices {
		mode := d.FileMode
		uid, gid := uint32(d.UID), uint32(d.GID)
		major, minor := int64(d.Major), int64(d.Minor)
		f.Linux.Devices = append(f.Linux.Devices, rspec.LinuxDevice{
			Path: d.Path, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid,
		})
		f.Linux.Resources.Devices = append(f.Linux.Resources.Devices, rspec.LinuxDeviceCgroup{
			Allow: true, Type: "c", Major: &major, Minor: &minor, Access: d.Access,
		})
	}
	for _, g := range p.GroupAdd {
		f.Process.User.AdditionalGids = append(f.Process.User.AdditionalGids, uint32(g))
	}
	return f
}
