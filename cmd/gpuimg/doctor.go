package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpuimg/gpuimg/host"
)

type doctorOptions struct {
	root string
	json bool
}

// errCannotRun makes `gpuimg doctor` exit 1 after printing its findings.
var errCannotRun = errors.New("this host cannot run GPU containers yet: run the fix of each problem above, then `gpuimg doctor` again")

func newDoctorCmd() *cobra.Command {
	var opts doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host can run GPU containers, with the exact command that fixes each problem",
		Long: `Check the host as gpuimg's launcher needs it: the NVIDIA module is loaded and lists its
GPUs; every device node exists with the driver's major:minor, its mode, and its /dev/char
link; nvidia-uvm is loaded; nvidia-persistenced runs; MIG devices; no driver upgrade is
pending on disk; which container engines are installed and whether they take CDI specs;
whether nvidia-container-toolkit is installed and would inject a second driver
(NVIDIA_VISIBLE_DEVICES). Each warning and problem comes with its fix. Exits 1 when the
host cannot run GPU containers. Every path is read under --root.

  gpuimg doctor
  gpuimg doctor --json | jq '.checks[] | select(.status=="problem")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := host.Read(opts.root)
			if err != nil {
				return err
			}
			d := host.Diagnose(h, host.ProbeRuntimes(cmd.Context(), h))
			if opts.json {
				err = writeDiagnosisJSON(cmd.OutOrStdout(), d)
			} else {
				err = writeDiagnosis(cmd.OutOrStdout(), d)
			}
			if err == nil && !d.CanRun {
				err = errCannotRun
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "/", "read the host under this directory")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// writeDiagnosis prints one line per check, its fix below it, and a verdict.
func writeDiagnosis(out io.Writer, d host.Diagnosis) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gpuimg doctor: the host under %s\n\n", d.Root)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	counts := map[host.CheckStatus]int{}
	for _, c := range d.Checks {
		counts[c.Status]++
		status := string(c.Status)
		if c.Status == host.StatusProblem {
			status = "PROBLEM"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", status, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	tw.Flush()
	verdict := "this host can run GPU containers"
	if !d.CanRun {
		verdict = "this host CANNOT run GPU containers"
	}
	fmt.Fprintf(&b, "\n%s (%d problem(s), %d warning(s))\n", verdict, counts[host.StatusProblem], counts[host.StatusWarning])
	_, err := io.WriteString(out, b.String())
	return err
}

func writeDiagnosisJSON(out io.Writer, d host.Diagnosis) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
