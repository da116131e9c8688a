// Command mkstandin generates a stand-in NVIDIA driver package (.run) and
// prints its path on stdout. Without -o it uses the shared cache, so
// repeated calls are instant.
//
//	go run ./internal/standin/cmd/mkstandin -version 580.159.04 [-arch x86_64] [-compression gzip|xz|zstd] [-scale tiny|realistic] [-no-compat32] [-embed-decompressor] [-o DIR]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gpuimg/gpuimg/internal/standin"
)

func main() {
	var opts standin.Options
	var out string
	flag.StringVar(&opts.Version, "version", "", "driver version, e.g. 580.159.04 (required)")
	flag.StringVar(&opts.Arch, "arch", "x86_64", "x86_64 or aarch64")
	flag.StringVar(&opts.Compression, "compression", "gzip", "payload compression: gzip, xz or zstd")
	flag.StringVar(&opts.Scale, "scale", "tiny", "tiny (a few KiB per file) or realistic (the real driver's file sizes)")
	flag.BoolVar(&opts.NoCompat32, "no-compat32", false, "the -no-compat32 variant (no 32/ directory)")
	flag.BoolVar(&opts.EmbedDecompressor, "embed-decompressor", false, "embed the static decompressor even for gzip (always on for xz and zstd)")
	flag.StringVar(&out, "o", "", "write the .run into this directory instead of the cache")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mkstandin: unexpected arguments %q: all options are flags (see -h)\n", flag.Args())
		os.Exit(2)
	}
	var path string
	var err error
	if out != "" {
		path, err = standin.Generate(out, opts)
	} else {
		path, err = standin.Cached(opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkstandin: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
