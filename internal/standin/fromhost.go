package standin

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/gpuimg/gpuimg/internal/atomicfile"
)

// HostOptions select a package assembled from a driver userspace that is
// already installed on a host (a GPU machine's /usr/local/nvidia, say)
// instead of generated files: NVIDIA's real libraries and programs, under
// their real names, in a .run of NVIDIA's makeself format whose .manifest
// follows the release's type table, with NVIDIA's nvidia-installer inside.
type HostOptions struct {
	Version   string // the installed driver's version, e.g. "580.159.04"; required
	Arch      string // "x86_64" (default) or "aarch64"
	Installer string // NVIDIA's nvidia-installer binary to ship; required
	// Search lists the directories searched, recursively, for the package's
	// files by base name; the first directory holding a name wins.
	Search []string
}

// HostFile is one file of NVIDIA's package and where it came from.
type HostFile struct {
	File   string // path inside the package ("libcuda.so.580.159.04", "nvidia_icd.json")
	Type   string // manifest TYPE
	Source string // host path ("" when missing)
}

// HostReport says what went into the package and what did not.
type HostReport struct {
	Included []HostFile // copied from the host
	Missing  []HostFile // in NVIDIA's package, not on the host: left out of the .run and its manifest
	// Unpackaged lists host files in the searched directories that NVIDIA's
	// package (as this generator models it) has no entry for, or that are
	// built for another machine (32-bit copies): not packaged.
	Unpackaged []string
	// SONAMEMismatches lists libraries whose real SONAME differs from the
	// model's (the manifest's symlinks would then point the wrong way).
	SONAMEMismatches []string
}

// GenerateFromHost writes NVIDIA-Linux-<arch>-<v>-no-compat32.run into dir
// from the host's installed files and returns its path and what it holds.
// Every regular file of the model that a search directory holds goes in with
// the host's bytes; symlinks stay manifest entries for the installer to make,
// kept only when their target is in the package. The payload is gzip (the
// stub then needs no decompressor built with Go); 32-bit libraries are left
// out, since a host's driver directory does not hold them apart by name.
func GenerateFromHost(dir string, opts HostOptions) (string, HostReport, error) {
	if opts.Installer == "" {
		return "", HostReport{}, fmt.Errorf("package from host: no nvidia-installer given: pass NVIDIA's (../shared/fixtures/nvidia-installer/<release>/nvidia-installer)")
	}
	if len(opts.Search) == 0 {
		return "", HostReport{}, fmt.Errorf("package from host: no directory to take the driver's files from: pass the driver's root, e.g. /usr/local/nvidia")
	}
	o, err := Options{Version: opts.Version, Arch: opts.Arch, Compression: "gzip", NoCompat32: true, Installer: opts.Installer}.normalized()
	if err != nil {
		return "", HostReport{}, err
	}
	index, foreign, err := indexHostFiles(opts.Search, elfMachines[o.Arch])
	if err != nil {
		return "", HostReport{}, err
	}
	pkg, err := newPackage(o)
	if err != nil {
		return "", HostReport{}, err
	}
	// NVIDIA's package also ships the Vulkan implicit layer (Optimus); the
	// generated one has no use for it, a real userspace has it.
	pkg.entries = append(pkg.entries, entry{file: "nvidia_layers.json", perms: "0644", fileType: "VULKAN_ICD_JSON",
		pathToken: "implicit_layer.d/", module: "vulkan", manifest: true, kind: kindText})
	if dir, err = filepath.Abs(dir); err != nil {
		return "", HostReport{}, fmt.Errorf("package from host: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", HostReport{}, fmt.Errorf("package from host: create output directory: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".fromhost-work-")
	if err != nil {
		return "", HostReport{}, fmt.Errorf("package from host: create work directory in %s: %w", dir, err)
	}
	defer os.RemoveAll(work)
	report, err := pkg.takeFromHost(filepath.Join(work, "tree", o.targetDir()), index)
	if err != nil {
		return "", report, err
	}
	report.Unpackaged = append(report.Unpackaged, foreign...)
	sort.Strings(report.Unpackaged)
	runPath, err := publishRun(dir, work, pkg)
	return runPath, report, err
}

// elfMachines is the ELF machine of each package architecture's libraries.
var elfMachines = map[string]elf.Machine{"x86_64": elf.EM_X86_64, "aarch64": elf.EM_AARCH64}

// cpuMachines are the host CPUs whose libraries a driver directory may hold
// side by side; ELF files for other machines (the GPU's RISC-V GSP
// firmware) are data to the package.
var cpuMachines = map[elf.Machine]bool{elf.EM_X86_64: true, elf.EM_386: true, elf.EM_AARCH64: true, elf.EM_ARM: true}

// indexHostFiles maps the base name of every regular file under the search
// directories to its path (the first directory wins). Libraries built for
// another CPU (a host's 32-bit lib/ beside lib64/ holds the same names) are
// not indexed but returned apart, so a 64-bit package never takes them.
func indexHostFiles(search []string, machine elf.Machine) (index map[string]string, foreign []string, err error) {
	index = map[string]string{}
	for _, root := range search {
		if root, err = filepath.Abs(root); err != nil {
			return nil, nil, fmt.Errorf("package from host: %w", err)
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if m, isELF := elfMachine(p); isELF && cpuMachines[m] && m != machine {
				foreign = append(foreign, p)
			} else if _, seen := index[d.Name()]; !seen {
				index[d.Name()] = p
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("package from host: read %s: %w: pass a directory that holds the driver's files", root, err)
		}
	}
	return index, foreign, nil
}

// elfMachine is the file's ELF machine, if it is an ELF file.
func elfMachine(file string) (elf.Machine, bool) {
	f, err := elf.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return f.Machine, true
}

// takeFromHost keeps the entries the host can fill: each file present on the
// host is linked into the package tree (where payloadFiles reads built files),
// each missing one is dropped, and then every manifest symlink whose target
// chain no longer ends in a kept file.
func (p *driverPackage) takeFromHost(tree string, index map[string]string) (HostReport, error) {
	var r HostReport
	used := map[string]bool{}
	var kept []entry
	for _, e := range p.entries {
		switch {
		case e.kind == kindSymlink || e.kind == kindInstaller || e.symlink:
			kept = append(kept, e)
			continue
		case !e.manifest:
			if e.kind == kindText { // makeself plumbing; the generated mkprecompiled is not NVIDIA's: left out
				kept = append(kept, e)
			}
			continue
		}
		src, ok := index[path.Base(e.file)]
		if !ok {
			r.Missing = append(r.Missing, HostFile{File: e.file, Type: e.fileType})
			continue
		}
		used[src] = true
		dst := filepath.Join(tree, e.file)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return r, fmt.Errorf("package from host: %w", err)
		}
		if err := os.Symlink(src, dst); err != nil {
			return r, fmt.Errorf("package from host: %w", err)
		}
		if e.soname != "" {
			if real := elfSONAME(src); real != "" && real != e.soname {
				r.SONAMEMismatches = append(r.SONAMEMismatches, fmt.Sprintf("%s: SONAME %s, the manifest's links expect %s", src, real, e.soname))
			}
		}
		e.kind = kindProgram // read from the tree, like a built file
		kept = append(kept, e)
		r.Included = append(r.Included, HostFile{File: e.file, Type: e.fileType, Source: src})
	}
	p.entries = dropDanglingSymlinks(kept, &r)
	for _, src := range index {
		if !used[src] {
			r.Unpackaged = append(r.Unpackaged, src)
		}
	}
	return r, nil
}

// dropDanglingSymlinks removes manifest symlinks whose target is neither a
// kept file nor a kept symlink, recording them as missing.
func dropDanglingSymlinks(entries []entry, r *HostReport) []entry {
	for {
		present := map[string]bool{}
		for _, e := range entries {
			if e.manifest {
				present[path.Base(e.file)] = true
			}
		}
		var out []entry
		for _, e := range entries {
			if e.kind == kindSymlink && !present[path.Base(e.target)] {
				r.Missing = append(r.Missing, HostFile{File: e.file, Type: e.fileType})
				continue
			}
			out = append(out, e)
		}
		if len(out) == len(entries) {
			return out
		}
		entries = out
	}
}

// elfSONAME is the file's DT_SONAME, or "" when it has none or is no ELF.
func elfSONAME(file string) string {
	f, err := elf.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	names, err := f.DynString(elf.DT_SONAME)
	if err != nil || len(names) == 0 {
		return ""
	}
	return names[0]
}

// publishRun writes the package under a temporary name in dir and renames it
// into place, so a failed run leaves nothing behind.
func publishRun(dir, work string, p *driverPackage) (string, error) {
	runPath := filepath.Join(dir, p.opts.runName())
	out, err := atomicfile.Create(runPath)
	if err != nil {
		return "", fmt.Errorf("stand-in driver: create %s: %w", runPath, err)
	}
	defer out.Discard() // no-op once committed
	if err := writeRun(out.File(), work, p); err != nil {
		return "", err
	}
	if err := out.Commit(0o755); err != nil {
		return "", fmt.Errorf("stand-in driver: write %s: %w", runPath, err)
	}
	return runPath, nil
}
