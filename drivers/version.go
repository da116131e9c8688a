// Package drivers knows NVIDIA driver versions and their .run packages: the
// embedded catalog (URL, size, sha256), download mirrors, fetching into a
// verified content-addressed cache, and reading a .run's makeself header,
// payload and .manifest without running it.
package drivers

import (
	"fmt"
	"regexp"
	"strings"

	goversion "github.com/hashicorp/go-version"
)

// versionPattern is the strict form of a driver version (REFERENCE 1.1). The
// string reaches URLs, file names and shell commands, so nothing else passes.
var versionPattern = regexp.MustCompile(`^\d{2,3}\.\d{1,3}(\.\d{2,3})?$`)

const versionExample = "a version looks like 450.102.04 or 390.157"

// Version is a driver version. It orders numerically (hashicorp/go-version)
// but always prints exactly as written: "450.102.04" stays "450.102.04", and
// two versions are the same driver only when their strings are equal.
type Version struct {
	parsed   *goversion.Version
	original string
}

// ParseVersion validates s strictly: 2 or 3 dot-separated numeric parts, the
// first with 2-3 digits, the second 1-3, the third 2-3.
func ParseVersion(s string) (Version, error) {
	if err := checkVersionSyntax(s); err != nil {
		return Version{}, err
	}
	parsed, err := goversion.NewVersion(s)
	if err != nil { // unreachable for strings the pattern accepts; kept so a library change cannot panic us
		return Version{}, fmt.Errorf("driver version %q: %w (%s)", s, err, versionExample)
	}
	return Version{parsed: parsed, original: s}, nil
}

// MustParseVersion is ParseVersion for constants in code and tests; it panics
// on a malformed literal, which is a programming error.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// checkVersionSyntax explains what is wrong with s, most specific reason first.
func checkVersionSyntax(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("driver version is empty: %s", versionExample)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("driver version %q has spaces around it: remove them (%s)", s, versionExample)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		return fmt.Errorf("driver version %q contains %q: only digits and dots are allowed (%s)", s, s[i:i+1], versionExample)
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("driver version %q has %d part(s), a driver version has 2 or 3 (%s)", s, len(parts), versionExample)
	}
	if !versionPattern.MatchString(s) {
		return fmt.Errorf("driver version %q: the first part needs 2-3 digits, the second 1-3, the third 2-3 (%s)", s, versionExample)
	}
	return nil
}

// String returns the version exactly as it was written.
func (v Version) String() string { return v.original }

// IsZero reports whether v is the zero Version (not parsed from anything).
func (v Version) IsZero() bool { return v.parsed == nil }

// Equal reports whether v and o name the same driver: string equality, since
// 470.82 and 470.82.00 are different packages even though they compare equal.
func (v Version) Equal(o Version) bool { return v.original == o.original }

// Compare orders v and o numerically: -1, 0 or 1. The zero Version sorts first.
func (v Version) Compare(o Version) int {
	switch {
	case v.parsed == nil && o.parsed == nil:
		return 0
	case v.parsed == nil:
		return -1
	case o.parsed == nil:
		return 1
	}
	return v.parsed.Compare(o.parsed)
}

// Major returns the branch number, the first part (450 for 450.102.04).
func (v Version) Major() int {
	if v.parsed == nil {
		return 0
	}
	return v.parsed.Segments()[0]
}

// AtLeast reports whether v is at least the version s, for gating features by
// driver release. A malformed s is never reached: it reports false.
func (v Version) AtLeast(s string) bool {
	o, err := goversion.NewVersion(s)
	if err != nil || v.parsed == nil {
		return false
	}
	return v.parsed.GreaterThanOrEqual(o)
}

// MarshalText writes the original string, so JSON shows "450.102.04".
func (v Version) MarshalText() ([]byte, error) { return []byte(v.original), nil }

// UnmarshalText parses strictly, as ParseVersion does.
func (v *Version) UnmarshalText(b []byte) error {
	parsed, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = parsed
	return nil
}
