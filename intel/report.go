package intel

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Verdict is the one-word summary of a Report, worst first.
type Verdict string

const (
	VerdictOK           Verdict = "ok"            // both models converged at an interior optimum
	VerdictBoundary     Verdict = "boundary"      // a fit ran to the edge of its parameter space (see warnings)
	VerdictNotConverged Verdict = "not converged" // an optimiser failed; do not use the predictions
	VerdictTooThin      Verdict = "too thin"      // too few repeat customers to fit
	VerdictFailed       Verdict = "failed"        // invalid input or no finite likelihood (see Errors)
)

func (v Verdict) rank() int {
	switch v {
	case VerdictOK:
		return 0
	case VerdictBoundary:
		return 1
	case VerdictNotConverged:
		return 2
	case VerdictTooThin:
		return 3
	}
	return 4
}

func worse(a, b Verdict) Verdict {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Calibration compares the fitted BG/NBD with the calibration data it was
// fitted on: the repeat purchases it expects over each customer's own age,
// Σ E[X(T_i)], against the repeat purchases actually seen.
type Calibration struct {
	RepeatPurchases int     // Σ x
	Expected        float64 // Σ E[X(T_i)]
	MeanAge         float64 // mean T
}

// Report is everything `kiln models report` prints about the customer
// models fitted on one customer base.
type Report struct {
	Verdict   Verdict
	Customers int
	Repeaters int
	BGNBD     *BGNBDFit      // nil if it could not be fitted
	Spend     *GammaGammaFit // nil if it could not be fitted
	// Calibration is set when BGNBD is.
	Calibration *Calibration
	// Holdout is set when BGNBD is and the summaries carry a holdout period.
	Holdout *HoldoutCheck
	// SpendFrequencyCorrelation is the Pearson correlation of x and mean
	// repeat spend among repeat customers. Gamma-Gamma assumes they are
	// independent; |ρ| above 0.3 draws a warning. nil if not computable.
	SpendFrequencyCorrelation *float64
	Warnings                  []string // from both fits and the report's own checks
	Errors                    []string // why a model is missing
}

// BuildReport fits BG/NBD and Gamma-Gamma on the summaries and checks them.
// It never fails: problems are in Verdict, Warnings and Errors.
func BuildReport(cs []Summary, opts FitOptions) Report {
	r := Report{Verdict: VerdictOK, Customers: len(cs), Repeaters: countRepeaters(cs)}
	note := func(model string, err error) {
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", model, err))
		if errors.Is(err, ErrTooFewRepeaters) {
			r.Verdict = worse(r.Verdict, VerdictTooThin)
		} else {
			r.Verdict = worse(r.Verdict, VerdictFailed)
		}
	}
	status := func(s Status) {
		switch s {
		case StatusBoundary:
			r.Verdict = worse(r.Verdict, VerdictBoundary)
		case StatusNotConverged:
			r.Verdict = worse(r.Verdict, VerdictNotConverged)
		}
	}

	bg, err := FitBGNBD(cs, opts)
	if err != nil {
		note("BG/NBD", err)
	} else {
		r.BGNBD = bg
		status(bg.Status)
		for _, w := range bg.Warnings {
			r.Warnings = append(r.Warnings, "BG/NBD: "+w)
		}
		cal := &Calibration{}
		for _, c := range cs {
			cal.RepeatPurchases += c.Frequency
			cal.Expected += bg.Params.ExpectedPurchases(c.Age)
			cal.MeanAge += c.Age
		}
		cal.MeanAge /= float64(len(cs))
		r.Calibration = cal
		if h := bg.Params.CheckHoldout(cs); h.Customers > 0 {
			r.Holdout = &h
		}
	}

	gg, err := FitGammaGamma(cs, opts)
	if err != nil {
		note("Gamma-Gamma", err)
	} else {
		r.Spend = gg
		status(gg.Status)
		for _, w := range gg.Warnings {
			r.Warnings = append(r.Warnings, "Gamma-Gamma: "+w)
		}
	}
	if rho := spendFrequencyCorrelation(cs); !math.IsNaN(rho) {
		r.SpendFrequencyCorrelation = &rho
		if math.Abs(rho) > 0.3 {
			r.Warnings = append(r.Warnings, fmt.Sprintf(
				"Gamma-Gamma: frequency and mean spend are correlated (ρ = %.2f); the model assumes independence, so expected spend and CLV are biased", rho))
		}
	}
	return r
}

func spendFrequencyCorrelation(cs []Summary) float64 {
	var n, sx, sy, sxx, syy, sxy float64
	for _, c := range cs {
		if c.Frequency == 0 || !(c.Monetary > 0) {
			continue
		}
		x, y := float64(c.Frequency), c.Monetary
		n++
		sx += x
		sy += y
		sxx += x * x
		syy += y * y
		sxy += x * y
	}
	if n < 3 {
		return math.NaN()
	}
	cov := sxy/n - sx*sy/(n*n)
	vx, vy := sxx/n-sx*sx/(n*n), syy/n-sy*sy/(n*n)
	if vx <= 0 || vy <= 0 {
		return math.NaN()
	}
	return cov / math.Sqrt(vx*vy)
}

// String renders the report as plain text for a terminal.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s\n", r.Verdict)
	fmt.Fprintf(&b, "customers: %d, with repeat purchases: %d\n", r.Customers, r.Repeaters)
	if f := r.BGNBD; f != nil {
		p := f.Params
		fmt.Fprintf(&b, "\nBG/NBD (purchases and dropout): %s\n", f.Status)
		fmt.Fprintf(&b, "  r = %.4f  alpha = %.4f  a = %.4f  b = %.4f\n", p.R, p.Alpha, p.A, p.B)
		writeDiag(&b, f.Diagnostics)
		if c := r.Calibration; c != nil {
			fmt.Fprintf(&b, "  calibration: %d repeat purchases seen, %.1f expected (mean age %.2f)\n",
				c.RepeatPurchases, c.Expected, c.MeanAge)
		}
		if h := r.Holdout; h != nil {
			rel := "no holdout purchases"
			if h.RelativeError != nil {
				rel = fmt.Sprintf("%+.1f%%", 100**h.RelativeError)
			}
			fmt.Fprintf(&b, "  holdout (%.4g time units, %d customers): %.1f predicted, %d actual (%s)\n",
				h.Duration, h.Customers, h.Predicted, h.Actual, rel)
			fmt.Fprintf(&b, "    %-6s %9s %10s %7s\n", "x", "customers", "predicted", "actual")
			for _, row := range h.ByFrequency {
				label := fmt.Sprint(row.Frequency)
				if row.Frequency == holdoutBuckets-1 {
					label += "+"
				}
				fmt.Fprintf(&b, "    %-6s %9d %10.1f %7d\n", label, row.Customers, row.Predicted, row.Actual)
			}
		}
	}
	if f := r.Spend; f != nil {
		p := f.Params
		fmt.Fprintf(&b, "\nGamma-Gamma (spend per purchase): %s\n", f.Status)
		fmt.Fprintf(&b, "  p = %.4f  q = %.4f  gamma = %.4f  (population mean spend %.2f)\n", p.P, p.Q, p.Gamma, p.MeanSpend())
		writeDiag(&b, f.Diagnostics)
	}
	if rho := r.SpendFrequencyCorrelation; rho != nil {
		fmt.Fprintf(&b, "  frequency/spend correlation: %.3f\n", *rho)
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nerrors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	return b.String()
}

func writeDiag(b *strings.Builder, d Diagnostics) {
	fmt.Fprintf(b, "  log-likelihood %.2f over %d customers (%d repeat customers used)\n", d.LogLikelihood, d.Customers, d.Repeaters)
	starts := len(d.Starts)
	on := ""
	if d.Subsample > 0 {
		starts--
		on = fmt.Sprintf(" (on a subsample of %d, then polished on all)", d.Subsample)
	}
	fmt.Fprintf(b, "  convergence: %d of %d starts agree%s, gradient %.2g, axis probe %s\n",
		d.StartsAgreeing, starts, on, d.GradientNorm, map[bool]string{true: "passed", false: "FAILED"}[d.ProbeOK])
}
