package llb

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

const testSHA = "c1e66761b088d17b3adf6cb6979de9af38be2684d102b001a176dcfafabdca1e"

func testSpec(t *testing.T, v string) Spec {
	t.Helper()
	return Spec{
		Driver: drivers.Resolved{
			Version: drivers.MustParseVersion(v), Arch: drivers.ArchX86_64, Variant: drivers.VariantFull,
			SHA256: testSHA,
			URLs:   []string{"https://us.download.nvidia.com/tesla/" + v + "/NVIDIA-Linux-x86_64-" + v + ".run"},
		},
		Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Base:     Base{Ref: "docker.io/library/debian@sha256:" + strings.Repeat("ab", 32)},
	}
}

// decoded is a marshalled definition parsed back into ops.
type decoded struct {
	ops map[digest.Digest]*pb.Op
	raw [][]byte
}

func decode(t *testing.T, st bk.State, p ocispecs.Platform) decoded {
	t.Helper()
	def, err := st.Marshal(context.Background(), bk.Platform(p))
	if err != nil {
		t.Fatal(err)
	}
	d := decoded{ops: map[digest.Digest]*pb.Op{}, raw: def.Def}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		d.ops[digest.FromBytes(dt)] = &op
	}
	return d
}

func (d decoded) execs() []*pb.Op {
	var out []*pb.Op
	for _, op := range d.ops {
		if op.GetExec() != nil {
			out = append(out, op)
		}
	}
	return out
}

func (d decoded) sources() map[string]*pb.SourceOp {
	out := map[string]*pb.SourceOp{}
	for _, op := range d.ops {
		if s := op.GetSource(); s != nil {
			out[s.Identifier] = s
		}
	}
	return out
}

func (d decoded) input(op *pb.Op, i int) *pb.Op {
	return d.ops[digest.Digest(op.Inputs[i].Digest)]
}

// installStep is the decoded graph of the test spec and its one exec.
type installStep struct {
	spec   Spec
	d      decoded
	op     *pb.Op
	mounts map[string]*pb.Mount
	made   map[string]*pb.FileActionMkFile // the tools mount's files
}

func decodeInstallStep(t *testing.T) installStep {
	t.Helper()
	spec := testSpec(t, "580.159.04")
	graph, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, graph.Result, spec.Platform)
	execs := d.execs()
	if len(execs) != 1 {
		t.Fatalf("want exactly one exec (the install step), got %d", len(execs))
	}
	s := installStep{spec: spec, d: d, op: execs[0], mounts: map[string]*pb.Mount{}, made: map[string]*pb.FileActionMkFile{}}
	for _, m := range s.op.GetExec().Mounts {
		s.mounts[m.Dest] = m
	}
	if tools := s.mounts[ToolsDir]; tools != nil {
		if files := d.input(s.op, int(tools.Input)).GetFile(); files != nil {
			for _, a := range files.Actions {
				if mk := a.GetMkfile(); mk != nil {
					s.made[strings.TrimPrefix(mk.Path, "/")] = mk
				}
			}
		}
	}
	return s
}

// The install step, one property per subtest.
func TestInstallStepIsIsolated(t *testing.T) {
	s := decodeInstallStep(t)
	ex := s.op.GetExec()
	env := strings.Join(ex.Meta.Env, "\n")
	script := s.made[InstallScriptName].GetData()
	t.Run("runs the install script", func(t *testing.T) {
		if got := ex.Meta.Args; len(got) != 2 || got[0] != "/bin/sh" || got[1] != ToolsDir+"/"+InstallScriptName {
			t.Errorf("args = %q", got)
		}
	})
	t.Run("has no network", func(t *testing.T) {
		if ex.Network != pb.NetMode_NONE {
			t.Errorf("network = %v, want none", ex.Network)
		}
	})
	t.Run("finds the stubs first and temp space on the tmpfs", func(t *testing.T) {
		if !strings.Contains(env, "PATH="+ToolsDir+":") || !strings.Contains(env, "TMPDIR="+TmpDir) {
			t.Errorf("env lacks the stub PATH or TMPDIR:\n%s", env)
		}
	})
	t.Run("keeps an unverified .run's own check", func(t *testing.T) {
		if strings.Contains(env, "SETUP_NOCHECK") {
			t.Error("an unverified .run must keep the stub's own integrity check")
		}
	})
	t.Run("runs for the platform", func(t *testing.T) {
		if s.op.Platform == nil || s.op.Platform.Architecture != "amd64" {
			t.Errorf("exec platform = %v", s.op.Platform)
		}
	})
	t.Run("writes only the root", func(t *testing.T) {
		if root := s.mounts["/"]; root == nil || root.Readonly || root.Output < 0 {
			t.Errorf("root mount missing or not writable: %+v", root)
		}
	})
	t.Run("unpacks on a large tmpfs", func(t *testing.T) {
		tmp := s.mounts[TmpDir]
		if tmp == nil || tmp.MountType != pb.MountType_TMPFS || tmp.TmpfsOpt == nil || tmp.TmpfsOpt.Size < 1<<30 {
			t.Errorf("%s must be a large tmpfs (the payload unpacks there): %+v", TmpDir, tmp)
		}
	})
	t.Run("mounts the .run read-only, pinned by checksum", func(t *testing.T) {
		drv := s.mounts[DriverDir]
		if drv == nil || !drv.Readonly || drv.Output != int64(pb.SkipOutput) {
			t.Fatalf("%s must be a read-only mount with no output: %+v", DriverDir, drv)
		}
		http := s.d.input(s.op, int(drv.Input)).GetSource()
		if http == nil || http.Identifier != s.spec.Driver.URLs[0] {
			t.Fatalf("driver mount source = %+v, want %s", http, s.spec.Driver.URLs[0])
		}
		if http.Attrs["http.checksum"] != "sha256:"+testSHA || http.Attrs["http.filename"] != s.spec.Driver.FileName() {
			t.Errorf("http source attrs = %v", http.Attrs)
		}
	})
	t.Run("mounts the tools read-only", func(t *testing.T) {
		tools := s.mounts[ToolsDir]
		if tools == nil || !tools.Readonly || tools.Output != int64(pb.SkipOutput) {
			t.Errorf("%s must be a read-only mount with no output: %+v", ToolsDir, tools)
		}
	})
	t.Run("stubs the module utilities", func(t *testing.T) {
		for _, name := range []string{"modprobe", "rmmod", "lsmod", "depmod", "insmod"} {
			mk := s.made[name]
			if mk == nil || mk.Mode&0o111 == 0 || string(mk.Data) != StubScript {
				t.Errorf("stub %s missing, not executable or not a no-op: %+v", name, mk)
			}
		}
	})
	t.Run("keeps the other tools real", func(t *testing.T) {
		for _, real := range []string{"ldconfig", "grep", "tail", "dmesg"} {
			if s.made[real] != nil {
				t.Errorf("%s must stay real, not stubbed", real)
			}
		}
	})
	t.Run("runs the .run with the flag set", func(t *testing.T) {
		if !bytes.Contains(script, []byte("sh "+DriverDir+"/"+s.spec.Driver.FileName()+" --silent --no-kernel-module")) {
			t.Errorf("install script does not run the .run with the flag set:\n%s", script)
		}
	})
	t.Run("logs to the tmpfs and shows the tail on failure", func(t *testing.T) {
		if !bytes.Contains(script, []byte("--log-file-name="+InstallerLog)) || !bytes.Contains(script, []byte("tail -n 40 "+InstallerLog)) {
			t.Errorf("install script must log to the tmpfs and print the log's tail on failure:\n%s", script)
		}
	})
	t.Run("asserts the ICD files of a full install", func(t *testing.T) {
		if !bytes.Contains(script, []byte("[ -e /etc/vulkan/icd.d/nvidia_icd.json ]")) || !bytes.Contains(script, []byte("/etc/OpenCL/vendors/nvidia.icd ] || {")) {
			t.Errorf("a full install must assert the ICD files:\n%s", script)
		}
	})
	t.Run("refuses musl bases", func(t *testing.T) {
		if !bytes.Contains(script, []byte("ld-musl")) {
			t.Errorf("install script does not refuse musl bases:\n%s", script)
		}
	})
	t.Run("installs into the pinned base", func(t *testing.T) {
		if base := s.d.sources()["docker-image://"+s.spec.Base.Ref]; base == nil {
			t.Errorf("no image source %s among %v", s.spec.Base.Ref, keys(s.d.sources()))
		}
	})
}

func TestResultIsBasePlusOneDiff(t *testing.T) {
	spec := testSpec(t, "580.159.04")
	graph, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, graph.Result, spec.Platform)
	var merge *pb.Op
	for _, op := range d.ops {
		if op.GetMerge() != nil {
			if merge != nil {
				t.Fatal("more than one merge")
			}
			merge = op
		}
	}
	if merge == nil || len(merge.Inputs) != 2 {
		t.Fatalf("want merge(base, diff), got %+v", merge)
	}
	if src := d.input(merge, 0).GetSource(); src == nil || src.Identifier != "docker-image://"+spec.Base.Ref {
		t.Errorf("merge input 0 = %+v, want the base", d.input(merge, 0))
	}
	diffOp := d.input(merge, 1)
	diff := diffOp.GetDiff()
	if diff == nil {
		t.Fatalf("merge input 1 is not a diff: %+v", diffOp)
	}
	lower := d.ops[digest.Digest(diffOp.Inputs[diff.Lower.Input].Digest)]
	upper := d.ops[digest.Digest(diffOp.Inputs[diff.Upper.Input].Digest)]
	if lower.GetSource() == nil || upper.GetExec() == nil {
		t.Errorf("diff must be base → install step; lower=%v upper=%v", lower, upper)
	}
}

func TestLocalAndLayoutSources(t *testing.T) {
	spec := testSpec(t, "450.102.04")
	spec.Driver.Path, spec.Driver.URLs = "/cache/sha256/"+testSHA+"/NVIDIA-Linux-x86_64-450.102.04.run", nil
	spec.Base = Base{Ref: "gpuimg/base@sha256:" + strings.Repeat("cd", 32), OCIStoreID: "gpuimg-base"}
	graph, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	srcs := decode(t, graph.Result, spec.Platform).sources()
	local := srcs["local://driver-"+testSHA[:16]]
	if local == nil || !strings.Contains(local.Attrs["local.includepattern"], spec.Driver.FileName()) {
		t.Errorf("local source = %+v", local)
	}
	layout := srcs["oci-layout://"+spec.Base.Ref]
	if layout == nil || layout.Attrs[pb.AttrOCILayoutStoreID] != "gpuimg-base" {
		t.Errorf("oci-layout source = %+v (all: %v)", layout, keys(srcs))
	}
	for id := range srcs {
		if strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "docker-image://") {
			t.Errorf("air-gapped plan reaches the network: %s", id)
		}
	}
}

func TestPruneRunsOnlyOnThisStepsFiles(t *testing.T) {
	spec := testSpec(t, "580.159.04")
	spec.Components, _ = ParseComponents("compute")
	spec.Prune = []string{"libGLX_nvidia.so.580.159.04", "nvidia_drv.so"}
	script := InstallScript(spec)
	if !strings.Contains(script, "-cnewer "+TmpDir+"/gpuimg-install.stamp") ||
		!strings.Contains(script, "-name 'libGLX_nvidia.so.580.159.04' -o -name 'nvidia_drv.so'") {
		t.Errorf("prune command wrong:\n%s", script)
	}
	if strings.Index(script, "find / -xdev") < strings.Index(script, "sh "+DriverDir) {
		t.Error("pruning must follow the install")
	}
	spec.Epoch = 1700000000
	script = InstallScript(spec)
	lines := strings.Split(strings.TrimSpace(script), "\n")
	if last := lines[len(lines)-1]; last != "find / -xdev -cnewer "+TmpDir+"/gpuimg-install.stamp -exec touch -h -d @1700000000 {} +" {
		t.Errorf("the step must end by setting SOURCE_DATE_EPOCH on everything it changed; last line: %s", last)
	}
	if strings.Contains(script, "nvidia_icd.json") {
		t.Error("a compute-only image must not require the graphics ICD files")
	}
	if !strings.Contains(script, "--no-install-libglvnd") {
		t.Errorf("compute-only must leave libglvnd alone:\n%s", script)
	}
}

func TestDeterministic(t *testing.T) {
	spec := testSpec(t, "535.261.03")
	spec.Prune = []string{"b", "a"}
	var first [][]byte
	for i := 0; i < 50; i++ {
		graph, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		def, err := graph.Result.Marshal(context.Background(), bk.Platform(spec.Platform))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = def.Def
			continue
		}
		if len(def.Def) != len(first) {
			t.Fatalf("run %d: %d ops, first run %d", i, len(def.Def), len(first))
		}
		for j := range first {
			if !bytes.Equal(first[j], def.Def[j]) {
				t.Fatalf("run %d: op %d differs", i, j)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Spec){
		"no base":         func(s *Spec) { s.Base.Ref = "" },
		"no source":       func(s *Spec) { s.Driver.URLs = nil },
		"url without sum": func(s *Spec) { s.Driver.SHA256 = "" },
		"no version":      func(s *Spec) { s.Driver.Version = drivers.Version{} },
		"no platform":     func(s *Spec) { s.Platform = ocispecs.Platform{} },
		"extractor, unverified": func(s *Spec) {
			s.Extractor = &Extractor{LocalName: "x", FileName: "gpuimg-unpack"}
			s.Driver.VerifiedBy = ""
		},
	} {
		spec := testSpec(t, "580.159.04")
		mutate(&spec)
		if _, err := Build(spec); err == nil {
			t.Errorf("%s: Build accepted it", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestVerifiedSkipsTheStubsSelfCheck(t *testing.T) {
	spec := testSpec(t, "580.159.04")
	spec.Driver.VerifiedBy = drivers.VerifiedByCatalog
	graph, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	execs := decode(t, graph.Result, spec.Platform).execs()
	if len(execs) != 1 || !slices.Contains(execs[0].GetExec().Meta.Env, "SETUP_NOCHECK=1") {
		t.Errorf("a sha256-verified .run needs no second CRC/MD5 pass: env %v", execs[0].GetExec().Meta.Env)
	}
}
