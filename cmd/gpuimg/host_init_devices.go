package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/templates"
)

type initDevicesOptions struct {
	host.InitOptions
	imexChannels string
	printScript  bool
	printSystemd bool
}

func newHostInitDevicesCmd() *cobra.Command {
	var opts initDevicesOptions
	cmd := &cobra.Command{
		Use:   "init-devices",
		Short: "Create missing NVIDIA device nodes and /dev/char links (the manual-mount path's boot step)",
		Long: `Create the missing /dev/nvidiactl, /dev/nvidia<minor> (minors from
/proc/driver/nvidia/gpus/*/information), /dev/nvidia-uvm and /dev/nvidia-uvm-tools (major
from /proc/devices), MIG capability nodes, the IMEX channels named with --imex-channels, and the /dev/char/MAJ:MIN links whose absence
lets 'systemctl daemon-reload' revoke GPU access in running containers ("Failed to
initialize NVML: Unknown Error"). Idempotent; needs root unless --dry-run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, channels, err := host.ParseIMEXChannels(opts.imexChannels)
			if err != nil {
				return err
			}
			if all {
				return fmt.Errorf("init-devices --imex-channels all: name the channels to make (e.g. --imex-channels 0,1); each grants access to memory other nodes export, so none is made unasked")
			}
			opts.IMEXChannels = channels
			data := templates.InitDevices{LoadModules: opts.LoadModules, Gpuimg: executable(), IMEXChannels: channels, IMEXArg: joinInts(channels)}
			switch {
			case opts.printScript:
				return renderTo(cmd, "init-devices.sh.tmpl", data)
			case opts.printSystemd:
				return renderTo(cmd, "nvidia-devices.service.tmpl", data)
			}
			opts.Root = rootFlag(cmd)
			actions, err := host.InitDevices(opts.InitOptions)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(actions) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "init-devices: every node and /dev/char link is already there; nothing to do")
			}
			for _, a := range actions {
				if opts.DryRun {
					fmt.Fprintln(out, a.String())
				} else {
					fmt.Fprintln(out, "done: "+a.String())
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the commands instead of running them")
	cmd.Flags().BoolVar(&opts.LoadModules, "load-modules", false, "modprobe nvidia and nvidia-uvm first")
	cmd.Flags().StringVar(&opts.imexChannels, "imex-channels", "", "also make these IMEX channel nodes (/dev/nvidia-caps-imex-channels/channelN), e.g. 0,1")
	cmd.Flags().BoolVar(&opts.printScript, "print-script", false, "print an equivalent shell script")
	cmd.Flags().BoolVar(&opts.printSystemd, "print-systemd", false, "print a systemd unit that runs this at boot")
	cmd.MarkFlagsMutuallyExclusive("print-script", "print-systemd", "dry-run")
	return cmd
}

// rootFlag reads the parent `host` command's --root.
func rootFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("root"); f != nil {
		return f.Value.String()
	}
	return "/"
}

func renderTo(cmd *cobra.Command, name string, data any) error {
	text, err := templates.Render(name, data)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(cmd.OutOrStdout(), text)
	return err
}

// executable is this binary's path, for the systemd unit's ExecStart.
func executable() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/usr/local/bin/gpuimg"
}

// joinInts writes numbers as a comma list ("0,1"), the way flags take them.
func joinInts(nums []int) string {
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}
