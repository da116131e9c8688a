package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gpuimg/gpuimg/drivers"
)

func newDriversFetchCmd() *cobra.Command {
	opts := drivers.Want{Download: true}
	cmd := &cobra.Command{
		Use:   "fetch VERSION",
		Short: "Download a driver package into the cache, verify it, and print its path",
		Long: `Download NVIDIA-Linux-<arch>-VERSION.run into the content-addressed cache
($XDG_CACHE_HOME/gpuimg/drivers by default), resuming an interrupted download, and verify
its sha256 against --sha256, the catalog, or a .sha256sum beside it on the mirror. The
cached path is printed on stdout; progress goes to stderr.

Mirrors: us, download, international, cn (NVIDIA's hosts), or a URL template with
{version}, {arch} and {file}, e.g. https://mirror.internal/nvidia/{version}/{file}.

  gpuimg drivers fetch 580.159.04
  gpuimg drivers fetch 450.102.04 --variant no-compat32 --mirror cn
  gpuimg drivers fetch 580.159.04 --offline      # the cache only, never the network`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := drivers.ParseVersion(args[0])
			if err != nil {
				return err
			}
			opts.Version = v
			opts.Progress = cmd.ErrOrStderr()
			opts.ProgressBar = cmd.ErrOrStderr() == os.Stderr && term.IsTerminal(int(os.Stderr.Fd()))
			return resolveAndPrintPath(cmd, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Arch, "arch", drivers.HostArch(), "x86_64 or aarch64")
	cmd.Flags().StringVar(&opts.Variant, "variant", drivers.VariantFull, "full or no-compat32 (x86_64 without 32-bit libraries)")
	cmd.Flags().StringVar(&opts.Mirror, "mirror", "", "us, download, international, cn, or a URL template with {version} {arch} {file} (default: the catalog's URL, then every NVIDIA host)")
	cmd.Flags().StringVar(&opts.SHA256, "sha256", "", "expected sha256 (wins over the catalog's)")
	cmd.Flags().BoolVar(&opts.AllowUnverified, "allow-unverified", false, "accept a package no checksum is known for")
	cmd.Flags().StringVar(&opts.CacheDir, "cache-dir", "", "driver cache (default $XDG_CACHE_HOME/gpuimg/drivers)")
	cmd.Flags().BoolVar(&opts.Offline, "offline", false, "use the cache only; never touch the network")
	cmd.Flags().DurationVar(&opts.StallTimeout, "stall-timeout", 0, "give up on a server that sends nothing for this long (default 30s)")
	cmd.Flags().BoolVar(&opts.KeepPartial, "keep-partial", false, "on a full disk, keep the partial download to resume after freeing space (default: remove it)")
	return cmd
}

func newDriversImportCmd() *cobra.Command {
	opts := drivers.Want{Download: true}
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Verify a .run carried in from elsewhere and add it to the cache (air-gapped sites)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			return resolveAndPrintPath(cmd, opts)
		},
	}
	cmd.Flags().StringVar(&opts.SHA256, "sha256", "", "expected sha256 (default: the catalog's)")
	cmd.Flags().BoolVar(&opts.AllowUnverified, "allow-unverified", false, "accept a package no checksum is known for")
	cmd.Flags().StringVar(&opts.Arch, "arch", "", "refuse a package for another architecture")
	cmd.Flags().StringVar(&opts.CacheDir, "cache-dir", "", "driver cache (default $XDG_CACHE_HOME/gpuimg/drivers)")
	return cmd
}

func newDriversVerifyCmd() *cobra.Command {
	var sha string
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check that FILE is a driver .run with the sha256 given or listed in the catalog",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, warnings, err := drivers.Resolve(cmd.Context(), drivers.Want{File: args[0], SHA256: sha})
			printWarnings(cmd, warnings)
			if err != nil {
				return err
			}
			by := res.VerifiedBy
			if p := res.CatalogFile(); p != "" {
				by += " (" + p + ")"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: OK, driver %s %s, sha256 %s matches the %s\n", res.Path, res.Version, res.Arch, res.SHA256, by)
			return err
		},
	}
	cmd.Flags().StringVar(&sha, "sha256", "", "expected sha256 (default: the catalog's for the file's version and arch)")
	return cmd
}

// resolveAndPrintPath resolves w into the cache (fetch, import) and prints
// the cached path on stdout.
func resolveAndPrintPath(cmd *cobra.Command, w drivers.Want) error {
	res, warnings, err := drivers.Resolve(cmd.Context(), w)
	printWarnings(cmd, warnings)
	if err != nil {
		return withAllowUnverifiedHint(err)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Path)
	return err
}
