// Command gpuimg builds container images that carry the NVIDIA driver userspace
// matched to a host's kernel driver, and launches them with device nodes only.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/drivers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		// Errors are printed once, here; commands wrap them with the fix in the message.
		fmt.Fprintln(os.Stderr, "gpuimg: "+err.Error())
		os.Exit(exitCode(err))
	}
}

// printWarnings writes warnings to stderr, one per line, in gpuimg's one
// warning style. Packages return warnings; only commands print them.
func printWarnings(cmd *cobra.Command, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "gpuimg: warning: "+w)
	}
}

// withAllowUnverifiedHint adds, to a refusal --allow-unverified would have
// let through, that it would (for the commands that have the flag).
func withAllowUnverifiedHint(err error) error {
	if errors.Is(err, drivers.ErrUnverifiable) {
		return fmt.Errorf("%w (or pass --allow-unverified to use it anyway, labelled unverified)", err)
	}
	return err
}

// exitCoder lets a package choose the process exit status (e.g. 130 on Ctrl-C,
// or the exit status of a container run by `gpuimg run`).
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	var ec exitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}
