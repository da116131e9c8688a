package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/containerd/platforms"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/host"
	"github.com/gpuimg/gpuimg/internal/shell"
	"github.com/gpuimg/gpuimg/llb"
)

// ErrDriverMismatch is wrapped when an image's driver is not the host's.
var ErrDriverMismatch = errors.New("driver version mismatch")

// CheckDriver compares the image's driver label with the host's driver, as
// strings: "470.82" and "470.82.00" are different drivers' names and the
// userspace must equal the module exactly. It returns warnings (no label,
// or a mismatch under force) or an error naming the fix.
func CheckDriver(img Image, hostVersion string, force bool) (warnings []string, err error) {
	label, ok := img.Labels[llb.LabelDriverVersion]
	if !ok || label == "" {
		return []string{fmt.Sprintf("image %s has no %s label: cannot verify that its driver userspace matches the host's %s (images from `gpuimg build` carry it)",
			img.Ref, llb.LabelDriverVersion, hostVersion)}, nil
	}
	if label == hostVersion {
		return nil, nil
	}
	msg := fmt.Sprintf("image %s carries the %s driver userspace but the host runs the %s kernel module; the container would fail with \"Failed to initialize NVML: Driver/library version mismatch\"",
		img.Ref, label, hostVersion)
	if force {
		return []string{msg + " (--force: launching anyway)"}, nil
	}
	return nil, fmt.Errorf("%w: %s: build a matching image with `gpuimg build --driver %s`, or pass --force", ErrDriverMismatch, msg, hostVersion)
}

// CheckImage resolves a {driver} template in ref, reads the labels of the
// image's variant for platform (the host's) and checks its driver label
// against the host's. The returned image's Ref is the
// resolved reference to launch. With force, an unreadable image or another
// driver is a warning; without it, an error naming the fix (for a template
// whose image does not exist: the tag looked for and the build that makes it).
func CheckImage(ctx context.Context, ref, runtime, hostVersion string, platform ocispecs.Platform, force bool) (Image, []string, error) {
	resolved, templated, err := ResolveImageRef(ref, hostVersion)
	if err != nil {
		return Image{}, nil, err
	}
	var img Image
	if _, statErr := os.Stat(resolved); templated && statErr != nil && looksLikePath(resolved) {
		err = missingImageError(ref, resolved, hostVersion, statErr)
	} else if img, err = ReadImage(ctx, resolved, runtime, platform); err != nil && templated && !errors.Is(err, ErrWrongPlatform) {
		err = missingImageError(ref, resolved, hostVersion, err)
	}
	if err != nil {
		// An image for another platform cannot run here, --force or not.
		if !force || errors.Is(err, ErrWrongPlatform) {
			return Image{}, nil, err
		}
		return Image{Ref: resolved}, []string{fmt.Sprintf("%v (--force: launching without checking the driver)", err)}, nil
	}
	warnings, err := CheckDriver(img, hostVersion, force)
	return img, warnings, err
}

// WantsModeset reports whether the image carries graphics or display
// components, whose libraries open /dev/nvidia-modeset.
func (img Image) WantsModeset() bool {
	for _, c := range strings.Split(img.Labels[llb.LabelDriverComponents], ",") {
		if c = strings.TrimSpace(c); c == "graphics" || c == "display" {
			return true
		}
	}
	return false
}

// planForImage redoes the plan with /dev/nvidia-modeset when the image's
// components want it (the plan was first made, and checked, without the image).
func planForImage(h host.Host, opts Options, plan Plan, img Image) (Plan, error) {
	if !img.WantsModeset() || opts.Modeset {
		return plan, nil
	}
	opts.Modeset = true
	return NewPlan(h, opts)
}

// forbiddenRuntimeArgs need nvidia-container-toolkit, which gpuimg replaces.
var forbiddenRuntimeArgs = []string{"--gpus", "--runtime=nvidia"}

// CheckRuntimeArgs refuses extra runtime arguments that need the toolkit.
func CheckRuntimeArgs(args []string) error {
	for i, a := range args {
		for _, bad := range forbiddenRuntimeArgs {
			if a == bad || strings.HasPrefix(a, bad+"=") || (a == "--runtime" && i+1 < len(args) && args[i+1] == "nvidia") {
				return fmt.Errorf("%q needs nvidia-container-toolkit (\"could not select device driver\" without it); gpuimg passes the GPUs itself: use gpuimg's --gpus instead", a)
			}
		}
	}
	return nil
}

// RunOptions are `gpuimg run`'s inputs.
type RunOptions struct {
	Image string
	Cmd   []string
	// RuntimeArgs go between `run` and the image (--rm, -it, -v ...).
	RuntimeArgs []string
	Runtime     string
	Plan        Options
	DryRun      bool
	Force       bool
}

// RunCommand reads the image's label, guards the driver version and returns
// the full runtime command line (argv[0] is the runtime) with the warnings
// to print.
func RunCommand(ctx context.Context, h host.Host, opts RunOptions) (argv, warnings []string, err error) {
	if err := CheckRuntime(opts.Runtime); err != nil {
		return nil, nil, err
	}
	if err := CheckRuntimeArgs(opts.RuntimeArgs); err != nil {
		return nil, nil, err
	}
	if opts.Image == "" {
		return nil, nil, errors.New("no image given: gpuimg run [flags] IMAGE [COMMAND...]")
	}
	if _, err := exec.LookPath(opts.Runtime); err != nil && !opts.DryRun {
		return nil, nil, fmt.Errorf("%s not found on PATH: install it, or choose another engine with --runtime (docker, podman, nerdctl)", opts.Runtime)
	}
	plan, err := NewPlan(h, opts.Plan)
	if err != nil {
		return nil, nil, err
	}
	img, w, err := CheckImage(ctx, opts.Image, opts.Runtime, h.Driver.Version, HostPlatform(h), opts.Force)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	if plan, err = planForImage(h, opts.Plan, plan, img); err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, plan.Warnings...)
	args, err := plan.Args(opts.Runtime)
	if err != nil {
		return nil, nil, err
	}
	argv = []string{opts.Runtime, "run"}
	if img.MultiPlatform {
		// The variant whose labels were checked, whatever the engine's default.
		argv = append(argv, "--platform", img.Platform)
	}
	argv = append(argv, args...)
	argv = append(argv, opts.RuntimeArgs...)
	argv = append(argv, img.Ref)
	argv = append(argv, opts.Cmd...)
	return argv, warnings, nil
}

// HostPlatform is the platform of h's images: linux and h's architecture
// (this machine's when h does not say).
func HostPlatform(h host.Host) ocispecs.Platform {
	p := platforms.DefaultSpec()
	if arch, ok := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[h.Arch]; ok {
		p = ocispecs.Platform{OS: "linux", Architecture: arch}
	}
	return platforms.Normalize(p)
}

// ExitError carries the container's exit status out of `gpuimg run`.
type ExitError struct {
	Runtime string
	Code    int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s run exited with status %d", e.Runtime, e.Code)
}

// ExitCode is the status gpuimg exits with.
func (e *ExitError) ExitCode() int { return e.Code }

// Run runs argv with the terminal passed through (or prints it with
// dryRun). A non-zero exit becomes an *ExitError.
func Run(argv []string, dryRun bool, stdout, stderr io.Writer) error {
	if dryRun {
		_, err := fmt.Fprintln(stdout, shell.Join(argv))
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if code < 0 {
			code = 128 + 9 // killed by a signal
		}
		return &ExitError{Runtime: argv[0], Code: code}
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	return nil
}

// Boolean flags of `docker run` / `podman run` / `nerdctl run`: every other
// flag given without "=value" consumes the next word.
var boolRunFlags = map[string]bool{
	"--detach": true, "--interactive": true, "--tty": true, "--rm": true, "--init": true,
	"--read-only": true, "--publish-all": true, "--no-healthcheck": true, "--oom-kill-disable": true,
	"--sig-proxy": true, "--disable-content-trust": true, "--quiet": true, "--help": true,
	"--replace": true, "--rmi": true, "--no-hosts": true, "--env-host": true, "--http-proxy": true,
	"--read-only-tmpfs": true, "--rootfs": true, "--tls-verify": true, "--privileged": true,
}

const boolShortFlags = "ditPq"

// ParseRunArgs reads `gpuimg run`'s positional words. With nothing before
// a "--" (dashAt 0) they are a `docker run` tail: RUNTIME-ARGS... IMAGE
// [COMMAND...]. Otherwise the first word is the image and the rest its
// command, where a leading "--" (`gpuimg run IMAGE -- nvidia-smi -L`) only
// separates the command.
func ParseRunArgs(words []string, dashAt int) (runtimeArgs []string, image string, cmd []string, err error) {
	if dashAt == 0 {
		return SplitRunArgs(words)
	}
	if len(words) == 0 {
		return nil, "", nil, errors.New("no image given: gpuimg run [flags] IMAGE [COMMAND...]")
	}
	cmd = words[1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return nil, words[0], cmd, nil
}

// SplitRunArgs splits a `docker run`-style tail ("--rm -it -v a:b IMAGE CMD...")
// into runtime arguments, the image and its command.
func SplitRunArgs(words []string) (runtimeArgs []string, image string, cmd []string, err error) {
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			if i+1 >= len(words) {
				break
			}
			return runtimeArgs, words[i+1], words[i+2:], nil
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			return runtimeArgs, w, words[i+1:], nil
		}
		runtimeArgs = append(runtimeArgs, w)
		if strings.Contains(w, "=") {
			continue
		}
		takesValue := false
		if strings.HasPrefix(w, "--") {
			takesValue = !boolRunFlags[w]
		} else {
			for _, c := range w[1:] {
				if !strings.ContainsRune(boolShortFlags, c) {
					// "-v x" or "-itv x": a value-taking short flag ends the cluster.
					takesValue = true
				}
			}
		}
		if takesValue {
			if i+1 >= len(words) {
				return nil, "", nil, fmt.Errorf("runtime flag %s needs a value", w)
			}
			i++
			runtimeArgs = append(runtimeArgs, words[i])
		}
	}
	return nil, "", nil, errors.New("no image among the runtime arguments: gpuimg run [flags] -- [RUNTIME-ARGS...] IMAGE [COMMAND...]")
}
