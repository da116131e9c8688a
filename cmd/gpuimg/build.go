package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gpuimg/gpuimg/imagebuild"
	"github.com/spf13/cobra"
)

func newBuildCmd() *cobra.Command {
	var o imagebuild.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "build --driver VERSION[,VERSION...] [flags]",
		Short: "Build images carrying the NVIDIA driver userspace, on BuildKit",
		Long: `Build container images whose driver userspace is what NVIDIA's .run installs with
--no-kernel-module, as BuildKit LLB on a real BuildKit (--addr, BUILDKIT_HOST, or
unix:///run/buildkit/buildkitd.sock). The image is the base plus the driver's files,
in 4 layers of about equal size that the builder compresses on 4 cores at once
(--driver-layers 1: one layer).

The base defaults to ` + imagebuild.DefaultBase + `; oci-layout://DIR[:TAG|@DIGEST] builds from an
OCI layout with no registry. Outputs use BuildKit's --output syntax; without
--output or --push, a docker tarball nvidia-driver-<driver>.tar is written.
-t and dest= accept {driver} and {arch}, so one command builds a fleet matrix.

Several bases (--base A,B) give one image per base, named
with {base} (debian:bookworm gives debian-bookworm). Bases of one family
(checked first: what NVIDIA's installer looks at in each) share the driver:
one install per driver and platform, and each image is its base + the same
driver layers (the same blobs on every base: stored and pulled once) + one
small layer with the base's own linker cache (/etc/ld.so.cache), which the
io.gpuimg.driver.layers label explains. A base unlike the others (another
family, its own libglvnd) gets an install of its own, as a single base does,
with a warning naming the difference.

Timestamps come from SOURCE_DATE_EPOCH (0 when unset): the same inputs give the
same digest. stdout: one REF@sha256:… or destination per image.`,
		Example: `  gpuimg build --driver 450.102.04
  gpuimg build --driver 470.256.02,535.261.03 -t reg.example.com/nvidia:{driver} --push
  gpuimg build --driver 580.159.04 --base debian:bookworm,ubuntu:24.04 -t reg.example.com/nvidia:{driver}-{base} --push
  gpuimg build --driver-file NVIDIA-Linux-x86_64-580.159.04.run --base oci-layout://./debian:bookworm \
      --output type=docker,dest=driver.tar --offline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				sec, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH=%q is not Unix seconds: unset it or set e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%%ct)", s)
				}
				t := time.Unix(sec, 0)
				o.SourceDateEpoch = &t
			}
			return runBuild(cmd, o, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Drivers, "driver", nil, "driver version(s) to build, e.g. 450.102.04 or 470.256.02,535.261.03")
	f.StringVar(&o.Base, "base", imagebuild.DefaultBase, "base image: a registry reference, or oci-layout://DIR[:TAG|@DIGEST]; several, a comma list: one image per base, one driver install per family (a repeated --base replaces the earlier one)")
	f.StringArrayVarP(&o.Tags, "tag", "t", nil, "image name; {driver}, {arch} (x86_64, aarch64) and {base} are replaced (default "+imagebuild.DefaultTag+", with -{base} for several bases)")
	f.StringArrayVarP(&o.Outputs, "output", "o", nil, "BuildKit output: type=image,name=REF,push=true | type=docker,dest=FILE | type=oci,dest=FILE[,tar=false]")
	f.BoolVar(&o.Push, "push", false, "push the tagged images (type=image,push=true)")
	f.StringSliceVar(&o.Platforms, "platform", nil, "target platform(s): linux/amd64, linux/arm64 (default linux/amd64)")
	f.BoolVar(&o.Compat32, "compat32", false, "also install the 32-bit libraries (Steam, Wine), into the base's 32-bit library directory; the base needs a 32-bit C library")
	f.StringVar(&o.Components, "components", "all", "what to keep: all, or a comma list of utility, compute, video, graphics, display (compute implies utility)")
	f.StringVar(&o.DriverFile, "driver-file", "", "a local .run to install instead of downloading (verified like a download)")
	f.StringVar(&o.Mirror, "mirror", "", "download host name or URL template with {version}, {arch}, {file}")
	f.StringVar(&o.SHA256, "sha256", "", "the .run's sha256 for versions the catalog does not know (else the mirror's .sha256sum): HEX, one per --driver, comma-separated, same order; several platforms: one per arch, x86_64=HEX,aarch64=HEX, or VERSION/ARCH=HEX for several drivers")
	f.BoolVar(&o.AllowUnverified, "allow-unverified", false, "build even if the .run's checksum is missing or wrong (loud warning; the image is labelled unverified)")
	f.BoolVar(&o.Offline, "offline", false, "never download: use --driver-file or the cache directory")
	f.StringVar(&o.CacheDir, "cache-dir", "", "gpuimg's driver cache (default $XDG_CACHE_HOME/gpuimg/drivers)")
	f.StringVar(&o.Addr, "addr", "", "BuildKit address (default $BUILDKIT_HOST, else "+imagebuild.DefaultAddr+"); tcp://, unix://, docker-container://, kube-pod://, ssh://")
	f.StringVar(&o.TLSCACert, "tlscacert", "", "CA certificate of a tcp:// builder")
	f.StringVar(&o.TLSCert, "tlscert", "", "client certificate for a tcp:// builder (mutual TLS)")
	f.StringVar(&o.TLSKey, "tlskey", "", "client key for a tcp:// builder (mutual TLS)")
	f.StringVar(&o.TLSServer, "tlsservername", "", "server name the builder's certificate carries (default: the host in --addr)")
	f.StringVar(&o.Progress, "progress", "", "progress output: auto, plain, tty, quiet, rawjson (default $BUILDKIT_PROGRESS, else auto)")
	f.StringArrayVar(&o.CacheFrom, "cache-from", nil, "BuildKit cache import: type=registry,ref=REF | type=local,src=DIR (several images: one record each, tag suffixed -<driver>-<arch>[-<base>])")
	f.StringArrayVar(&o.CacheTo, "cache-to", nil, "BuildKit cache export: type=registry,ref=REF,mode=max | type=local,dest=DIR (several images: one record each, tag suffixed -<driver>-<arch>[-<base>])")
	f.IntVar(&o.DriverLayers, "driver-layers", 0, fmt.Sprintf("spread the driver's files over N layers of about equal size, which the builder compresses in parallel, one core each (default %d with gpuimg-unpack next to gpuimg, else 1)", imagebuild.DefaultDriverLayers))
	f.StringVar(&o.Compression, "compression", "gzip", "compression of every layer, forced (the base's are converted when stored otherwise): gzip or zstd")
	f.StringVar(&o.Emit, "emit", "", "print instead of building: dockerfile (the docker build equivalent) or llb (the definition, for buildctl)")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary of the images on stdout")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", imagebuild.DefaultIdleTimeout, "abandon the build when the builder sends no status and no data for this long (a frozen builder, a registry that never answers)")
	f.BoolVar(&o.FailFast, "fail-fast", false, "with several images, stop all of them when one fails (default: finish the others, report each failure, exit 2)")
	_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions([]string{"auto", "plain", "tty", "quiet", "rawjson"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions([]string{"gzip", "zstd"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("emit", cobra.FixedCompletions([]string{"dockerfile", "llb"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("platform", cobra.FixedCompletions([]string{"linux/amd64", "linux/arm64"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runBuild is `gpuimg build`: Prepare decides everything (warnings first,
// before a long build), then Emit or Build; the images built go to stdout.
func runBuild(cmd *cobra.Command, o imagebuild.Options, asJSON bool) error {
	o.Extractor = siblingExtractor()
	b, warnings, err := imagebuild.Prepare(cmd.Context(), o)
	printWarnings(cmd, warnings)
	if err != nil {
		return withAllowUnverifiedHint(err)
	}
	if o.Emit != "" {
		text, err := b.Emit(cmd.Context())
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(text)
		return err
	}
	summary, warnings, err := b.Build(cmd.Context(), cmd.ErrOrStderr())
	printWarnings(cmd, warnings)
	if summary == nil {
		return err
	}
	// With a BuildError the images that were built are still printed.
	if asJSON {
		if jerr := writeJSON(cmd.OutOrStdout(), summary); jerr != nil {
			return jerr
		}
		return err
	}
	printBuilt(cmd, summary)
	return err
}

// printBuilt prints one REF@digest or destination per output of each image.
func printBuilt(cmd *cobra.Command, summary *imagebuild.Summary) {
	for _, img := range summary.Images {
		for _, out := range img.Outputs {
			line := out.Ref
			if line == "" {
				line = out.Dest
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
		}
	}
}

// siblingExtractor is the static gpuimg-unpack next to this executable
// (make build puts it there), or "" when there is none: the .run then
// unpacks itself inside the install step, on every build.
func siblingExtractor() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), "gpuimg-unpack")
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
}
