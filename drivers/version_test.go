package drivers

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseVersionAcceptsRealVersions(t *testing.T) {
	for _, s := range []string{"390.157", "340.108", "470.94", "450.102.04", "470.82.00", "418.116.00", "173.14.39", "96.43.23", "610.43.02"} {
		v, err := ParseVersion(s)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", s, err)
			continue
		}
		if v.String() != s {
			t.Errorf("ParseVersion(%q).String() = %q, want it unchanged", s, v.String())
		}
	}
}

func TestParseVersionRejectsWithReason(t *testing.T) {
	for _, tc := range []struct{ in, reason string }{
		{"", "empty"},
		{"450", "1 part"},
		{"450.102.04.1", "4 part"},
		{" 450.102.04", "spaces"},
		{"450.102.04\n", "spaces"},
		{"450.102.04;rm -rf /", `contains ";"`},
		{"4a0.1", `contains "a"`},
		{"1.0-6106", `contains "-"`},
		{"4500.1", "2-3 digits"},
		{"450.1.4", "third 2-3"},
		{"450..04", "second 1-3"},
		{"v450.1", `contains "v"`},
		{"４５０.1", "contains"},
	} {
		_, err := ParseVersion(tc.in)
		if err == nil {
			t.Errorf("ParseVersion(%q) accepted a malformed version", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "450.102.04") {
			t.Errorf("ParseVersion(%q) = %q; want the reason %q and a valid example", tc.in, err, tc.reason)
		}
	}
}

func TestVersionOrderingKeepsNames(t *testing.T) {
	a, b := MustParseVersion("470.82"), MustParseVersion("470.82.00")
	if a.Compare(b) != 0 {
		t.Errorf("470.82 and 470.82.00 should compare equal numerically")
	}
	if a.Equal(b) {
		t.Errorf("470.82 and 470.82.00 are different packages; Equal must compare the strings")
	}
	if got := MustParseVersion("450.102.04").Compare(MustParseVersion("450.80.02")); got != 1 {
		t.Errorf("450.102.04 vs 450.80.02 = %d, want 1 (numeric, not lexical)", got)
	}
	if got := MustParseVersion("535.98").Compare(MustParseVersion("535.104.05")); got != -1 {
		t.Errorf("535.98 vs 535.104.05 = %d, want -1", got)
	}
	if m := MustParseVersion("450.102.04").Major(); m != 450 {
		t.Errorf("Major = %d, want 450", m)
	}
	v := MustParseVersion("396.51")
	if !v.AtLeast("396.51") || !v.AtLeast("396.24.02") || v.AtLeast("396.54") || v.AtLeast("not-a-version") {
		t.Errorf("AtLeast gives wrong answers for 396.51")
	}
	var zero Version
	if zero.Compare(v) != -1 || v.Compare(zero) != 1 || zero.Major() != 0 || zero.AtLeast("1.0") {
		t.Errorf("the zero Version should sort first and gate nothing")
	}
}

func TestVersionTextRoundTrip(t *testing.T) {
	var v Version
	if err := v.UnmarshalText([]byte("470.82.00")); err != nil {
		t.Fatal(err)
	}
	b, _ := v.MarshalText()
	if string(b) != "470.82.00" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := v.UnmarshalText([]byte("470")); err == nil {
		t.Errorf("UnmarshalText accepted 470")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"450.102.04", "390.157", "450", "450.102.04.1", " 450.102.04", "450.102.04;rm -rf /", "4a0.1", "", "00.0", "999.999.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", s)
			}
			return
		}
		if !versionPattern.MatchString(s) {
			t.Fatalf("accepted %q, which the strict pattern rejects", s)
		}
		first, _, _ := strings.Cut(s, ".")
		if major, _ := strconv.Atoi(first); v.String() != s || v.Compare(v) != 0 || !v.Equal(v) || v.Major() != major {
			t.Fatalf("inconsistent Version for %q: %q major %d", s, v.String(), v.Major())
		}
		if !v.AtLeast(s) {
			t.Fatalf("%q is not AtLeast itself", s)
		}
	})
}
