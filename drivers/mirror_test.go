package drivers

import (
	"strings"
	"testing"
)

func TestResolveDefaultTriesCatalogThenHosts(t *testing.T) {
	urls, err := URLs(MustParseVersion("580.159.04"), ArchX86_64, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if urls[0] != "https://us.download.nvidia.com/tesla/580.159.04/NVIDIA-Linux-x86_64-580.159.04.run" {
		t.Errorf("first URL = %s, want the catalog's tesla URL", urls[0])
	}
	want := "https://cn.download.nvidia.com/XFree86/Linux-x86_64/580.159.04/NVIDIA-Linux-x86_64-580.159.04.run"
	if !contains(urls, want) {
		t.Errorf("the cn host is missing from %v", urls)
	}
	seen := map[string]bool{}
	for _, u := range urls {
		if seen[u] {
			t.Errorf("%s listed twice", u)
		}
		seen[u] = true
	}
}

func TestResolveNamedMirrorAndAarch64(t *testing.T) {
	urls, err := URLs(MustParseVersion("595.84"), ArchAarch64, "", "cn")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "https://cn.download.nvidia.com/") {
			t.Errorf("mirror cn gave %s", u)
		}
		if strings.Contains(u, "Linux-aarch64/") {
			t.Errorf("aarch64 lives under XFree86/aarch64, not Linux-aarch64: %s", u)
		}
	}
	if !contains(urls, "https://cn.download.nvidia.com/XFree86/aarch64/595.84/NVIDIA-Linux-aarch64-595.84.run") ||
		!contains(urls, "https://cn.download.nvidia.com/tesla/595.84/NVIDIA-Linux-aarch64-595.84.run") {
		t.Errorf("XFree86 then tesla expected: %v", urls)
	}
	if strings.Contains(urls[len(urls)-1], "XFree86") {
		t.Errorf("tesla should come after XFree86: %v", urls)
	}
}

func TestResolveTemplate(t *testing.T) {
	urls, err := URLs(MustParseVersion("450.102.04"), ArchX86_64, VariantNoCompat32, "http://10.0.0.5/nv/{arch}/{version}/{file}")
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 1 || urls[0] != "http://10.0.0.5/nv/x86_64/450.102.04/NVIDIA-Linux-x86_64-450.102.04-no-compat32.run" {
		t.Errorf("template expanded to %v", urls)
	}
}

func TestResolveRejects(t *testing.T) {
	v := MustParseVersion("450.102.04")
	for _, tc := range []struct{ arch, variant, mirror, reason string }{
		{"i386", "", "", "x86_64 or aarch64"},
		{ArchX86_64, "lite", "", "no-compat32"},
		{ArchX86_64, "", "eu", "neither a known name"},
		{ArchX86_64, "", "ftp://m/{file}", "not an http(s) URL"},
		{ArchX86_64, "", "https://m/{ver}/{file}", "unknown placeholder {ver}"},
		{ArchX86_64, "", "https://m/drivers/", "names no {file}"},
	} {
		_, err := URLs(v, tc.arch, tc.variant, tc.mirror)
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("URLs(%q, %q, %q) = %v, want an error about %q", tc.arch, tc.variant, tc.mirror, err, tc.reason)
		}
	}
	if _, err := URLs(Version{}, ArchX86_64, "", ""); err == nil {
		t.Errorf("the zero Version resolved")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
