package standin

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// The C sources of the stand-in ELF files. Every file carries its name and
// the driver version as data, so tools that read strings see a real version.
const cCommon = `const char nv_standin_version[] __attribute__((used)) = NV_VERSION;
const char nv_standin_file[] __attribute__((used)) = NV_FILE;
`

// Entry points each library flavour exports.
var cFlavors = map[string]string{
	"plain": `int NV_ENTRY(void) { return 0; }
`,
	// libcuda: cuDriverGetVersion reports the CUDA version this driver
	// supports; cuInit fails with CUDA_ERROR_NO_DEVICE (100) without nodes.
	"cuda": `#ifndef NV_STANDIN_NOLIBC
#include <unistd.h>
#endif
int cuDriverGetVersion(int *version) {
	if (!version) return 1; /* CUDA_ERROR_INVALID_VALUE */
	*version = NV_CUDA_VERSION;
	return 0;
}
int cuInit(unsigned int flags) {
	(void)flags;
#ifdef NV_STANDIN_NOLIBC
	return 100;
#else
	return access("/dev/nvidiactl", F_OK) == 0 ? 0 : 100;
#endif
}
`,
	// libnvidia-ml: enough of NVML for nvidia-smi and version probes.
	"nvml": `int nvmlInit_v2(void) { return 0; }
int nvmlInit(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
	unsigned int n = 0, i;
	if (!version) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
	while (nv_standin_version[n]) n++;
	if (length < n + 1) return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
	for (i = 0; i <= n; i++) version[i] = nv_standin_version[i];
	return 0;
}
int nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
	return nvmlSystemGetDriverVersion(version, length);
}
const char *nvmlErrorString(int result) { return result == 0 ? "Success" : "Unknown Error"; }
`,
	"program": `#include <stdio.h>
int main(int argc, char **argv) {
	(void)argc; (void)argv;
	printf("%s %s (gpuimg stand-in: no GPU work is done)\n", nv_standin_file, nv_standin_version);
	return 0;
}
`,
}

// nvidiaSmiSource is the nvidia-smi stand-in. It links against
// libnvidia-ml.so.1, so it runs only where that library resolves (the ld.so
// cache or LD_LIBRARY_PATH), and reports the /dev/nvidia* nodes it can see.
//
//go:embed nvidia-smi.c.in
var nvidiaSmiSource string

// cudaVersions maps the first driver of each CUDA release to the CUDA
// version libcuda reports (REFERENCE 1.3), newest first.
var cudaVersions = []struct {
	minDriver string
	cuda      int
}{
	{"580.65.06", 13000}, {"575.51.03", 12090}, {"570.26", 12080}, {"560.28.03", 12060}, {"555.42.02", 12050},
	{"550.54.14", 12040}, {"545.23.06", 12030}, {"535.54.03", 12020}, {"530.30.02", 12010}, {"525.60.13", 12000},
	{"520.61.05", 11080}, {"515.43.04", 11070}, {"510.39.01", 11060}, {"495.29.05", 11050}, {"470.42.01", 11040},
	{"465.19.01", 11030}, {"460.27.03", 11020}, {"455.23", 11010}, {"450.36.06", 11000}, {"440.33", 10020},
	{"418.39", 10010}, {"410.48", 10000},
}

// cudaVersionFor is the CUDA version a driver's libcuda reports.
func cudaVersionFor(driver string) int {
	for _, c := range cudaVersions {
		if versionAtLeast(driver, c.minDriver) {
			return c.cuda
		}
	}
	return 9000
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9]+`)

// cSource returns the C file for e.
func (p *driverPackage) cSource(e entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#define NV_VERSION %q\n#define NV_FILE %q\n", p.opts.Version, path0(e.file))
	fmt.Fprintf(&b, "#define NV_ENTRY nv_standin_%s\n", nonIdent.ReplaceAllString(path0(e.file), "_"))
	fmt.Fprintf(&b, "#define NV_CUDA_VERSION %d\n", cudaVersionFor(p.opts.Version))
	b.WriteString(cCommon)
	if e.flavor == "smi" {
		b.WriteString(nvidiaSmiSource)
	} else {
		b.WriteString(cFlavors[e.flavor])
	}
	return b.String()
}

// path0 is a file's base name.
func path0(file string) string { return filepath.Base(file) }

// toolchain is the C compiler and objcopy that build arch's ELF files here:
// the host's own for its architecture, else Debian's cross toolchain.
type toolchain struct {
	cc, objcopy string
	packages    string // the Debian packages that provide them
}

// hostArch is this machine's architecture in NVIDIA's (and uname's) naming.
func hostArch() string {
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
}

// goArch is the GOARCH of an NVIDIA architecture name.
func goArch(arch string) string {
	return map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[arch]
}

func toolchainFor(arch string) (toolchain, error) {
	tc := toolchain{cc: "gcc", objcopy: "objcopy", packages: "gcc and binutils"}
	if arch != hostArch() {
		cross := map[string]string{"aarch64": "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross", "x86_64": "gcc-x86-64-linux-gnu and libc6-dev-amd64-cross"}
		tc = toolchain{cc: arch + "-linux-gnu-gcc", objcopy: arch + "-linux-gnu-objcopy", packages: cross[arch]}
	}
	for _, tool := range []string{tc.cc, tc.objcopy} {
		if _, err := exec.LookPath(tool); err != nil {
			return tc, fmt.Errorf("stand-in driver: %s not found, needed to build the %s libraries on this %s machine: install %s (`make deps`)", tool, arch, hostArch(), tc.packages)
		}
	}
	return tc, nil
}

// buildBinaries compiles every ELF entry of p for its architecture into
// work/tree/<targetdir>/, padding it to its realistic size when the scale
// asks for it.
func buildBinaries(work string, p *driverPackage) error {
	tc, err := toolchainFor(p.opts.Arch)
	if err != nil {
		return err
	}
	p.tools = tc
	root := filepath.Join(work, "tree", p.opts.targetDir())
	var nvml entry
	var rest []entry
	for _, e := range p.entries {
		if e.kind != kindSharedLib && e.kind != kindProgram {
			continue
		}
		if e.flavor == "nvml" && !e.compat {
			nvml = e
			continue
		}
		rest = append(rest, e)
	}
	// nvidia-smi links against libnvidia-ml, so that one comes first.
	if err := p.buildELF(work, root, nvml); err != nil {
		return err
	}
	linkDir := filepath.Join(work, "link")
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	if err := os.Symlink(filepath.Join(root, nvml.file), filepath.Join(linkDir, "libnvidia-ml.so")); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}

	jobs := make(chan entry)
	errs := make(chan error, len(rest))
	var wg sync.WaitGroup
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				if err := p.buildELF(work, root, e); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, e := range rest {
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// buildELF compiles one entry, then pads it.
func (p *driverPackage) buildELF(work, root string, e entry) error {
	out := filepath.Join(root, e.file)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	// Each compile gets its own directory and the same source name, so the
	// output does not depend on temporary paths.
	dir := filepath.Join(work, "build", strings.ReplaceAll(e.file, "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src.c"), []byte(p.cSource(e)), 0o644); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	args := []string{"-O1", "-fno-ident", "-Wl,-z,noseparate-code", "-Wl,--build-id=sha1"}
	if e.compat {
		args = append(args, "-m32", "-nostdlib", "-DNV_STANDIN_NOLIBC")
	}
	if e.kind == kindSharedLib {
		args = append(args, "-shared", "-fPIC", "-Wl,-soname,"+e.soname)
	}
	args = append(args, "-o", "out", "src.c")
	if e.flavor == "smi" {
		args = append(args, "-L"+filepath.Join(work, "link"), "-lnvidia-ml")
	}
	cmd := exec.Command(p.tools.cc, args...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		if e.compat {
			return fmt.Errorf("stand-in driver: building the 32-bit %s failed (gcc -m32 needs the i386 assembler support of gcc; or pass NoCompat32): %w\n%s", e.file, err, msg)
		}
		return fmt.Errorf("stand-in driver: %s %s: %w\n%s", p.tools.cc, e.file, err, msg)
	}
	built := filepath.Join(dir, "out")
	if p.opts.Scale == ScaleRealistic && e.size > 0 {
		if err := padELF(p.tools.objcopy, dir, built, e.file, e.size); err != nil {
			return err
		}
	}
	if err := os.Rename(built, out); err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	return os.Chmod(out, 0o755)
}

// padSection is the non-loaded section that carries an ELF file's padding.
const padSection = ".nv_standin_pad"

// padELF grows the ELF file at elfPath to exactly size bytes by adding a
// section of seeded pseudo-random data (objcopy --add-section), which
// compresses about like real code. The section is not loaded at run time.
func padELF(objcopy, dir, elfPath, seed string, size int64) error {
	addSection := func(n int64) (int64, error) {
		data := filepath.Join(dir, "pad")
		f, err := os.Create(data)
		if err != nil {
			return 0, fmt.Errorf("stand-in driver: %w", err)
		}
		if _, err := io.Copy(f, newFiller(seed, n)); err != nil {
			f.Close()
			return 0, fmt.Errorf("stand-in driver: write padding for %s: %w", seed, err)
		}
		if err := f.Close(); err != nil {
			return 0, fmt.Errorf("stand-in driver: %w", err)
		}
		padded := elfPath + ".padded"
		cmd := exec.Command(objcopy, "--add-section", padSection+"="+data,
			"--set-section-flags", padSection+"=contents,readonly", elfPath, padded)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("stand-in driver: objcopy %s: %w\n%s", seed, err, msg)
		}
		st, err := os.Stat(padded)
		if err != nil {
			return 0, fmt.Errorf("stand-in driver: %w", err)
		}
		return st.Size(), nil
	}
	st, err := os.Stat(elfPath)
	if err != nil {
		return fmt.Errorf("stand-in driver: %w", err)
	}
	if st.Size() >= size {
		return nil
	}
	// The section's overhead (header, name, alignment) is measured with a
	// small section, then the real one is sized to land exactly on size.
	const probe = 64
	got, err := addSection(probe)
	if err != nil {
		return err
	}
	n := probe + size - got
	for attempt := 0; attempt < 3; attempt++ {
		if got, err = addSection(n); err != nil {
			return err
		}
		if got == size {
			break
		}
		n += size - got
	}
	if got != size {
		return fmt.Errorf("stand-in driver: padding %s reached %d bytes, not %d", seed, got, size)
	}
	return os.Rename(elfPath+".padded", elfPath)
}
