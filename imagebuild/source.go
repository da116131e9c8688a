package imagebuild

import (
	"fmt"
	"strings"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gpuimg/gpuimg/drivers"
)

// nvidiaArch maps an OCI architecture to NVIDIA's package arch.
func nvidiaArch(ociArch string) (string, error) {
	switch ociArch {
	case "amd64":
		return drivers.ArchX86_64, nil
	case "arm64":
		return drivers.ArchAarch64, nil
	}
	return "", fmt.Errorf("platform architecture %q has no NVIDIA driver package: use linux/amd64 or linux/arm64", ociArch)
}

// checksums are --sha256's values, keyed by driver version and NVIDIA arch
// ("" arch: any platform of that driver).
type checksums map[string]string

// forTarget is the checksum given for driver v on arch, or "".
func (c checksums) forTarget(v drivers.Version, arch string) string {
	if sum, ok := c[v.String()+"/"+arch]; ok {
		return sum
	}
	return c[v.String()+"/"]
}

// parseSHA256s reads --sha256: plain values, one per driver in --driver's
// order (each .run one platform's, so only with one platform); or per arch,
// ARCH=HEX (one driver) or VERSION/ARCH=HEX (several), since every platform
// has its own .run and checksum.
func parseSHA256s(flag string, versions []drivers.Version, plats []ocispecs.Platform) (checksums, error) {
	sums := checksums{}
	if flag == "" {
		return sums, nil
	}
	values := strings.Split(flag, ",")
	keyed := strings.Contains(flag, "=")
	var plain []string
	for _, value := range values {
		key, hex, hasKey := strings.Cut(value, "=")
		if !hasKey {
			key, hex = "", value
		}
		if hasKey != keyed {
			return nil, fmt.Errorf("--sha256 %q mixes plain checksums with ARCH=HEX ones: use one form (plain: one per --driver; per arch: x86_64=HEX,aarch64=HEX)", flag)
		}
		sum, err := drivers.NormalizeSHA256(hex)
		if err != nil {
			return nil, fmt.Errorf("--sha256 %q: %w", value, err)
		}
		if keyed {
			if key, err = checksumKey(key, versions, plats); err != nil {
				return nil, err
			}
			if _, dup := sums[key]; dup {
				return nil, fmt.Errorf("--sha256 gives %s twice", strings.TrimPrefix(key, "/"))
			}
			sums[key] = sum
		}
		plain = append(plain, sum)
	}
	if keyed {
		return sums, nil
	}
	if len(plats) > 1 {
		return nil, fmt.Errorf("--sha256 %s: each of the %d platforms installs its own .run, with its own checksum: give one per arch, e.g. --sha256 x86_64=HEX,aarch64=HEX (or VERSION/ARCH=HEX for several drivers)", flag, len(plats))
	}
	if len(values) != len(versions) {
		return nil, fmt.Errorf("--sha256 has %d values for %d drivers: give one per --driver, in the same order", len(values), len(versions))
	}
	for i, v := range versions {
		sums[v.String()+"/"] = plain[i]
	}
	return sums, nil
}

// checksumKey checks a --sha256 key, ARCH or VERSION/ARCH, against the
// build's drivers and platforms and returns its "VERSION/ARCH" form.
func checksumKey(key string, versions []drivers.Version, plats []ocispecs.Platform) (string, error) {
	version, arch, withVersion := strings.Cut(key, "/")
	if !withVersion {
		version, arch = "", key
	}
	if err := drivers.CheckArch(arch); err != nil {
		return "", fmt.Errorf("--sha256 %s=…: %w", key, err)
	}
	buildsArch := false
	for _, p := range plats {
		if a, err := nvidiaArch(p.Architecture); err == nil && a == arch {
			buildsArch = true
		}
	}
	if !buildsArch {
		return "", fmt.Errorf("--sha256 %s=…: no --platform builds %s (add it to --platform, or drop the checksum)", key, arch)
	}
	if !withVersion {
		if len(versions) > 1 {
			return "", fmt.Errorf("--sha256 %s=…: %d drivers are built: name the driver, VERSION/%s=HEX", key, len(versions), arch)
		}
		return versions[0].String() + "/" + arch, nil
	}
	v, err := drivers.ParseVersion(version)
	if err != nil {
		return "", fmt.Errorf("--sha256 %s=…: %w", key, err)
	}
	for _, want := range versions {
		if want.String() == v.String() {
			return v.String() + "/" + arch, nil
		}
	}
	return "", fmt.Errorf("--sha256 %s=…: driver %s is not among --driver's", key, v)
}
