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
)

// ImageMeta is what the image config says about the driver and its origin.
type ImageMeta struct {
	Spec Spec
	// SHA256 of the .run (hex); empty only when unverified and unknown.
	SHA256 string
	// Verified is false when --allow-unverified let a mismatch or a missing
	// checksum through; the labels then say so.
	Verified bool
	// DriverArch is NVIDIA's name for the package arch (x86_64, aarch64).
	DriverArch string
	// BaseName is the base's image name; BaseDigest its manifest digest.
	BaseName, BaseDigest string
	// Created is the build's SOURCE_DATE_EPOCH time.
	Created time.Time
	// Source is the gpuimg version string written to org.opencontainers.image.*.
	GpuimgVersion string
}

// ImageConfig returns the image config of the result: the base's own (Env,
// Entrypoint, Cmd, WorkingDir, User, labels) with the platform's arch, plus
// NVIDIA_VISIBLE_DEVICES=void (a host with nvidia-container-toolkit must not
// inject a second, clashing driver) and the gpuimg labels. History gains one
// entry for the added layer. The exporter fills rootfs.
func ImageConfig(baseConfig []byte, m ImageMeta) ([]byte, error) {
	var img ocispecs.Image
	if len(baseConfig) > 0 {
		if err := json.Unmarshal(baseConfig, &img); err != nil {
			return nil, fmt.Errorf("base image config of %s: %w", m.BaseName, err)
		}
	}
	p := m.Spec.Platform
	img.OS, img.Architecture, img.Variant = p.OS, p.Architecture, p.Variant
	created := m.Created.UTC()
	img.Created = &created
	img.Config.Env = setEnv(img.Config.Env, "NVIDIA_VISIBLE_DEVICES", "void")
	if !hasEnv(img.Config.Env, "PATH") {
		img.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, img.Config.Env...)
	}
	labels := map[string]string{}
	for k, v := range img.Config.Labels {
		labels[k] = v
	}
	v := m.Spec.Driver.String()
	labels[LabelDriverVersion] = v
	labels[LabelDriverSHA256] = m.SHA256
	labels[LabelDriverComponents] = m.Spec.Components.String()
	labels[LabelDriverArch] = m.DriverArch
	labels[LabelDriverVerified] = fmt.Sprint(m.Verified)
	labels[ocispecs.AnnotationTitle] = "NVIDIA driver " + v + " userspace"
	labels[ocispecs.AnnotationDescription] = fmt.Sprintf("NVIDIA driver %s userspace (%s, components %s), installed with --no-kernel-module by gpuimg", v, m.DriverArch, m.Spec.Components)
	labels[ocispecs.AnnotationVersion] = v
	labels[ocispecs.AnnotationCreated] = created.Format(time.RFC3339)
	labels[ocispecs.AnnotationBaseImageName] = m.BaseName
	if m.BaseDigest != "" {
		labels[ocispecs.AnnotationBaseImageDigest] = m.BaseDigest
	}
	if m.GpuimgVersion != "" {
		labels["io.gpuimg.version"] = m.GpuimgVersion
	}
	if !m.Verified {
		labels[ocispecs.AnnotationDescription] += " (UNVERIFIED: the .run's checksum was not confirmed)"
	}
	img.Config.Labels = labels
	img.History = append(img.History, ocispecs.History{
		Created:   &created,
		CreatedBy: fmt.Sprintf("gpuimg: sh %s %s", m.Spec.Source.FileName, strings.Join(InstallerFlags(m.Spec.Driver, m.Spec.Components, m.Spec.Compat32), " ")),
		Comment:   "components " + m.Spec.Components.String(),
	})
	img.RootFS = ocispecs.RootFS{Type: "layers"}
	return json.Marshal(img)
}

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
