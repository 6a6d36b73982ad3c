package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// sparkline draws a size series as a small inline SVG polyline. It is
// rendered on the server so the overview needs no chart library; the
// label says the trend in words for screen readers.
func sparkline(pts []point, w, h int) template.HTML {
	if len(pts) < 2 {
		return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" role="img" aria-label="not enough history yet"><line x1="0" y1="%d" x2="%d" y2="%d" class="spark-empty"/></svg>`, w, h, h/2, w, h/2))
	}
	lo, hi := pts[0].Size, pts[0].Size
	for _, p := range pts {
		lo, hi = min(lo, p.Size), max(hi, p.Size)
	}
	t0, t1 := pts[0].At, pts[len(pts)-1].At
	span := t1.Sub(t0).Seconds()
	var b strings.Builder
	pad := 2.0
	for i, p := range pts {
		x := pad
		if span > 0 {
			x = pad + (float64(w)-2*pad)*p.At.Sub(t0).Seconds()/span
		}
		y := float64(h) / 2
		if hi > lo {
			y = pad + (float64(h)-2*pad)*(1-float64(p.Size-lo)/float64(hi-lo))
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	first, last := pts[0].Size, pts[len(pts)-1].Size
	trend := "steady"
	if last > first {
		trend = "up from " + formatInt(first)
	} else if last < first {
		trend = "down from " + formatInt(first)
	}
	label := fmt.Sprintf("%s to %s since %s", trend, formatInt(last), t0.Format("2 Jan"))
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title><polyline points="%s"/></svg>`,
		w, h, w, h, template.HTMLEscapeString(label), template.HTMLEscapeString(label), b.String()))
}

// sizeChart draws a larger line chart with axis labels for the segment
// page.
func sizeChart(pts []point, loc *time.Location) template.HTML {
	const w, h, left, bottom, top = 640, 180, 56, 24, 10
	if len(pts) < 2 {
		return template.HTML(`<p class="empty">Not enough history yet: sizes are recorded every minute while they change.</p>`)
	}
	lo, hi := pts[0].Size, pts[0].Size
	for _, p := range pts {
		lo, hi = min(lo, p.Size), max(hi, p.Size)
	}
	if lo == hi {
		lo, hi = max(0, lo-1), hi+1
	}
	t0, t1 := pts[0].At, pts[len(pts)-1].At
	span := max(t1.Sub(t0).Seconds(), 1)
	pw, ph := float64(w-left-8), float64(h-bottom-top)
	xy := func(p point) (float64, float64) {
		return float64(left) + pw*p.At.Sub(t0).Seconds()/span, float64(top) + ph*(1-float64(p.Size-lo)/float64(hi-lo))
	}
	var line strings.Builder
	for i, p := range pts {
		x, y := xy(p)
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x, y)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="Segment size from %s (%s) to %s (%s)">`,
		w, h, formatInt(pts[0].Size), t0.In(loc).Format("2 Jan"), formatInt(pts[len(pts)-1].Size), t1.In(loc).Format("2 Jan"))
	for _, v := range []int64{lo, (lo + hi) / 2, hi} {
		_, y := xy(point{At: t0, Size: v})
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			left, w-8, y, y, left-6, y+4, formatInt(v))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text><text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`,
		left, h-6, t0.In(loc).Format("2 Jan 15:04"), w-8, h-6, t1.In(loc).Format("2 Jan 15:04"))
	fmt.Fprintf(&b, `<polyline points="%s"/></svg>`, line.String())
	return template.HTML(b.String())
}
