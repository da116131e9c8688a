package llb

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func layeredSpec(t *testing.T, n int) Spec {
	spec := testSpec(t, "580.159.04")
	spec.DriverLayers = n
	spec.Splitter = &Extractor{LocalName: "gpuimg-extractor", FileName: "gpuimg-unpack", Platform: spec.Platform}
	return spec
}

// With DriverLayers 4 the install step has three more output mounts, from
// scratch, and the static splitter mounted read-only; the driver's files are
// the install's diff merged with those three outputs, on top of the base.
func TestDriverFilesInSeveralLayers(t *testing.T) {
	spec := layeredSpec(t, 4)
	graph, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, graph.Result, spec.Platform)
	installs := d.execWith(ToolsDir + "/" + InstallScriptName)
	if len(installs) != 1 {
		t.Fatalf("%d install steps, want 1", len(installs))
	}
	install := installs[0]
	outputs := map[int64]string{}
	for _, dir := range []string{LayersDir + "/2", LayersDir + "/3", LayersDir + "/4"} {
		m := mountAt(install, dir)
		if m == nil || m.Input != -1 || m.Output < 0 || m.Readonly {
			t.Fatalf("%s must be a fresh output mount of the install step: %+v", dir, m)
		}
		outputs[m.Output] = dir
	}
	if m := mountAt(install, ExtractorDir); m == nil || !m.Readonly ||
		!strings.HasPrefix(d.input(install, int(m.Input)).GetSource().GetIdentifier(), "local://gpuimg-extractor") {
		t.Errorf("the splitter must be mounted read-only from the synced local directory: %+v", m)
	}
	var parts *pb.Op
	for _, op := range d.ops {
		if m := op.GetMerge(); m != nil && len(m.Inputs) == 4 {
			parts = op
		}
	}
	if parts == nil {
		t.Fatal("no merge of the four driver layers")
	}
	if diff := d.input(parts, 0).GetDiff(); diff == nil {
		t.Errorf("the first driver layer must be the install's diff over the base: %v", d.input(parts, 0))
	}
	for i, in := range parts.GetMerge().Inputs[1:] {
		from := d.input(parts, int(in.Input))
		if from != install || outputs[parts.Inputs[in.Input].Index] == "" {
			t.Errorf("driver layer %d is not one of the install step's extra outputs: %v", i+2, parts.Inputs[in.Input])
		}
	}

	script := InstallScript(spec)
	list := ExtractorDir + "/gpuimg-unpack list " + splitList
	split := ExtractorDir + "/gpuimg-unpack split " + splitList + " 0 /gpuimg/layers/2 /gpuimg/layers/3 /gpuimg/layers/4"
	iList, iStamp, iSplit, iTouch := strings.Index(script, list), strings.Index(script, "gpuimg-install.stamp"),
		strings.Index(script, split), strings.LastIndex(script, "-exec touch -h -d @0")
	if iList < 0 || iSplit < 0 || !(iList < iStamp && iStamp < iSplit && iSplit < iTouch) {
		t.Errorf("the script must list the base's files before the install and split after it, before the final touch:\n%s", script)
	}
}

// One layer is the plan it always was: DriverLayers 1 and 0 marshal to the
// same definition, with no splitter in it.
func TestOneDriverLayerIsUnchanged(t *testing.T) {
	var digests []digest.Digest
	for _, n := range []int{0, 1} {
		spec := layeredSpec(t, n)
		graph, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, graph.Result, spec.Platform)
		if strings.Contains(InstallScript(spec), "gpuimg-unpack") || len(d.execWith(ExtractorDir)) > 0 {
			t.Errorf("DriverLayers %d runs the splitter", n)
		}
		var all []byte
		for _, raw := range d.raw {
			all = append(all, raw...)
		}
		digests = append(digests, digest.FromBytes(all))
	}
	if digests[0] != digests[1] {
		t.Error("DriverLayers 1 and 0 give different definitions")
	}
}

func TestDriverLayersValidation(t *testing.T) {
	noSplitter := layeredSpec(t, 4)
	noSplitter.Splitter = nil
	for name, spec := range map[string]Spec{"no splitter": noSplitter, "too many": layeredSpec(t, MaxDriverLayers+1)} {
		if _, err := Build(spec); err == nil {
			t.Errorf("%s: Build accepted DriverLayers %d", name, spec.DriverLayers)
		}
	}
}

// The image config has a history entry per driver layer (and one for the
// linker cache of a fleet), and the layers label says why.
func TestImageConfigOfSeveralDriverLayers(t *testing.T) {
	for _, c := range []struct {
		layers          int
		linkerCache     bool
		history         int
		labelStartsWith string
	}{
		{4, false, 4, "4: the driver files in 4 parts"},
		{4, true, 5, "5: the driver files in 4 parts"},
		{1, true, 2, SplitLayersNote},
	} {
		spec := layeredSpec(t, c.layers)
		spec.SplitLinkerCache = c.linkerCache
		dt, err := ImageConfig(nil, spec)
		if err != nil {
			t.Fatal(err)
		}
		var img ocispecs.Image
		if err := json.Unmarshal(dt, &img); err != nil {
			t.Fatal(err)
		}
		label := img.Config.Labels[LabelDriverLayers]
		if len(img.History) != c.history || !strings.HasPrefix(label, c.labelStartsWith) {
			t.Errorf("%d layers, linker cache %v: %d history entries, label %q", c.layers, c.linkerCache, len(img.History), label)
		}
	}
}
