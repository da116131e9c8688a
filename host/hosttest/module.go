package hosttest

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ModuleELF returns a minimal ELF64 relocatable object, the shape of a
// kernel module, whose .modinfo section holds the given NUL-separated
// key=value fields (e.g. "license=NVIDIA", "version=550.127.05").
func ModuleELF(fields ...string) []byte {
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shOff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}) // 64-bit, little endian, version 1
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shOff)     // shoff
	binary.Write(&b, le, uint32(0)) // flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, int(shOff)-b.Len()))
	section := func(name, typ uint32, flags, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, flags)
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	section(0, 0, 0, 0, 0)                             // SHT_NULL
	section(1, 1, 2, modinfoOff, uint64(len(modinfo))) // .modinfo: PROGBITS, ALLOC
	section(10, 3, 0, shstrOff, uint64(len(shstrtab))) // .shstrtab: STRTAB
	return b.Bytes()
}

// WriteModule writes a module whose .modinfo says version under root at
// path (e.g. /lib/modules/6.1.0-18-amd64/updates/dkms/nvidia.ko.zst),
// compressed as its suffix says (.xz, .zst, or none).
func WriteModule(t testing.TB, root, path, version string) {
	t.Helper()
	data := ModuleELF("license=NVIDIA", "version="+version, "vermagic=6.1.0 SMP mod_unload modversions")
	var out bytes.Buffer
	switch {
	case strings.HasSuffix(path, ".xz"):
		w, err := xz.NewWriter(&out)
		if err == nil {
			_, err = w.Write(data)
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	case strings.HasSuffix(path, ".zst"):
		w, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		out.Write(data)
	}
	WriteFile(t, root, path, out.Bytes())
}

// WriteFile writes data at path under root, creating its directories.
func WriteFile(t testing.TB, root, path string, data []byte) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
