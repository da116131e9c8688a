// Command mkrealrun assembles a driver package (.run) in NVIDIA's makeself
// format from the driver userspace installed on a GPU host: the host's real
// libraries and programs under their real names and SONAMEs, a .manifest that
// follows the release's nvidia-installer type table, and NVIDIA's own
// nvidia-installer inside. Files of NVIDIA's package that the host lacks
// (libglvnd, X modules, firmware, kernel sources, ...) are left out and
// listed. hack/gpu-e2e.sh runs it on the GPU host, then `gpuimg build`s it.
//
//	mkrealrun -version 580.159.04 -installer nvidia-installer [-search /usr/local/nvidia]... [-report files.tsv] -o DIR
//
// stdout: the .run's path. stderr: what went in and what was left out.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gpuimg/gpuimg/internal/standin"
)

// searchFlag collects repeated -search directories.
type searchFlag []string

func (s *searchFlag) String() string     { return strings.Join(*s, ",") }
func (s *searchFlag) Set(v string) error { *s = append(*s, v); return nil }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the command with its arguments and outputs; it returns the exit
// status: 0 done, 1 the package could not be made, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	var opts standin.HostOptions
	var search searchFlag
	var out, report string
	flags := flag.NewFlagSet("mkrealrun", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&opts.Version, "version", "", "the installed driver's version, e.g. 580.159.04 (required; /sys/module/nvidia/version on the host)")
	flags.StringVar(&opts.Arch, "arch", "x86_64", "x86_64 or aarch64")
	flags.StringVar(&opts.Installer, "installer", "", "NVIDIA's nvidia-installer binary to ship in the package (required)")
	flags.Var(&search, "search", "directory holding the driver's files, searched recursively by name (repeatable; default /usr/local/nvidia)")
	flags.StringVar(&out, "o", "", "directory to write the .run into (required)")
	flags.StringVar(&report, "report", "", "also write every package file, its manifest type and its host source (or 'missing') to this TSV")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "mkrealrun: unexpected arguments %q: all options are flags (see -h)\n", flags.Args())
		return 2
	}
	if out == "" {
		fmt.Fprintln(stderr, "mkrealrun: no output directory: pass -o DIR")
		return 2
	}
	opts.Search = search
	if len(opts.Search) == 0 {
		opts.Search = []string{"/usr/local/nvidia"}
	}
	runPath, r, err := standin.GenerateFromHost(out, opts)
	if err == nil && report != "" {
		err = writeReportFile(report, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mkrealrun: %v\n", err)
		return 1
	}
	summarize(stderr, r)
	fmt.Fprintln(stdout, runPath)
	return 0
}

// summarize prints counts and every left-out name on w.
func summarize(w io.Writer, r standin.HostReport) {
	fmt.Fprintf(w, "mkrealrun: %d files from the host, %d of NVIDIA's package missing there (left out), %d host files not packaged\n",
		len(r.Included), len(r.Missing), len(r.Unpackaged))
	for _, f := range r.Missing {
		fmt.Fprintf(w, "  missing on the host: %s (%s)\n", f.File, f.Type)
	}
	for _, f := range r.Unpackaged {
		fmt.Fprintf(w, "  not packaged (no manifest entry): %s\n", f)
	}
	for _, m := range r.SONAMEMismatches {
		fmt.Fprintf(w, "  warning: %s\n", m)
	}
}

func writeReportFile(name string, r standin.HostReport) error {
	var b strings.Builder
	b.WriteString("file\ttype\tsource\n")
	for _, f := range r.Included {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", f.File, f.Type, f.Source)
	}
	for _, f := range r.Missing {
		fmt.Fprintf(&b, "%s\t%s\tmissing\n", f.File, f.Type)
	}
	for _, f := range r.Unpackaged {
		fmt.Fprintf(&b, "-\t-\tnot packaged: %s\n", f)
	}
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
