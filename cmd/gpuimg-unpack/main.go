// Command gpuimg-unpack is the static helper gpuimg build runs inside build
// steps (built by `make build` next to bin/gpuimg, CGO disabled, synced to
// the builder with the build, so remote builders get it too):
//
//	gpuimg-unpack RUN DEST               extract the driver package RUN into DEST
//	gpuimg-unpack list OUT               before the install: list the base's files into OUT
//	gpuimg-unpack split LIST EPOCH DIR...  after it: spread the new files over DIR... (layers 2..N)
//
// The extraction runs in a step of its own with no base image (the step's
// root is empty), so the extracted tree is keyed by the .run alone and serves
// every base, component set and rebuild. list and split run in the install
// step: see internal/layersplit.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/layersplit"
)

const usage = `usage: gpuimg-unpack RUN DEST | list OUT | split LIST EPOCH DIR...`

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "list":
		err = list(os.Args[2])
	case len(os.Args) >= 5 && os.Args[1] == "split":
		err = split(os.Args[2], os.Args[3], os.Args[4:])
	case len(os.Args) == 3:
		err = extract(os.Args[1], os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpuimg-unpack:", err)
		os.Exit(1)
	}
}

func extract(run, dest string) error {
	start := time.Now()
	decoder, err := drivers.ExtractPayload(run, dest, os.TempDir())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gpuimg-unpack: extracted %s with the %s decoder in %.1f s\n", run, decoder, time.Since(start).Seconds())
	return nil
}

func list(out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := layersplit.List("/", f); err != nil {
		f.Close()
		return fmt.Errorf("list the base's files: %w", err)
	}
	return f.Close()
}

func split(listFile, epoch string, dirs []string) error {
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("split: epoch %q is not Unix seconds", epoch)
	}
	f, err := os.Open(listFile)
	if err != nil {
		return err
	}
	before, err := layersplit.ReadList(f)
	f.Close()
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := layersplit.Split("/", before, dirs, time.Unix(sec, 0))
	if err != nil {
		return fmt.Errorf("split the driver's files into %d layers: %w", len(dirs)+1, err)
	}
	var parts []string
	for i := range res.Bytes {
		parts = append(parts, fmt.Sprintf("%.1f MB in %d files", float64(res.Bytes[i])/1e6, res.Files[i]))
	}
	fmt.Fprintf(os.Stderr, "gpuimg-unpack: the driver's files in %d layers (%s), moved in %.1f s\n", len(res.Bytes), strings.Join(parts, ", "), time.Since(start).Seconds())
	return nil
}
