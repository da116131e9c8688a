package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/launch"
)

func newFlagsCmd() *cobra.Command {
	var opts launch.FlagsOptions
	var root string
	cmd := &cobra.Command{
		Use:   "flags [IMAGE]",
		Short: "Print the exact runtime arguments that give a container the selected GPUs (device nodes only)",
		Long: `Print what to add to 'docker run' (or podman, nerdctl) so the container gets the selected
GPUs through device nodes: --device for /dev/nvidiactl, each selected /dev/nvidia<minor>,
/dev/nvidia-uvm(-tools) for compute, /dev/nvidia-modeset for display (or an image with
graphics/display components), MIG caps, IMEX channels (--imex-channels), NVSwitch nodes
(--nvswitch), the persistenced socket (--persistenced), and --group-add for nodes that
are 0660 to a group. Never --gpus (it needs the toolkit).
With IMAGE, its io.gpuimg.driver.version label is checked against the host driver;
{driver} in IMAGE (a registry or local reference, or a tarball/OCI layout path such
as ./images/{driver}) is replaced by the host's driver version first.

  docker run $(gpuimg flags --gpus 0,2) myimg:580.159.04 nvidia-smi`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Image = args[0]
			}
			h, err := readHost(cmd, root)
			if err != nil {
				return err
			}
			out, warnings, err := launch.Flags(cmd.Context(), h, opts)
			printWarnings(cmd, warnings)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), out)
			return err
		},
	}
	addPlanFlags(cmd, &opts.Plan, &root, &opts.Runtime)
	cmd.Flags().StringVar(&opts.Format, "format", "args", "output: args, json, compose (a devices: list) or oci (runtime-spec fragment)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "accept an image whose driver label differs from the host driver")
	return cmd
}

// addPlanFlags registers the GPU selection flags flags and run share.
func addPlanFlags(cmd *cobra.Command, plan *launch.Options, root, runtime *string) {
	cmd.Flags().StringVar(&plan.GPUs, "gpus", "all", "GPUs: all, indices (0,2), GPU-<uuid>, PCI bus ids, <gpu>:<mig>, MIG-<uuid> (mapped with nvidia-smi -L)")
	cmd.Flags().StringVar(&plan.IMEXChannels, "imex-channels", "", "IMEX channels to pass: 0,1 or all (those whose /dev/nvidia-caps-imex-channels/channelN exists)")
	cmd.Flags().BoolVar(&plan.NVSwitch, "nvswitch", false, "also pass the NVSwitch nodes present (fabric manager, NVSwitch tools)")
	cmd.Flags().BoolVar(&plan.Persistenced, "persistenced", false, "bind nvidia-persistenced's socket ("+host.PersistencedSocket+")")
	cmd.Flags().StringSliceVar(&plan.Capabilities, "capabilities", launch.DefaultCapabilities, "compute, utility, graphics, video, display (or all)")
	cmd.Flags().BoolVar(&plan.Privileged, "privileged", false, "give every host device (--privileged) and pin CUDA_VISIBLE_DEVICES by UUID; warns")
	cmd.Flags().StringVar(&plan.Fallback, "fallback", "", `"privileged": fall back to --privileged when a node is missing`)
	cmd.Flags().BoolVar(&plan.Rootless, "rootless", os.Geteuid() != 0, "the engine runs rootless: podman gets --group-add keep-groups (crun) for group-only nodes (default: true unless run as root)")
	cmd.Flags().StringVar(root, "root", "/", "read the host under this directory (device paths are mapped under it)")
	cmd.Flags().StringVar(runtime, "runtime", "docker", "docker, podman or nerdctl")
}
