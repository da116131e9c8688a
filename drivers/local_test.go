package drivers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers/driverstest"
)

func TestImport(t *testing.T) {
	src := writeRun(t, driverstest.Run{Version: "998.10.01"})
	data, _ := os.ReadFile(src)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	cache := t.TempDir()

	if _, err := importRun(src, Want{CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "catalog lacks") {
		t.Errorf("uncatalogued import without a checksum: %v", err)
	}
	if _, err := importRun(src, Want{CacheDir: cache, SHA256: strings.Repeat("0", 64)}); !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("wrong --sha256: %v", err)
	}
	if _, err := importRun(src, Want{CacheDir: cache, SHA256: sha, Arch: ArchAarch64}); !errors.Is(err, ErrWrongPackage) {
		t.Errorf("wrong arch: %v", err)
	}
	if blobs, partials := cacheFiles(t, cache); len(blobs)+len(partials) != 0 {
		t.Errorf("failed imports left %v %v", blobs, partials)
	}
	run, err := importRun(src, Want{CacheDir: cache, SHA256: sha})
	if err != nil {
		t.Fatal(err)
	}
	if run.Path != filepath.Join(cache, "sha256", sha, "NVIDIA-Linux-x86_64-998.10.01.run") || run.VerifiedBy != VerifiedByFlag || run.Version.String() != "998.10.01" {
		t.Errorf("run = %+v", run)
	}
	if got, _ := os.ReadFile(run.Path); !bytes.Equal(got, data) {
		t.Errorf("imported copy differs")
	}
	// Offline fetch now finds it by name.
	r, err := fetchRun(context.Background(), Want{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, CacheDir: cache, Offline: true})
	p := r.Path
	if err != nil || p != run.Path {
		t.Errorf("offline fetch after import: %q %v", p, err)
	}
}

func TestImportAgainstCatalog(t *testing.T) {
	src := writeRun(t, driverstest.Run{Version: "998.10.01"})
	data, _ := os.ReadFile(src)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	useCatalog(t,
		Package{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, Variant: VariantFull, SHA256: strings.Repeat("1", 64), Size: 1},
		Package{Version: MustParseVersion("998.10.01"), Arch: ArchX86_64, Variant: VariantNoCompat32, SHA256: sha, Size: int64(len(data))},
	)
	run, err := importRun(src, Want{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if run.VerifiedBy != VerifiedByCatalog || run.Variant != VariantNoCompat32 || filepath.Base(run.Path) != "NVIDIA-Linux-x86_64-998.10.01-no-compat32.run" {
		t.Errorf("run = %+v", run)
	}
	flipped := append([]byte{}, data...)
	flipped[len(flipped)-100] ^= 0x80
	bad := filepath.Join(t.TempDir(), "NVIDIA-Linux-x86_64-998.10.01.run")
	os.WriteFile(bad, flipped, 0o644)
	if _, err := importRun(bad, Want{CacheDir: t.TempDir()}); !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "copy it again") {
		t.Errorf("flipped byte: %v", err)
	}
}

func TestImportRejectsNonRun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(p, []byte("hello\n"), 0o644)
	if _, err := importRun(p, Want{CacheDir: t.TempDir(), AllowUnverified: true}); !errors.Is(err, ErrNotRun) {
		t.Errorf("err = %v", err)
	}
}

// FileSHA256 hashes across the copy's chunk boundaries; NormalizeSHA256
// takes any case and refuses what is not 64 hex digits.
func TestFileSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, bytes.Repeat([]byte("x"), 3<<20+17), 0o644)
	sum := sha256.Sum256(bytes.Repeat([]byte("x"), 3<<20+17))
	sha := hex.EncodeToString(sum[:])
	if got, size, err := FileSHA256(p); err != nil || got != sha || size != 3<<20+17 {
		t.Errorf("FileSHA256 = %s, %d, %v; want %s", got, size, err, sha)
	}
	if got, err := NormalizeSHA256("sha256:" + strings.ToUpper(sha)); err != nil || got != sha {
		t.Errorf("upper-case sha: %q, %v", got, err)
	}
	if _, err := NormalizeSHA256("12"); err == nil {
		t.Errorf("short sha accepted")
	}
}
