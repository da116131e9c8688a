// Package packed is what bench/cores' packer step tells the harness about
// the layer blob it wrote: the contents of its layer.json.
package packed

// FileName is the packer's report, beside blobs/sha256/ in its output.
const FileName = "layer.json"

// Layer describes the blob the packer wrote.
type Layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	DiffID    string `json:"diffID"`
	TarBytes  int64  `json:"tarBytes"`
	Threads   int    `json:"threads"`
	// WallSeconds and CPUSeconds (user+sys, all threads) are the packer's.
	WallSeconds float64 `json:"wallSeconds"`
	CPUSeconds  float64 `json:"cpuSeconds"`
}
