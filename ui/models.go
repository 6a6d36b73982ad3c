package ui

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/intel"
)

// The models page shows the engine's customer-intelligence report (the
// BG/NBD and Gamma-Gamma fits, the holdout check, RFM groups and
// clusters). The engine fits and keeps the models; a page view only
// reads its last report and draws it, so GET stays fast however large
// the shop. "Refit now" asks the engine to refit in the background.

type intelState struct {
	mu      sync.Mutex
	running bool
	started time.Time
	err     string
}

type modelsData struct {
	Running bool
	Started time.Time
	Err     string
	R       *engine.ModelReport

	Unit         string // the models' time unit in words
	Verdict      string // in plain words
	VerdictClass string
	BGParams     []paramRow
	GGParams     []paramRow
	BGLogLik     string
	GGLogLik     string

	Holdout      template.HTML
	HoldoutRows  []holdoutRow
	HoldoutFrom  time.Time
	HoldoutPred  string
	HoldoutAct   int
	HoldoutErr   string // relative error in words, "" if not computable
	HoldoutUnits string

	RFM      template.HTML
	RFMRows  []barRow
	Clusters []clusterRow
}

type paramRow struct{ Name, Value, Meaning string }

type holdoutRow struct {
	Label     string
	Customers int
	Predicted string
	Actual    int
}

type barRow struct {
	Label string
	N     int
	Share string
}

type clusterRow struct {
	Description string
	Size        int
	Share       string
	Bar         template.HTML
	Typical     string
}

func (s *Server) modelsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	st := s.intel
	st.mu.Lock()
	d := modelsData{Running: st.running, Started: st.started, Err: st.err}
	st.mu.Unlock()
	if rep := s.eng.ModelReport(); rep != nil {
		fillModels(&d, rep)
	}
	s.render(w, r, sess, http.StatusOK, "models", page{Title: "Models", Nav: "models", Data: d})
}

// buildModels starts a refit unless one is running. The refit reads the
// whole log, so it runs after the response and the page polls.
func (s *Server) buildModels(w http.ResponseWriter, r *http.Request, sess *session) {
	st := s.intel
	st.mu.Lock()
	if !st.running {
		st.running, st.started, st.err = true, s.now(), ""
		go s.runModels(context.WithoutCancel(r.Context()))
	}
	st.mu.Unlock()
	http.Redirect(w, r, "/ui/models", http.StatusSeeOther)
}

func (s *Server) runModels(ctx context.Context) {
	_, err := s.eng.RefitModels(ctx, engine.ModelOptions{})
	st := s.intel
	st.mu.Lock()
	defer st.mu.Unlock()
	st.running = false
	if err != nil {
		s.log.Error("ui: refitting the customer models", "err", err)
		st.err = kiln.ErrorMessage(err)
		if kiln.ErrorCode(err) == kiln.EInternal {
			st.err = "the models could not be refitted: " + err.Error()
		}
	}
}

var verdictWords = map[intel.Verdict]string{
	intel.VerdictOK:           "Both models fitted cleanly: their predictions can be used.",
	intel.VerdictBoundary:     "A fit ran to the edge of its parameter range: use the predictions with care (see the warnings).",
	intel.VerdictNotConverged: "A fit did not converge: do not rely on the predictions until a refit succeeds.",
	intel.VerdictTooThin:      "Too few customers have bought more than once to fit the models yet.",
	intel.VerdictFailed:       "The models could not be fitted (see the reasons below).",
}

func fillModels(d *modelsData, rep *engine.ModelReport) {
	d.R = rep
	d.Unit = unitWords(rep.Unit)
	v := rep.Fit.Verdict
	d.Verdict = verdictWords[v]
	if d.Verdict == "" {
		d.Verdict = string(v)
	}
	d.VerdictClass = "verdict-bad"
	switch v {
	case intel.VerdictOK:
		d.VerdictClass = "verdict-ok"
	case intel.VerdictBoundary:
		d.VerdictClass = "verdict-warn"
	}
	if f := rep.Fit.BGNBD; f != nil {
		p := f.Params
		d.BGParams = []paramRow{
			{"r", num4(p.R), "shape of how purchase rates vary between customers"},
			{"α (alpha)", num4(p.Alpha), "scale of the purchase rates (time in " + d.Unit + "s)"},
			{"a", num4(p.A), "with b, how likely customers are to drop out"},
			{"b", num4(p.B), "with a, how likely customers are to drop out"},
		}
		d.BGLogLik = num2(f.LogLikelihood)
	}
	if f := rep.Fit.Spend; f != nil {
		p := f.Params
		d.GGParams = []paramRow{
			{"p", num4(p.P), "shape of spend per purchase"},
			{"q", num4(p.Q), "shape of how average spend varies between customers"},
			{"γ (gamma)", num4(p.Gamma), "scale of how average spend varies between customers"},
		}
		d.GGLogLik = num2(f.LogLikelihood)
	}
	if rep.Check != nil && rep.Check.Holdout != nil {
		h := rep.Check.Holdout
		d.HoldoutFrom = rep.HoldoutFrom
		d.HoldoutPred = num1(h.Predicted)
		d.HoldoutAct = h.Actual
		if h.RelativeError != nil {
			e := *h.RelativeError
			dir := "more"
			if e < 0 {
				dir = "fewer"
			}
			d.HoldoutErr = fmt.Sprintf("%.1f%% %s than actual", math.Abs(e)*100, dir)
		}
		for i, row := range h.ByFrequency {
			label := fmt.Sprint(row.Frequency)
			if i == len(h.ByFrequency)-1 {
				label += "+"
			}
			d.HoldoutRows = append(d.HoldoutRows, holdoutRow{Label: label, Customers: row.Customers, Predicted: num1(row.Predicted), Actual: row.Actual})
		}
		d.Holdout = holdoutChart(h)
	}
	total := 0
	for _, n := range rep.RFM {
		total += n
	}
	for name, n := range rep.RFM {
		d.RFMRows = append(d.RFMRows, barRow{Label: name, N: n, Share: pct(float64(n), float64(total))})
	}
	sort.Slice(d.RFMRows, func(i, j int) bool {
		a, b := d.RFMRows[i], d.RFMRows[j]
		return a.N > b.N || a.N == b.N && a.Label < b.Label
	})
	if len(d.RFMRows) > 0 {
		d.RFM = hbarChart(d.RFMRows, total, "Customers per RFM group")
	}
	for _, c := range rep.Clusters {
		d.Clusters = append(d.Clusters, clusterRow{
			Description: c.Description, Size: c.Size, Share: pct(c.Share, 1),
			Bar: shareBar(c.Share, c.Description),
			Typical: fmt.Sprintf("%s, last %s ago, %s spent", plural(int(math.Round(c.Typical.Frequency)), "purchase"),
				plural(int(math.Round(c.Typical.Recency)), "day"), num2(c.Typical.Monetary)),
		})
	}
}

func num1(v float64) string { return fmt.Sprintf("%.1f", v) }
func num2(v float64) string { return fmt.Sprintf("%.2f", v) }

// num4 shows a parameter to four significant figures, without exponents
// for large values (fits running to a boundary reach millions).
func num4(v float64) string {
	if math.Abs(v) >= 1e4 && math.Abs(v) < 1e15 {
		return formatInt(math.Round(v))
	}
	return fmt.Sprintf("%.4g", v)
}

func pct(n, of float64) string {
	if of <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", 100*n/of)
}

// holdoutChart draws predicted against actual holdout repeat purchases as
// grouped bars, one group per calibration frequency (FHL 2005, figure 4).
// The label sums it up; the page also has the numbers as a table.
func holdoutChart(h *intel.HoldoutCheck) template.HTML {
	const w, ht, left, bottom, top, right = 640, 220, 52, 40, 14, 8
	hi := 1.0
	for _, r := range h.ByFrequency {
		hi = max(hi, r.Predicted, float64(r.Actual))
	}
	hi = niceCeil(hi)
	pw, ph := float64(w-left-right), float64(ht-bottom-top)
	y := func(v float64) float64 { return float64(top) + ph*(1-v/hi) }
	var b strings.Builder
	label := fmt.Sprintf("Holdout check: %s repeat purchases predicted, %d actual", num1(h.Predicted), h.Actual)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`, w, ht, template.HTMLEscapeString(label), template.HTMLEscapeString(label))
	for _, v := range []float64{0, hi / 2, hi} {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e5ea"/><text class="axis" x="%d" y="%.1f" text-anchor="end" font-size="11" fill="#5b6272">%s</text>`,
			left, w-right, y(v), y(v), left-6, y(v)+4, trimNum(v))
	}
	n := len(h.ByFrequency)
	group := pw / float64(max(n, 1))
	bw := group * 0.34
	for i, r := range h.ByFrequency {
		x0 := float64(left) + group*float64(i) + group*0.14
		lab := fmt.Sprint(r.Frequency)
		if i == n-1 {
			lab += "+"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#93b4f5"><title>%s repeats before: %s predicted</title></rect>`,
			x0, y(r.Predicted), bw, float64(top)+ph-y(r.Predicted), lab, num1(r.Predicted))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1d4ed8"><title>%s repeats before: %d actual</title></rect>`,
			x0+bw, y(float64(r.Actual)), bw, float64(top)+ph-y(float64(r.Actual)), lab, r.Actual)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#5b6272">%s</text>`, x0+bw, ht-bottom+15, lab)
	}
	fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#5b6272">repeat purchases before the holdout</text>`, float64(left)+pw/2, ht-6)
	// Legend.
	fmt.Fprintf(&b, `<rect x="%d" y="2" width="10" height="10" fill="#93b4f5"/><text x="%d" y="11" font-size="11" fill="#5b6272">predicted</text>`, w-170, w-156)
	fmt.Fprintf(&b, `<rect x="%d" y="2" width="10" height="10" fill="#1d4ed8"/><text x="%d" y="11" font-size="11" fill="#5b6272">actual</text>`, w-86, w-72)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// hbarChart draws counts as labelled horizontal bars, largest first.
func hbarChart(rows []barRow, total int, title string) template.HTML {
	const w, left, right, rowH = 640, 170, 110, 26
	ht := rowH*len(rows) + 8
	hi := 1
	parts := make([]string, 0, len(rows))
	for _, r := range rows {
		hi = max(hi, r.N)
		parts = append(parts, fmt.Sprintf("%s %d", r.Label, r.N))
	}
	label := fmt.Sprintf("%s (%d in all): %s", title, total, strings.Join(parts, ", "))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`, w, ht, template.HTMLEscapeString(label), template.HTMLEscapeString(label))
	pw := float64(w - left - right)
	for i, r := range rows {
		y := 4 + rowH*i
		bw := max(pw*float64(r.N)/float64(hi), 1)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12" fill="#1f2430">%s</text>`, left-8, y+16, template.HTMLEscapeString(r.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" rx="2" fill="#1d4ed8"/>`, left, y+3, bw, rowH-8)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#5b6272">%s (%s)</text>`, float64(left)+bw+6, y+16, formatInt(r.N), r.Share)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// shareBar is a small bar for one cluster's share of the customers.
func shareBar(share float64, what string) template.HTML {
	const w, h = 160, 12
	label := fmt.Sprintf("%s of customers are %s", pct(share, 1), what)
	return template.HTML(fmt.Sprintf(`<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s"><rect width="%d" height="%d" rx="2" fill="#e8eefc"/><rect width="%.1f" height="%d" rx="2" fill="#1d4ed8"/></svg>`,
		w, h, w, h, template.HTMLEscapeString(label), w, h, max(0, min(1, share))*w, h))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for an axis.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimNum(v float64) string {
	if v == math.Trunc(v) {
		return formatInt(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// unitWords names the models' time unit ("168h0m0s" is a week).
func unitWords(u string) string {
	d, err := time.ParseDuration(u)
	if err != nil {
		return u
	}
	switch d {
	case 7 * 24 * time.Hour:
		return "week"
	case 24 * time.Hour:
		return "day"
	case time.Hour:
		return "hour"
	}
	return u
}
