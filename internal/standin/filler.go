package standin

import (
	"bytes"
	"compress/gzip"
	"hash/fnv"
	"io"
	"math/rand/v2"
)

// filler produces n seeded pseudo-random bytes that compress about like
// machine code (about 2.5:1 with gzip -6): runs of random literals mixed with
// copies of recent output, which is what an LZ77 compressor finds in code.
type filler struct {
	rng     *rand.Rand
	left    int64
	history []byte // the last window of output, for copies
	pending []byte
}

const fillerWindow = 32 << 10

// newFiller returns the filler for seed; the same seed and n give the same bytes.
func newFiller(seed string, n int64) io.Reader {
	h := fnv.New64a()
	h.Write([]byte(seed))
	s := h.Sum64()
	return &filler{rng: rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15)), left: n}
}

func (f *filler) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	written := 0
	for written < len(p) {
		if len(f.pending) == 0 {
			f.pending = f.chunk()
		}
		n := copy(p[written:], f.pending)
		f.pending = f.pending[n:]
		written += n
	}
	f.left -= int64(written)
	return written, nil
}

// chunk makes the next run: a literal run or a copy from history. The
// proportions were tuned so gzip -6 compresses the stream about 2.5:1.
func (f *filler) chunk() []byte {
	var out []byte
	if len(f.history) < 64 || f.rng.IntN(100) < 32 {
		out = make([]byte, 4+f.rng.IntN(24))
		for i := range out {
			out[i] = byte(f.rng.Uint32())
		}
	} else {
		length := 8 + f.rng.IntN(40)
		if length > len(f.history) {
			length = len(f.history)
		}
		start := f.rng.IntN(len(f.history) - length + 1)
		out = append([]byte(nil), f.history[start:start+length]...)
	}
	f.history = append(f.history, out...)
	if len(f.history) > 2*fillerWindow {
		f.history = append(f.history[:0], f.history[len(f.history)-fillerWindow:]...)
	}
	return out
}

// mustGzip compresses b deterministically (no name, no mtime). Writing to a
// bytes.Buffer cannot fail.
func mustGzip(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}
