package launch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gpuimg/gpuimg/internal/shell"
)

// DriverPlaceholder in an image reference stands for the host's loaded driver
// version, the way `gpuimg build -t REPO:{driver}` names a fleet's images.
const DriverPlaceholder = "{driver}"

// ErrNoImageForDriver is wrapped when a {driver} template resolves to an image
// that does not exist: this host's driver has no image yet.
var ErrNoImageForDriver = errors.New("no image for this host's driver")

// ResolveImageRef replaces every {driver} in ref with the host's driver
// version. A reference without the placeholder is returned as it is (templated
// false): it is a plain reference. An unloaded driver cannot fill a template.
func ResolveImageRef(ref, hostVersion string) (resolved string, templated bool, err error) {
	if !strings.Contains(ref, DriverPlaceholder) {
		return ref, false, nil
	}
	if hostVersion == "" {
		return "", true, fmt.Errorf("%s names the image by the host's driver, but no driver version could be read: load the driver (`gpuimg host` shows what is missing) or name the image's tag", ref)
	}
	return strings.ReplaceAll(ref, DriverPlaceholder, hostVersion), true, nil
}

// missingImageError says which image a template looked for and the build
// that makes it; readErr keeps what each source answered.
func missingImageError(template, resolved, hostVersion string, readErr error) error {
	return fmt.Errorf("%w: this host runs driver %s, so %s means %s, which was not found (%v): build it with `gpuimg build --driver %s %s`, or pass --force to launch without the check",
		ErrNoImageForDriver, hostVersion, template, resolved, readErr, hostVersion, buildTarget(resolved))
}

// buildTarget is the `gpuimg build` output that makes the image named ref: a
// docker tarball or an OCI layout directory for a path, a tag otherwise.
func buildTarget(ref string) string {
	if !looksLikePath(ref) {
		return "-t " + shell.Quote(ref) + " (add --push for a registry)"
	}
	if strings.HasSuffix(ref, ".tar") {
		return "-o " + shell.Quote("type=docker,dest="+ref)
	}
	return "-o " + shell.Quote("type=oci,dest="+ref+",tar=false")
}

// looksLikePath tells a file or directory name from an image reference when
// neither exists: an absolute or ./ path, or a tarball's name.
func looksLikePath(ref string) bool {
	return strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") || strings.HasSuffix(ref, ".tar")
}
