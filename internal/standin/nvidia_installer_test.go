package standin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/gpuimg/gpuimg/llb"
)

// debianXFlags are what gpuimg's install step adds on a Debian base (the
// X.Org module directory Debian's Xorg loads from).
var debianXFlags = []string{"--x-library-path=/usr/lib/x86_64-linux-gnu", "--x-module-path=/usr/lib/xorg/modules"}

// TestStandinInstallerMatchesNVIDIAs installs each release's stand-in package
// twice on the same Debian base with the same flags, once with the stand-in
// installer and once with NVIDIA's own (built from its source), and requires
// the same tree: paths, file types, modes, symlink targets and contents. It
// also requires that NVIDIA's installer accepts the package with no ERROR and
// no symlink warning.
func TestStandinInstallerMatchesNVIDIAs(t *testing.T) {
	testenv.SkipIfShort(t, "NVIDIA's installer in a chroot")
	testenv.NVIDIAInstaller(t, manifesttypes.Releases()[0]) // skip before unpacking the base
	root := testenv.BaseRootFS(t, "amd64")
	compute, err := llb.ParseComponents("compute")
	if err != nil {
		t.Fatal(err)
	}
	for _, release := range manifesttypes.Releases() {
		real := testenv.NVIDIAInstaller(t, release)
		v := drivers.MustParseVersion(release)
		flagSets := map[string][]string{
			"installer-defaults": {"--silent", "--no-kernel-module"},
			"gpuimg-all":         append(llb.InstallerFlags(v, llb.All, false), debianXFlags...),
		}
		if release == manifesttypes.Releases()[0] || release == manifesttypes.For("999").Release {
			flagSets["gpuimg-compute"] = append(llb.InstallerFlags(v, compute, false), debianXFlags...)
			flagSets["gpuimg-all-32bit"] = append(llb.InstallerFlags(v, llb.All, true),
				append(debianXFlags, "--install-compat32-libs", "--compat32-libdir=lib/i386-linux-gnu")...)
		}
		run := cachedPackage(t, Options{Version: release})
		for name, flags := range flagSets {
			t.Run(release+"/"+name, func(t *testing.T) {
				_, standinTree := installTree(t, root, run, "", flags)
				nvidiaOut, nvidiaTree := installTree(t, root, run, real, flags)
				for _, bad := range []string{"ERROR", "does not point to", "does not exist"} {
					if strings.Contains(nvidiaOut, bad) {
						t.Errorf("NVIDIA's installer %s printed %q for the stand-in package:\n%s", release, bad, nvidiaOut)
					}
				}
				if diff := treeDiff(nvidiaTree, standinTree); diff != "" {
					t.Errorf("the stand-in installer's tree differs from NVIDIA's (- NVIDIA's, + the stand-in's):\n%s", diff)
				}
				if len(nvidiaTree) < 50 {
					t.Errorf("NVIDIA's installer installed only %d paths:\n%s", len(nvidiaTree), nvidiaOut)
				}
			})
		}
	}
}

// installTree extracts run in a sandbox over root, replaces its installer by
// installer when given, runs it with flags and returns its output and what it
// wrote: one line per path ("type mode path [-> target | sha256]").
func installTree(t *testing.T, root, run, installer string, flags []string) (string, map[string]string) {
	t.Helper()
	packages := map[string]string{"driver.run": run}
	swap := ""
	if installer != "" {
		packages["nvidia-installer"] = installer
		swap = "cp /pkg/nvidia-installer /tmp/p/nvidia-installer && "
	}
	s := newSandbox(t, root)
	out, code := s.run(packages, fmt.Sprintf(
		"cd /tmp && sh /pkg/driver.run -x --target /tmp/p >/dev/null && %scd /tmp/p && ./nvidia-installer %s --log-file-name=/tmp/installer.log",
		swap, strings.Join(flags, " ")))
	if code != 0 {
		t.Fatalf("installer (%s) exit %d:\n%s", orDefault(installer, "stand-in"), code, out)
	}
	return out, snapshot(t, s.upper(""))
}

// snapshot describes every path under dir but the sandbox's own (tmp, opt)
// and what differs by design: the installer binary and its private records.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "tmp" || rel == "opt" {
			return filepath.SkipDir
		}
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case info.Mode().IsRegular() && rel != "usr/bin/nvidia-installer" && !strings.HasPrefix(rel, "var/lib/nvidia/") &&
			rel != "var/cache/ldconfig/aux-cache":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		tree[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func treeDiff(want, got map[string]string) string {
	var lines []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			lines = append(lines, "- "+p+" "+w)
		} else if g != w {
			lines = append(lines, "- "+p+" "+w, "+ "+p+" "+g)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			lines = append(lines, "+ "+p+" "+g)
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][2:] < lines[j][2:] })
	return strings.Join(lines, "\n")
}
