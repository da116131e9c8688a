package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("NVIDIA stand-in payload \x00\x01\x02"), 5000)
	compress := map[string]func(io.Writer) (io.WriteCloser, error){
		"gzip": func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriter(w), nil },
		// NVIDIA's xz streams have check type None; the reader must accept it.
		"xz-check-none": func(w io.Writer) (io.WriteCloser, error) { return xz.WriterConfig{NoCheckSum: true}.NewWriter(w) },
		"xz-crc64":      func(w io.Writer) (io.WriteCloser, error) { return xz.NewWriter(w) },
		"zstd":          func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) },
	}
	for name, newWriter := range compress {
		t.Run(name, func(t *testing.T) {
			var in bytes.Buffer
			w, err := newWriter(&in)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := run(&in, &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Errorf("decompressed %d bytes, want the original %d", out.Len(), len(data))
			}
		})
	}
}

func TestUnknownFormatIsRefused(t *testing.T) {
	err := run(strings.NewReader("BZh91AY&SY not supported"), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown compression") {
		t.Errorf("bzip2 input: %v, want an unknown compression error", err)
	}
}

func TestCorruptStreamFails(t *testing.T) {
	var in bytes.Buffer
	w := gzip.NewWriter(&in)
	w.Write(bytes.Repeat([]byte("x"), 10000))
	w.Close()
	b := in.Bytes()
	b[len(b)-6] ^= 0xff // the CRC32 trailer
	if err := run(bytes.NewReader(b), io.Discard); err == nil {
		t.Error("a corrupt gzip stream decompressed without error")
	}
}
