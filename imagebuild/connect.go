package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	// Connection helpers for docker-container://, podman-container://,
	// nerdctl-container://, kube-pod:// and ssh:// builders register
	// themselves when imported; the vtproto codec is what buildctl uses.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/nerdctlcontainer"
	_ "github.com/moby/buildkit/client/connhelper/podmancontainer"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto"
)

// DefaultAddr is BuildKit's default socket for a root buildkitd.
const DefaultAddr = "unix:///run/buildkit/buildkitd.sock"

// defaultConnectTimeout bounds reaching the builder: an absent BuildKit is
// reported within this time, not after gRPC's long retries.
const defaultConnectTimeout = 5 * time.Second

// Address returns the builder address: --addr, else BUILDKIT_HOST, else the
// default socket.
func (o Options) Address() string {
	if o.Addr != "" {
		return o.Addr
	}
	if env := os.Getenv("BUILDKIT_HOST"); env != "" {
		return env
	}
	return DefaultAddr
}

// builderInfo is what the build needs to know about the builder's workers.
type builderInfo struct {
	platforms []ocispecs.Platform
	// storesImages is false for OCI workers: a type=image export without
	// push=true leaves nothing behind there.
	storesImages bool
}

// connect dials the builder and proves it answers (ListWorkers) within the
// connect timeout; it returns what the workers can run and keep.
func (o Options) connect(ctx context.Context) (*client.Client, builderInfo, error) {
	addr := o.Address()
	var opts []client.ClientOpt
	if o.TLSCACert != "" {
		server := o.TLSServer
		if server == "" {
			server = hostOf(addr)
		}
		opts = append(opts, client.WithServerConfig(server, o.TLSCACert))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		if o.TLSCert == "" || o.TLSKey == "" {
			return nil, builderInfo{}, errors.New("--tlscert and --tlskey go together: pass both for mutual TLS")
		}
		opts = append(opts, client.WithCredentials(o.TLSCert, o.TLSKey))
	}
	timeout := o.ConnectTimeout
	if timeout == 0 {
		timeout = defaultConnectTimeout
	}
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, builderInfo{}, unreachable(addr, err)
	}
	probeCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	workers, err := c.ListWorkers(probeCtx)
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, builderInfo{}, ctx.Err()
		}
		return nil, builderInfo{}, unreachable(addr, err)
	}
	if len(workers) == 0 {
		c.Close()
		return nil, builderInfo{}, fmt.Errorf("BuildKit at %s has no workers: start buildkitd with --oci-worker=true (runc on PATH)", addr)
	}
	var info builderInfo
	for _, w := range workers {
		info.platforms = append(info.platforms, w.Platforms...)
		if w.Labels["org.mobyproject.buildkit.worker.executor"] == "containerd" {
			info.storesImages = true
		}
	}
	return c, info, nil
}

func unreachable(addr string, err error) error {
	return fmt.Errorf("no BuildKit answering at %s (%v): start one (as root: `make buildkitd && bin/buildkitd --oci-worker=true --containerd-worker=false &`), or point --addr/BUILDKIT_HOST at a running builder (unix://…, tcp://host:port with --tlscacert/--tlscert/--tlskey, docker-container://NAME, kube-pod://POD)", addr, err)
}

// hostOf is the host name in a tcp:// address, which the builder's TLS
// certificate must carry unless --tlsservername says otherwise.
func hostOf(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
