package llb

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestImageConfigKeepsBaseAndAddsLabels(t *testing.T) {
	base := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin","LANG=C.UTF-8","NVIDIA_VISIBLE_DEVICES=all"],
	  "Entrypoint":["/entry"],"Cmd":["bash"],"WorkingDir":"/w","User":"1000","Labels":{"maintainer":"x"}},
	  "history":[{"created_by":"base"}],"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}`
	spec := testSpec(t, "450.102.04")
	spec.Platform = ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	spec.Driver.Arch, spec.Driver.VerifiedBy = "aarch64", "catalog"
	spec.Base = Base{Ref: "docker.io/library/debian@sha256:bb", Name: "docker.io/library/debian:bookworm"}
	created := time.Unix(1700000000, 0)
	spec.Epoch = created.Unix()
	dt, err := ImageConfig([]byte(base), spec)
	if err != nil {
		t.Fatal(err)
	}
	var img ocispecs.Image
	if err := json.Unmarshal(dt, &img); err != nil {
		t.Fatal(err)
	}
	if img.Architecture != "arm64" || img.OS != "linux" {
		t.Errorf("platform = %s/%s", img.OS, img.Architecture)
	}
	if !slices.Equal(img.Config.Env, []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "NVIDIA_VISIBLE_DEVICES=void"}) {
		t.Errorf("env = %v", img.Config.Env)
	}
	if img.Config.Entrypoint[0] != "/entry" || img.Config.Cmd[0] != "bash" || img.Config.WorkingDir != "/w" || img.Config.User != "1000" {
		t.Errorf("base config lost: %+v", img.Config)
	}
	l := img.Config.Labels
	for k, want := range map[string]string{
		"maintainer": "x", LabelDriverVersion: "450.102.04", LabelDriverSHA256: testSHA, LabelDriverComponents: "all",
		LabelDriverVerified: "true", ocispecs.AnnotationBaseImageDigest: "sha256:bb", ocispecs.AnnotationCreated: "2023-11-14T22:13:20Z",
	} {
		if l[k] != want {
			t.Errorf("label %s = %q, want %q", k, l[k], want)
		}
	}
	if len(img.History) != 2 || !img.Created.Equal(created) {
		t.Errorf("history/created = %v / %v", img.History, img.Created)
	}
	if len(img.RootFS.DiffIDs) != 0 {
		t.Error("rootfs must be left to the exporter")
	}
}

// An image of base + 2 layers has a history entry per layer and a label
// that says why there are two.
func TestImageConfigOfASplitImage(t *testing.T) {
	for _, split := range []bool{false, true} {
		spec := testSpec(t, "580.159.04")
		spec.SplitLinkerCache = split
		dt, err := ImageConfig(nil, spec)
		if err != nil {
			t.Fatal(err)
		}
		var img ocispecs.Image
		if err := json.Unmarshal(dt, &img); err != nil {
			t.Fatal(err)
		}
		wantHistory, wantLabel := 1, ""
		if split {
			wantHistory, wantLabel = 2, SplitLayersNote
		}
		if len(img.History) != wantHistory || img.Config.Labels[LabelDriverLayers] != wantLabel {
			t.Errorf("split=%v: %d history entries, layers label %q", split, len(img.History), img.Config.Labels[LabelDriverLayers])
		}
	}
}
