package main

import (
	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/host"
)

type hostOptions struct {
	root string
	json bool
}

func newHostCmd() *cobra.Command {
	var opts hostOptions
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Show the GPU host as the launcher sees it: driver, GPUs, device nodes, MIG, /dev/char links",
		Long: `Show the driver version (/sys/module/nvidia/version and /proc/driver/nvidia/version),
the GPUs (index in PCI bus order, device minor, UUID, bus id, model), every device node
with its real major:minor, mode and owner, MIG devices, missing nodes and /dev/char links,
whether nvidia-container-toolkit is installed and which container runtimes are on PATH.
Every path is read under --root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := readHost(cmd, opts.root)
			if err != nil {
				return err
			}
			if opts.json {
				return writeHostJSON(cmd.OutOrStdout(), h)
			}
			return writeHostReport(cmd.OutOrStdout(), h)
		},
	}
	cmd.PersistentFlags().StringVar(&opts.root, "root", "/", "read the host under this directory")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	cmd.AddCommand(newHostInitDevicesCmd())
	return cmd
}

// readHost reads the host under root and prints what it warns about.
func readHost(cmd *cobra.Command, root string) (host.Host, error) {
	h, err := host.Read(root)
	if err != nil {
		return h, err
	}
	printWarnings(cmd, h.Warnings)
	return h, nil
}
