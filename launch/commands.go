package launch

import (
	"context"
	"fmt"
	"io"

	"github.com/gpuimg/gpuimg/host"
)

// FlagsOptions are `gpuimg flags`'s inputs.
type FlagsOptions struct {
	Root    string
	Image   string // optional: when set, its driver label is checked
	Runtime string
	Format  string
	Force   bool
	Plan    Options
}

// Flags reads the host and returns the runtime arguments in the chosen
// format, with the warnings to print on stderr.
func Flags(ctx context.Context, opts FlagsOptions) (out string, warnings []string, err error) {
	if err := CheckRuntime(opts.Runtime); err != nil {
		return "", nil, err
	}
	h, err := host.Read(opts.Root)
	if err != nil {
		return "", nil, err
	}
	warnings = append(warnings, h.Warnings...)
	plan, err := NewPlan(h, opts.Plan)
	if err != nil {
		return "", warnings, err
	}
	if opts.Image != "" {
		img, err := ReadImage(ctx, opts.Image, opts.Runtime)
		if err != nil {
			return "", warnings, err
		}
		w, err := CheckDriver(img, h.Driver.Version, opts.Force)
		if err != nil {
			return "", warnings, err
		}
		warnings = append(warnings, w...)
	}
	warnings = append(warnings, plan.Warnings...)
	out, err = plan.Render(opts.Format, opts.Runtime)
	return out, warnings, err
}

// Launch is `gpuimg run`: read the host under root, build and check the
// command, then run it (or print it with DryRun).
func Launch(ctx context.Context, root string, opts RunOptions, stdout, stderr io.Writer) error {
	h, err := host.Read(root)
	if err != nil {
		return err
	}
	argv, warnings, err := RunCommand(ctx, h, opts)
	warnings = append(h.Warnings, warnings...)
	if err != nil {
		printWarnings(stderr, warnings)
		return err
	}
	return Run(argv, warnings, opts.DryRun, stdout, stderr)
}

// GenerateCDI is `gpuimg cdi generate`: the spec for the host under root,
// validated, written to output (or returned for stdout when output is "").
func GenerateCDI(root, output string) ([]byte, []string, error) {
	h, err := host.Read(root)
	if err != nil {
		return nil, nil, err
	}
	spec, err := CDISpec(h)
	if err != nil {
		return nil, h.Warnings, err
	}
	data, err := WriteCDISpec(spec, output)
	return data, h.Warnings, err
}

func printWarnings(w io.Writer, warnings []string) {
	for _, msg := range warnings {
		fmt.Fprintln(w, "gpuimg: warning: "+msg)
	}
}
