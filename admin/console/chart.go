package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"
)

// chartPoint is one bar: a label under it and its value in micro-credits.
type chartPoint struct {
	Label string
	Value int64
}

// Chart geometry, in SVG user units; the SVG scales to its box.
const (
	chartWidth   = 720
	chartHeight  = 220
	chartPadLeft = 64
	chartPadBot  = 36
	chartPadTop  = 12
	chartMaxBar  = 48 // a few bars stay bars, not blocks
)

// barChart draws points as an SVG bar chart, server-side: no script, no
// inline style (the CSP forbids it); colours come from console.css
// classes. Each bar has a <title> with its exact value, which browsers
// show on hover and screen readers read. caption labels the chart.
func barChart(l *localizer, caption string, points []chartPoint) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, chartHeight, html.EscapeString(caption))
	var max int64
	for _, p := range points {
		max = maxInt64(max, p.Value)
	}
	plotW := chartWidth - chartPadLeft - 8
	plotH := chartHeight - chartPadBot - chartPadTop
	base := chartHeight - chartPadBot
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartPadLeft, base, chartWidth-8, base)
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, chartPadLeft-6, base)
	if len(points) == 0 || max == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d" text-anchor="middle">%s</text></svg>`,
			chartPadLeft+plotW/2, chartPadTop+plotH/2, html.EscapeString(l.T("chart.empty")))
		return template.HTML(b.String())
	}
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>`, chartPadLeft-6, chartPadTop+10,
		html.EscapeString(l.Credits(formatMicro(max))))
	slot := float64(plotW) / float64(len(points)) // drawing geometry, not money
	barW := min(slot*0.7, chartMaxBar)
	labelEvery := 1 + len(points)/12
	for i, p := range points {
		h := float64(plotH) * float64(p.Value) / float64(max)
		mid := float64(chartPadLeft) + slot*(float64(i)+0.5)
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s</title></rect>`,
			mid-barW/2, float64(base)-h, barW, h, html.EscapeString(p.Label), html.EscapeString(l.Credits(formatMicro(p.Value))))
		if i%labelEvery == 0 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`,
				mid, base+16, html.EscapeString(p.Label))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
