package intel

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
)

// Status says how far a fitted model can be trusted.
type Status string

const (
	// StatusConverged: the best of several starts reached an interior optimum
	// that passed the gradient and axis-probe checks.
	StatusConverged Status = "converged"
	// StatusBoundary: the likelihood is best at (or runs towards) an edge of
	// the parameter space, e.g. no detectable dropout (BG/NBD a→0 or b→∞) or no
	// heterogeneity (r, α → ∞). The parameters are not meaningful one by one;
	// the predictions are those of the limiting model. Warnings say which edge.
	StatusBoundary Status = "boundary"
	// StatusNotConverged: the optimiser stopped where the gradient is not
	// small or a nearby point is better. Do not use the predictions.
	StatusNotConverged Status = "not converged"
)

// DefaultMinRepeaters is the smallest number of repeat customers (x > 0) a
// fit accepts by default. Below about 50 the dropout and spend parameters
// are so poorly determined that the predictions are mostly prior.
const DefaultMinRepeaters = 50

// ErrTooFewRepeaters is matched (errors.Is) by a *ThinDataError.
var ErrTooFewRepeaters = errors.New("too few repeat customers to fit the model")

// ThinDataError is the verdict "data too thin": it carries the counts so a
// caller can show them ("31 repeat customers of 2,000; need 50").
type ThinDataError struct {
	Model     string // "BG/NBD" or "Gamma-Gamma"
	Customers int    // customers given
	Repeaters int    // customers with at least one repeat purchase (usable ones for Gamma-Gamma)
	Min       int    // the minimum that was required
}

func (e *ThinDataError) Error() string {
	what := "repeat customers"
	if e.Model == "Gamma-Gamma" {
		what = "repeat customers with a positive mean spend"
	}
	return fmt.Sprintf("%s: only %d %s among %d customers, need at least %d: too few to fit the model",
		e.Model, e.Repeaters, what, e.Customers, e.Min)
}

// Is makes errors.Is(err, ErrTooFewRepeaters) true.
func (e *ThinDataError) Is(target error) bool { return target == ErrTooFewRepeaters }

// FitOptions tunes a fit. The zero value is the default.
type FitOptions struct {
	// MinRepeaters is the minimum number of repeat customers; 0 means
	// DefaultMinRepeaters. Fits with fewer return a *ThinDataError.
	MinRepeaters int
	// MaxIterations bounds the BFGS iterations per start; 0 means 500.
	MaxIterations int
}

func (o FitOptions) minRepeaters() int {
	if o.MinRepeaters > 0 {
		return o.MinRepeaters
	}
	return DefaultMinRepeaters
}

func (o FitOptions) maxIterations() int {
	if o.MaxIterations > 0 {
		return o.MaxIterations
	}
	return 500
}

// StartResult is the outcome of one start of the multi-start optimisation.
type StartResult struct {
	Start         []float64 // initial parameters (natural scale, model order)
	Params        []float64 // parameters where this start stopped; nil if it failed
	LogLikelihood float64   // 0 if it failed
	Iterations    int
	Stop          string // the optimiser's termination status or error
}

// Diagnostics describes how a fit went; Report prints it.
type Diagnostics struct {
	Status        Status
	LogLikelihood float64 // at the chosen parameters, total over customers
	Customers     int     // customers used
	Repeaters     int     // of which with at least one repeat purchase
	// GradientNorm is max_i |∂(mean log-likelihood)/∂ log θ_i| at the chosen
	// parameters. Together with the axis probe it is the (Hessian-free)
	// convergence check: a true interior maximum has a ~0 gradient and no
	// better point at ±1e-3 along any log-parameter axis.
	GradientNorm float64
	ProbeOK      bool // the axis probe found no better neighbour
	// Starts holds every start in the order tried; with a subsample, the
	// last entry is the polish of the best start on all customers.
	Starts []StartResult
	// StartsAgreeing counts the starts (the best included) that ended within
	// 0.01 log-likelihood units of the best.
	StartsAgreeing int
	// Subsample is the number of customers the multi-start ran on, 0 when
	// it ran on all of them (see subsampleFrom).
	Subsample int
	Warnings  []string
}

// problem is a log-parameterised maximum-likelihood problem: natural
// parameter i is scale[i]·exp(θ_i), which keeps it positive and makes the
// optimiser's steps relative; the scales (e.g. mean customer age for α) make
// the problem independent of the time or money unit.
type problem struct {
	names []string
	scale []float64
	n     float64 // number of customers; negLL is a mean over them
	// negLL returns the mean negative log-likelihood at θ and, if grad is not
	// nil, stores its gradient with respect to θ.
	negLL func(theta, grad []float64) float64
	// sub, if set, is the same problem on a subsample of the customers: the
	// multi-start runs there and only the best point is polished on all
	// customers, which keeps large fits to a few full passes per iteration.
	sub *problem
}

// Above subsampleFrom customers the multi-start runs on an evenly strided
// subsample of subsampleSize customers (variables so tests can lower them).
var (
	subsampleFrom = 200_000
	subsampleSize = 100_000
)

// stride returns every k-th element so that about m remain.
func stride[T any](xs []T, m int) []T {
	k := (len(xs) + m - 1) / m
	out := make([]T, 0, len(xs)/k+1)
	for i := 0; i < len(xs); i += k {
		out = append(out, xs[i])
	}
	return out
}

// clampLimit bounds |θ_i| = |ln(θ_i/scale_i)|. Beyond e^±14 ≈ 1.2e6 the
// objective is held flat so a fit running towards a boundary stops there
// instead of iterating forever; boundaryLimit flags anything past e^±11.5.
const (
	clampLimit    = 14.0
	boundaryLimit = 11.5
)

func (p *problem) natural(theta []float64) []float64 {
	out := make([]float64, len(theta))
	for i, t := range theta {
		out[i] = p.scale[i] * math.Exp(t)
	}
	return out
}

func (p *problem) toTheta(nat []float64) []float64 {
	out := make([]float64, len(nat))
	for i, v := range nat {
		out[i] = math.Log(v / p.scale[i])
	}
	return out
}

// clamped evaluates negLL with θ held inside ±clampLimit; outside, the
// gradient component is zero so the optimiser sees a plateau and stops.
func (p *problem) clamped(theta, grad []float64) float64 {
	th := make([]float64, len(theta))
	out := make([]bool, len(theta))
	for i, t := range theta {
		th[i] = math.Max(-clampLimit, math.Min(clampLimit, t))
		out[i] = th[i] != t
	}
	f := p.negLL(th, grad)
	if grad != nil {
		for i := range grad {
			if out[i] {
				grad[i] = 0
			}
		}
	}
	if math.IsNaN(f) {
		return math.Inf(1)
	}
	return f
}

// evalCache lets gonum's separate Func and Grad calls share one pass over the
// customers: both are computed together and kept for the last θ.
type evalCache struct {
	p     *problem
	x     []float64
	f     float64
	g     []float64
	valid bool
}

func (c *evalCache) eval(x []float64) {
	if c.valid && slices.Equal(x, c.x) {
		return
	}
	c.x = append(c.x[:0], x...)
	if c.g == nil {
		c.g = make([]float64, len(x))
	}
	c.f = c.p.clamped(x, c.g)
	c.valid = true
}

func (p *problem) minimize(start []float64, maxIter int) StartResult {
	c := &evalCache{p: p}
	prob := optimize.Problem{
		Func: func(x []float64) float64 { c.eval(x); return c.f },
		Grad: func(g, x []float64) { c.eval(x); copy(g, c.g) },
	}
	settings := &optimize.Settings{
		GradientThreshold: 1e-10,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 25},
		MajorIterations:   maxIter,
	}
	theta0 := p.toTheta(start)
	res, err := optimize.Minimize(prob, theta0, settings, &optimize.BFGS{})
	sr := StartResult{Start: slices.Clone(start)}
	if res == nil {
		sr.Stop = fmt.Sprintf("failed: %v", err)
		return sr
	}
	theta := slices.Clone(res.X)
	for i := range theta {
		theta[i] = math.Max(-clampLimit, math.Min(clampLimit, theta[i]))
	}
	sr.Iterations = res.MajorIterations
	sr.Stop = res.Status.String()
	ll := -p.negLL(theta, nil) * p.n
	if math.IsNaN(ll) || math.IsInf(ll, 0) {
		sr.Stop += ": non-finite log-likelihood"
		return sr
	}
	sr.Params, sr.LogLikelihood = p.natural(theta), ll
	if err != nil {
		// A line search that cannot make progress usually means the optimum is
		// reached to machine precision; the gradient check below decides.
		sr.Stop += ": " + err.Error()
	}
	return sr
}

// fitResult is the outcome of run: the best θ and its diagnostics.
type fitResult struct {
	theta  []float64
	params []float64 // natural scale
	diag   Diagnostics
}

// run optimises from every start, keeps the best, and checks it. Checks:
//   - starts that end more than 0.5 log-likelihood units below the best are
//     reported as local optima (or stalls);
//   - starts that reach the best likelihood within 0.01 but at parameters
//     more than 5% apart mean a flat, weakly identified likelihood;
//   - the gradient of the mean log-likelihood in log-parameters must be
//     below 1e-5 and no point at ±1e-3 along any log axis may be better.
//
// These need no Hessian, which for the boundary cases this package must
// detect is singular anyway.
//
// With a subsample problem (p.sub) the starts and their comparison run on
// the subsample, the best point is polished on all customers (recorded as a
// last StartResult), and the gradient and probe checks use all customers.
func (p *problem) run(starts [][]float64, maxIter int) (fitResult, error) {
	ms := p
	if p.sub != nil {
		ms = p.sub
	}
	var results []StartResult
	best := -1
	for _, s := range starts {
		r := ms.minimize(s, maxIter)
		results = append(results, r)
		if r.Params != nil && (best < 0 || r.LogLikelihood > results[best].LogLikelihood) {
			best = len(results) - 1
		}
	}
	if best < 0 {
		return fitResult{}, fmt.Errorf("no start produced a finite likelihood (first start: %s)", results[0].Stop)
	}
	b := results[best]
	var warnings []string
	worse, flat, agree := 0, false, 1
	for i, r := range results {
		if i == best {
			continue
		}
		if r.Params != nil && r.LogLikelihood > b.LogLikelihood-0.01 {
			agree++
		}
		switch {
		case r.Params == nil || r.LogLikelihood < b.LogLikelihood-0.5:
			worse++
		case r.LogLikelihood > b.LogLikelihood-0.01:
			for j := range b.Params {
				if math.Abs(math.Log(r.Params[j]/b.Params[j])) > 0.05 {
					flat = true
				}
			}
		}
	}
	if worse > 0 {
		warnings = append(warnings, fmt.Sprintf(
			"%d of %d starts stopped at a worse log-likelihood (local optimum or stall); the best start is used",
			worse, len(results)))
	}
	if flat {
		warnings = append(warnings,
			"starts reach the same log-likelihood at parameters more than 5% apart: the likelihood is flat and the parameters are weakly identified")
	}
	if p.sub != nil {
		pol := p.minimize(b.Params, maxIter)
		pol.Stop = "polished on all customers: " + pol.Stop
		results = append(results, pol)
		if pol.Params == nil {
			return fitResult{}, fmt.Errorf("polishing the subsample optimum on all customers failed: %s", pol.Stop)
		}
		b = pol
	}
	theta := p.toTheta(b.Params)
	d := Diagnostics{Status: StatusConverged, LogLikelihood: b.LogLikelihood, Starts: results, Warnings: warnings,
		StartsAgreeing: agree}
	if p.sub != nil {
		d.Subsample = int(p.sub.n)
	}

	grad := make([]float64, len(theta))
	f0 := p.clamped(theta, grad)
	for _, g := range grad {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			d.GradientNorm = math.MaxFloat64 // not computable: fails the check, and stays JSON-safe
			break
		}
		d.GradientNorm = math.Max(d.GradientNorm, math.Abs(g))
	}
	d.ProbeOK = true
	probe := slices.Clone(theta)
	for i := range theta {
		for _, h := range []float64{-1e-3, 1e-3} {
			copy(probe, theta)
			probe[i] += h
			if p.clamped(probe, nil) < f0-1e-12*math.Max(1, math.Abs(f0)) {
				d.ProbeOK = false
			}
		}
	}
	if d.GradientNorm > 1e-5 || !d.ProbeOK {
		d.Status = StatusNotConverged
		d.Warnings = append(d.Warnings, fmt.Sprintf(
			"optimiser did not reach a maximum: gradient norm %.2g (limit 1e-5), axis probe passed: %v",
			d.GradientNorm, d.ProbeOK))
	}
	for i, t := range theta {
		if math.Abs(t) > boundaryLimit {
			side := "→ ∞"
			if t < 0 {
				side = "→ 0"
			}
			d.Status = StatusBoundary
			d.Warnings = append(d.Warnings, fmt.Sprintf("parameter %s runs to the boundary (%s %s, value %.4g)",
				p.names[i], p.names[i], side, b.Params[i]))
		}
	}
	return fitResult{theta: theta, params: b.Params, diag: d}, nil
}
