package main

import (
	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/drivers"
)

func newDriversInspectCmd() *cobra.Command {
	var arch, variant, cacheDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE|VERSION",
		Short: "Read a .run without running it: header, compression, manifest, files and bytes per component",
		Long: `Read a driver package's makeself header (label, version, target arch, payload and
decompressor offsets, embedded CRC/MD5), decompress its payload in Go (gzip, xz, zstd) and
parse its .manifest, then report files and bytes per component group (utility, compute,
video, graphics, display, ngx, kernel-only, host-only, other). A VERSION is looked up in
the cache (fetch it first).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := drivers.RunPathFor(args[0], cacheDir, arch, variant)
			if err != nil {
				return err
			}
			info, err := drivers.Inspect(path)
			if err != nil {
				return err
			}
			printWarnings(cmd, runInfoWarnings(info))
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			return writeRunInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().StringVar(&arch, "arch", drivers.HostArch(), "architecture of a VERSION to look up")
	cmd.Flags().StringVar(&variant, "variant", drivers.VariantFull, "variant of a VERSION to look up")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "driver cache (default $XDG_CACHE_HOME/gpuimg/drivers)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
