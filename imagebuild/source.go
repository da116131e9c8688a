package imagebuild

import (
	"fmt"
	"strings"

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

// pairSHA256s pairs --sha256 values with the drivers: one value for one
// driver (or for --driver-file, whose version is zero here), or one per
// driver, in --driver's order. The map is keyed by version.
func pairSHA256s(flag string, versions []drivers.Version) (map[string]string, error) {
	sums := map[string]string{}
	if flag == "" {
		return sums, nil
	}
	values := strings.Split(flag, ",")
	for i, s := range values {
		sum, err := drivers.NormalizeSHA256(s)
		if err != nil {
			return nil, fmt.Errorf("--sha256 %q: %w", s, err)
		}
		values[i] = sum
	}
	if len(values) != len(versions) {
		return nil, fmt.Errorf("--sha256 has %d values for %d drivers: give one per --driver, in the same order", len(values), len(versions))
	}
	for i, v := range versions {
		sums[v.String()] = values[i]
	}
	return sums, nil
}
