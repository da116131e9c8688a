package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gpuimg",
		Short: "Build container images with the NVIDIA driver userspace inside, and launch them with device nodes only",
		Long: `gpuimg builds container images that carry the NVIDIA driver userspace (NVIDIA's .run,
installed with --no-kernel-module) matched exactly to a host's kernel driver, on BuildKit,
and launches them with nothing but device nodes: no nvidia-container-toolkit on the host.

  gpuimg build --driver 450.102.04
  gpuimg doctor
  gpuimg run myimg:450.102.04 -- nvidia-smi
  gpuimg run reg.example.com/nvidia:{driver} -- nvidia-smi`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	// One line per command group; each lives in its own file in this directory.
	root.AddCommand(
		newBuildCmd(),
		newHostCmd(),
		newDoctorCmd(),
		newFlagsCmd(),
		newRunCmd(),
		newCDICmd(),
		newDriversCmd(),
	)
	return root
}
