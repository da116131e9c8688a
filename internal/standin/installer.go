package standin

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strings"
	"text/template"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
)

// installerFlag is one nvidia-installer option and the first release that
// has it (REFERENCE 4.3). since "" means long-standing.
type installerFlag struct {
	names []string // long name first, then short aliases
	value string   // the argument's name when the option takes one
	since string
	help  string
}

// installerFlags are the options the stand-in installer knows; a package
// accepts those whose since is at most its version, and rejects every other
// option with "Invalid commandline" like the real one.
var installerFlags = []installerFlag{
	{[]string{"--version", "-v"}, "", "", "Print the nvidia-installer version and exit."},
	{[]string{"--help", "-h"}, "", "", "Print usage information for the common commandline options and exit."},
	{[]string{"--advanced-options", "-A"}, "", "", "Print usage information for the common commandline options as well as the advanced options, and then exit."},
	{[]string{"--accept-license", "-a"}, "", "", "This option is obsolete and ignored by nvidia-installer."},
	{[]string{"--silent", "-s"}, "", "", "Run silently; no questions are asked and no output is printed, except for error messages to stderr. Implies '--ui=none --no-questions'."},
	{[]string{"--ui"}, "UI", "", "Force the user interface to be used (none or ncurses)."},
	{[]string{"--no-questions", "-q"}, "", "", "Do not ask any questions; the default answer is assumed."},
	{[]string{"--no-kernel-module"}, "", "", "Install everything but the kernel module, and do not remove any existing, loaded kernel module(s)."},
	{[]string{"--no-kernel-modules"}, "", "515.43.04", "Install everything but the kernel modules, and do not remove any existing, loaded kernel modules."},
	{[]string{"--kernel-source-path"}, "KERNEL-SOURCE-PATH", "", "The directory containing the kernel source files that should be used when compiling the NVIDIA kernel module."},
	{[]string{"--kernel-name"}, "KERNEL-NAME", "", "Build and install the NVIDIA kernel module for the non-running kernel specified by KERNEL-NAME."},
	{[]string{"--log-file-name"}, "LOG-FILE-NAME", "", "File name of the installation log file (the default is: '/var/log/nvidia-installer.log')."},
	{[]string{"--tmpdir"}, "TMPDIR", "", "Use the specified directory as a temporary directory when extracting and installing files; it must allow execution."},
	{[]string{"--no-x-check"}, "", "", "Do not abort the installation if nvidia-installer detects that an X server is running."},
	{[]string{"--x-prefix"}, "X-PREFIX", "", "The prefix under which the X components of the NVIDIA driver will be installed; the default is '/usr'."},
	{[]string{"--x-module-path"}, "X-MODULE-PATH", "", "The path where the X server modules will be installed."},
	{[]string{"--x-library-path"}, "X-LIBRARY-PATH", "", "The path where the X libraries will be installed."},
	{[]string{"--x-sysconfig-path"}, "X-SYSCONFIG-PATH", "", "The path where X configuration snippets will be installed."},
	{[]string{"--opengl-prefix"}, "OPENGL-PREFIX", "", "The prefix under which the OpenGL components of the NVIDIA driver will be installed; the default is: '/usr'."},
	{[]string{"--opengl-libdir"}, "OPENGL-LIBDIR", "", "The path relative to the OpenGL library installation prefix under which the NVIDIA OpenGL components will be installed."},
	{[]string{"--utility-prefix"}, "UTILITY-PREFIX", "", "The prefix under which the NVIDIA utilities and the NVIDIA utility libraries will be installed; the default is: '/usr'."},
	{[]string{"--utility-libdir"}, "UTILITY-LIBDIR", "", "The path relative to the utility installation prefix under which the NVIDIA utility libraries will be installed."},
	{[]string{"--compat32-prefix"}, "COMPAT32-PREFIX", "", "The prefix under which the 32-bit compatibility components of the NVIDIA driver will be installed."},
	{[]string{"--compat32-libdir"}, "COMPAT32-LIBDIR", "", "The path relative to the 32-bit compatibility prefix under which the 32-bit compatibility components will be installed."},
	{[]string{"--documentation-prefix"}, "DOCUMENTATION-PREFIX", "", "The prefix under which the documentation files for the NVIDIA driver will be installed; the default is: '/usr'."},
	{[]string{"--no-rpms"}, "", "", "Normally, the installer will check for several rpms that conflict with the driver; this option disables the check."},
	{[]string{"--no-backup"}, "", "", "Do not back up conflicting files; delete them instead."},
	{[]string{"--no-network", "-N"}, "", "", "This option is obsolete and ignored by nvidia-installer."},
	{[]string{"--no-runlevel-check"}, "", "", "This option is obsolete and ignored by nvidia-installer."},
	{[]string{"--no-distro-scripts"}, "", "", "Normally, nvidia-installer will run scripts from /usr/lib/nvidia before and after installing; this option disables them."},
	{[]string{"--no-nouveau-check"}, "", "256.44", "Normally, nvidia-installer aborts installation if the nouveau kernel driver is in use; this option disables the check."},
	{[]string{"--no-nvidia-modprobe"}, "", "319.12", "Skip installation of 'nvidia-modprobe', a setuid root utility which nvidia-installer installs by default."},
	{[]string{"--no-check-for-alternate-installs"}, "", "325.08", "Skip the check for an alternate installation method (distribution packages) of the NVIDIA driver."},
	{[]string{"--install-compat32-libs"}, "", "346.16", "Install the 32-bit compatibility libraries (the default when the package has them)."},
	{[]string{"--no-install-compat32-libs"}, "", "346.16", "Do not install the 32-bit compatibility libraries."},
	{[]string{"--no-libglx-indirect"}, "", "355.06", "Do not install the libGLX_indirect.so.0 symlink."},
	{[]string{"--install-libglvnd"}, "", "361.16", "Install NVIDIA's copy of libglvnd, overwriting any existing copy."},
	{[]string{"--no-install-libglvnd"}, "", "361.16", "Do not install libglvnd; use the copy already on the system."},
	{[]string{"--glvnd-glx-client", "--no-glvnd-glx-client", "--glvnd-egl-client", "--no-glvnd-egl-client"}, "", "361.16", "This option is obsolete and ignored by nvidia-installer."},
	{[]string{"--glvnd-egl-config-path"}, "PATH", "375.10", "Install the EGL vendor library config file to this directory."},
	{[]string{"--no-opengl-files"}, "", "295.17", "Do not install any of the OpenGL-related driver files."},
	{[]string{"--no-kernel-module-source"}, "", "304.22", "Skip installation of the kernel module source."},
	{[]string{"--dkms"}, "", "304.22", "Register the kernel module sources with DKMS."},
	{[]string{"--no-dkms"}, "", "304.22", "Do not register the kernel module sources with DKMS."},
	{[]string{"--no-drm"}, "", "381.22", "Do not install the nvidia-drm kernel module source."},
	{[]string{"--override-file-type-destination"}, "FILE_TYPE:DESTINATION", "396.51", "Override the installation destination of all files of the given manifest type."},
	{[]string{"--skip-depmod"}, "", "418.30", "Do not run depmod after installing kernel modules."},
	{[]string{"--systemd"}, "", "465.19.01", "Install the systemd units (the default when systemctl is present)."},
	{[]string{"--no-systemd"}, "", "465.19.01", "Do not install the systemd units."},
	{[]string{"--no-wine-files"}, "", "470.42.01", "Do not install the Wine DLL files."},
	{[]string{"--no-peermem"}, "", "495.44", "Do not install the nvidia-peermem kernel module source."},
	{[]string{"--allow-installation-with-running-driver"}, "", "545.23.06", "Proceed with installation even if an NVIDIA driver is already loaded."},
	{[]string{"--rebuild-initramfs"}, "", "545.23.06", "Rebuild the initramfs after installation."},
	{[]string{"--no-rebuild-initramfs"}, "", "545.23.06", "Do not rebuild the initramfs after installation."},
	{[]string{"--skip-module-load"}, "", "550.40.07", "Do not load the kernel modules after installing them."},
	{[]string{"--kernel-module-type", "-m"}, "KERNEL-MODULE-TYPE", "555.42.02", "Choose the kernel module flavour: 'proprietary' (kernel/) or 'open' (kernel-open/)."},
}

// x86OnlyFlags are the 32-bit compatibility options: nvidia-installer's
// option table has them only when built for x86_64 (NV_X86_64), so the
// aarch64 installer rejects them as unrecognized (seen with NVIDIA's 580 and
// 590 aarch64 builds).
var x86OnlyFlags = map[string]bool{
	"--compat32-prefix": true, "--compat32-libdir": true, "--install-compat32-libs": true, "--no-install-compat32-libs": true,
}

// supportedFlags returns the flags this version accepts on arch.
func supportedFlags(version, arch string) []installerFlag {
	var out []installerFlag
	for _, f := range installerFlags {
		if x86OnlyFlags[f.names[0]] && arch != "x86_64" {
			continue
		}
		if f.since == "" || versionAtLeast(version, f.since) {
			out = append(out, f)
		}
	}
	return out
}

//go:embed installer.sh
var installerTemplate string

var installerTmpl = template.Must(template.New("nvidia-installer").Delims("[[", "]]").Parse(installerTemplate))

// installer returns the package's nvidia-installer: the given binary, or the
// stand-in script.
func (p *driverPackage) installer() ([]byte, error) {
	if p.opts.Installer == "" {
		return p.installerScript()
	}
	b, err := os.ReadFile(p.opts.Installer)
	if err != nil {
		return nil, fmt.Errorf("stand-in driver: read the installer to ship: %w", err)
	}
	return b, nil
}

// installerScript renders the package's nvidia-installer.
func (p *driverPackage) installerScript() ([]byte, error) {
	var names, valued []string
	var help strings.Builder
	for _, f := range supportedFlags(p.opts.Version, p.opts.Arch) {
		names = append(names, f.names...)
		if f.value != "" {
			valued = append(valued, f.names...)
		}
		// Like nvgetopt's help: short aliases first ("-s, --silent"), then
		// the long names, the value after "=".
		var shown []string
		for _, n := range f.names {
			if !strings.HasPrefix(n, "--") {
				shown = append(shown, n)
			}
		}
		for _, n := range f.names {
			if strings.HasPrefix(n, "--") {
				if f.value != "" {
					n += "=" + f.value
				}
				shown = append(shown, n)
			}
		}
		help.WriteString("  " + strings.Join(shown, ", "))
		fmt.Fprintf(&help, "\n      %s\n\n", f.help)
	}
	triplet := map[string]string{"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}[p.opts.Arch]
	kernelType := "proprietary"
	if versionAtLeast(p.opts.Version, "560.28.03") {
		kernelType = "open" // the open modules are the default from R560
	}
	var typeCaps strings.Builder
	table := manifesttypes.For(p.opts.Version)
	for _, typ := range table.Types() {
		caps, _ := table.Caps(typ)
		letters := ""
		for _, c := range []struct {
			on     bool
			letter string
		}{{caps.HasArch, "a"}, {caps.HasPath, "p"}, {caps.InheritPath, "i"}, {caps.IsSymlink, "s"}, {caps.IsOpenGL, "o"}} {
			if c.on {
				letters += c.letter
			}
		}
		fmt.Fprintf(&typeCaps, "    %s) echo %q ;;\n", typ, "-"+letters)
	}
	var b bytes.Buffer
	err := installerTmpl.Execute(&b, map[string]any{
		"TypeCaps":   strings.TrimSuffix(typeCaps.String(), "\n"),
		"Version":    p.opts.Version,
		"Arch":       p.opts.Arch,
		"Triplet":    triplet,
		"Flags":      " " + strings.Join(names, " ") + " ",
		"Valued":     " " + strings.Join(valued, " ") + " ",
		"Help":       strings.TrimRight(help.String(), "\n"),
		"KernelType": kernelType,
		"Modules":    strings.Join(p.kernelModules(), " "),
	})
	if err != nil {
		return nil, fmt.Errorf("stand-in driver: render nvidia-installer: %w", err)
	}
	return b.Bytes(), nil
}
