package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/gpuimg/gpuimg/bench/benchenv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/ocilayout"
	"github.com/gpuimg/gpuimg/internal/standin"
)

// Arm64 is the cold build of one driver for linux/arm64 on this x86_64
// machine (the installer and everything the install step runs under QEMU)
// next to the same build for linux/amd64, with the stand-in installer and,
// where $GPUIMG_NVIDIA_INSTALLERS has it, NVIDIA's own; and how much of the
// arm64 install step is extracting the package under emulation: what
// extracting it once, natively, and running only the installer emulated
// would save.
type Arm64 struct {
	Rows []Arm64Row `json:"rows"`
	// Extract*Seconds time `sh RUN -x` of the aarch64 stand-in: by this
	// machine's own sh/gzip/tar, and by the arm64 base's under QEMU (chroot).
	ExtractNativeSeconds   float64 `json:"extract_native_seconds"`
	ExtractEmulatedSeconds float64 `json:"extract_emulated_seconds"`
}

// Arm64Row is one installer's pair of cold builds.
type Arm64Row struct {
	Installer           string  `json:"installer"`
	Amd64               Run     `json:"amd64_cold"`
	Arm64               Run     `json:"arm64_cold"`
	Amd64InstallSeconds float64 `json:"amd64_install_step_seconds"`
	Arm64InstallSeconds float64 `json:"arm64_install_step_seconds"`
}

// nvidiaInstallerRelease is the release whose NVIDIA installer the arm64
// section also measures (one of the two built for aarch64 too).
const nvidiaInstallerRelease = "590.48.01"

// arm64 measures Arm64 with realistic packages (the stand-in of
// versions[0]; NVIDIA's installer in a stand-in of its release), both archs
// served by the mirror and pinned with --sha256 ARCH=HEX.
func (b *bench) arm64(ctx context.Context, res *Results) error {
	a := &Arm64{}
	kinds := []struct{ name, version, dir string }{{"stand-in", versions[0], ""}}
	if dir := os.Getenv("GPUIMG_NVIDIA_INSTALLERS"); dir != "" {
		kinds = append(kinds, struct{ name, version, dir string }{"NVIDIA's " + nvidiaInstallerRelease, nvidiaInstallerRelease, filepath.Join(dir, nvidiaInstallerRelease)})
	} else {
		progress("GPUIMG_NVIDIA_INSTALLERS is not set: the arm64 section measures the stand-in installer only")
	}
	var standinArm string
	for _, k := range kinds {
		row := Arm64Row{Installer: k.name}
		for _, c := range []struct {
			platform, arch, installer string
			run                       *Run
			install                   *float64
		}{
			{"linux/amd64", drivers.ArchX86_64, filepath.Join(k.dir, "nvidia-installer"), &row.Amd64, &row.Amd64InstallSeconds},
			{"linux/arm64", drivers.ArchAarch64, filepath.Join(k.dir, "aarch64", "nvidia-installer"), &row.Arm64, &row.Arm64InstallSeconds},
		} {
			opts := standin.Options{Version: k.version, Arch: c.arch, Compression: b.cfg.payload, Scale: standin.ScaleRealistic}
			if k.dir != "" {
				opts.Installer = c.installer
			}
			progress("%s package %s %s (realistic, %s payload)", k.name, k.version, c.arch, b.cfg.payload)
			pkg, err := standin.Cached(opts)
			if err != nil {
				return err
			}
			if k.dir == "" && c.arch == drivers.ArchAarch64 {
				standinArm = pkg
			}
			if *c.run, *c.install, err = b.coldBuild(ctx, k.version, c.platform, c.arch, pkg); err != nil {
				return err
			}
			progress("%s %-11s cold %6.1f s (install step %.1f s)", k.name, c.platform, c.run.Seconds, *c.install)
		}
		a.Rows = append(a.Rows, row)
	}
	var err error
	if a.ExtractNativeSeconds, a.ExtractEmulatedSeconds, err = b.extractTimes(ctx, standinArm); err != nil {
		return err
	}
	progress("extracting the aarch64 package: native %.1f s, under QEMU %.1f s", a.ExtractNativeSeconds, a.ExtractEmulatedSeconds)
	res.Arm64 = a
	return nil
}

// coldBuild serves pkg on the mirror and times a cold gpuimg build of it for
// platform, pinned by --sha256 ARCH=HEX; it returns the run and its install
// step's seconds.
func (b *bench) coldBuild(ctx context.Context, version, platform, arch, pkg string) (Run, float64, error) {
	served := filepath.Join(b.cfg.work, "serve", filepath.Base(pkg))
	if err := linkOrCopy(pkg, served); err != nil {
		return Run{}, 0, err
	}
	sum, _, err := drivers.FileSHA256(served)
	if err != nil {
		return Run{}, 0, err
	}
	if err := benchenv.Prune(ctx, b.bk); err != nil {
		return Run{}, 0, err
	}
	dest := filepath.Join(b.out, "arm64-bench-"+version+"-"+arch+".tar")
	if err := os.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Run{}, 0, err
	}
	var log *statusLog
	secs, err := timed(func() error {
		log, _, err = runGpuimg(ctx, b.cfg.bin, "build", "--addr", b.bk.Addr, "--driver", version, "--platform", platform,
			"--mirror", "http://"+b.files+"/{file}", "--sha256", arch+"="+sum,
			"--cache-dir", filepath.Join(b.cfg.work, "empty-driver-cache"), "--base", b.baseRef,
			"--output", "type=docker,dest="+dest)
		return err
	})
	if err != nil {
		return Run{}, 0, fmt.Errorf("%s cold build of %s: %w", platform, filepath.Base(pkg), err)
	}
	r := Run{Side: "gpuimg " + platform, Kind: kindCold, Seconds: secs, Steps: log.steps()}
	install := 0.0
	for _, s := range r.Steps {
		if strings.HasPrefix(s.Name, "install NVIDIA driver") && !s.Sub {
			install = s.Seconds
		}
	}
	return r, install, nil
}

// extractTimes times `sh RUN -x` natively and in a chroot of the arm64 base
// (its sh, tail, gzip and tar run under QEMU, as in the install step).
func (b *bench) extractTimes(ctx context.Context, run string) (native, emulated float64, err error) {
	work, err := os.MkdirTemp(b.cfg.work, "extract-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(work)
	native, err = timed(func() error {
		return quiet(exec.CommandContext(ctx, "sh", run, "-x", "--target", filepath.Join(work, "native")))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("native extraction: %w", err)
	}
	root := filepath.Join(work, "arm64-root")
	if err := unpackBase(b.cfg.baseDir, "arm64", root); err != nil {
		return 0, 0, err
	}
	if err := linkOrCopy(run, filepath.Join(root, "driver.run")); err != nil {
		return 0, 0, err
	}
	if err := quiet(exec.Command("mknod", "-m", "666", filepath.Join(root, "dev", "null"), "c", "1", "3")); err != nil {
		return 0, 0, err
	}
	emulated, err = timed(func() error {
		return quiet(exec.CommandContext(ctx, "chroot", root, "/bin/sh", "-c", "cd /tmp && sh /driver.run -x --target /tmp/x"))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("extraction under QEMU (chroot of the arm64 base): %w", err)
	}
	return native, emulated, nil
}

// unpackBase writes the layers of the base layout's image for arch to root.
func unpackBase(layoutDir, arch, root string) error {
	l, err := ocilayout.Open(layoutDir)
	if err != nil {
		return err
	}
	if len(l.Entries) == 0 {
		return fmt.Errorf("base layout %s: no image", layoutDir)
	}
	img, _, err := l.Image(l.Entries[0], ocispecs.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		return fmt.Errorf("base layout %s: %w (`make base` makes the arm64 image)", layoutDir, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, layer := range layers {
		rc, err := layer.Uncompressed()
		if err != nil {
			return err
		}
		cmd := exec.Command("tar", "-x", "-C", root)
		cmd.Stdin = rc
		err = quiet(cmd)
		rc.Close()
		if err != nil {
			return fmt.Errorf("unpack the %s base: %w", arch, err)
		}
	}
	return nil
}

// quiet runs cmd and returns its output in the error when it fails.
func quiet(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// table prints the arm64 section.
func (a *Arm64) table(w io.Writer) {
	fmt.Fprintf(w, "\narm64 under QEMU (cold, 1 run)      %9s %8s %14s\n", "s", "ratio", "install step")
	for _, r := range a.Rows {
		fmt.Fprintf(w, "%-35s %9.1f %7.2fx %10.1f s\n", r.Installer+", linux/amd64", r.Amd64.Seconds, 1.0, r.Amd64InstallSeconds)
		fmt.Fprintf(w, "%-35s %9.1f %7.2fx %10.1f s (%.1fx)\n", r.Installer+", linux/arm64", r.Arm64.Seconds, r.Arm64.Seconds/r.Amd64.Seconds,
			r.Arm64InstallSeconds, r.Arm64InstallSeconds/r.Amd64InstallSeconds)
	}
	fmt.Fprintf(w, "%-35s %9.1f\n", "sh RUN -x (stand-in), native", a.ExtractNativeSeconds)
	fmt.Fprintf(w, "%-35s %9.1f\n", "sh RUN -x (stand-in), under QEMU", a.ExtractEmulatedSeconds)
	fmt.Fprintf(w, "%-35s %9.1f\n", "extracting once natively saves", a.ExtractEmulatedSeconds-a.ExtractNativeSeconds)
	for _, r := range a.Rows {
		fmt.Fprintf(w, "  where the arm64 cold build goes, %s (steps >= 0.5 s):\n", r.Installer)
		for _, s := range r.Arm64.Steps {
			if s.Seconds >= 0.5 {
				fmt.Fprintf(w, "    %6.1f s @%5.1f  %s\n", s.Seconds, s.At, truncate(s.Name, 80))
			}
		}
	}
}
