package host

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// osReleasePath holds the running kernel's release (uname -r).
const osReleasePath = "/proc/sys/kernel/osrelease"

// moduleDirs are where modprobe looks for the running kernel's modules.
var moduleDirs = []string{"/lib/modules", "/usr/lib/modules"}

// moduleNames are the nvidia module's file names, as modprobe accepts them.
var moduleNames = []string{"nvidia.ko", "nvidia.ko.xz", "nvidia.ko.zst"}

// InstalledModule is the nvidia module on disk for the running kernel: what
// the host runs after its next reboot.
type InstalledModule struct {
	// Kernel is the running kernel's release (proc/sys/kernel/osrelease).
	Kernel string `json:"kernel"`
	// Path is the module file (under the root); empty when none was found.
	Path string `json:"path,omitempty"`
	// Version is `version=` from its .modinfo section, as modinfo prints it.
	Version string `json:"version,omitempty"`
	// Error says why the module's version could not be read.
	Error string `json:"error,omitempty"`
}

// UpgradePending reports whether the host will run another driver after a
// reboot: the module on disk differs from the loaded one.
func (h Host) UpgradePending() bool {
	m := h.Driver.Installed
	return h.Driver.Loaded && m != nil && m.Version != "" && h.Driver.Version != "" && m.Version != h.Driver.Version
}

// UpgradeMessage is what to tell the user about a pending upgrade.
func (h Host) UpgradeMessage() string {
	v := h.Driver.Installed.Version
	return fmt.Sprintf("the nvidia module on disk (%s, %s) is not the loaded %s: after a reboot this host runs %s; build it now: gpuimg build --driver %s",
		h.Driver.Installed.Path, v, h.Driver.Version, v, v)
}

// readInstalledModule finds the nvidia module of the running kernel and reads
// its version. No osrelease (a fixture without one) means nothing to compare.
func (r reader) readInstalledModule(h *Host) error {
	text, ok, err := r.readOptional(osReleasePath)
	if err != nil || !ok {
		return err
	}
	release := strings.TrimSpace(text)
	if release == "" || strings.ContainsAny(release, "/\x00") || release == "." || release == ".." {
		h.Warnings = append(h.Warnings, fmt.Sprintf("%s holds %q, not a kernel release", osReleasePath, release))
		return nil
	}
	m := &InstalledModule{Kernel: release}
	h.Driver.Installed = m
	paths, err := r.findModules(release)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return nil
	}
	m.Path = paths[0]
	v, err := ModuleVersion(r.path(m.Path))
	if err != nil {
		m.Error = err.Error()
		h.Warnings = append(h.Warnings, fmt.Sprintf("cannot read the version of the installed nvidia module %s: %v", r.path(m.Path), err))
		return nil
	}
	m.Version = v
	if len(paths) > 1 {
		h.Warnings = append(h.Warnings, fmt.Sprintf("several nvidia modules for kernel %s (%s); modprobe's choice depends on depmod's search order, %s was read",
			release, strings.Join(paths, ", "), m.Path))
	}
	return nil
}

// findModules lists the nvidia module files for release, those in an
// updates/ directory first (depmod's default search order prefers them).
func (r reader) findModules(release string) ([]string, error) {
	var found []string
	for _, dir := range moduleDirs {
		base := filepath.Join(dir, release)
		err := filepath.WalkDir(r.path(base), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			for _, name := range moduleNames {
				if d.Name() == name && !d.IsDir() {
					rel, _ := filepath.Rel(r.root, p)
					found = append(found, "/"+rel)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look for the nvidia module under %s: %w", r.path(base), err)
		}
	}
	// /lib is often a link to /usr/lib: the same file twice is one module.
	found = dedupeSameFile(r, found)
	sort.SliceStable(found, func(i, j int) bool {
		return strings.Contains(found[i], "/updates/") && !strings.Contains(found[j], "/updates/")
	})
	return found, nil
}

func dedupeSameFile(r reader, paths []string) []string {
	var out []string
	var seen []os.FileInfo
	for _, p := range paths {
		st, err := os.Stat(r.path(p))
		dup := false
		for _, s := range seen {
			dup = dup || (err == nil && os.SameFile(s, st))
		}
		if !dup {
			out = append(out, p)
			if err == nil {
				seen = append(seen, st)
			}
		}
	}
	return out
}

// ModuleVersion reads `version=` from the .modinfo section of a kernel module
// (.ko, .ko.xz or .ko.zst), as `modinfo -F version` does.
func ModuleVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".ko"):
		return modinfoVersion(f) // uncompressed: read only the sections
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(f); err != nil {
			return "", fmt.Errorf("xz: %w", err)
		}
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return "", fmt.Errorf("not a kernel module name (want .ko, .ko.xz or .ko.zst)")
	}
	// debug/elf needs random access; a module is tens of MB at most.
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decompress: %w", err)
	}
	return modinfoVersion(bytes.NewReader(data))
}

func modinfoVersion(r io.ReaderAt) (string, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return "", fmt.Errorf("not an ELF kernel module: %w", err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return "", errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return "", fmt.Errorf(".modinfo: %w", err)
	}
	for _, field := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("version=")); ok {
			if !versionToken.Match(v) {
				return "", fmt.Errorf(".modinfo has version=%q, not a driver version", v)
			}
			return string(v), nil
		}
	}
	return "", errors.New(".modinfo has no version= field")
}
