package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/launch"
)

type cdiGenerateOptions struct {
	root   string
	output string
}

func newCDICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cdi",
		Short: "Container Device Interface specs for the host's GPUs",
	}
	var opts cdiGenerateOptions
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a device-only CDI spec (kind " + launch.CDIKind + ") for podman and Docker 25+",
		Long: `Write a device-only CDI spec: devices per index, per GPU UUID, per MIG device and "all",
plus the control and uvm nodes; no host library mounts (the driver is in the image).
Its kind, ` + launch.CDIKind + `, never clashes with nvidia-ctk's nvidia.com/gpu.

  sudo gpuimg cdi generate --output /etc/cdi/gpuimg.yaml
  podman run --device ` + launch.CDIKind + `=all myimg:580.159.04 nvidia-smi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := readHost(cmd, opts.root)
			if err != nil {
				return err
			}
			data, err := launch.GenerateCDI(h, opts.output)
			if err != nil {
				return err
			}
			if opts.output == "" {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s; use it as --device %s=all (or =0, =GPU-<uuid>)\n", opts.output, launch.CDIKind)
			return nil
		},
	}
	gen.Flags().StringVar(&opts.root, "root", "/", "read the host under this directory")
	gen.Flags().StringVarP(&opts.output, "output", "o", "", "write the spec here (atomically) instead of stdout")
	cmd.AddCommand(gen)
	return cmd
}
