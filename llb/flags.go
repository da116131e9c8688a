package llb

import (
	"github.com/gpuimg/gpuimg/drivers"
)

// installerFlag is one nvidia-installer option and the first driver release
// that accepts it (REFERENCE 4.3). An unknown option aborts the installer with
// "Invalid commandline", so every flag beyond the long-standing ones is gated.
type installerFlag struct {
	flag  string
	since string // "" = accepted by every release in scope
	// when limits the flag to some selections.
	when func(Components, bool) bool
	// x86Only: the installer knows the option only when built for x86_64
	// (the 32-bit options); its aarch64 build rejects it as unrecognized.
	x86Only bool
}

func withGraphics(c Components, _ bool) bool    { return c.Has(Graphics) }
func withoutGraphics(c Components, _ bool) bool { return !c.Has(Graphics) }

var installerFlags = []installerFlag{
	{flag: "--silent"},
	// Singular form: the plural alias exists only from 515.43.04.
	{flag: "--no-kernel-module"},
	// A live /tmp/.X0-lock aborts a silent install; the build has none, but a base might.
	{flag: "--no-x-check"},
	{flag: "--no-rpms"},
	{flag: "--no-backup"},
	{flag: "--no-distro-scripts", since: "180.25"},
	{flag: "--no-nouveau-check", since: "256.44"},
	{flag: "--no-kernel-module-source", since: "304.22"},
	{flag: "--no-nvidia-modprobe", since: "319.12"},
	// Distro NVIDIA packages in the base would otherwise abort a silent install.
	{flag: "--no-check-for-alternate-installs", since: "325.08"},
	// The libglvnd decision is made explicit: a partial libglvnd in the base
	// makes the silent default abort. With graphics, install NVIDIA's copies
	// (the image is self-contained); without, leave the base's alone.
	{flag: "--install-libglvnd", since: "361.16", when: withGraphics},
	{flag: "--no-install-libglvnd", since: "361.16", when: withoutGraphics},
	// Without graphics, no OpenGL file is wanted: NVIDIA's installer would
	// otherwise still point /usr/lib/libGL.so.1 at a libGL that is not
	// installed, and report that as an ERROR.
	{flag: "--no-opengl-files", since: "295.17", when: withoutGraphics},
	// 32-bit libraries only on request (Compat32): compute users need none,
	// and NVIDIA's default would put them wherever a 32-bit directory exists.
	// With Compat32 the install script adds --install-compat32-libs and the
	// base family's directory.
	{flag: "--no-install-compat32-libs", since: "346.16", when: func(_ Components, compat32 bool) bool { return !compat32 }, x86Only: true},
	// An image never runs systemd units for the driver (persistenced, suspend hooks).
	{flag: "--no-systemd", since: "465.19.01"},
}

// InstallerFlags returns the nvidia-installer options for driver v, the
// selected components and whether 32-bit libraries are wanted, in a fixed
// order. The options that depend on the base's family (the X module path,
// the 32-bit library directory) are chosen by the install script in the
// base (familyScript). It never uses the --x-prefix=/tmp/null family, which
// would drop the X driver and GLX module that graphics/display users need.
func InstallerFlags(v drivers.Version, arch string, c Components, compat32 bool) []string {
	var out []string
	for _, f := range installerFlags {
		if f.since != "" && !v.AtLeast(f.since) {
			continue
		}
		if f.x86Only && arch != drivers.ArchX86_64 {
			continue
		}
		if f.when != nil && !f.when(c, compat32) {
			continue
		}
		out = append(out, f.flag)
	}
	return out
}
