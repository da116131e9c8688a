package build

import (
	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/llb"
)

// manifestFiles lists a local .run's manifest entries with their component
// groups, for --components pruning.
func manifestFiles(runPath string) ([]llb.ManifestFile, error) {
	m, err := drivers.ReadManifest(runPath)
	if err != nil {
		return nil, err
	}
	files := make([]llb.ManifestFile, 0, len(m.Entries))
	for _, e := range m.Entries {
		files = append(files, llb.ManifestFile{Name: e.Path, Group: string(e.Group)})
	}
	return files, nil
}
