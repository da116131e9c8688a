package drivers

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers/driverstest"
)

func writeRun(t *testing.T, r driverstest.Run) string {
	t.Helper()
	p, err := driverstest.Write(t.TempDir(), r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadHeaderEachCompression(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			var dec []byte
			if comp != "gzip" {
				dec = bytes.Repeat([]byte("\x7fELF embedded decompressor\n"), 5)
			}
			p := writeRun(t, driverstest.Run{Version: "535.261.03", Arch: "aarch64", Compression: comp, Decompressor: dec})
			h, err := ReadHeaderFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if h.VersionString != "535.261.03" || h.TargetArch != "aarch64" || h.TargetOS != "Linux" || h.Compression != comp ||
				h.Label != "NVIDIA Accelerated Graphics Driver for Linux-aarch64 535.261.03" || h.CRCSum != "1234567890" ||
				h.MD5 != "0123456789abcdef0123456789abcdef" || h.Makeself != "1.6.0-nv2" || h.PkgVersion != "1" {
				t.Errorf("header = %+v", h)
			}
			data, _ := os.ReadFile(p)
			// The payload starts after the (skip-1)-th newline: check against
			// the file's own bytes.
			lines := bytes.SplitAfter(data, []byte("\n"))
			var off int
			for _, l := range lines[:h.Skip-1] {
				off += len(l)
			}
			if h.PayloadOffset != int64(off) {
				t.Errorf("PayloadOffset = %d, want %d", h.PayloadOffset, off)
			}
			if comp == "gzip" && (h.SkipDecompress != 0 || h.SizeDecompress != 0) {
				t.Errorf("no decompressor embedded, got skip_decompress=%d size_decompress=%d", h.SkipDecompress, h.SizeDecompress)
			}
			if comp != "gzip" {
				got := bytes.Join(lines[h.SkipDecompress-1:h.SkipDecompress-1+h.SizeDecompress], nil)
				if !bytes.Equal(got, dec) {
					t.Errorf("decompressor lines hold %q, want the embedded bytes", got)
				}
			}
			v, err := h.Version()
			if err != nil || v.String() != "535.261.03" {
				t.Errorf("Version() = %v, %v", v, err)
			}
		})
	}
}

func TestReadHeaderRejectsNonRuns(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(writeRun(t, driverstest.Run{Version: "470.256.02"}))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ReadHeader(bytes.NewReader(good))
	for name, data := range map[string][]byte{
		"elf":            []byte("\x7fELF\x02\x01\x01\x00 not a script"),
		"empty":          nil,
		"script":         []byte("#!/bin/sh\necho hello\n"),
		"skip-garbage":   []byte("#! /bin/sh\nskip=abc\n"),
		"skip-too-far":   []byte("#! /bin/sh\nskip=900\nversion_string=1.2\n"),
		"truncated":      good[:h.PayloadOffset],
		"bad-payload":    append(append([]byte{}, good[:h.PayloadOffset]...), []byte("plain text, not compressed\n")...),
		"unset-skip":     []byte("#! /bin/sh\nskip=__SKIP__\n"),
		"decomp-overlap": []byte("#! /bin/sh\nskip=5\nskip_decompress=3\nsize_decompress=9\n\n\n\n\n\n"),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		_, err := ReadHeaderFile(p)
		if !errors.Is(err, ErrNotRun) {
			t.Errorf("%s: err = %v, want ErrNotRun", name, err)
		}
	}
	if _, err := ReadHeaderFile(filepath.Join(dir, "absent.run")); err == nil || errors.Is(err, ErrNotRun) {
		t.Errorf("a missing file should fail as such, got %v", err)
	}
}

func TestReadHeaderMakeself2Offset(t *testing.T) {
	stub := "#!/bin/sh\n# This script was generated using Makeself 2.1.5\nlabel=\"cuda\"\noffset=`head -n 4 \"$0\" | wc -c | tr -d \" \"`\n"
	data := append([]byte(stub), 0x28, 0xb5, 0x2f, 0xfd, 0, 0)
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h.Skip != 5 || h.PayloadOffset != int64(len(stub)) || h.Compression != "zstd" {
		t.Errorf("makeself 2.x header = %+v", h)
	}
}

func TestCheckRun(t *testing.T) {
	p := writeRun(t, driverstest.Run{Version: "470.256.02"})
	if err := CheckRunFile(p, MustParseVersion("470.256.02"), ArchX86_64); err != nil {
		t.Errorf("matching package rejected: %v", err)
	}
	err := CheckRunFile(p, MustParseVersion("470.256.03"), ArchX86_64)
	if !errors.Is(err, ErrWrongPackage) || !strings.Contains(err.Error(), `"470.256.02"`) {
		t.Errorf("wrong version: %v", err)
	}
	err = CheckRunFile(p, MustParseVersion("470.256.02"), ArchAarch64)
	if !errors.Is(err, ErrWrongPackage) || !strings.Contains(err.Error(), "--arch x86_64") {
		t.Errorf("wrong arch: %v", err)
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("#! /bin/sh\nCRCsum=1\nskip=3\nversion_string=450.102.04\n\x1f\x8b\x08"))
	f.Add([]byte("#! /bin/sh\nskip=4\nskip_decompress=2\nsize_decompress=1\nlabel=\"x\"\n\n\n\xfd7zXZ\x00"))
	f.Add([]byte("#!/bin/sh\noffset=`head -n 2 \"$0\" | wc -c`\n(\xb5/\xfd"))
	f.Add([]byte("#! /bin/sh\nskip=-1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if h.PayloadOffset <= 0 || h.PayloadOffset > int64(len(data)) || h.Compression == "" || h.Skip < 2 {
			t.Fatalf("accepted an inconsistent header: %+v (len %d)", h, len(data))
		}
		if data[h.PayloadOffset-1] != '\n' {
			t.Fatalf("payload offset %d does not follow a newline", h.PayloadOffset)
		}
		if got := bytes.Count(data[:h.PayloadOffset], []byte("\n")); got != h.Skip-1 {
			t.Fatalf("payload offset after %d newlines, want %d", got, h.Skip-1)
		}
	})
}
