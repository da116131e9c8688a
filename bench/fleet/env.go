package main

import (
	"archive/tar"
	"io"
)

// tarWriter writes a one-file layer.
type tarWriter struct{ tw *tar.Writer }

func newTar(w io.Writer) *tarWriter { return &tarWriter{tar.NewWriter(w)} }

func (t *tarWriter) add(path, content string) error {
	if err := t.tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.WriteString(t.tw, content); err != nil {
		return err
	}
	return t.tw.Close()
}
