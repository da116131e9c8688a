package llb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuimg/gpuimg/drivers"
	"github.com/gpuimg/gpuimg/internal/testenv"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

func splitSpec(t *testing.T, v string) Spec {
	spec := testSpec(t, v)
	spec.Extractor = &Extractor{LocalName: "gpuimg-extractor", FileName: "gpuimg-unpack", Platform: spec.Platform}
	spec.SplitLinkerCache = true
	spec.Driver.VerifiedBy = drivers.VerifiedByFlag
	return spec
}

// execWith finds the exec ops whose args contain s.
func (d decoded) execWith(s string) []*pb.Op {
	var out []*pb.Op
	for _, op := range d.execs() {
		if strings.Contains(strings.Join(op.GetExec().Meta.Args, " "), s) {
			out = append(out, op)
		}
	}
	return out
}

func mountAt(op *pb.Op, dest string) *pb.Mount {
	for _, m := range op.GetExec().Mounts {
		if m.Dest == dest {
			return m
		}
	}
	return nil
}

// The extraction step has an empty root and no base among its inputs, so
// two bases and two component sets share it; the install step runs NVIDIA's
// installer from its output and no longer mounts the .run.
func TestExtractStepIsIndependentOfTheBase(t *testing.T) {
	a := splitSpec(t, "580.159.04")
	b := a
	b.Base = Base{Ref: "docker.io/library/ubuntu@sha256:" + strings.Repeat("cd", 32)}
	c := a
	compute, err := ParseComponents("compute")
	if err != nil {
		t.Fatal(err)
	}
	c.Components, c.Prune = compute, []string{"libnvidia-glcore.so.580.159.04"}
	var extractDigests []digest.Digest
	for _, spec := range []Spec{a, b, c} {
		plan, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, plan.Result, spec.Platform)
		extracts := d.execWith(ExtractorDir + "/gpuimg-unpack")
		if len(extracts) != 1 {
			t.Fatalf("want one extraction step, got %d", len(extracts))
		}
		ex := extracts[0]
		root := mountAt(ex, "/")
		if root == nil || root.Input != -1 {
			t.Errorf("the extraction step's root must be empty (no base): %+v", root)
		}
		if ex.GetExec().Network != pb.NetMode_NONE {
			t.Error("the extraction step has network")
		}
		for _, dest := range []string{DriverDir, ExtractorDir} {
			if m := mountAt(ex, dest); m == nil || !m.Readonly {
				t.Errorf("%s must be mounted read-only in the extraction step: %+v", dest, m)
			}
		}
		for _, in := range ex.Inputs {
			if src := d.ops[digest.Digest(in.Digest)].GetSource(); src != nil && strings.Contains(src.Identifier, "docker-image://") {
				t.Errorf("the extraction step depends on the base %s", src.Identifier)
			}
		}
		out := mountAt(ex, PackageDir)
		if out == nil || out.Output < 0 || out.Input != -1 {
			t.Fatalf("the tree must be a fresh output mount at %s: %+v", PackageDir, out)
		}
		dt, _ := ex.MarshalVT()
		extractDigests = append(extractDigests, digest.FromBytes(dt))

		installs := d.execWith(ToolsDir + "/" + InstallScriptName)
		if len(installs) != 1 {
			t.Fatalf("want one install step, got %d", len(installs))
		}
		in := installs[0]
		pkg := mountAt(in, PackageDir)
		if pkg == nil || d.input(in, int(pkg.Input)) != ex {
			t.Errorf("the install step must mount the extraction step's tree at %s: %+v", PackageDir, pkg)
		}
		if mountAt(in, DriverDir) != nil {
			t.Error("the install step still mounts the .run")
		}
		script := InstallScript(spec)
		if !strings.Contains(script, "cd "+PackageDir+" && ./nvidia-installer ") || strings.Contains(script, "sh "+DriverDir) {
			t.Errorf("the install script does not run the installer from the tree:\n%s", script)
		}
	}
	if extractDigests[0] != extractDigests[1] || extractDigests[0] != extractDigests[2] {
		t.Error("two bases or component sets got different extraction steps: the tree would be unpacked again")
	}
}

// A fleet of two bases: one extraction and one install (on the first base),
// and each image is its base + the same driver layer + its own linker cache
// layer, made by a step that first compares what the two bases show the
// installer.
func TestFleetSharesOneDriverLayer(t *testing.T) {
	spec := splitSpec(t, "580.159.04")
	second := Base{Ref: "docker.io/library/debian@sha256:" + strings.Repeat("ef", 32)}
	plans, err := Fleet(spec, []Base{spec.Base, second})
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 {
		t.Fatalf("%d plans", len(plans))
	}
	var driverLayers []digest.Digest
	for i, p := range plans {
		d := decode(t, p.Result, spec.Platform)
		if n := len(d.execWith(ToolsDir + "/" + InstallScriptName)); n != 1 {
			t.Errorf("image %d: %d install steps, want 1 (on the first base)", i, n)
		}
		if n := len(d.execWith(ExtractorDir)); n != 1 {
			t.Errorf("image %d: %d extraction steps, want 1", i, n)
		}
		var top *pb.Op
		for _, op := range d.ops {
			if m := op.GetMerge(); m != nil && len(m.Inputs) == 3 {
				top = op
			}
		}
		if top == nil {
			t.Fatalf("image %d is not a merge of base, driver layer and cache layer", i)
		}
		driver := d.input(top, 1)
		if driver.GetDiff() == nil {
			t.Fatalf("image %d: the second layer is not a diff", i)
		}
		dt, _ := driver.MarshalVT()
		driverLayers = append(driverLayers, digest.FromBytes(dt))
		cache := d.input(top, 2).GetDiff()
		if cache == nil {
			t.Fatalf("image %d: the third layer is not a diff", i)
		}
		ldconfig := d.execWith("/reference/fit")
		if len(ldconfig) != 1 {
			t.Fatalf("image %d: %d linker cache steps", i, len(ldconfig))
		}
		script := strings.Join(ldconfig[0].GetExec().Meta.Args, " ")
		if !strings.Contains(script, `[ "$(cat `+fitDir+`/reference/fit)" != "$(cat `+fitDir+`/this/fit)" ]`) || !strings.Contains(script, "exit 45") {
			t.Errorf("image %d: the linker cache step does not check the base's fit:\n%s", i, script)
		}
		if ldconfig[0].GetExec().Network != pb.NetMode_NONE {
			t.Errorf("image %d: the linker cache step has network", i)
		}
		if m := mountAt(ldconfig[0], "/var/cache/ldconfig"); m == nil || m.MountType != pb.MountType_TMPFS {
			t.Errorf("image %d: ldconfig's aux-cache would land in the layer", i)
		}
		// The base's fit and the reference's are separate steps on each base.
		ref, this := mountAt(ldconfig[0], fitDir+"/reference"), mountAt(ldconfig[0], fitDir+"/this")
		if ref == nil || this == nil || !ref.Readonly || !this.Readonly {
			t.Fatalf("image %d: fit mounts %+v %+v", i, ref, this)
		}
		sameFit := d.input(ldconfig[0], int(ref.Input)) == d.input(ldconfig[0], int(this.Input))
		if sameFit != (i == 0) {
			t.Errorf("image %d: reference and this base's fit are the same step: %v", i, sameFit)
		}
	}
	if driverLayers[0] != driverLayers[1] {
		t.Error("the two bases got different driver layers")
	}
}

// The install step of a split plan puts the ldconfig wrapper first on PATH
// and ldconfig's aux-cache on a tmpfs; today's plan has neither.
func TestSplitInstallKeepsTheLinkerCacheOut(t *testing.T) {
	for _, split := range []bool{false, true} {
		spec := testSpec(t, "580.159.04")
		spec.SplitLinkerCache = split
		plan, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, plan.Result, spec.Platform)
		install := d.execWith(ToolsDir + "/" + InstallScriptName)[0]
		tools := d.input(install, int(mountAt(install, ToolsDir).Input)).GetFile()
		hasWrapper := false
		for _, a := range tools.Actions {
			if mk := a.GetMkfile(); mk != nil && mk.Path == "/ldconfig" {
				hasWrapper = string(mk.Data) == LdconfigWrapper
			}
		}
		if hasWrapper != split {
			t.Errorf("split=%v: ldconfig wrapper in the tools: %v", split, hasWrapper)
		}
		if m := mountAt(install, "/var/cache/ldconfig"); (m != nil) != split {
			t.Errorf("split=%v: aux-cache tmpfs %+v", split, m)
		}
	}
}

// FitScript run in chroots of the real Debian base: a second base of the
// same family with one extra file fits; one that brings libglvnd, one with
// a 32-bit C library (the installer's 32-bit directory choice) and one with
// a different /usr/share/doc mode do not.
func TestFitScriptOnDebianBases(t *testing.T) {
	testenv.RequireRoot(t)
	root := testenv.BaseRootFS(t, "amd64")
	fitOf := func(change string) string {
		t.Helper()
		c := exec.Command("unshare", "-m", "sh", "-c", `set -e
mount -t tmpfs tmpfs "$1/up"; mkdir -p "$1/up/u" "$1/up/w" "$1/m"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/up/u,workdir=$1/up/w" "$1/m"
chroot "$1/m" /bin/sh -c "$3" >/dev/null
chroot "$1/m" /bin/sh -c "$4"`, "fit", mkdirs(t), root, change+"; true", FitScript)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("fit script: %v\n%s", err, out)
		}
		return string(out)
	}
	if _, err := os.Lstat(filepath.Join(root, "bin")); err != nil {
		t.Fatalf("unpacked base: %v", err)
	}
	first := fitOf(":")
	for _, want := range []string{"/usr/lib/x86_64-linux-gnu directory 755 0 0", "dir /lib/x86_64-linux-gnu", "/lib -> usr/lib"} {
		if !strings.Contains(first, want) {
			t.Errorf("fit of the Debian base lacks %q:\n%s", want, first)
		}
	}
	if got := fitOf("echo x > /etc/second-base"); got != first {
		t.Errorf("one extra file changed the fit:\n%s\nvs\n%s", got, first)
	}
	for name, change := range map[string]string{
		"own libglvnd": "touch /usr/lib/x86_64-linux-gnu/libGLdispatch.so.0 /usr/lib/x86_64-linux-gnu/libEGL.so.1 && ldconfig",
		"32-bit libc":  "mkdir -p /usr/lib/i386-linux-gnu && touch /usr/lib/i386-linux-gnu/ld-linux.so.2",
		"doc mode":     "chmod 0700 /usr/share/doc",
	} {
		if got := fitOf(change); got == first {
			t.Errorf("%s: the fit did not change", name)
		}
	}
}

func mkdirs(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "up"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The linker-cache step's script in an overlay over the Debian base: with
// equal fingerprints it rebuilds /etc/ld.so.cache and exits 0, the cache
// and /etc dated at the epoch (the layer is the same bytes every build);
// with different ones it exits 45, names both, and writes nothing.
func TestLinkerCacheScriptRefusesADifferentBase(t *testing.T) {
	testenv.RequireRoot(t)
	root := testenv.BaseRootFS(t, "amd64")
	run := func(reference, this string) (string, int, string) {
		t.Helper()
		dir := mkdirs(t)
		c := exec.Command("unshare", "-m", "sh", "-c", `set -e
mount -t tmpfs tmpfs "$1/up"; mkdir -p "$1/up/u/gpuimg/fit/reference" "$1/up/u/gpuimg/fit/this" "$1/up/w" "$1/m"
printf '%s' "$3" > "$1/up/u/gpuimg/fit/reference/fit"; printf '%s' "$4" > "$1/up/u/gpuimg/fit/this/fit"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/up/u,workdir=$1/up/w" "$1/m"
set +e
chroot "$1/m" /bin/sh -c "$5"; rc=$?
stat -c %Y "$1/up/u/etc/ld.so.cache" "$1/up/u/etc" 2>/dev/null || echo "no cache written"
exit $rc`, "cache", dir, root, reference, this, LinkerCacheScript(1700000000))
		var stderr strings.Builder
		c.Stderr = &stderr
		out, err := c.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out)), code, stderr.String()
	}
	if out, code, stderr := run("same\n", "same\n"); code != 0 || out != "1700000000\n1700000000" {
		t.Errorf("equal fingerprints: exit %d, cache mtime %q, stderr %s", code, out, stderr)
	}
	out, code, stderr := run("glvnd libGL.so.1\n", "no glvnd\n")
	if code != ExitBaseDoesNotFit || out != "no cache written" {
		t.Errorf("different fingerprints: exit %d (want %d), %s", code, ExitBaseDoesNotFit, out)
	}
	for _, want := range []string{"needs an install of its own", "glvnd libGL.so.1", "no glvnd"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, stderr)
		}
	}
}

// The fingerprint step sends the whole script's output to its file (a
// redirect after the script would catch only its last command's), has no
// network, and is the very step the linker-cache check mounts, so solving
// it first to group bases is not paid again.
func TestFingerprintIsTheCheckedStep(t *testing.T) {
	spec := splitSpec(t, "580.159.04")
	d := decode(t, Fingerprint(spec.Base, spec.Platform), spec.Platform)
	execs := d.execs()
	if len(execs) != 1 {
		t.Fatalf("%d steps", len(execs))
	}
	ex := execs[0].GetExec()
	if args := ex.Meta.Args; len(args) != 3 || args[2] != "exec > "+fitDir+"/"+FitFile+"\n"+FitScript {
		t.Errorf("fingerprint step args %q", args)
	}
	if ex.Network != pb.NetMode_NONE {
		t.Error("the fingerprint step has network")
	}
	dt, _ := execs[0].MarshalVT()
	plan, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	check := decode(t, plan.Result, spec.Platform)
	step := check.execWith("/reference/" + FitFile)[0]
	for _, dest := range []string{fitDir + "/reference", fitDir + "/this"} {
		mounted, _ := check.input(step, int(mountAt(step, dest).Input)).MarshalVT()
		if digest.FromBytes(mounted) != digest.FromBytes(dt) {
			t.Errorf("%s is not the Fingerprint step", dest)
		}
	}
}
