package drivers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gpuimg/gpuimg/internal/standin"
)

// TestExtractPayloadMatchesTheStub: gpuimg's extraction gives exactly the
// tree the package's own stub gives with --extract-only --target (paths,
// types, modes, symlink targets, contents, file mtimes), for each of
// NVIDIA's payload formats, and uses the package's embedded decoder for xz
// when the package is for this machine's arch.
func TestExtractPayloadMatchesTheStub(t *testing.T) {
	for _, c := range []struct{ arch, compression, decoder string }{
		{ArchX86_64, "gzip", DecoderGo}, {ArchX86_64, "xz", DecoderEmbedded}, {ArchX86_64, "zstd", DecoderGo},
		// Another arch's embedded decoder would run emulated, if at all.
		{ArchAarch64, "xz", DecoderGo},
	} {
		t.Run(c.arch+"-"+c.compression, func(t *testing.T) {
			run := standinRun(t, standin.Options{Version: "580.159.04", Arch: c.arch, Compression: c.compression})
			stubDir := filepath.Join(t.TempDir(), "stub")
			if out, err := exec.Command("sh", run, "--extract-only", "--target", stubDir).CombinedOutput(); err != nil {
				t.Fatalf("the stub's extraction: %v\n%s", err, out)
			}
			ours := filepath.Join(t.TempDir(), "ours")
			decoder, err := ExtractPayload(run, ours, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if decoder != c.decoder {
				t.Errorf("decoder %s, want %s", decoder, c.decoder)
			}
			want, got := treeOf(t, stubDir), treeOf(t, ours)
			if len(want) < 10 {
				t.Fatalf("the stub extracted only %d entries", len(want))
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s: got %q, want %q", p, got[p], w)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s: extracted, but not by the stub", p)
				}
			}
		})
	}
}

func TestExtractPayloadRefusesDamage(t *testing.T) {
	run := standinRun(t, standin.Options{Version: "580.159.04", Compression: "xz"})
	b, err := os.ReadFile(run)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), filepath.Base(run))
	if err := os.WriteFile(damaged, b[:len(b)-len(b)/4], 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ExtractPayload(damaged, filepath.Join(t.TempDir(), "x"), t.TempDir()); err == nil {
		t.Fatal("a truncated package extracted without error")
	}
}

// treeOf describes every entry under root: type, mode, symlink target or
// content hash, and a regular file's mtime.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v", info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8]) + " " + info.ModTime().UTC().String()
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
