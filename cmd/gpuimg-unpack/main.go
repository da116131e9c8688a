// Command gpuimg-unpack extracts a driver .run's payload into a directory
// without running the package's shell stub. gpuimg build runs it, static, in
// a build step of its own (no base image: the step's root is empty), so the
// extracted tree is keyed by the .run alone and serves every base, component
// set and rebuild. Built by `make build` next to bin/gpuimg, CGO disabled.
//
//	gpuimg-unpack RUN DEST
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gpuimg-unpack RUN DEST: extracts the driver package RUN into DEST")
		os.Exit(2)
	}
	start := time.Now()
	decoder, err := drivers.ExtractPayload(os.Args[1], os.Args[2], os.TempDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpuimg-unpack:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gpuimg-unpack: extracted %s with the %s decoder in %.1f s\n", os.Args[1], decoder, time.Since(start).Seconds())
}
