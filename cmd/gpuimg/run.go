package main

import (
	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/launch"
)

type runOptions struct {
	launch.RunOptions
	root string
}

func newRunCmd() *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND...]  |  run [flags] -- [RUNTIME-ARGS...] IMAGE [COMMAND...]",
		Short: "Check the image's driver against the host's and run it with the selected GPUs' device nodes",
		Long: `Read the image's io.gpuimg.driver.version label (local engine, registry, or a tarball),
refuse when it differs from the host driver (unless --force), then run
'<runtime> run <device flags> [RUNTIME-ARGS] IMAGE [COMMAND]'. Runtime arguments go after
'--' the way you would type them after 'docker run', or one by one with --runtime-arg.

{driver} in IMAGE is replaced by the host's loaded driver version, so one command line
runs a fleet built with 'gpuimg build -t REPO:{driver}' on every host; a host whose
driver has no image is refused before anything starts, with the build that makes it.

  gpuimg run --gpus 0 myimg:580.159.04 nvidia-smi
  gpuimg run reg.example.com/nvidia:{driver} nvidia-smi
  gpuimg run --gpus 0,1 -- --rm -it -v /data:/data myimg:580.159.04 python train.py
  gpuimg run --dry-run myimg:580.159.04`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			extra, image, command, err := launch.ParseRunArgs(args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			opts.RuntimeArgs = append(opts.RuntimeArgs, extra...)
			opts.Image, opts.Cmd = image, command
			h, err := readHost(cmd, opts.root)
			if err != nil {
				return err
			}
			argv, warnings, err := launch.RunCommand(cmd.Context(), h, opts.RunOptions)
			printWarnings(cmd, warnings)
			if err != nil {
				return err
			}
			return launch.Run(argv, opts.DryRun, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	// Flags end at IMAGE: what follows is the container's command.
	cmd.Flags().SetInterspersed(false)
	addPlanFlags(cmd, &opts.Plan, &opts.root, &opts.Runtime)
	cmd.Flags().StringArrayVar(&opts.RuntimeArgs, "runtime-arg", nil, "an extra argument for '<runtime> run' (repeatable), e.g. --runtime-arg=--rm")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the full command instead of running it")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "run even when the image's driver label differs from the host driver")
	return cmd
}
