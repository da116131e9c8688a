package main

import (
	"fmt"
	"html"
	"strings"
)

// bar is one bar of a chart panel; lo and hi draw a min–max whisker.
type bar struct {
	label     string
	value     float64
	lo, hi    float64
	color     string
	valueText string
}

var sideColors = map[string]string{
	sideRecipe: "#9e9e9e", sideGzip: "#1f77b4", sideZstd: "#2ca02c", "gpuimg-compute": "#ff7f0e", sideOneLayer: "#6baed6",
}

// rewriteColors are lighter shades for rebuilds whose output file was removed.
var rewriteColors = map[string]string{sideGzip: "#9ecae1", sideZstd: "#a1d99b"}

var sideLabels = map[string]string{
	sideRecipe: "recipe", sideGzip: "gpuimg gzip", sideZstd: "gpuimg zstd", "gpuimg-compute": "compute only", sideOneLayer: "gzip, 1 layer",
}

// chart draws three panels (cold time, rebuild time, bytes added) as a
// self-contained SVG: no dependency, readable on GitHub.
func (r *Results) chart() string {
	var panels [][]bar
	var titles []string
	for _, kinds := range [][]string{{kindCold}, {kindWarm, kindRewrite}} {
		var bars []bar
		for _, kind := range kinds {
			for _, side := range allSides {
				s := r.summary(side, kind)
				if s.Side == "" {
					continue
				}
				label, color := sideLabels[side], sideColors[side]
				if kind == kindRewrite {
					label, color = strings.TrimPrefix(label, "gpuimg ")+", rewrite", rewriteColors[side]
				}
				bars = append(bars, bar{label: label, value: s.Median, lo: s.Min, hi: s.Max,
					color: color, valueText: fmt.Sprintf("%.1f s", s.Median)})
			}
		}
		panels = append(panels, bars)
	}
	titles = append(titles, "cold build (s, median, min–max)", "unchanged rebuild (s; rewrite: file removed first)")
	var bytesBars []bar
	for _, a := range r.Added {
		mbs := float64(a.Bytes) / mb
		bytesBars = append(bytesBars, bar{label: sideLabels[a.Side], value: mbs, lo: mbs, hi: mbs,
			color: sideColors[a.Side], valueText: fmt.Sprintf("%.0f MB", mbs)})
	}
	panels = append(panels, bytesBars)
	titles = append(titles, "bytes added to the base (MB)")

	const pw, ph, top, bottom, left = 380, 300, 50, 60, 20
	width := len(panels)*pw + left
	height := top + ph + bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height+30)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">gpuimg build vs the classic Dockerfile recipe (%d run(s), %d CPUs, %s)</text>`+"\n",
		left, r.Runs, r.Machine.CPUs, html.EscapeString(r.Date))
	for i, bars := range panels {
		x0 := left + i*pw
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, top-12, html.EscapeString(titles[i]))
		maxV := 0.0
		for _, br := range bars {
			maxV = max(maxV, br.hi, br.value)
		}
		if maxV == 0 {
			continue
		}
		base := top + ph
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, base, x0+pw-30, base)
		slot := (pw - 30) / max(len(bars), 1)
		for j, br := range bars {
			h := br.value / maxV * float64(ph-20)
			x := x0 + j*slot + slot/6
			w := slot * 2 / 3
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n", x, float64(base)-h, w, h, br.color)
			if br.hi > br.lo {
				ylo := float64(base) - br.lo/maxV*float64(ph-20)
				yhi := float64(base) - br.hi/maxV*float64(ph-20)
				cx := x + w/2
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", cx, ylo, cx, yhi)
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", cx-5, yhi, cx+5, yhi)
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", cx-5, ylo, cx+5, ylo)
			}
			// The value sits above the whisker, so the two never overlap.
			labelY := float64(base) - max(br.hi, br.value)/maxV*float64(ph-20) - 6
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle">%s</text>`+"\n", x+w/2, labelY, html.EscapeString(br.valueText))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+w/2, base+16, html.EscapeString(br.label))
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">stand-in .run %.0f MB (%s payload); cold = BuildKit cache pruned; outputs: docker tarball + push to a registry on 127.0.0.1</text>`+"\n",
		left, height+10, float64(r.RunBytes)/mb, html.EscapeString(r.Payload))
	b.WriteString("</svg>\n")
	return b.String()
}
