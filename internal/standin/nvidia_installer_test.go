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

// debianXFlags are what gpuimg's install step adds on a Debian base of arch
// (the X.Org module directory Debian's Xorg loads from).
func debianXFlags(arch string) []string {
	return []string{"--x-library-path=/usr/lib/" + arch + "-linux-gnu", "--x-module-path=/usr/lib/xorg/modules"}
}

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
			"gpuimg-all":         append(llb.InstallerFlags(v, drivers.ArchX86_64, llb.All, false), debianXFlags("x86_64")...),
		}
		if release == manifesttypes.Releases()[0] || release == manifesttypes.For("999").Release {
			flagSets["gpuimg-compute"] = append(llb.InstallerFlags(v, drivers.ArchX86_64, compute, false), debianXFlags("x86_64")...)
			flagSets["gpuimg-all-32bit"] = append(llb.InstallerFlags(v, drivers.ArchX86_64, llb.All, true),
				append(debianXFlags("x86_64"), "--install-compat32-libs", "--compat32-libdir=lib/i386-linux-gnu")...)
		}
		run := cachedPackage(t, Options{Version: release})
		for name, flags := range flagSets {
			t.Run(release+"/"+name, func(t *testing.T) {
				compareInstallers(t, root, run, real, release, flags, "")
			})
		}
	}
}

// aarch64Releases are the releases whose NVIDIA installer is also built for
// aarch64 ($GPUIMG_NVIDIA_INSTALLERS/<release>/aarch64/).
var aarch64Releases = []string{"580.119.02", "590.48.01"}

// TestStandinInstallerMatchesNVIDIAsOnAarch64 is the same comparison for the
// aarch64 packages on the arm64 Debian base, with NVIDIA's aarch64 installer:
// on an x86_64 machine every program in the chroot (the stub's decompressor,
// both installers, ldconfig, nvidia-smi) runs under QEMU. After NVIDIA's
// installer, the linker cache resolves libcuda.so.1 and the stand-in
// nvidia-smi runs and reports the version.
func TestStandinInstallerMatchesNVIDIAsOnAarch64(t *testing.T) {
	testenv.SkipIfShort(t, "NVIDIA's aarch64 installer in an arm64 chroot under QEMU")
	testenv.NVIDIAInstallerFor(t, aarch64Releases[0], "aarch64") // skip before unpacking the base
	testenv.RequireEmulator(t, "aarch64")
	requireTools(t, "aarch64-linux-gnu-gcc")
	root := testenv.BaseRootFS(t, "arm64")
	compute, err := llb.ParseComponents("compute")
	if err != nil {
		t.Fatal(err)
	}
	probe := "ldconfig -p | grep -F 'libcuda.so.1 (libc6,AArch64)' && nvidia-smi --version"
	for _, release := range aarch64Releases {
		real := testenv.NVIDIAInstallerFor(t, release, "aarch64")
		v := drivers.MustParseVersion(release)
		run := cachedPackage(t, Options{Version: release, Arch: "aarch64", Compression: "xz"})
		flagSets := map[string][]string{
			"installer-defaults": {"--silent", "--no-kernel-module"},
			"gpuimg-all":         append(llb.InstallerFlags(v, drivers.ArchAarch64, llb.All, false), debianXFlags("aarch64")...),
		}
		if release == aarch64Releases[len(aarch64Releases)-1] { // every install here is emulated: the newest only
			flagSets["gpuimg-compute"] = append(llb.InstallerFlags(v, drivers.ArchAarch64, compute, false), debianXFlags("aarch64")...)
		}
		for name, flags := range flagSets {
			t.Run(release+"/"+name, func(t *testing.T) {
				out := compareInstallers(t, root, run, real, release, flags, probe)
				if !strings.Contains(out, "DRIVER version      : "+release) {
					t.Errorf("after NVIDIA's aarch64 installer, ldconfig -p has no AArch64 libcuda.so.1 or nvidia-smi did not print %s:\n%s", release, out)
				}
			})
		}
		// The 32-bit options exist only in x86_64 builds of the installer.
		t.Run(release+"/compat32-options-refused", func(t *testing.T) {
			for _, installer := range []string{real, ""} {
				_, out, code := runInstaller(t, root, run, installer, []string{"--silent", "--no-kernel-module", "--no-install-compat32-libs"}, "")
				if code == 0 || !strings.Contains(strings.ToLower(out), `unrecognized option: "--no-install-compat32-libs"`) {
					t.Errorf("installer (%s) with --no-install-compat32-libs: exit %d, want it refused as unrecognized:\n%s", orDefault(installer, "stand-in"), code, out)
				}
			}
		})
	}
}

// compareInstallers installs run over root with the stand-in installer and
// with NVIDIA's (real), with the same flags, and requires the same tree and
// no ERROR or symlink warning from NVIDIA's. probe, when given, runs after
// NVIDIA's installer; NVIDIA's output (and the probe's) is returned.
func compareInstallers(t *testing.T, root, run, real, release string, flags []string, probe string) string {
	t.Helper()
	_, standinTree := installTree(t, root, run, "", flags, "")
	nvidiaOut, nvidiaTree := installTree(t, root, run, real, flags, probe)
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
	return nvidiaOut
}

// installTree extracts run in a sandbox over root, replaces its installer by
// installer when given, runs it with flags, then probe when given, and
// returns their output and what they wrote: one line per path ("type mode
// path [-> target | sha256]").
func installTree(t *testing.T, root, run, installer string, flags []string, probe string) (string, map[string]string) {
	t.Helper()
	s, out, code := runInstaller(t, root, run, installer, flags, probe)
	if code != 0 {
		t.Fatalf("installer (%s) exit %d:\n%s", orDefault(installer, "stand-in"), code, out)
	}
	return out, snapshot(t, s.upper(""))
}

// runInstaller is installTree's run, whatever its exit code.
func runInstaller(t *testing.T, root, run, installer string, flags []string, probe string) (*sandbox, string, int) {
	t.Helper()
	packages := map[string]string{"driver.run": run}
	swap := ""
	if installer != "" {
		packages["nvidia-installer"] = installer
		swap = "cp /pkg/nvidia-installer /tmp/p/nvidia-installer && "
	}
	if probe != "" {
		probe = " && " + probe
	}
	s := newSandbox(t, root)
	out, code := s.run(packages, fmt.Sprintf(
		"cd /tmp && sh /pkg/driver.run -x --target /tmp/p >/dev/null && %scd /tmp/p && ./nvidia-installer %s --log-file-name=/tmp/installer.log%s",
		swap, strings.Join(flags, " "), probe))
	return s, out, code
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

// TestNVIDIAsInstallerFromAPreExtractedTree: gpuimg's extraction step
// unpacks the payload once (drivers.ExtractPayload) and the install step
// runs NVIDIA's installer from that tree, as the .run's own stub does after
// unpacking (cd $tmpdir; ./nvidia-installer). For the oldest and newest
// releases, NVIDIA's installer run that way, from a read-only bind mount of
// the tree, installs exactly what the .run does with the same flags. With
// gpuimg's ldconfig wrapper first on PATH it also installs the same files
// but leaves /etc/ld.so.cache to the per-base layer.
func TestNVIDIAsInstallerFromAPreExtractedTree(t *testing.T) {
	testenv.SkipIfShort(t, "NVIDIA's installer in a chroot")
	releases := manifesttypes.Releases()
	testenv.NVIDIAInstaller(t, releases[0])
	root := testenv.BaseRootFS(t, "amd64")
	for _, release := range []string{releases[0], releases[len(releases)-1]} {
		t.Run(release, func(t *testing.T) {
			real := testenv.NVIDIAInstaller(t, release)
			run := cachedPackage(t, Options{Version: release, Compression: "xz", Installer: real})
			tree := filepath.Join(t.TempDir(), "tree")
			if _, err := drivers.ExtractPayload(run, tree, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			flags := strings.Join(append(llb.InstallerFlags(drivers.MustParseVersion(release), drivers.ArchX86_64, llb.All, false), debianXFlags("x86_64")...), " ") +
				" --log-file-name=/tmp/installer.log"
			install := func(cmd string, inject map[string]string) (string, map[string]string) {
				s := newSandbox(t, root)
				out, code := s.runTree(inject, tree, cmd)
				if code != 0 {
					t.Fatalf("%s: exit %d:\n%s", cmd, code, out)
				}
				return out, snapshot(t, s.upper(""))
			}
			_, fromRun := install("sh /pkg/driver.run "+flags, map[string]string{"driver.run": run})
			readOnly := "mount --bind /pkg/tree /pkg/tree && mount -o remount,bind,ro /pkg/tree && ! touch /pkg/tree/probe 2>/dev/null && cd /pkg/tree && ./nvidia-installer "
			out, fromTree := install(readOnly+flags, nil)
			if diff := treeDiff(fromRun, fromTree); diff != "" {
				t.Errorf("installing from the read-only pre-extracted tree differs from the .run's install (- .run, + tree):\n%s\n%s", diff, out)
			}
			if len(fromRun) < 50 || fromRun["etc/ld.so.cache"] == "" {
				t.Fatalf("the .run's install wrote only %d paths (ld.so.cache: %q)", len(fromRun), fromRun["etc/ld.so.cache"])
			}
			wrapper := filepath.Join(t.TempDir(), "ldconfig")
			if err := os.WriteFile(wrapper, []byte(llb.LdconfigWrapper), 0o755); err != nil {
				t.Fatal(err)
			}
			_, split := install("cp /pkg/ldconfig /opt/stubs/ldconfig && "+readOnly+flags, map[string]string{"ldconfig": wrapper})
			delete(split, "opt/stubs/ldconfig")
			if split["etc/ld.so.cache"] != "" {
				t.Errorf("with the ldconfig wrapper the install still wrote /etc/ld.so.cache")
			}
			want := map[string]string{}
			for p, d := range fromRun {
				if p != "etc/ld.so.cache" && p != "var/cache/ldconfig/aux-cache" && p != "var/cache/ldconfig" {
					want[p] = d
				}
			}
			delete(split, "var/cache/ldconfig/aux-cache")
			delete(split, "var/cache/ldconfig")
			if fromRun["etc"] != "" && len(split) > 0 {
				delete(want, "etc") // the directory's own entry: only ld.so.cache may have copied it up
				delete(split, "etc")
			}
			if diff := treeDiff(want, split); diff != "" {
				t.Errorf("with the ldconfig wrapper the installed files differ (- .run, + wrapper):\n%s", diff)
			}
		})
	}
}
