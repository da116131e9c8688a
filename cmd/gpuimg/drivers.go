package main

import (
	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/drivers"
)

func newDriversCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drivers",
		Short: "Know, fetch, verify and read NVIDIA driver packages (.run)",
		Long: `Driver packages are NVIDIA's NVIDIA-Linux-<arch>-<version>.run files. gpuimg knows the
published ones (an embedded catalog with size and sha256), fetches them into a verified
content-addressed cache, imports copies carried into air-gapped sites, and reads them
without running them.

  gpuimg drivers list --branch production
  gpuimg drivers fetch 580.159.04
  gpuimg drivers inspect 580.159.04`,
	}
	cmd.AddCommand(newDriversListCmd(), newDriversShowCmd(), newDriversFetchCmd(), newDriversImportCmd(),
		newDriversVerifyCmd(), newDriversInspectCmd())
	return cmd
}

func newDriversListCmd() *cobra.Command {
	var arch, branch, variant string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the driver packages in the catalog",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pkgs, err := drivers.ListFiltered(arch, branch, variant)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), pkgs)
			}
			return writePackageList(cmd.OutOrStdout(), pkgs)
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "", "only this architecture: x86_64 or aarch64")
	cmd.Flags().StringVar(&branch, "branch", "", "only this branch: production, new-feature, beta, legacy, unsupported, tesla, cuda")
	cmd.Flags().StringVar(&variant, "variant", "", "only this variant: full or no-compat32")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDriversShowCmd() *cobra.Command {
	var arch string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show VERSION",
		Short: "Show a driver's packages (URL, size, sha256) and the newest CUDA it supports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := drivers.ParseVersion(args[0])
			if err != nil {
				return err
			}
			d, err := drivers.Show(v, arch)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeDriver(cmd.OutOrStdout(), d)
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "", "only this architecture: x86_64 or aarch64 (default: both)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
