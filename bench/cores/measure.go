package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/gpuimg/gpuimg/bench/benchenv"
	"github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
)

// measure builds every design cold, cfg.runs rounds in a rotating order
// (design 0 first in the first round: it is the reference the others are
// checked against), prints the table and where the time went, then the
// --cache-to trial.
func (e *env) measure(ctx context.Context) error {
	fmt.Printf("payload %s, layer compression %s, %d cores, %d round(s), load average before %s\n",
		e.cfg.payload, e.compression, runtime.NumCPU(), e.cfg.runs, loadavg())
	all := make([][]result, len(designs))
	layers := make([]*driverLayer, len(designs))
	var ref *driverLayer
	var refSizes [2]int64
	for round := 0; round < e.cfg.runs; round++ {
		for k := range designs {
			i := (k + round) % len(designs)
			if err := e.freshServer(); err != nil {
				return err
			}
			if err := benchenv.Prune(ctx, e.d); err != nil {
				return err
			}
			r, err := e.build(ctx, designs[i], fmt.Sprintf("d%d-r%d", i, round), nil)
			if err != nil {
				return err
			}
			say("round %d/%d %-60s %5.1f s wall, %5.1f s builder CPU, %5.1f s client CPU", round+1, e.cfg.runs, designs[i].name, r.wall, r.builder, r.client)

			l, sizes, err := e.checkResult(r, ref)
			if err != nil {
				return err
			}
			if ref == nil {
				ref, refSizes = l, sizes
			}
			layers[i] = l
			all[i] = append(all[i], r)
		}
	}
	fmt.Printf("load average after %s\n\n", loadavg())
	e.table(all, layers, refSizes)
	if !e.cfg.cacheTest {
		return nil
	}
	return e.cacheTrial(ctx, ref)
}

// checkResult checks r against the reference layer (reading design 0's
// layer the first time, with gzip -6 and zstd -3 of its tar beside), then
// removes its outputs.
func (e *env) checkResult(r result, ref *driverLayer) (*driverLayer, [2]int64, error) {
	var sizes [2]int64
	defer os.Remove(r.tarball)
	defer os.RemoveAll(strings.TrimSuffix(r.tarball, ".tar") + "-layout")
	if ref != nil {
		l, err := e.check(r, ref)
		return l, sizes, err
	}
	say("reading design (0)'s driver layer: its entries, and gzip -6 / zstd -3 of its tar")
	gz, gzWait, err := compressedSize("gzip", "-6", "-c")
	if err != nil {
		return nil, sizes, err
	}
	zs, zsWait, err := compressedSize("zstd", "-3", "-T1", "-c")
	if err != nil {
		return nil, sizes, err
	}
	l, err := e.check(r, nil, gz, zs)
	gz.Close()
	zs.Close()
	var werr error
	sizes[0], werr = gzWait()
	if err == nil {
		err = werr
	}
	sizes[1], werr = zsWait()
	if err == nil {
		err = werr
	}
	return l, sizes, err
}

// table prints medians (min-max) per design, the layer bytes against the
// files' own gzip -6 / zstd -3, and the steps of each design's last round.
func (e *env) table(all [][]result, layers []*driverLayer, ref [2]int64) {
	refBytes, refName := ref[0], "gzip -6"
	if e.compression == "zstd" {
		refBytes, refName = ref[1], "zstd -3"
	}
	fmt.Printf("driver layer tar %.1f MB; gzip -6 of it %.1f MB, zstd -3 %.1f MB\n\n", float64(layers[0].tarBytes)/1e6, float64(ref[0])/1e6, float64(ref[1])/1e6)
	fmt.Printf("%-60s %-22s %-18s %-12s %-12s %9s %9s\n", "design (cold, docker tarball + push)", "wall s med (min-max)", "builder CPU s", "client CPU s", "registry CPU", "layer MB", "vs "+refName)
	base := median(all[0], func(r result) float64 { return r.wall })
	for i, d := range designs {
		rs := all[i]
		wall := median(rs, func(r result) float64 { return r.wall })
		lo, hi := minMax(rs, func(r result) float64 { return r.wall })
		fmt.Printf("%-60s %5.1f (%4.1f-%4.1f) %4.2fx %6.1f %-11s %5.1f %-6s %5.1f %-6s %9.1f %+8.2f%%\n", d.name,
			wall, lo, hi, wall/base,
			median(rs, func(r result) float64 { return r.builder }), "",
			median(rs, func(r result) float64 { return r.client }), "",
			median(rs, func(r result) float64 { return r.server }), "",
			float64(layers[i].size)/1e6, 100*(float64(layers[i].size)/float64(refBytes)-1))
	}
	for i, d := range designs {
		if d.pack {
			rs := all[i]
			fmt.Printf("  %s: the packer itself %.1f s wall, %.1f s CPU on %d threads (medians; tar %.1f MB -> blob %.1f MB)\n", d.name,
				median(rs, func(r result) float64 { return r.packed.WallSeconds }), median(rs, func(r result) float64 { return r.packed.CPUSeconds }),
				rs[0].packed.Threads, float64(rs[0].packed.TarBytes)/1e6, float64(rs[0].packed.Size)/1e6)
		}
	}
	fmt.Println("\nwhere the time went (last round of each design; steps of 0.2 s or more, from the status streams):")
	for i, d := range designs {
		r := all[i][len(all[i])-1]
		fmt.Printf("  %s: %.1f s wall, %.1f s builder CPU, %.1f s client CPU; layer %s, diffID %s\n", d.name, r.wall, r.builder, r.client, layers[i].digest[:19], layers[i].diffID[:19])
		for _, l := range r.steps.lines(0.2) {
			fmt.Println(l)
		}
	}
}

func median(rs []result, f func(result) float64) float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, f(r))
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func minMax(rs []result, f func(result) float64) (float64, float64) {
	lo, hi := f(rs[0]), f(rs[0])
	for _, r := range rs {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	return lo, hi
}

// cacheOpts adds a type=local build cache to a design's solves: exported
// to (or imported from) dir/<solve>, one per solve. packUncompressed
// exports the packer step's result (the already compressed blob)
// uncompressed, so the cache exporter does not gzip it again.
type cacheOpts struct {
	dir              string
	export, load     bool
	packUncompressed bool
}

func (c *cacheOpts) entries(solve string) (exports, imports []client.CacheOptionsEntry) {
	dir := filepath.Join(c.dir, solve)
	if c.export {
		attrs := map[string]string{"dest": dir}
		if solve == "pack" && c.packUncompressed {
			attrs["compression"] = "uncompressed"
		}
		exports = []client.CacheOptionsEntry{{Type: "local", Attrs: attrs}}
	}
	if c.load {
		imports = []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"src": dir}}}
	}
	return exports, imports
}

// gatewayCache is a solve's cache imports as its gateway requests take them.
func gatewayCache(entries []client.CacheOptionsEntry) []gateway.CacheOptionsEntry {
	var out []gateway.CacheOptionsEntry
	for _, e := range entries {
		out = append(out, gateway.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	return out
}

// cacheTrial builds design (a), then design (0), cold with --cache-to
// type=local (the default mode, min), checks the images, then prunes the
// builder and builds each again from that cache alone (--cache-from): does
// the export work, what does it cost, and does the import skip the install?
// Design (a) is tried twice: with the cache export as a user would ask for
// it, and with the packer step's result exported uncompressed.
func (e *env) cacheTrial(ctx context.Context, ref *driverLayer) error {
	fmt.Println("\n--cache-to type=local,dest=DIR (mode=min), then a pruned builder with --cache-from type=local,src=DIR:")
	trials := []struct {
		design           int
		packUncompressed bool
	}{{2, false}, {2, true}, {0, false}}
	for n, t := range trials {
		d := designs[t.design]
		label := d.name
		if t.packUncompressed {
			label += ", packer step's cache uncompressed"
		}
		dir := filepath.Join(filepath.Dir(e.out), fmt.Sprintf("cache-%d", n))
		_ = os.RemoveAll(dir)
		for _, phase := range []string{"export", "import"} {
			if err := e.freshServer(); err != nil {
				return err
			}
			if err := benchenv.Prune(ctx, e.d); err != nil {
				return err
			}
			opts := &cacheOpts{dir: dir, export: phase == "export", load: phase == "import", packUncompressed: t.packUncompressed}
			r, err := e.build(ctx, d, fmt.Sprintf("cache-%d-%s", n, phase), opts)
			if err != nil {
				fmt.Printf("  %s, cache %s: FAILED: %v\n", label, phase, err)
				break
			}
			if _, _, err := e.checkResult(r, ref); err != nil {
				return err
			}
			ran := "the install step ran"
			if !r.steps.ran("install NVIDIA driver") {
				ran = "the install step did not run (cache hit)"
			}
			fmt.Printf("  %s, cache %s: %.1f s wall, %.1f s builder CPU, %.1f s client CPU; %s; cache dir %.1f MB\n",
				label, phase, r.wall, r.builder, r.client, ran, float64(dirSize(dir))/1e6)
			for _, l := range r.steps.lines(0.5) {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
