package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
)

// What a failed build says: the builder gone, a registry or base that
// failed, a full destination disk, and the images of a fleet that failed.

// builderGone turns the gRPC error of a builder that died mid-build
// ("rpc error: code = Unavailable desc = error reading from server: EOF")
// into one that says so; other errors are returned as they are.
func (b *Builder) builderGone(err error) error {
	if err == nil || (grpcerrors.Code(err) != codes.Unavailable && !strings.Contains(err.Error(), "code = Unavailable")) {
		return err
	}
	return &builderGoneError{addr: b.in.Address(), err: err}
}

type builderGoneError struct {
	addr string
	err  error
}

func (e *builderGoneError) Error() string {
	return fmt.Sprintf("the builder at %s went away during the build (the connection was lost: %v): check that buildkitd is still running there (its log; `systemctl status buildkit`; the OOM killer in `dmesg`), then run the command again; no unfinished destination was left",
		e.addr, e.err)
}

func (e *builderGoneError) Unwrap() error { return e.err }

// ImageError is one image of a several-image build that failed.
type ImageError struct {
	Driver    string
	Platforms []string
	Base      string // in a build of several bases
	Err       error
}

// BuildError reports the images of a several-image build that failed while
// the others were built (they are in the Summary returned with it).
type BuildError struct {
	Failed []ImageError
	Built  int
}

func (e *BuildError) Error() string {
	lines := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		on := ""
		if f.Base != "" {
			on = " on base " + f.Base
		}
		lines[i] = fmt.Sprintf("driver %s (%s)%s: %v", f.Driver, strings.Join(f.Platforms, ","), on, f.Err)
	}
	return fmt.Sprintf("%d of %d images failed (the %d built are listed on stdout; fix the failed ones and build them again):\n  %s",
		len(e.Failed), len(e.Failed)+e.Built, e.Built, strings.Join(lines, "\n  "))
}

func (e *BuildError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// ExitCode is 2 when some images were built and others failed, 1 when
// none was built.
func (e *BuildError) ExitCode() int {
	if e.Built > 0 {
		return 2
	}
	return 1
}

// explainPush adds, to a push that failed (a registry answering 500, or
// one that died mid-push), which registry it was and what to check.
func (b *Builder) explainPush(im *image, err error) error {
	var gone *builderGoneError
	if err == nil || errors.As(err, &gone) || errors.Is(err, context.Canceled) {
		return err
	}
	var hosts []string
	for _, e := range im.exports {
		if e.attrs["push"] != "true" {
			continue
		}
		for _, n := range strings.Split(e.attrs["name"], ",") {
			if named, perr := reference.ParseNormalizedNamed(n); perr == nil && strings.Contains(err.Error(), reference.Domain(named)) {
				hosts = append(hosts, reference.Domain(named))
			}
		}
	}
	if len(hosts) == 0 {
		return err
	}
	return fmt.Errorf("pushing to the registry %s failed: %w: check that it is up and reachable from the builder at %s, the image name, and your credentials (`docker login %s`); the push did not complete, so the tag was not updated",
		hosts[0], err, b.in.Address(), hosts[0])
}

// explainFullDisk names the destinations and the fix when an export failed
// because their disk filled up (the exporter writes them on this machine).
func explainFullDisk(im *image, err error) error {
	if !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), "no space left on device") {
		return err
	}
	var dests []string
	for _, e := range im.exports {
		if e.dest != "" {
			dests = append(dests, e.dest)
		}
	}
	if len(dests) == 0 {
		return err // the builder's own disk: its message says where
	}
	return fmt.Errorf("writing %s: the disk is full (%w): free space there, or choose a dest= on another disk; nothing was left at the destination",
		strings.Join(dests, ", "), err)
}

// explainBase adds the way out to a registry base of image im the builder
// could not reach (no network, a DNS failure): BuildKit reports it from the
// step that resolves the base, so the base's own wrapping does not survive.
func (b *Builder) explainBase(im *image, err error) error {
	base := b.bases[im.base]
	if err == nil || base.Named == nil || !strings.Contains(err.Error(), reference.Path(base.Named)) ||
		strings.Contains(err.Error(), "cannot resolve it on the builder") {
		return err
	}
	return unresolvableBase(base.Given, err)
}

func unresolvableBase(given string, err error) error {
	return fmt.Errorf("--base %s: cannot resolve it on the builder: %w (check the name, the registry's reachability from the builder, and `docker login`; without a network: pass --base oci-layout://DIR[:TAG] with the base saved as an OCI layout, and --offline with a cached or --driver-file .run)", given, err)
}
