// Package imagebuild runs `gpuimg build`. Prepare checks every input and
// resolves the driver packages (drivers.Resolve decides whether each is
// trusted) into a Builder; Builder.Build plans each image with package llb
// and solves them on BuildKit (local socket, BUILDKIT_HOST, or a remote
// builder through BuildKit's connection helpers), exporting in BuildKit's own
// --output syntax; Builder.Emit prints the equivalent instead. Results and
// warnings are returned, never printed: the command renders them.
package imagebuild

import (
	"time"
)

// DefaultBase is the base image when --base is not given: a glibc
// distribution the installer supports, pulled by the builder.
const DefaultBase = "ubuntu:22.04"

// DefaultTag names images when -t is not given.
const DefaultTag = "nvidia-driver:{driver}"

// Options are `gpuimg build`'s inputs, one field per flag.
type Options struct {
	Drivers []string // --driver V[,V...]
	// Base is --base REF | oci-layout://DIR[:TAG|@DIGEST], or a comma list
	// of several: one image per base, and bases of one family share one
	// driver install and its layers (see bases.go).
	Base       string
	Tags       []string // -t/--tag, with {driver}, {arch} and {base} placeholders
	Outputs    []string // --output, BuildKit syntax
	Push       bool     // --push = type=image,name=<tags>,push=true
	Platforms  []string // --platform linux/amd64[,linux/arm64]
	Components string   // --components all|compute|...
	Compat32   bool     // --compat32: the 32-bit libraries too, into the base family's 32-bit directory
	DriverFile string   // --driver-file PATH
	Mirror     string   // --mirror NAME|URL-TEMPLATE
	SHA256     string   // --sha256 HEX[,HEX...]: one per --driver, for versions the catalog lacks
	// AllowUnverified lets a checksum mismatch or a missing checksum through,
	// with a loud warning; the image's labels then say it is unverified.
	AllowUnverified bool
	Offline         bool // --offline: never let anything download the .run
	CacheDir        string

	Addr        string // --addr; else BUILDKIT_HOST; else the default socket
	TLSCACert   string // --tlscacert: CA that signed the builder's certificate
	TLSCert     string // --tlscert: client certificate (mutual TLS)
	TLSKey      string // --tlskey
	TLSServer   string // --tlsservername: name the builder's certificate carries
	Progress    string // auto|plain|tty|quiet|rawjson
	CacheFrom   []string
	CacheTo     []string
	Compression string // gzip|zstd, forced on every layer (see compressionAttrs)
	Emit        string // dockerfile|llb: print instead of building

	// Extractor is the static gpuimg-unpack binary: with it, a verified
	// package's payload is unpacked once, by a step of its own that no base
	// and no component set changes, and the install step runs NVIDIA's
	// installer from that tree. Empty: the .run unpacks itself inside the
	// install step, on every build. The command passes the one next to it.
	Extractor string
	// DriverLayers spreads the driver's files over this many layers of about
	// equal size, which BuildKit compresses in parallel (one core each): 0
	// means DefaultDriverLayers with the Extractor, 1 without it (the split
	// runs the Extractor's binary inside the install step).
	DriverLayers int

	// SourceDateEpoch, when non-nil, fixes every timestamp (SOURCE_DATE_EPOCH).
	SourceDateEpoch *time.Time
	// ConnectTimeout bounds reaching the builder (5 s when zero).
	ConnectTimeout time.Duration
	// IdleTimeout abandons a build that received no status from the
	// builder and wrote no byte for this long (DefaultIdleTimeout when zero).
	IdleTimeout time.Duration
	// FailFast stops every image when one fails (--fail-fast); by default
	// the others are finished and each failure is reported.
	FailFast bool
}
