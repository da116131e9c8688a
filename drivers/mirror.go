package drivers

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// MirrorHosts are NVIDIA's download hosts by mirror name (REFERENCE 1.4).
var MirrorHosts = map[string]string{
	"us":            "us.download.nvidia.com",
	"download":      "download.nvidia.com",
	"international": "international.download.nvidia.com",
	"cn":            "cn.download.nvidia.com",
}

// defaultMirrorOrder is tried when no mirror is named: availability differs
// between hosts at times, so several are tried.
var defaultMirrorOrder = []string{"us", "download", "international", "cn"}

var templatePlaceholder = regexp.MustCompile(`\{[^}]*\}`)

// IsMirrorTemplate reports whether mirror is a URL template rather than a name.
func IsMirrorTemplate(mirror string) bool { return strings.Contains(mirror, "://") }

// URLs lists the URLs to try for a package, best first. mirror is "" (the
// catalog's URL, then every NVIDIA host), a host name from MirrorHosts, or a
// URL template with {version}, {arch} and {file} placeholders (an internal
// mirror). On each NVIDIA host the XFree86 tree is tried before tesla.
func URLs(v Version, arch, variant, mirror string) ([]string, error) {
	if v.IsZero() {
		return nil, fmt.Errorf("no driver version given: %s", versionExample)
	}
	if err := CheckArch(arch); err != nil {
		return nil, err
	}
	if err := CheckVariant(variant); err != nil {
		return nil, err
	}
	file := RunFileName(v, arch, variant)
	if IsMirrorTemplate(mirror) {
		u, err := expandTemplate(mirror, v, arch, file)
		if err != nil {
			return nil, err
		}
		return []string{u}, nil
	}
	hosts := defaultMirrorOrder
	if mirror != "" {
		if _, ok := MirrorHosts[mirror]; !ok {
			return nil, fmt.Errorf("mirror %q is neither a known name (%s) nor a URL template: use a name or a URL like https://mirror.example/nvidia/{version}/{file}", mirror, strings.Join(mirrorNames(), ", "))
		}
		hosts = []string{mirror}
	}
	var urls []string
	add := func(u string) {
		for _, have := range urls {
			if have == u {
				return
			}
		}
		urls = append(urls, u)
	}
	pkg, inCatalog := LookupPackage(v, arch, variant)
	var rehost string // a catalog URL outside NVIDIA's hosts (the cuda re-hosts)
	if inCatalog {
		u, err := url.Parse(pkg.URL)
		if err == nil && isNVIDIAHost(u.Host) {
			// The catalog knows the exact directory (tesla/418.87/ holds
			// 418.87.00); keep its path on the chosen host.
			u.Host = MirrorHosts[hosts[0]]
			add(u.String())
		} else {
			rehost = pkg.URL
		}
	}
	treeDir := "Linux-x86_64"
	if arch == ArchAarch64 {
		treeDir = "aarch64" // not Linux-aarch64 (REFERENCE 1.4)
	}
	for _, name := range hosts {
		host := MirrorHosts[name]
		add("https://" + host + "/XFree86/" + treeDir + "/" + v.String() + "/" + file)
		add("https://" + host + "/tesla/" + v.String() + "/" + file)
	}
	if rehost != "" {
		add(rehost)
	}
	return urls, nil
}

func expandTemplate(tmpl string, v Version, arch, file string) (string, error) {
	u, err := url.Parse(tmpl)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("mirror template %q is not an http(s) URL: use one like https://mirror.example/nvidia/{version}/{file}", tmpl)
	}
	for _, ph := range templatePlaceholder.FindAllString(tmpl, -1) {
		if ph != "{version}" && ph != "{arch}" && ph != "{file}" {
			return "", fmt.Errorf("mirror template %q has the unknown placeholder %s: use {version}, {arch} and {file}", tmpl, ph)
		}
	}
	if !strings.Contains(tmpl, "{file}") && !strings.Contains(tmpl, "{version}") {
		return "", fmt.Errorf("mirror template %q names no {file} or {version}, so every driver would get the same URL: use one like %s{file}", tmpl, strings.TrimSuffix(tmpl, "/")+"/")
	}
	return strings.NewReplacer("{version}", v.String(), "{arch}", arch, "{file}", file).Replace(tmpl), nil
}

func isNVIDIAHost(host string) bool {
	return host == "download.nvidia.com" || strings.HasSuffix(host, ".download.nvidia.com")
}

func mirrorNames() []string {
	names := make([]string, 0, len(MirrorHosts))
	for n := range MirrorHosts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
