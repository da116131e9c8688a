package imagebuild

import (
	"fmt"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/llb"
)

// checkedManifest reads a local .run's .manifest as NVIDIA's installer will,
// refuses a package the installer would misread or that cannot give what
// was asked for, and lists the entries with their component groups for
// --components pruning.
func checkedManifest(runPath, arch string, compat32 bool) ([]llb.ManifestFile, error) {
	m, err := drivers.ReadManifest(runPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", runPath, err)
	}
	if m.Arch != arch {
		return nil, fmt.Errorf("%s: its .manifest reads %q where the architecture (%s) belongs, so NVIDIA's installer would misread the package and install the wrong files or none (a header line is empty or missing): use an unmodified package from NVIDIA", runPath, m.Arch, arch)
	}
	files := make([]llb.ManifestFile, 0, len(m.Entries))
	has32 := false
	for _, e := range m.Entries {
		files = append(files, llb.ManifestFile{Name: e.Path, Group: string(e.Group)})
		has32 = has32 || e.Arch == "COMPAT32"
	}
	if compat32 && !has32 {
		return nil, fmt.Errorf("--compat32: %s carries no 32-bit libraries (a -no-compat32 package?): use the full x86_64 package, or drop --compat32", runPath)
	}
	return files, nil
}
