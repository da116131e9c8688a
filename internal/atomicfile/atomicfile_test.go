package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func names(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// A second writer of one path is refused while the first runs; after the
// first commits, nothing but the file is left.
func TestSecondWriterIsBusy(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.tar")
	first, err := Create(dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dest); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("second Create = %v, want ErrBusy naming %s", err, dest)
	}
	if _, err := CreateDir(dest); !errors.Is(err, ErrBusy) {
		t.Fatalf("CreateDir of a busy path = %v, want ErrBusy", err)
	}
	first.File().WriteString("one")
	if err := first.Commit(0o644); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); got != "out.tar" {
		t.Errorf("left in the directory: %q, want out.tar only", got)
	}
	second, err := Create(dest)
	if err != nil {
		t.Fatalf("Create after the first committed: %v", err)
	}
	second.Discard()
}

// What a killed writer leaves (a temporary file, a temporary directory, a
// lock file) is removed by the next write into the directory; a live
// writer's temporary file is not.
func TestStaleLeftoversAreRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".gpuimg-123-a.tar", ".b.gpuimg-456", ".c.tar.gpuimg-lock", ".gpuimg-probe-x", "keep.tar"} {
		if strings.HasSuffix(name, "456") {
			os.Mkdir(filepath.Join(dir, name), 0o755)
			continue
		}
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	live, err := Create(filepath.Join(dir, "live.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Discard()
	p, err := Create(filepath.Join(dir, "new.tar"))
	if err != nil {
		t.Fatal(err)
	}
	p.Discard()
	want := []string{".gpuimg-probe-x", filepath.Base(live.Name()), ".live.tar.gpuimg-lock", "keep.tar"}
	sort.Strings(want)
	if got := names(t, dir); got != strings.Join(want, " ") {
		t.Errorf("left: %q\nwant: %q", got, strings.Join(want, " "))
	}
}

// Directories made for a write that is discarded are removed again;
// ProbeDir creates none.
func TestDiscardRemovesTheDirectoriesItMade(t *testing.T) {
	root := t.TempDir()
	dest := filepath.Join(root, "a", "b", "out.tar")
	if err := ProbeDir(filepath.Dir(dest)); err != nil {
		t.Fatal(err)
	}
	if got := names(t, root); got != "" {
		t.Fatalf("ProbeDir left %q", got)
	}
	p, err := Create(dest)
	if err != nil {
		t.Fatal(err)
	}
	p.Discard()
	if got := names(t, root); got != "" {
		t.Errorf("Discard left %q", got)
	}
	if err := ProbeDir(filepath.Join(root, "file", "x")); err != nil {
		t.Fatal(err) // root exists and is writable: the nearest ancestor
	}
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	if err := ProbeDir(filepath.Join(root, "file", "x")); err == nil {
		t.Error("ProbeDir under a regular file succeeded")
	}
}
