package launch

import (
	"context"

	"github.com/gpuimg/gpuimg/host"
)

// FlagsOptions are `gpuimg flags`'s inputs.
type FlagsOptions struct {
	Image   string // optional: when set, its driver label is checked
	Runtime string
	Format  string
	Force   bool
	Plan    Options
}

// Flags returns the runtime arguments that give a container h's selected
// GPUs, in the chosen format, with the warnings to print on stderr (h's own
// are the caller's to print).
func Flags(ctx context.Context, h host.Host, opts FlagsOptions) (out string, warnings []string, err error) {
	if err := CheckRuntime(opts.Runtime); err != nil {
		return "", nil, err
	}
	plan, err := NewPlan(h, opts.Plan)
	if err != nil {
		return "", nil, err
	}
	if opts.Image != "" {
		img, w, err := CheckImage(ctx, opts.Image, opts.Runtime, h.Driver.Version, HostPlatform(h), opts.Force)
		if err != nil {
			return "", nil, err
		}
		warnings = append(warnings, w...)
		if plan, err = planForImage(h, opts.Plan, plan, img); err != nil {
			return "", warnings, err
		}
	}
	warnings = append(warnings, plan.Warnings...)
	out, err = plan.Render(opts.Format, opts.Runtime)
	return out, warnings, err
}

// GenerateCDI is `gpuimg cdi generate`: the spec for host h, validated,
// written to output (or returned for stdout when output is "").
func GenerateCDI(h host.Host, output string) ([]byte, error) {
	spec, err := CDISpec(h)
	if err != nil {
		return nil, err
	}
	return WriteCDISpec(spec, output)
}
