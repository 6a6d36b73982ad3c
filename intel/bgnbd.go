package intel

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/mathext"
)

// BGNBD holds the four BG/NBD parameters (Fader, Hardie and Lee 2005):
// purchase rates λ ~ Gamma(shape R, rate Alpha); dropout probabilities
// p ~ Beta(A, B). Alpha is in the fit's time unit.
type BGNBD struct {
	R, Alpha, A, B float64
}

// BGNBDFit is a fitted BG/NBD model with how the fit went.
type BGNBDFit struct {
	Params BGNBD
	Diagnostics
}

// bgGroup is one distinct (x, t_x, T) with its multiplicity: customers of
// the same day-resolution cohort share these often (all x = 0 customers of
// one first-purchase day do), so the likelihood is summed once per group.
type bgGroup struct {
	xi     int // index into bgData.xs
	tx, T  float64
	weight float64
}

type bgData struct {
	xs     []float64 // distinct frequencies
	groups []bgGroup
	n      float64
	meanT  float64
}

func newBGData(cs []Summary) (*bgData, error) {
	type key struct {
		x     int
		tx, T float64
	}
	w := make(map[key]float64, len(cs)/2+1)
	sumT := 0.0
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		w[key{c.Frequency, c.Recency, c.Age}]++
		sumT += c.Age
	}
	keys := make([]key, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	// Sorted so that the sums, and so the fit, do not depend on map order.
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.x, b.x); c != 0 {
			return c
		}
		if c := cmp.Compare(a.tx, b.tx); c != 0 {
			return c
		}
		return cmp.Compare(a.T, b.T)
	})
	d := &bgData{n: float64(len(cs)), meanT: sumT / float64(len(cs))}
	if d.meanT <= 0 {
		d.meanT = 1
	}
	for _, k := range keys {
		if len(d.xs) == 0 || d.xs[len(d.xs)-1] != float64(k.x) {
			d.xs = append(d.xs, float64(k.x))
		}
		d.groups = append(d.groups, bgGroup{xi: len(d.xs) - 1, tx: k.tx, T: k.T, weight: w[k]})
	}
	return d, nil
}

// xTerms are the parts of the per-customer log-likelihood that depend on
// x only: computed once per distinct x per evaluation.
type xTerms struct {
	g, gr, ga, gb float64 // value and derivatives in r, a, b
	lnA4          float64 // ln a - ln(b+x-1), the dropout-branch prefactor
	dA4b          float64 // ∂ lnA4 / ∂b
}

// logLik returns the total log-likelihood and, if grad is not nil, its
// gradient in natural parameters (r, α, a, b). noDropout fits the nested
// NBD model (p ≡ 0), used to test for dropout.
func (d *bgData) logLik(m BGNBD, grad []float64, noDropout bool) float64 {
	r, al, a, b := m.R, m.Alpha, m.A, m.B
	wantGrad := grad != nil
	xt := make([]xTerms, len(d.xs))
	lgr, lgb, lgab := lgamma(r), lgamma(b), lgamma(a+b)
	var psr, psb, psab float64
	if wantGrad {
		psr, psb, psab = mathext.Digamma(r), mathext.Digamma(b), mathext.Digamma(a+b)
	}
	for i, x := range d.xs {
		t := &xt[i]
		t.g = lgamma(r+x) - lgr
		if !noDropout {
			t.g += lgamma(b+x) - lgb + lgab - lgamma(a+b+x)
		}
		if x > 0 {
			t.lnA4 = math.Log(a) - math.Log(b+x-1)
			t.dA4b = -1 / (b + x - 1)
		}
		if wantGrad && x > 0 {
			t.gr = mathext.Digamma(r+x) - psr
			if !noDropout {
				psabx := mathext.Digamma(a + b + x)
				t.ga = psab - psabx
				t.gb = psab + mathext.Digamma(b+x) - psb - psabx
			}
		}
	}
	var parts [4][5]float64
	workers := 1
	if len(d.groups) > 50000 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	var wg sync.WaitGroup
	chunk := (len(d.groups) + workers - 1) / workers
	lnAl := math.Log(al)
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(d.groups))
		wg.Add(1)
		go func(acc *[5]float64) {
			defer wg.Done()
			var ll, dr, dal, da, db float64
			for _, gp := range d.groups[lo:hi] {
				x := d.xs[gp.xi]
				t := &xt[gp.xi]
				rx := r + x
				lT := math.Log(al + gp.T)
				a3 := -rx * lT
				var lse, wt, lt float64
				if x > 0 && !noDropout {
					lt = math.Log(al + gp.tx)
					a4 := t.lnA4 - rx*lt
					// lse = log(e^a3 + e^a4) and wt = e^a4/(e^a3 + e^a4)
					// from a single exp of the smaller-minus-larger term.
					if dd := a4 - a3; dd > 0 {
						e := math.Exp(-dd)
						lse, wt = a4+math.Log1p(e), 1/(1+e)
					} else {
						e := math.Exp(dd)
						lse, wt = a3+math.Log1p(e), e/(1+e)
					}
				} else {
					lse = a3
				}
				c := gp.weight
				ll += c * (r*lnAl + t.g + lse)
				if wantGrad {
					dr += c * (lnAl + t.gr - (1-wt)*lT - wt*lt)
					dal += c * (r/al - (1-wt)*rx/(al+gp.T) - wt*rx/(al+gp.tx))
					da += c * (t.ga + wt/a)
					db += c * (t.gb + wt*t.dA4b)
				}
			}
			*acc = [5]float64{ll, dr, dal, da, db}
		}(&parts[w])
	}
	wg.Wait()
	var tot [5]float64
	for _, p := range parts[:workers] {
		for i := range tot {
			tot[i] += p[i]
		}
	}
	if wantGrad {
		copy(grad, tot[1:])
	}
	return tot[0]
}

// LogLikelihood is the BG/NBD log-likelihood of the customers (FHL 2005,
// section 3), summed.
func (m BGNBD) LogLikelihood(cs []Summary) (float64, error) {
	d, err := newBGData(cs)
	if err != nil {
		return 0, err
	}
	return d.logLik(m, nil, false), nil
}

func (d *bgData) problem(noDropout bool) *problem {
	if noDropout {
		return &problem{
			names: []string{"r", "alpha"},
			scale: []float64{1, d.meanT},
			n:     d.n,
			negLL: func(th, g []float64) float64 {
				m := BGNBD{R: math.Exp(th[0]), Alpha: d.meanT * math.Exp(th[1]), A: 1, B: 1}
				var ng []float64
				if g != nil {
					ng = make([]float64, 4)
				}
				ll := d.logLik(m, ng, true)
				if g != nil {
					g[0], g[1] = -ng[0]*m.R/d.n, -ng[1]*m.Alpha/d.n
				}
				return -ll / d.n
			},
		}
	}
	return &problem{
		names: []string{"r", "alpha", "a", "b"},
		scale: []float64{1, d.meanT, 1, 1},
		n:     d.n,
		negLL: func(th, g []float64) float64 {
			m := BGNBD{R: math.Exp(th[0]), Alpha: d.meanT * math.Exp(th[1]), A: math.Exp(th[2]), B: math.Exp(th[3])}
			var ng []float64
			if g != nil {
				ng = make([]float64, 4)
			}
			ll := d.logLik(m, ng, false)
			if g != nil {
				for i, v := range []float64{m.R, m.Alpha, m.A, m.B} {
					g[i] = -ng[i] * v / d.n
				}
			}
			return -ll / d.n
		},
	}
}

// FitBGNBD fits the BG/NBD model by maximum likelihood (BFGS over the log
// parameters, several starts, see Diagnostics). It returns a *ThinDataError
// when fewer than opts.MinRepeaters customers have a repeat purchase, and a
// fit with StatusBoundary when the data show no dropout or no heterogeneity.
func FitBGNBD(cs []Summary, opts FitOptions) (*BGNBDFit, error) {
	rep := countRepeaters(cs)
	if rep < opts.minRepeaters() {
		return nil, &ThinDataError{Model: "BG/NBD", Customers: len(cs), Repeaters: rep, Min: opts.minRepeaters()}
	}
	d, err := newBGData(cs)
	if err != nil {
		return nil, fmt.Errorf("fit BG/NBD: %w", err)
	}
	meanX := 0.0
	for _, c := range cs {
		meanX += float64(c.Frequency)
	}
	meanX /= d.n
	// Starts in (r, α, a, b) with α in units of the mean age: a neutral
	// point, a moment-matched one (E[λ]·mean T = mean x), a low-churn and a
	// high-heterogeneity one. They cover the shapes seen on retail data.
	s := d.meanT
	starts := [][]float64{
		{1, s, 1, 1},
		{1, s / math.Max(meanX, 0.05), 1, 3},
		{0.3, 0.1 * s, 0.5, 5},
		{3, 3 * s / math.Max(meanX, 0.05), 2, 2},
	}
	full, nbdFull := d.problem(false), d.problem(true)
	if len(cs) > subsampleFrom {
		sd, err := newBGData(stride(cs, subsampleSize))
		if err != nil {
			return nil, fmt.Errorf("fit BG/NBD: %w", err)
		}
		sd.meanT = d.meanT // the same parameter scaling on both
		full.sub, nbdFull.sub = sd.problem(false), sd.problem(true)
	}
	fr, err := full.run(starts, opts.maxIterations())
	if err != nil {
		return nil, fmt.Errorf("fit BG/NBD: %w", err)
	}
	p := fr.params
	fit := &BGNBDFit{Params: BGNBD{R: p[0], Alpha: p[1], A: p[2], B: p[3]}, Diagnostics: fr.diag}
	fit.Customers, fit.Repeaters = len(cs), rep

	// Dropout test: the NBD model (no dropout, p ≡ 0) is the boundary
	// a → 0 / b → ∞ of BG/NBD. If it fits nearly as well (likelihood-ratio
	// statistic below 3.84, the 5% point of χ²(1)), the data cannot show
	// dropout and P(alive) ≈ 1 is all the model can say.
	nbd, err := nbdFull.run([][]float64{{1, s}, {0.3, 0.1 * s}}, opts.maxIterations())
	if err == nil {
		lr := 2 * (fit.LogLikelihood - nbd.diag.LogLikelihood)
		if lr < -0.02 {
			// NBD is a special case of BG/NBD: the full fit can never be
			// worse unless its optimiser failed.
			fit.Status = StatusNotConverged
			fit.Warnings = append(fit.Warnings, fmt.Sprintf(
				"the BG/NBD optimum is %.3g log-likelihood units worse than its no-dropout special case: the optimiser failed", -lr/2))
		} else if lr < 3.84 {
			fit.Status = StatusBoundary
			fit.Warnings = append(fit.Warnings, fmt.Sprintf(
				"no detectable dropout: the no-churn NBD model fits as well (likelihood-ratio statistic %.2f < 3.84); P(alive) will be close to 1 for everyone", lr))
		}
	}
	if m := fit.Params; m.A/(m.A+m.B) < 1e-4 {
		fit.Status = StatusBoundary
		fit.Warnings = append(fit.Warnings, fmt.Sprintf(
			"mean dropout probability a/(a+b) = %.2g per purchase: effectively no dropout", m.A/(m.A+m.B)))
	}
	if fit.Params.R > 1e4 {
		fit.Warnings = append(fit.Warnings,
			"r and alpha are very large: purchase rates look identical across customers (no heterogeneity)")
		fit.Status = StatusBoundary
	}
	return fit, nil
}

// ExpectedPurchases is E[X(t)], the expected number of repeat purchases in
// the first t time units of a new customer (FHL 2005, section 3).
func (m BGNBD) ExpectedPurchases(t float64) float64 {
	if t <= 0 {
		return 0
	}
	z := t / (m.Alpha + t)
	g, ok := growthFactor(m.A-1, m.A+m.B-1-m.R, m.A+m.B-1, z)
	if !ok {
		return expectedIfAlive(m.R, t/m.Alpha, m.A, m.B)
	}
	return clampNonNeg((m.A + m.B - 1) * g)
}

// logOddsDead is ln[P(dead)/P(alive)] given the history.
func (m BGNBD) logOddsDead(c Summary) float64 {
	if c.Frequency == 0 {
		return math.Inf(-1)
	}
	x := float64(c.Frequency)
	return math.Log(m.A) - math.Log(m.B+x-1) +
		(m.R+x)*(math.Log(m.Alpha+c.Age)-math.Log(m.Alpha+c.Recency))
}

// ProbAlive is P(alive | x, t_x, T) (Fader, Hardie and Lee
// 2008 note "Computing P(alive) using the BG/NBD model"). It is 1 for
// customers without a repeat purchase, since in BG/NBD dropout can only
// follow a repeat purchase.
func (m BGNBD) ProbAlive(c Summary) float64 {
	return logisticNeg(m.logOddsDead(c))
}

// ChurnRisk is 1 - ProbAlive.
func (m BGNBD) ChurnRisk(c Summary) float64 {
	return logisticNeg(-m.logOddsDead(c))
}

// ConditionalExpectedPurchases is E[Y(t) | x, t_x, T], the expected number
// of purchases in the next t time units after the end of the customer's
// history (FHL 2005, section 3), computed in the Euler-transformed form given
// in the package doc, which does not overflow for large x; where that
// series is slow or loses precision (a or |a+b-1-r| large with t ≫ α+T) it
// integrates the equivalent E[(1-(1+pt/(α+T))^-(r+x))/p] over the Beta
// posterior of p instead.
func (m BGNBD) ConditionalExpectedPurchases(c Summary, t float64) float64 {
	pa := m.ProbAlive(c)
	if pa == 0 {
		return 0
	}
	return pa * m.expectedIfAlive(c, t)
}

// expectedIfAlive is E[Y(t) | history, alive]: ConditionalExpectedPurchases
// without the P(alive) factor, so that callers needing several horizons
// compute P(alive) once.
func (m BGNBD) expectedIfAlive(c Summary, t float64) float64 {
	if t <= 0 {
		return 0
	}
	x := float64(c.Frequency)
	z := t / (m.Alpha + c.Age + t)
	g, ok := growthFactor(m.A-1, m.A+m.B-1-m.R, m.A+m.B+x-1, z)
	if !ok {
		return expectedIfAlive(m.R+x, t/(m.Alpha+c.Age), m.A, m.B+x)
	}
	return clampNonNeg((m.A + m.B + x - 1) * g)
}

// NextPurchaseWait is the median time from the end of the history (T) to
// the customer's next purchase, given the customer is still alive. In
// BG/NBD a live customer always makes a next purchase (dropout happens just
// after a purchase), after an exponential wait with rate λ, and λ given the
// history and being alive is Gamma(r+x, α+T); the wait is then Lomax
// distributed with survival ((α+T)/(α+T+w))^(r+x), whose median is
// (α+T)(2^{1/(r+x)} - 1). The expected next purchase date is the end of the
// calibration period plus this wait; weigh it with ProbAlive (or use
// ProbPurchaseWithin), since a dead customer never buys again. The mean
// wait is not used: it is infinite when r+x ≤ 1.
func (m BGNBD) NextPurchaseWait(c Summary) float64 {
	k := m.R + float64(c.Frequency)
	return (m.Alpha + c.Age) * math.Expm1(math.Ln2/k)
}

// NextPurchaseDate turns NextPurchaseWait into a date: asOf is the
// calibrationEnd the summary was made with (its UTC day is the end of the
// history) and unit the summary's time unit.
func (m BGNBD) NextPurchaseDate(c Summary, asOf time.Time, unit time.Duration) time.Time {
	w := m.NextPurchaseWait(c) * float64(unit)
	if w > float64(math.MaxInt64/2) {
		w = float64(math.MaxInt64 / 2) // centuries away: clamp instead of overflowing
	}
	return utcDay(asOf).Add(time.Duration(w))
}

// ProbPurchaseWithin is the probability that the customer makes at least
// one purchase in the next w time units: P(alive) · (1 - ((α+T)/(α+T+w))^(r+x)).
func (m BGNBD) ProbPurchaseWithin(c Summary, w float64) float64 {
	if w <= 0 {
		return 0
	}
	k := m.R + float64(c.Frequency)
	p := -math.Expm1(-k * math.Log1p(w/(m.Alpha+c.Age)))
	return math.Min(1, math.Max(0, m.ProbAlive(c)*p))
}

func clampNonNeg(v float64) float64 {
	if v < 0 || math.IsNaN(v) {
		return 0
	}
	return v
}
