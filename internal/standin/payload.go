package standin

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gpuimg/gpuimg/drivers/manifesttypes"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// payloadTime is every tar entry's mtime, so the output is reproducible.
var payloadTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// manifest renders .manifest: 8 header lines (line 3 is the architecture),
// then one entry per line, read by the release's type table. Entries of a
// type the release does not know are left out: its installer would reject
// the whole manifest.
func (p *driverPackage) manifest() []byte {
	table := manifesttypes.For(p.opts.Version)
	var b strings.Builder
	// No header line may be empty: the installer skips empty lines, so an
	// empty one would make it read the first entries as header lines 5-8.
	archLine := p.opts.Arch
	if p.opts.EmptyArchLine {
		archLine = ""
	}
	fmt.Fprintf(&b, "NVIDIA Accelerated Graphics Driver for Linux-%s\n%s\n%s\n%s\n./kernel/\n./kernel/precompiled/\n./kernel-open/\n./kernel-open/precompiled/\n",
		p.opts.Arch, p.opts.Version, archLine, strings.Join(p.kernelModules(), " "))
	for _, e := range p.entries {
		caps, known := table.Caps(e.fileType)
		if e.manifest && known {
			b.WriteString(e.line(caps))
			b.WriteByte('\n')
		}
	}
	for _, line := range p.opts.ExtraEntries {
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// tarFile is one regular file, directory or symlink of the payload.
type tarFile struct {
	name   string // relative to the package root
	mode   int64
	target string // symlink
	size   int64
	open   func() (io.Reader, error)
	dir    bool
}

// payloadFiles lists the tar's members in a stable order (sorted names,
// each directory before its contents).
func (p *driverPackage) payloadFiles(work string, installer []byte) ([]tarFile, error) {
	root := filepath.Join(work, "tree", p.opts.targetDir())
	var files []tarFile
	bytesFile := func(name string, mode int64, b []byte) tarFile {
		return tarFile{name: name, mode: mode, size: int64(len(b)), open: func() (io.Reader, error) { return bytes.NewReader(b), nil }}
	}
	files = append(files, bytesFile(".manifest", 0o644, p.manifest()))
	for _, e := range p.entries {
		mode := int64(0o644)
		if e.perms != "" {
			m, err := strconv.ParseInt(e.perms, 8, 64)
			if err != nil {
				return nil, fmt.Errorf("stand-in driver: bad perms %q for %s", e.perms, e.file)
			}
			mode = m
		}
		switch {
		case e.kind == kindSymlink:
			continue // the installer creates these from the manifest
		case e.symlink:
			files = append(files, tarFile{name: e.file, mode: 0o777, target: e.target})
		case e.kind == kindSharedLib || e.kind == kindProgram:
			built := filepath.Join(root, e.file)
			st, err := os.Stat(built)
			if err != nil {
				return nil, fmt.Errorf("stand-in driver: %w", err)
			}
			files = append(files, tarFile{name: e.file, mode: mode, size: st.Size(), open: func() (io.Reader, error) {
				f, err := os.Open(built)
				if err != nil {
					return nil, fmt.Errorf("stand-in driver: %w", err)
				}
				return closingReader{f}, nil
			}})
		case e.kind == kindBlob:
			seed, size := e.file, e.size
			files = append(files, tarFile{name: e.file, mode: mode, size: size, open: func() (io.Reader, error) {
				return newFiller(seed, size), nil
			}})
		case e.kind == kindInstaller:
			files = append(files, bytesFile(e.file, mode, installer))
		default:
			files = append(files, bytesFile(e.file, mode, e.text))
		}
	}
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		files = append(files, tarFile{name: d, mode: 0o755, dir: true})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

// closingReader closes the file once it has been read to the end.
type closingReader struct{ f *os.File }

func (c closingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err == io.EOF {
		c.f.Close()
	}
	return n, err
}

// writePayload writes the compressed tar of NVIDIA-Linux-<arch>-<v>/ to w.
func (p *driverPackage) writePayload(w io.Writer, files []tarFile) error {
	cw, err := compressor(w, p.opts.Compression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	top := p.opts.targetDir()
	hdr := func(name string) tar.Header {
		return tar.Header{Name: name, ModTime: payloadTime, Uname: "root", Gname: "root", Format: tar.FormatGNU}
	}
	h := hdr(top + "/")
	h.Typeflag, h.Mode = tar.TypeDir, 0o755
	if err := tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("stand-in driver: write payload: %w", err)
	}
	for _, f := range files {
		h := hdr(top + "/" + f.name)
		h.Mode = f.mode
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			err = tw.WriteHeader(&h)
		case f.target != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.target
			err = tw.WriteHeader(&h)
		default:
			var r io.Reader
			if r, err = f.open(); err != nil {
				return err
			}
			h.Typeflag, h.Size = tar.TypeReg, f.size
			if err = tw.WriteHeader(&h); err == nil {
				_, err = io.Copy(tw, r)
			}
		}
		if err != nil {
			return fmt.Errorf("stand-in driver: write payload member %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("stand-in driver: write payload: %w", err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("stand-in driver: compress payload: %w", err)
	}
	return nil
}

// compressor wraps w in the package's compression. xz is written with check
// type None, as NVIDIA's `xz -C none`, in one block (NVIDIA's payloads are
// one single-threaded stream, so no decoder can split the work): by the xz
// binary at preset 1 where there is one (on the stand-in's contents within
// 1% of preset 6's size, at a tenth of its time, and decoded as fast), else
// by the pure-Go writer, which takes minutes per realistic package.
func compressor(w io.Writer, compression string) (io.WriteCloser, error) {
	switch compression {
	case "gzip":
		return gzip.NewWriterLevel(w, 6)
	case "xz":
		if path, err := exec.LookPath("xz"); err == nil {
			return startFilter(w, path, "-1", "-T1", "-C", "none", "-c")
		}
		return xz.WriterConfig{NoCheckSum: true}.NewWriter(w)
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	}
	return nil, fmt.Errorf("stand-in driver: unknown compression %q", compression)
}

// filter is a running compressor program: writes go to its stdin, and
// Close waits for it to finish writing to w.
type filter struct {
	stdin io.WriteCloser
	cmd   *exec.Cmd
	name  string
}

func startFilter(w io.Writer, path string, args ...string) (io.WriteCloser, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("stand-in driver: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stand-in driver: start %s: %w", path, err)
	}
	return &filter{stdin: stdin, cmd: cmd, name: filepath.Base(path)}, nil
}

func (f *filter) Write(p []byte) (int, error) { return f.stdin.Write(p) }

func (f *filter) Close() error {
	err := f.stdin.Close()
	if werr := f.cmd.Wait(); werr != nil {
		return fmt.Errorf("%s: %w: %s", f.name, werr, bytes.TrimSpace(f.cmd.Stderr.(*bytes.Buffer).Bytes()))
	}
	return err
}
