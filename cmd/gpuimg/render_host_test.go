package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpuimg/gpuimg/host/hosttest"
	"github.com/gpuimg/gpuimg/internal/testenv"
)

// `gpuimg host` and `gpuimg host --json` on every fixture.
func TestHostReportGolden(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(testenv.RepoRoot(t), "testdata", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "/usr/bin:/bin") // runtimes are looked up under the fixture root: none there
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			root := testenv.HostFixture(t, e.Name())
			h := hosttest.Read(t, root)
			var text, js bytes.Buffer
			if err := writeHostReport(&text, h); err != nil {
				t.Fatal(err)
			}
			if err := writeHostJSON(&js, h); err != nil {
				t.Fatal(err)
			}
			testenv.Golden(t, "host/"+e.Name()+".txt", root, text.String())
			testenv.Golden(t, "host/"+e.Name()+".json", root, js.String())
		})
	}
}
