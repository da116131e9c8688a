package drivers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Driver is what `gpuimg drivers show` reports about one version.
type Driver struct {
	Version Version `json:"version"`
	// MaxCUDA is the newest CUDA toolkit whose minimum driver this meets.
	MaxCUDA  string    `json:"max_cuda,omitempty"`
	Packages []Package `json:"packages"`
}

// Show collects the catalog's packages of v (for arch, or every arch when
// arch is ""), with the newest CUDA it supports.
func Show(v Version, arch string) (Driver, error) {
	filters := []Filter{WithVersion(v)}
	if arch != "" {
		if err := CheckArch(arch); err != nil {
			return Driver{}, err
		}
		filters = append(filters, WithArch(arch))
	}
	d := Driver{Version: v, Packages: List(filters...)}
	d.MaxCUDA, _ = MaxCUDA(v)
	if len(d.Packages) == 0 {
		where := ""
		if arch != "" {
			where = " for " + arch
		}
		return d, fmt.Errorf("driver %s%s is not in the catalog: `gpuimg drivers list` shows the known versions; `gpuimg drivers fetch %s --sha256 HEX` fetches another one", v, where, v)
	}
	return d, nil
}

// RunPathFor turns a FILE|VERSION argument into a .run path: an existing file
// is used as is, a version is looked up in the cache (never the network).
func RunPathFor(arg, cacheDir, arch, variant string) (string, error) {
	st, statErr := os.Stat(arg)
	if statErr == nil {
		if st.IsDir() {
			return "", fmt.Errorf("%s is a directory: give a .run file or a driver version", arg)
		}
		return arg, nil
	}
	v, verr := ParseVersion(arg)
	if verr != nil {
		if errors.Is(statErr, fs.ErrNotExist) {
			return "", fmt.Errorf("no file %q, and %w", arg, verr)
		}
		return "", fmt.Errorf("%s: %w", arg, statErr)
	}
	r, err := FindCached(cacheDir, v, arch, variant)
	return r.Path, err
}
