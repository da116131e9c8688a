package testenv

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is -update in test binaries only: programs that start daemons through
// this package (the benchmarks) must not grow the flag.
var update = func() *bool {
	if testing.Testing() {
		return flag.Bool("update", false, "rewrite the golden files in testdata/golden")
	}
	return new(bool)
}()

// Golden compares got with the package's testdata/golden/name after replacing
// the machine-specific fixture root with <ROOT>; `go test -update` rewrites it.
func Golden(t testing.TB, name, root, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, root, "<ROOT>")
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the package's tests with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// HostFixture returns the GPU host fixture root testdata/hosts/name.
func HostFixture(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "testdata", "hosts", name)
}
