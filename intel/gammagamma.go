package intel

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mathext"
)

// GammaGamma holds the Gamma-Gamma spend parameters (Fader, Hardie and Lee
// 2005, "RFM and CLV"; Fader and Hardie 2013, "The Gamma-Gamma Model of
// Monetary Value"): each transaction's value z ~ Gamma(shape P, rate ν),
// with ν ~ Gamma(shape Q, rate Gamma) across customers. Gamma is in money
// units.
type GammaGamma struct {
	P, Q, Gamma float64
}

// GammaGammaFit is a fitted Gamma-Gamma model with how the fit went.
type GammaGammaFit struct {
	Params GammaGamma
	Diagnostics
}

type ggData struct {
	x, m  []float64 // repeat purchases and their mean value, per usable customer
	n     float64
	meanM float64
	// Parts of the likelihood that do not depend on the parameters, or only
	// through x, are summed once: the per-customer loop is then one log.
	xs     []float64 // distinct x
	xCount []float64 // customers per distinct x
	sumLnM float64   // Σ ln m
	sumXLn float64   // Σ x ln m
}

func (d *ggData) prepare() {
	cnt := map[float64]float64{}
	for i, x := range d.x {
		cnt[x]++
		d.sumLnM += math.Log(d.m[i])
		d.sumXLn += x * math.Log(d.m[i])
	}
	for x := range cnt {
		d.xs = append(d.xs, x)
	}
	slices.Sort(d.xs)
	for _, x := range d.xs {
		d.xCount = append(d.xCount, cnt[x])
	}
}

// logLik returns the total Gamma-Gamma log-likelihood and, if grad is not
// nil, its gradient in (p, q, γ). Per customer (x transactions, mean m):
//
//	ln Γ(px+q) - ln Γ(px) - ln Γ(q) + q ln γ + (px-1) ln m + px ln x - (px+q) ln(γ+xm)
func (d *ggData) logLik(g GammaGamma, grad []float64) float64 {
	p, q, gm := g.P, g.Q, g.Gamma
	lngm := math.Log(gm)
	// Terms in x only, once per distinct x.
	ll := d.n*(q*lngm-lgamma(q)) + p*d.sumXLn - d.sumLnM
	var dp, dq, dg float64
	if grad != nil {
		dp = d.sumXLn
		dq = d.n * (lngm - mathext.Digamma(q))
		dg = d.n * q / gm
	}
	for i, x := range d.xs {
		c, px := d.xCount[i], p*x
		lnx := math.Log(x)
		ll += c * (lgamma(px+q) - lgamma(px) + px*lnx)
		if grad != nil {
			psxq := mathext.Digamma(px + q)
			dp += c * x * (psxq - mathext.Digamma(px) + lnx)
			dq += c * psxq
		}
	}
	workers := 1
	if len(d.x) > 100000 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	var parts [4][4]float64
	chunk := (len(d.x) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(d.x))
		wg.Add(1)
		go func(acc *[4]float64) {
			defer wg.Done()
			var l, sp, sq, sg float64
			for i := lo; i < hi; i++ {
				x := d.x[i]
				den := gm + x*d.m[i]
				lden := math.Log(den)
				l -= (p*x + q) * lden
				if grad != nil {
					sp -= x * lden
					sq -= lden
					sg -= (p*x + q) / den
				}
			}
			*acc = [4]float64{l, sp, sq, sg}
		}(&parts[w])
	}
	wg.Wait()
	for _, pt := range parts[:workers] {
		ll += pt[0]
		dp += pt[1]
		dq += pt[2]
		dg += pt[3]
	}
	if grad != nil {
		grad[0], grad[1], grad[2] = dp, dq, dg
	}
	return ll
}

// newGGData keeps the customers the model is defined for: x > 0 and a
// positive mean repeat spend. It returns how many repeaters were dropped
// for a non-positive spend.
func newGGData(cs []Summary) (*ggData, int, error) {
	d := &ggData{}
	dropped := 0
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			return nil, 0, err
		}
		if c.Frequency == 0 {
			continue
		}
		if !(c.Monetary > 0) || math.IsInf(c.Monetary, 0) {
			dropped++
			continue
		}
		d.x = append(d.x, float64(c.Frequency))
		d.m = append(d.m, c.Monetary)
		d.meanM += c.Monetary
	}
	d.n = float64(len(d.x))
	if d.n > 0 {
		d.meanM /= d.n
	}
	d.prepare()
	return d, dropped, nil
}

// problem is the fit over log parameters, γ in units of s (the mean spend).
func (d *ggData) problem(s float64) *problem {
	return &problem{
		names: []string{"p", "q", "gamma"},
		scale: []float64{1, 1, s},
		n:     d.n,
		negLL: func(th, g []float64) float64 {
			m := GammaGamma{P: math.Exp(th[0]), Q: math.Exp(th[1]), Gamma: s * math.Exp(th[2])}
			var ng []float64
			if g != nil {
				ng = make([]float64, 3)
			}
			ll := d.logLik(m, ng)
			if g != nil {
				for i, v := range []float64{m.P, m.Q, m.Gamma} {
					g[i] = -ng[i] * v / d.n
				}
			}
			return -ll / d.n
		},
	}
}

// LogLikelihood is the Gamma-Gamma log-likelihood over the repeat customers
// with a positive mean spend (others are skipped), summed.
func (g GammaGamma) LogLikelihood(cs []Summary) (float64, error) {
	d, _, err := newGGData(cs)
	if err != nil {
		return 0, err
	}
	return d.logLik(g, nil), nil
}

// FitGammaGamma fits the Gamma-Gamma model on the customers with x > 0 and
// Monetary > 0 (others are ignored; non-positive spends are counted in a
// warning). It returns a *ThinDataError below opts.MinRepeaters usable
// customers. The model assumes spend is independent of frequency; check
// that before relying on it (the correlation is in the Report).
func FitGammaGamma(cs []Summary, opts FitOptions) (*GammaGammaFit, error) {
	d, dropped, err := newGGData(cs)
	if err != nil {
		return nil, fmt.Errorf("fit Gamma-Gamma: %w", err)
	}
	if len(d.x) < opts.minRepeaters() {
		return nil, &ThinDataError{Model: "Gamma-Gamma", Customers: len(cs), Repeaters: len(d.x), Min: opts.minRepeaters()}
	}
	s := d.meanM
	prob := d.problem(s)
	if len(d.x) > subsampleFrom {
		// Customers are in input order, so a stride over them is a fair sample.
		sd := &ggData{x: stride(d.x, subsampleSize), m: stride(d.m, subsampleSize)}
		sd.n = float64(len(sd.x))
		sd.prepare()
		prob.sub = sd.problem(s)
	}
	// Starts in (p, q, γ) with γ in units of the mean spend: lifetimes'
	// (1, 1, 1), a moderately heterogeneous one, a near-homogeneous one and
	// a heavy-tailed one (q close to 1).
	starts := [][]float64{{1, 1, s}, {2, 3, 0.5 * s}, {10, 10, s}, {0.5, 1.5, 0.2 * s}}
	fr, err := prob.run(starts, opts.maxIterations())
	if err != nil {
		return nil, fmt.Errorf("fit Gamma-Gamma: %w", err)
	}
	best := fr.params
	fit := &GammaGammaFit{Params: GammaGamma{P: best[0], Q: best[1], Gamma: best[2]}, Diagnostics: fr.diag}
	fit.Customers, fit.Repeaters = len(cs), len(d.x)
	if dropped > 0 {
		fit.Warnings = append(fit.Warnings, fmt.Sprintf(
			"%d repeat customers with a mean spend <= 0 were left out", dropped))
	}
	if fit.Params.Q <= 1 {
		fit.Warnings = append(fit.Warnings, fmt.Sprintf(
			"q = %.3g <= 1: the population mean spend is infinite, so spend for customers without repeat purchases is undefined", fit.Params.Q))
	}
	return fit, nil
}

// ExpectedSpend is E[Z | x, z̄], the expected value of the customer's future
// transactions given x repeat purchases with mean value z̄ (Fader, Hardie
// and Lee 2005, "RFM and CLV"):
//
//	p(γ + x z̄) / (px + q - 1)
//
// a weighted mean of the population mean pγ/(q-1) and the customer's own z̄.
// For x = 0 it is the population mean. NaN when undefined (q ≤ 1 and x = 0).
func (g GammaGamma) ExpectedSpend(c Summary) float64 {
	x := float64(c.Frequency)
	m := c.Monetary
	if x == 0 || !(m > 0) {
		x, m = 0, 0
	}
	den := g.P*x + g.Q - 1
	if den <= 0 {
		return math.NaN()
	}
	return g.P * (g.Gamma + x*m) / den
}

// MeanSpend is the population mean transaction value pγ/(q-1); NaN if q ≤ 1.
func (g GammaGamma) MeanSpend() float64 {
	return g.ExpectedSpend(Summary{})
}
