package main

import (
	"context"
	"errors"
	"fmt"
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
// next to the same build for linux/amd64, and how much of the arm64 install
// step is extracting the package under emulation: what extracting it once,
// natively, and running only the installer emulated would save.
type Arm64 struct {
	Amd64 Run `json:"amd64_cold"`
	Arm64 Run `json:"arm64_cold"`
	// InstallSeconds are the install steps' times (amd64, arm64).
	Amd64InstallSeconds float64 `json:"amd64_install_step_seconds"`
	Arm64InstallSeconds float64 `json:"arm64_install_step_seconds"`
	// Extract*Seconds time `sh RUN -x` of the aarch64 package: by this
	// machine's own sh/gzip/tar, and by the arm64 base's under QEMU (chroot).
	ExtractNativeSeconds   float64 `json:"extract_native_seconds"`
	ExtractEmulatedSeconds float64 `json:"extract_emulated_seconds"`
}

// arm64 measures Arm64 with the realistic stand-in of versions[0], both
// archs served by the mirror and pinned with --sha256 ARCH=HEX.
func (b *bench) arm64(ctx context.Context, res *Results) error {
	v := versions[0]
	progress("stand-in %s aarch64 (realistic, %s payload)", v, b.cfg.payload)
	armRun, err := standin.Cached(standin.Options{Version: v, Arch: drivers.ArchAarch64, Compression: b.cfg.payload, Scale: standin.ScaleRealistic})
	if err != nil {
		return err
	}
	served := filepath.Join(b.cfg.work, "serve", filepath.Base(armRun))
	if err := linkOrCopy(armRun, served); err != nil {
		return err
	}
	armSum, _, err := drivers.FileSHA256(served)
	if err != nil {
		return err
	}
	a := &Arm64{}
	for _, c := range []struct {
		platform, arch, sum string
		run                 *Run
		install             *float64
	}{
		{"linux/amd64", drivers.ArchX86_64, b.sums[v], &a.Amd64, &a.Amd64InstallSeconds},
		{"linux/arm64", drivers.ArchAarch64, armSum, &a.Arm64, &a.Arm64InstallSeconds},
	} {
		if err := prune(ctx, b.bk); err != nil {
			return err
		}
		dest := filepath.Join(b.out, "arm64-bench-"+c.arch+".tar")
		if err := os.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var log *statusLog
		secs, err := timed(func() error {
			log, _, err = runGpuimg(ctx, b.cfg.bin, "build", "--addr", b.bk.Addr, "--driver", v, "--platform", c.platform,
				"--mirror", "http://"+b.files+"/{file}", "--sha256", c.arch+"="+c.sum,
				"--cache-dir", filepath.Join(b.cfg.work, "empty-driver-cache"), "--base", b.baseRef,
				"--output", "type=docker,dest="+dest)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s cold build: %w", c.platform, err)
		}
		*c.run = Run{Side: "gpuimg " + c.platform, Kind: kindCold, Seconds: secs, Steps: log.steps()}
		for _, s := range c.run.Steps {
			if strings.HasPrefix(s.Name, "install NVIDIA driver") && !s.Sub {
				*c.install = s.Seconds
			}
		}
		progress("%-11s cold %6.1f s (install step %.1f s)", c.platform, secs, *c.install)
	}
	if a.ExtractNativeSeconds, a.ExtractEmulatedSeconds, err = b.extractTimes(ctx, armRun); err != nil {
		return err
	}
	progress("extracting the aarch64 package: native %.1f s, under QEMU %.1f s", a.ExtractNativeSeconds, a.ExtractEmulatedSeconds)
	res.Arm64 = a
	return nil
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

// arm64Table prints the arm64 section.
func (a *Arm64) table(w io.Writer) {
	fmt.Fprintf(w, "\n%-34s %9s %8s %12s\n", "arm64 under QEMU (cold, 1 run)", "s", "ratio", "install step")
	fmt.Fprintf(w, "%-34s %9.1f %7.2fx %10.1f s\n", "gpuimg build --platform linux/amd64", a.Amd64.Seconds, 1.0, a.Amd64InstallSeconds)
	fmt.Fprintf(w, "%-34s %9.1f %7.2fx %10.1f s\n", "gpuimg build --platform linux/arm64", a.Arm64.Seconds, a.Arm64.Seconds/a.Amd64.Seconds, a.Arm64InstallSeconds)
	fmt.Fprintf(w, "%-34s %9.1f\n", "sh RUN -x, native", a.ExtractNativeSeconds)
	fmt.Fprintf(w, "%-34s %9.1f\n", "sh RUN -x, arm64 under QEMU", a.ExtractEmulatedSeconds)
	fmt.Fprintf(w, "%-34s %9.1f  (of the arm64 install step's %.1f s)\n", "extracting once natively saves", a.ExtractEmulatedSeconds-a.ExtractNativeSeconds, a.Arm64InstallSeconds)
	fmt.Fprintf(w, "  where the arm64 cold build goes (steps >= 0.5 s):\n")
	for _, s := range a.Arm64.Steps {
		if s.Seconds >= 0.5 {
			fmt.Fprintf(w, "    %6.1f s @%5.1f  %s\n", s.Seconds, s.At, truncate(s.Name, 80))
		}
	}
}
