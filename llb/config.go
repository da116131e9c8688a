package llb

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// stubTime is the fixed mtime of the stub files, so their LLB never varies.
var stubTime = time.Unix(0, 0).UTC()

// Labels gpuimg writes on every image; the launcher reads the version label.
const (
	LabelDriverVersion    = "io.gpuimg.driver.version"
	LabelDriverSHA256     = "io.gpuimg.driver.sha256"
	LabelDriverComponents = "io.gpuimg.driver.components"
	LabelDriverArch       = "io.gpuimg.driver.arch"
	LabelDriverVerified   = "io.gpuimg.driver.verified"
	// LabelDriverLayers is set on an image of base + more than one layer,
	// and says why.
	LabelDriverLayers = "io.gpuimg.driver.layers"
)

// Labels are the labels gpuimg adds to the base's for spec: the driver's
// (version, checksum, components, arch, verified) and the OCI ones (title,
// description, version, created, base name and digest). The image config
// and the Dockerfile equivalent both take them from here.
func Labels(spec Spec) map[string]string {
	d := spec.Driver
	v := d.Version.String()
	labels := map[string]string{
		LabelDriverVersion:               v,
		LabelDriverSHA256:                d.SHA256,
		LabelDriverComponents:            spec.Components.String(),
		LabelDriverArch:                  d.Arch,
		LabelDriverVerified:              fmt.Sprint(d.Verified()),
		ocispecs.AnnotationTitle:         "NVIDIA driver " + v + " userspace",
		ocispecs.AnnotationDescription:   fmt.Sprintf("NVIDIA driver %s userspace (%s, components %s), installed with --no-kernel-module by gpuimg", v, d.Arch, spec.Components),
		ocispecs.AnnotationVersion:       v,
		ocispecs.AnnotationCreated:       spec.Created().Format(time.RFC3339),
		ocispecs.AnnotationBaseImageName: spec.Base.Name,
	}
	if digest := spec.Base.Digest(); digest != "" {
		labels[ocispecs.AnnotationBaseImageDigest] = digest
	}
	if !d.Verified() {
		labels[ocispecs.AnnotationDescription] += " (UNVERIFIED: the .run's checksum was not confirmed)"
	}
	if note := layersNote(spec); note != "" {
		labels[LabelDriverLayers] = note
	}
	return labels
}

// SplitLayersNote is LabelDriverLayers' value for one driver layer and a
// linker cache layer.
const SplitLayersNote = "2: the driver files (one layer, the same blob on every base of the family, so registries and hosts store and pull it once) and this base's linker cache (/etc/ld.so.cache)"

// layersNote is LabelDriverLayers' value: how many layers the image adds
// to its base, and why; "" for one.
func layersNote(spec Spec) string {
	n := spec.driverLayers()
	switch {
	case n == 1 && spec.SplitLinkerCache:
		return SplitLayersNote
	case n == 1:
		return ""
	}
	note := fmt.Sprintf("%d: the driver files in %d parts of about equal size (BuildKit compresses each part on a core of its own; registries and hosts push and pull them in parallel)", n, n)
	if spec.SplitLinkerCache {
		note = fmt.Sprintf("%d: the driver files in %d parts of about equal size (compressed in parallel, and the same blobs on every base of the family, so registries and hosts store and pull them once) and this base's linker cache (/etc/ld.so.cache)", n+1, n)
	}
	return note
}

// VisibleDevicesEnv keeps a host's nvidia-container-toolkit from injecting
// a second, clashing driver into the image.
const VisibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES=void"

// defaultPathEnv is the PATH an image gets when its base sets none.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImageConfig returns the image config of the result: the base's own (Env,
// Entrypoint, Cmd, WorkingDir, User, labels) with the platform's arch, plus
// VisibleDevicesEnv and Labels. History gains one entry for the added
// layer. The exporter fills rootfs.
func ImageConfig(baseConfig []byte, spec Spec) ([]byte, error) {
	var img ocispecs.Image
	if len(baseConfig) > 0 {
		if err := json.Unmarshal(baseConfig, &img); err != nil {
			return nil, fmt.Errorf("base image config of %s: %w", spec.Base.Name, err)
		}
	}
	p := spec.Platform
	img.OS, img.Architecture, img.Variant = p.OS, p.Architecture, p.Variant
	created := spec.Created()
	img.Created = &created
	key, value, _ := strings.Cut(VisibleDevicesEnv, "=")
	img.Config.Env = setEnv(img.Config.Env, key, value)
	if !hasEnv(img.Config.Env, "PATH") {
		img.Config.Env = append([]string{defaultPathEnv}, img.Config.Env...)
	}
	labels := map[string]string{}
	for k, v := range img.Config.Labels {
		labels[k] = v
	}
	for k, v := range Labels(spec) {
		labels[k] = v
	}
	img.Config.Labels = labels
	img.History = append(img.History, ocispecs.History{
		Created:   &created,
		CreatedBy: fmt.Sprintf("gpuimg: sh %s %s", spec.Driver.FileName(), strings.Join(InstallerFlags(spec.Driver.Version, spec.Driver.Arch, spec.Components, spec.Compat32), " ")),
		Comment:   "components " + spec.Components.String(),
	})
	for i := 2; i <= spec.driverLayers(); i++ {
		img.History = append(img.History, ocispecs.History{
			Created:   &created,
			CreatedBy: fmt.Sprintf("gpuimg: driver files, part %d of %d", i, spec.driverLayers()),
			Comment:   "the installed files are split by size into layers that compress, push and pull in parallel",
		})
	}
	if spec.SplitLinkerCache {
		img.History = append(img.History, ocispecs.History{
			Created:   &created,
			CreatedBy: "gpuimg: ldconfig",
			Comment:   "this base's linker cache (/etc/ld.so.cache) for the driver layer below, which every base of the family shares",
		})
	}
	img.RootFS = ocispecs.RootFS{Type: "layers"}
	return json.Marshal(img)
}

// Created is the build's SOURCE_DATE_EPOCH as a time: the image's creation
// time and every changed file's mtime.
func (s Spec) Created() time.Time { return time.Unix(s.Epoch, 0).UTC() }

func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k != key {
			out = append(out, e)
		}
	}
	return append(out, key+"="+value)
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}
