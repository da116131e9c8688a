package drivers

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/internal/standin"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// standinRun generates (once, cached) a stand-in package with the real
// format; gcc builds its ELF files.
func standinRun(t *testing.T, opts standin.Options) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.SkipOrFail(t, "gcc is needed to build stand-in packages: %v", err)
	}
	p, err := standin.Cached(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInspectStandins(t *testing.T) {
	for _, opts := range []standin.Options{
		{Version: "580.159.04", Compression: "gzip"},
		{Version: "470.256.02", Compression: "xz"},
		{Version: "595.84", Arch: ArchAarch64, Compression: "zstd"},
		{Version: "450.102.04", Compression: "gzip", NoCompat32: true},
	} {
		t.Run(opts.Version+"-"+opts.Compression, func(t *testing.T) {
			p := standinRun(t, opts)
			arch := opts.Arch
			if arch == "" {
				arch = ArchX86_64
			}
			info, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if info.Version != opts.Version || info.ManifestVersion != opts.Version || info.Arch != arch || info.Header.Compression != opts.Compression {
				t.Errorf("info: version %s/%s arch %s compression %s", info.Version, info.ManifestVersion, info.Arch, info.Header.Compression)
			}
			if err := CheckRunFile(p, MustParseVersion(opts.Version), arch); err != nil {
				t.Error(err)
			}
			for _, c := range []Component{ComponentUtility, ComponentCompute, ComponentVideo, ComponentGraphics, ComponentKernelOnly} {
				if g := info.Group(c); g.Files == 0 || g.Bytes == 0 {
					t.Errorf("group %s is empty: %+v", c, g)
				}
			}
			if len(info.Missing) != 0 {
				t.Errorf("manifest entries absent from the payload: %v", info.Missing)
			}
			compat := 0
			for _, e := range info.Manifest.Entries {
				if e.Arch == "COMPAT32" {
					compat++
				}
			}
			if wantCompat := arch == ArchX86_64 && !opts.NoCompat32; (compat > 0) != wantCompat {
				t.Errorf("%d COMPAT32 entries, want some: %v", compat, wantCompat)
			}
			// Cross-check against the stub's own way of reading the payload.
			if opts.Compression == "gzip" {
				total := shellPayloadBytes(t, p, info.Header.Skip)
				if got := info.Bytes + info.Unlisted.Bytes; got != total {
					t.Errorf("listed+unlisted bytes = %d, tail|gzip|tar says %d", got, total)
				}
			}
		})
	}
}

// shellPayloadBytes sums regular-file sizes as `tail -n +N | gzip -dc | tar tv` lists them.
func shellPayloadBytes(t *testing.T, run string, skip int) int64 {
	t.Helper()
	out, err := exec.Command("sh", "-c", fmt.Sprintf("tail -n +%d %q | gzip -dc | tar tvf -", skip, run)).Output()
	if err != nil {
		t.Fatalf("tail | gzip -dc | tar tv: %v", err)
	}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "-") {
			continue
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("tar tv line %q", sc.Text())
		}
		total += n
	}
	return total
}
