package host

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The driver's version files, read under the root.
const (
	SysVersionPath  = "/sys/module/nvidia/version"
	ProcVersionPath = "/proc/driver/nvidia/version"
)

// Other paths read under the root.
const (
	procGPUsDir      = "/proc/driver/nvidia/gpus"
	procParamsPath   = "/proc/driver/nvidia/params"
	procDevicesPath  = "/proc/devices"
	procCapsDir      = "/proc/driver/nvidia/capabilities"
	migMinorsPath    = "/proc/driver/nvidia-caps/mig-minors"
	etcGroupPath     = "/etc/group"
	sysPCIDevicesDir = "/sys/bus/pci/devices"
)

// Fixed minors of the frontend (195) major.
const (
	ControlMinor = 255
	ModesetMinor = 254
)

// Read inspects the host under root ("/" for this machine). A host without
// an NVIDIA driver is not an error: Driver.Loaded is false and callers that
// need one call RequireDriver. Errors are unreadable files, not absent ones.
func Read(root string) (Host, error) { return ReadWith(root, nil) }

// ReadWith is Read with the device nodes answered by devices (nil: stat
// them under root).
func ReadWith(root string, devices Devices) (Host, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return Host{}, fmt.Errorf("host root %s: %w", root, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return Host{}, fmt.Errorf("host root %s is not a directory: pass an existing directory to --root (default /)", root)
	}
	h := Host{Root: abs}
	if devices == nil {
		devices = statDevices{root: abs}
	}
	r := reader{root: abs, devices: devices}

	if err := r.readDriver(&h); err != nil {
		return Host{}, err
	}
	if err := r.readInstalledModule(&h); err != nil {
		return Host{}, err
	}
	if h.UpgradePending() {
		h.Driver.PendingUpgrade = h.Driver.Installed.Version
		h.Warnings = append(h.Warnings, h.UpgradeMessage())
	}
	if h.Arch, err = r.readArch(); err != nil {
		return Host{}, err
	}
	if h.Majors, err = r.readMajors(); err != nil {
		return Host{}, err
	}
	if h.Params, err = r.readParams(); err != nil {
		return Host{}, err
	}
	if h.GPUs, err = r.readGPUs(); err != nil {
		return Host{}, err
	}
	if h.MIG, err = r.readMIG(h.GPUs); err != nil {
		return Host{}, err
	}
	if err := r.readNodes(&h); err != nil {
		return Host{}, err
	}
	if h.PersistencedSocket, err = r.isSocket(PersistencedSocket); err != nil {
		return Host{}, err
	}
	h.Toolkit, h.Runtimes = r.readTools()
	if h.Driver.Loaded && h.Majors.Frontend == 0 {
		h.Warnings = append(h.Warnings, fmt.Sprintf("%s has no nvidia line although the driver is loaded", procDevicesPath))
	}
	return h, nil
}

type reader struct {
	root    string
	devices Devices
}

func (r reader) path(p string) string { return filepath.Join(r.root, p) }

// readOptional returns a file's content, or "" when it does not exist.
func (r reader) readOptional(p string) (string, bool, error) {
	b, err := os.ReadFile(r.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", r.path(p), err)
	}
	return string(b), true, nil
}

var versionToken = regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`)

// ParseProcVersion extracts the module version and flavour from the first
// line of /proc/driver/nvidia/version: the first token after "Kernel Module"
// that looks like a version. Both forms are handled:
//
//	NVRM version: NVIDIA UNIX x86_64 Kernel Module  595.58.03  Tue Mar 17 …
//	NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build …
func ParseProcVersion(text string) (version, module string, ok bool) {
	line, _, _ := strings.Cut(text, "\n")
	_, after, found := strings.Cut(line, "Kernel Module")
	if !found {
		return "", "", false
	}
	module = "proprietary"
	if strings.Contains(line, "Open Kernel Module") {
		module = "open"
	}
	for _, tok := range strings.Fields(after) {
		if versionToken.MatchString(tok) {
			return tok, module, true
		}
	}
	return "", "", false
}

func (r reader) readDriver(h *Host) error {
	sysText, sysOK, err := r.readOptional(SysVersionPath)
	if err != nil {
		return err
	}
	procText, procOK, err := r.readOptional(ProcVersionPath)
	if err != nil {
		return err
	}
	d := &h.Driver
	d.Loaded = sysOK || procOK
	if sysOK {
		// Validated like any version, and quoted when it is not one: control
		// bytes from a damaged file must never reach a label or a terminal.
		if v := strings.TrimSpace(sysText); versionToken.MatchString(v) {
			d.SysVersion = v
		} else {
			h.Warnings = append(h.Warnings, fmt.Sprintf("%s holds %s, which is not a driver version (want e.g. 580.159.04); ignoring it: check the module with `modinfo nvidia`",
				SysVersionPath, quoteCapped(sysText)))
		}
	}
	if procOK {
		v, module, ok := ParseProcVersion(procText)
		if !ok {
			h.Warnings = append(h.Warnings, fmt.Sprintf("%s: no version after \"Kernel Module\" in %s", ProcVersionPath, quoteCapped(firstLine(procText))))
		}
		d.ProcVersion, d.Module = v, module
	}
	d.Version = d.SysVersion
	if d.Version == "" {
		d.Version = d.ProcVersion
	}
	if d.SysVersion != "" && d.ProcVersion != "" && d.SysVersion != d.ProcVersion {
		h.Warnings = append(h.Warnings, fmt.Sprintf("driver versions disagree: %s says %s, %s says %s; using %s (a module reloaded without a reboot?)",
			SysVersionPath, d.SysVersion, ProcVersionPath, d.ProcVersion, d.SysVersion))
	}
	if d.Loaded && d.Version == "" {
		h.Warnings = append(h.Warnings, "the NVIDIA driver is loaded but its version could not be read")
	}
	return nil
}

// ProcArchPath is the kernel's machine name, what uname -m prints.
const ProcArchPath = "/proc/sys/kernel/arch"

// procVersionArch finds the architecture in the NVRM line: "Open Kernel
// Module for aarch64" (the open module), or "NVIDIA UNIX x86_64 Kernel
// Module" (the proprietary one).
var procVersionArch = []*regexp.Regexp{regexp.MustCompile(`Kernel Module for (\w+)`), regexp.MustCompile(`NVIDIA UNIX (\w+) Kernel Module`)}

// readArch is the machine's architecture: /proc/sys/kernel/arch, else the
// architecture the kernel module was built for.
func (r reader) readArch() (string, error) {
	text, ok, err := r.readOptional(ProcArchPath)
	if err != nil || ok {
		return strings.TrimSpace(text), err
	}
	text, ok, err = r.readOptional(ProcVersionPath)
	if err != nil || !ok {
		return "", err
	}
	for _, re := range procVersionArch {
		if m := re.FindStringSubmatch(firstLine(text)); m != nil {
			return m[1], nil
		}
	}
	return "", nil
}

// quoteCapped quotes s for a message, escaping control bytes, and keeps
// at most 64 bytes of it.
func quoteCapped(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// ParseProcDevices returns the "Character devices:" section of /proc/devices
// as name → major. A major listed under several names keeps all of them.
func ParseProcDevices(text string) map[string]int {
	majors := map[string]int{}
	inChar := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "Character devices:":
			inChar = true
			continue
		case strings.HasSuffix(line, "devices:"):
			inChar = false
			continue
		}
		if !inChar {
			continue
		}
		num, name, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if major, err := strconv.Atoi(num); err == nil {
			majors[strings.TrimSpace(name)] = major
		}
	}
	return majors
}

func (r reader) readMajors() (Majors, error) {
	text, _, err := r.readOptional(procDevicesPath)
	if err != nil {
		return Majors{}, err
	}
	byName := ParseProcDevices(text)
	var m Majors
	// From 550 the frontend reads "nvidia"; before, "nvidia-frontend".
	for _, name := range []string{"nvidia", "nvidia-frontend"} {
		if major, ok := byName[name]; ok {
			m.Frontend, m.FrontendName = major, name
			break
		}
	}
	m.UVM = byName["nvidia-uvm"]
	m.Caps = byName["nvidia-caps"]
	m.ImexChannels = byName["nvidia-caps-imex-channels"]
	m.NVSwitch = byName["nvidia-nvswitch"]
	m.NVLink = byName["nvidia-nvlink"]
	return m, nil
}

// parseKeyValues reads "Key:<spaces>value" lines (information, params, cap files).
func parseKeyValues(text string) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return kv
}

func (r reader) readParams() (Params, error) {
	// The module's defaults, used when params is absent.
	p := Params{DeviceFileMode: 0o666, ModifyDeviceFiles: true}
	text, ok, err := r.readOptional(procParamsPath)
	if err != nil || !ok {
		return p, err
	}
	kv := parseKeyValues(text)
	if v, err := strconv.Atoi(kv["DeviceFileUID"]); err == nil {
		p.DeviceFileUID = v
	}
	if v, err := strconv.Atoi(kv["DeviceFileGID"]); err == nil {
		p.DeviceFileGID = v
	}
	if v, err := strconv.Atoi(kv["DeviceFileMode"]); err == nil {
		p.DeviceFileMode = os.FileMode(v).Perm()
	}
	if v, err := strconv.Atoi(kv["ModifyDeviceFiles"]); err == nil {
		p.ModifyDeviceFiles = v != 0
	}
	if v, err := strconv.Atoi(kv["ImexChannelCount"]); err == nil && v > 0 {
		p.ImexChannelCount = v
	}
	return p, nil
}

func (r reader) readGPUs() ([]GPU, error) {
	entries, err := os.ReadDir(r.path(procGPUsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path(procGPUsDir), err)
	}
	var gpus []GPU
	for _, e := range entries {
		infoPath := filepath.Join(procGPUsDir, e.Name(), "information")
		text, ok, err := r.readOptional(infoPath)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		kv := parseKeyValues(text)
		minor, err := strconv.Atoi(kv["Device Minor"])
		if err != nil {
			return nil, fmt.Errorf("%s: no valid \"Device Minor\" line (%q): the driver's procfs looks corrupt", r.path(infoPath), kv["Device Minor"])
		}
		bus := kv["Bus Location"]
		if bus == "" {
			bus = e.Name()
		}
		gpus = append(gpus, GPU{
			Minor:    minor,
			UUID:     kv["GPU UUID"],
			BusID:    NormalizeBusID(bus),
			Model:    kv["Model"],
			Excluded: strings.EqualFold(kv["GPU Excluded"], "yes"),
		})
	}
	// The NVML index is PCI bus order; normalised bus ids sort correctly.
	sort.Slice(gpus, func(i, j int) bool { return gpus[i].BusID < gpus[j].BusID })
	for i := range gpus {
		gpus[i].Index = i
	}
	return gpus, nil
}

// NormalizeBusID writes a PCI bus id as domain:bus:device.function with a
// 4-digit domain (8-digit domains keep their width), 2-digit bus and device,
// lower case: "0:6:0.0", "00000000:00:06.0" and "0000:00:06.0" all become
// "0000:00:06.0". It returns "" for something that is not a bus id.
func NormalizeBusID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	parts := strings.Split(s, ":")
	var domain, bus, devfn string
	switch len(parts) {
	case 3:
		domain, bus, devfn = parts[0], parts[1], parts[2]
	case 2:
		domain, bus, devfn = "0", parts[0], parts[1]
	default:
		return ""
	}
	dev, fn, ok := strings.Cut(devfn, ".")
	if !ok {
		return ""
	}
	d, err1 := strconv.ParseUint(domain, 16, 32)
	b, err2 := strconv.ParseUint(bus, 16, 8)
	v, err3 := strconv.ParseUint(dev, 16, 8)
	f, err4 := strconv.ParseUint(fn, 16, 8)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || v > 0x1f || f > 7 {
		return ""
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", d, b, v, f)
}

var (
	giDir = regexp.MustCompile(`^gi(\d+)$`)
	ciDir = regexp.MustCompile(`^ci(\d+)$`)
)

// readMIG lists the MIG devices whose GI and CI access files exist under
// /proc/driver/nvidia/capabilities/gpu<minor>/mig (lnc creates only those).
func (r reader) readMIG(gpus []GPU) ([]MIGDevice, error) {
	migMinors, _, err := r.readOptional(migMinorsPath)
	if err != nil {
		return nil, err
	}
	capMinor := map[string]int{}
	for _, line := range strings.Split(migMinors, "\n") {
		name, num, ok := strings.Cut(strings.TrimSpace(line), " ")
		if n, err := strconv.Atoi(num); ok && err == nil {
			capMinor[name] = n
		}
	}
	// A cap file's own DeviceFileMinor wins over mig-minors.
	minorOf := func(capPath, name string) (int, error) {
		text, ok, err := r.readOptional(capPath)
		if err != nil || !ok {
			return 0, err
		}
		if n, err := strconv.Atoi(parseKeyValues(text)["DeviceFileMinor"]); err == nil {
			return n, nil
		}
		if n, ok := capMinor[name]; ok {
			return n, nil
		}
		return 0, fmt.Errorf("%s has no DeviceFileMinor and %s lists no %s", r.path(capPath), migMinorsPath, name)
	}
	var devices []MIGDevice
	for _, g := range gpus {
		migDir := fmt.Sprintf("%s/gpu%d/mig", procCapsDir, g.Minor)
		gis, err := numberedDirs(r.path(migDir), giDir)
		if err != nil {
			return nil, err
		}
		idx := 0
		for _, gi := range gis {
			giName := fmt.Sprintf("gpu%d/gi%d/access", g.Minor, gi)
			giPath := fmt.Sprintf("%s/gi%d/access", migDir, gi)
			if _, err := os.Stat(r.path(giPath)); err != nil {
				continue
			}
			giMinor, err := minorOf(giPath, giName)
			if err != nil {
				return nil, err
			}
			cis, err := numberedDirs(r.path(fmt.Sprintf("%s/gi%d", migDir, gi)), ciDir)
			if err != nil {
				return nil, err
			}
			for _, ci := range cis {
				ciName := fmt.Sprintf("gpu%d/gi%d/ci%d/access", g.Minor, gi, ci)
				ciPath := fmt.Sprintf("%s/gi%d/ci%d/access", migDir, gi, ci)
				if _, err := os.Stat(r.path(ciPath)); err != nil {
					continue
				}
				ciMinor, err := minorOf(ciPath, ciName)
				if err != nil {
					return nil, err
				}
				devices = append(devices, MIGDevice{
					GPUIndex: g.Index, GPUMinor: g.Minor, Index: idx,
					GI: gi, CI: ci, GICapMinor: giMinor, CICapMinor: ciMinor,
				})
				idx++
			}
		}
	}
	return devices, nil
}

// isSocket reports whether a unix socket is at path under the root.
func (r reader) isSocket(path string) (bool, error) {
	st, err := os.Lstat(r.path(path))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", r.path(path), err)
	}
	return st.Mode().Type() == fs.ModeSocket, nil
}

// numberedDirs returns the numbers of entries matching re ("gi3" → 3), sorted.
func numberedDirs(dir string, re *regexp.Regexp) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var nums []int
	for _, e := range entries {
		if m := re.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// Toolkit binaries whose presence means nvidia-container-toolkit is installed
// (dockerd registers --gpus only when the hook is on PATH).
var toolkitBinaries = []string{
	"nvidia-container-runtime-hook", "nvidia-container-toolkit", "nvidia-container-runtime",
	"nvidia-container-cli", "nvidia-ctk",
}

var runtimeBinaries = []string{"docker", "podman", "nerdctl", "containerd", "runc", "crun"}

// readTools looks for toolkit and runtime binaries in $PATH's directories
// under the root.
func (r reader) readTools() (toolkit []string, runtimes []Runtime) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	find := func(name string) string {
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				continue
			}
			p := filepath.Join(d, name)
			if st, err := os.Stat(r.path(p)); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	toolkit = []string{}
	for _, name := range toolkitBinaries {
		if p := find(name); p != "" {
			toolkit = append(toolkit, p)
		}
	}
	runtimes = []Runtime{}
	for _, name := range runtimeBinaries {
		if p := find(name); p != "" {
			runtimes = append(runtimes, Runtime{Name: name, Path: p})
		}
	}
	return toolkit, runtimes
}
