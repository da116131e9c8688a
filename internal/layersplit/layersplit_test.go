package layersplit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPlanBalancesLargestFirst(t *testing.T) {
	files := []File{{"/a", 50}, {"/b", 100}, {"/c", 40}, {"/d", 60}, {"/e", 10}, {"/f", 10}}
	got := Plan(files, 30, 3)
	// Largest first to the lightest layer, layer 0 starting at 30: b→1,
	// d→2, a→0 (80), c→2 (100), e→0 (90), f→0 (100).
	want := [][]File{{{"/b", 100}}, {{"/d", 60}, {"/c", 40}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plan = %v, want %v (layer 0 keeps a, e, f)", got, want)
	}
	// The plan depends on the files only, not on their order.
	rev := append([]File(nil), files...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if again := Plan(rev, 30, 3); !reflect.DeepEqual(again, got) {
		t.Errorf("Plan of the same files in another order = %v, want %v", again, got)
	}
	// Same sizes: by path.
	if got := Plan([]File{{"/z", 5}, {"/y", 5}}, 0, 2); !reflect.DeepEqual(got, [][]File{{{"/z", 5}}}) {
		t.Errorf("ties: %v, want /y in layer 0 and /z in layer 1", got)
	}
}

type entry struct {
	mode     fs.FileMode
	uid, gid uint32
	link     string
	sum      string
}

// tree lists every entry under dirs (merged, later dirs win, like layers),
// skipping directories' times.
func tree(t *testing.T, dirs ...string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	for _, dir := range dirs {
		err := filepath.Walk(dir, func(p string, fi fs.FileInfo, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel := strings.TrimPrefix(p, dir)
			st := fi.Sys().(*syscall.Stat_t)
			e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				e.link, err = os.Readlink(p)
			case fi.Mode().IsRegular():
				var b []byte
				b, err = os.ReadFile(p)
				e.sum = fmt.Sprintf("%x", sha256.Sum256(b))
			}
			out[rel] = e
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func write(t *testing.T, root, p string, size int, mode fs.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, bytes.Repeat([]byte(p[len(p)-1:]), size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSplitMovesNewFilesOnly(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/ld.so.cache", 100, 0o644)
	write(t, root, "/usr/bin/base-tool", 900_000, 0o755)
	var before bytes.Buffer
	if err := List(root, &before); err != nil {
		t.Fatal(err)
	}
	set, err := ReadList(&before)
	if err != nil {
		t.Fatal(err)
	}
	if !set["/etc/ld.so.cache"] || !set["/usr/bin/base-tool"] || len(set) != 2 {
		t.Fatalf("List = %v", set)
	}

	// The install: new files, a changed base file, a symlink, a hard link
	// pair, a set-uid binary and a directory with its own mode and owner.
	write(t, root, "/etc/ld.so.cache", 200, 0o644)
	write(t, root, "/usr/lib/x86_64-linux-gnu/libbig.so.1", 300_000, 0o755)
	write(t, root, "/usr/lib/x86_64-linux-gnu/libmid.so.1", 200_000, 0o755)
	write(t, root, "/usr/lib/x86_64-linux-gnu/libsmall.so.1", 100_000, 0o644)
	write(t, root, "/usr/share/nvidia/sub/data.bin", 150_000, 0o600)
	write(t, root, "/usr/bin/nvidia-modprobe", 50_000, 0o4755|fs.ModeSetuid)
	if err := os.Chmod(filepath.Join(root, "/usr/bin/nvidia-modprobe"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("libbig.so.1", filepath.Join(root, "/usr/lib/x86_64-linux-gnu/libbig.so")); err != nil {
		t.Fatal(err)
	}
	write(t, root, "/usr/lib/hard.a", 400_000, 0o644)
	if err := os.Link(filepath.Join(root, "/usr/lib/hard.a"), filepath.Join(root, "/usr/lib/hard.b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "/usr/share/nvidia"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(root, "/usr/share/nvidia"), os.Getuid(), 7); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	want := tree(t, root)

	dests := []string{t.TempDir(), t.TempDir()}
	epoch := time.Unix(1700000000, 0)
	res, err := Split(root, set, dests, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, root, dests[0], dests[1]); !reflect.DeepEqual(got, want) {
		for p, e := range want {
			if got[p] != e {
				t.Errorf("%s: after the split %+v, before %+v", p, got[p], e)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: appeared in the split", p)
			}
		}
	}
	// Kept in the root: what the base had, links, hard links.
	for _, p := range []string{"/etc/ld.so.cache", "/usr/bin/base-tool", "/usr/lib/x86_64-linux-gnu/libbig.so", "/usr/lib/hard.a", "/usr/lib/hard.b"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s left the root: %v", p, err)
		}
	}
	// New files: 300k, 200k, 150k, 100k, 50k over layer 0 (800k of hard
	// links) and two others: 300k→1, 200k→2, 150k→2, 100k→1, 50k→2.
	if !reflect.DeepEqual(res.Bytes, []int64{800_000, 400_000, 400_000}) || !reflect.DeepEqual(res.Files, []int{2, 2, 3}) {
		t.Errorf("Split = %+v, want bytes [800000 400000 400000], files [2 2 3]", res)
	}
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libbig.so.1", "/usr/lib/x86_64-linux-gnu/libsmall.so.1"} {
		fi, err := os.Stat(filepath.Join(dests[0], p))
		if err != nil {
			t.Fatalf("%s not in layer 1: %v", p, err)
		}
		if !fi.ModTime().Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch", p, fi.ModTime())
		}
	}
	for _, d := range []string{dests[1], filepath.Join(dests[1], "/usr/share/nvidia"), filepath.Join(dests[1], "/usr/lib")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(epoch) {
			t.Errorf("directory %s: mtime %v, want the epoch", d, fi.ModTime())
		}
	}
	if fi, err := os.Stat(filepath.Join(dests[1], "/usr/bin/nvidia-modprobe")); err != nil || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("nvidia-modprobe in layer 2 lost its set-uid bit: %v, %v", fi, err)
	}
}

func TestListSkipsTheStepsOwnMounts(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"/proc/1/status", "/tmp/x", "/gpuimg/package/nvidia-installer", "/usr/bin/sh"} {
		write(t, root, p, 1, 0o644)
	}
	var out bytes.Buffer
	if err := List(root, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "/usr/bin/sh\n" {
		t.Errorf("List = %q, want only /usr/bin/sh", got)
	}
}
