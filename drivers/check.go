package drivers

import (
	"errors"
	"fmt"
)

// ErrWrongPackage marks a .run whose header names another version or arch.
var ErrWrongPackage = errors.New("wrong driver package")

// CheckRun checks that a header belongs to version v for arch.
func CheckRun(h Header, v Version, arch string) error {
	if h.VersionString != v.String() {
		return fmt.Errorf("%w: the .run holds driver %q, not %s: give the package for %s", ErrWrongPackage, h.VersionString, v, v)
	}
	if h.TargetArch != arch {
		return fmt.Errorf("%w: the .run is for %q, not %s: use the %s package or pass --arch %s", ErrWrongPackage, h.TargetArch, arch, arch, h.TargetArch)
	}
	return nil
}

// CheckRunFile reads the header of the .run at path and checks it with CheckRun.
func CheckRunFile(path string, v Version, arch string) error {
	h, err := ReadHeaderFile(path)
	if err != nil {
		return err
	}
	return CheckRun(h, v, arch)
}
