// Command nvunpack is the decompressor the stand-in .run embeds (like
// NVIDIA's xzminicomp): it reads a gzip, xz (any check type, including None)
// or zstd stream on stdin and writes the data to stdout, so the stub can
// extract its payload in a base image that has no xz or zstd binary. The
// generator builds it statically (CGO_ENABLED=0).
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "nvunpack: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	br := bufio.NewReaderSize(in, 1<<20)
	magic, err := br.Peek(6)
	if err != nil {
		return fmt.Errorf("read the compressed stream: %w", err)
	}
	var r io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		r, err = gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		r, err = xz.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var d *zstd.Decoder
		d, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		r = d
	default:
		return fmt.Errorf("unknown compression (magic % x): expected gzip, xz or zstd", magic)
	}
	if err != nil {
		return fmt.Errorf("open the compressed stream: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	if _, err := io.Copy(bw, r); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	return bw.Flush()
}
