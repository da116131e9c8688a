package drivers

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Decoders ExtractPayload may use.
const (
	DecoderEmbedded = "embedded" // the package's own static decompressor
	DecoderGo       = "go"       // gpuimg's (klauspost gzip/zstd, ulikunitz xz)
)

// ExtractPayload unpacks the .run at runPath into dest, which becomes the
// package's root (NVIDIA-Linux-<arch>-<v>/ stripped, like the stub's
// --target), without running the .run's shell stub. It picks the fastest
// decoder at hand: the package's own embedded one for xz (NVIDIA's is
// static C; Go's xz decodes at about half its speed), gpuimg's Go decoders
// for zstd and gzip, and Go for another arch's package or wherever the
// embedded one cannot run. tmp holds
// the embedded decoder while it runs. It returns the decoder used.
func ExtractPayload(runPath, dest, tmp string) (string, error) {
	f, err := os.Open(runPath)
	if err != nil {
		return "", fmt.Errorf("open driver package: %w", err)
	}
	defer f.Close()
	h, err := ReadHeader(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", runPath, err)
	}
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", runPath, err)
	}
	payload := io.NewSectionReader(f, h.PayloadOffset, st.Size()-h.PayloadOffset)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", fmt.Errorf("extract %s: %w", runPath, err)
	}
	// The embedded decoder is built for the package's arch: an aarch64
	// package's would run under emulation (or not at all) on an x86_64
	// builder, where Go's decoder is faster.
	if h.Compression == "xz" && h.SizeDecompress > 0 && h.TargetArch == hostArch() {
		err := extractWithEmbedded(f, h, payload, dest, tmp)
		if err == nil {
			return DecoderEmbedded, nil
		}
		if !errors.Is(err, errEmbeddedUnusable) {
			return "", fmt.Errorf("%s: %w", runPath, err)
		}
		payload = io.NewSectionReader(f, h.PayloadOffset, st.Size()-h.PayloadOffset)
	}
	dec, closeDec, err := decompressor(bufio.NewReaderSize(payload, 1<<20), h.Compression)
	if err != nil {
		return "", fmt.Errorf("%s: %w", runPath, err)
	}
	defer closeDec()
	if err := untar(dec, dest); err != nil {
		return "", fmt.Errorf("%s: %w (the file is truncated or damaged: download it again)", runPath, err)
	}
	return DecoderGo, nil
}

// errEmbeddedUnusable: the embedded decoder could not be started (another
// architecture, no exec permission on tmp); Go decodes instead.
var errEmbeddedUnusable = errors.New("the embedded decompressor cannot run here")

func extractWithEmbedded(f *os.File, h Header, payload io.Reader, dest, tmp string) error {
	from, err := lineOffset(f, h.SkipDecompress)
	if err != nil {
		return err
	}
	to, err := lineOffset(f, h.SkipDecompress+h.SizeDecompress)
	if err != nil {
		return err
	}
	bin, err := os.CreateTemp(tmp, "nvunpack-")
	if err != nil {
		return fmt.Errorf("%w: %v", errEmbeddedUnusable, err)
	}
	defer os.Remove(bin.Name())
	_, err = io.Copy(bin, io.NewSectionReader(f, from, to-from))
	if cerr := bin.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(bin.Name(), 0o755)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errEmbeddedUnusable, err)
	}
	cmd := exec.Command(bin.Name())
	cmd.Stdin = payload
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%w: %v", errEmbeddedUnusable, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %v", errEmbeddedUnusable, err)
	}
	uerr := untar(bufio.NewReaderSize(out, 1<<20), dest)
	if uerr != nil {
		io.Copy(io.Discard, out) // let the decoder finish before Wait
	}
	werr := cmd.Wait()
	switch {
	case werr != nil:
		return fmt.Errorf("the package's decompressor failed: %v: %s (the file is truncated or damaged: download it again)", werr, strings.TrimSpace(stderr.String()))
	case uerr != nil:
		return fmt.Errorf("%w (the file is truncated or damaged: download it again)", uerr)
	}
	return nil
}

// untar writes the payload's tar into dest: directories, regular files,
// symlinks and hard links, with their modes and mtimes, the top directory
// stripped. Names that would leave dest are refused.
func untar(r io.Reader, dest string) error {
	tr := tar.NewReader(r)
	var dirs []*tar.Header
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the payload: %w", err)
		}
		rel, ok := strippedName(hdr.Name)
		if !ok {
			return fmt.Errorf("payload member %q leaves the package directory", hdr.Name)
		}
		if rel == "" {
			continue
		}
		target := filepath.Join(dest, rel)
		mode := hdr.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, hdr)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := writeFile(target, tr, mode, buf); err != nil {
				return err
			}
			if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			from, ok := strippedName(hdr.Linkname)
			if !ok || from == "" {
				return fmt.Errorf("payload hard link %q points outside the package", hdr.Name)
			}
			if err := os.Link(filepath.Join(dest, from), target); err != nil {
				return err
			}
		}
	}
	// Directories last, so that writing their files did not move their mtimes.
	for i := len(dirs) - 1; i >= 0; i-- {
		target := filepath.Join(dest, mustStripped(dirs[i].Name))
		if err := os.Chmod(target, dirs[i].FileInfo().Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return err
		}
		if err := os.Chtimes(target, dirs[i].ModTime, dirs[i].ModTime); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, r io.Reader, mode os.FileMode, buf []byte) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, r, buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(path, mode) // past the umask, setuid bits included
	}
	return err
}

// strippedName drops the first path element (NVIDIA-Linux-<arch>-<v>/); ok
// is false for a name that would climb out of it.
func strippedName(name string) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	_, rest, _ := strings.Cut(strings.TrimSuffix(name, "/"), "/")
	if rest == "" {
		return "", true
	}
	clean := filepath.Clean(rest)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", false
	}
	return clean, true
}

func mustStripped(name string) string {
	s, _ := strippedName(name)
	return s
}

// hostArch is NVIDIA's name for this machine's architecture.
func hostArch() string {
	return map[string]string{"amd64": ArchX86_64, "arm64": ArchAarch64}[runtime.GOARCH]
}
