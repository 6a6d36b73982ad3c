package intel

import (
	"errors"
	"math"
	"strings"
	"testing"
)

var (
	simBG = BGNBD{R: 0.8, Alpha: 6, A: 1.2, B: 3.5}
	simGG = GammaGamma{P: 4, Q: 5, Gamma: 30}
)

// Fits recover the parameters they were simulated from.
func TestRecoverSimulatedParameters(t *testing.T) {
	cs := Simulate(simBG, simGG, SimOptions{N: 5000, AgeMin: 26, AgeMax: 78, Holdout: 26, Seed: 1})
	r := BuildReport(cs, FitOptions{})
	t.Logf("\n%s", r)
	if r.Verdict != VerdictOK {
		t.Fatalf("verdict %s: %v %v", r.Verdict, r.Errors, r.Warnings)
	}
	// Tolerances are about 2.5 standard errors at this n (the shape pairs
	// (r, α) and (a, b) are estimated with strongly correlated errors).
	bg := r.BGNBD.Params
	within(t, "r", bg.R, simBG.R, 0.15)
	within(t, "alpha", bg.Alpha, simBG.Alpha, 0.20)
	within(t, "a", bg.A, simBG.A, 0.30)
	within(t, "b", bg.B, simBG.B, 0.30)
	within(t, "mean dropout a/(a+b)", bg.A/(bg.A+bg.B), simBG.A/(simBG.A+simBG.B), 0.10)
	gg := r.Spend.Params
	within(t, "p", gg.P, simGG.P, 0.25)
	within(t, "q", gg.Q, simGG.Q, 0.30)
	within(t, "gamma", gg.Gamma, simGG.Gamma, 0.35)
	within(t, "mean spend", gg.MeanSpend(), simGG.MeanSpend(), 0.05)
	within(t, "holdout prediction", r.Holdout.Predicted, float64(r.Holdout.Actual), 0.05)
	within(t, "calibration expectation", r.Calibration.Expected, float64(r.Calibration.RepeatPurchases), 0.05)
	// The maximum-likelihood points are at least as likely as the truth.
	llTrue, _ := simBG.LogLikelihood(cs)
	if r.BGNBD.LogLikelihood < llTrue {
		t.Errorf("fitted BG/NBD log-likelihood %.3f below the true parameters' %.3f", r.BGNBD.LogLikelihood, llTrue)
	}
	if llTrue, _ := simGG.LogLikelihood(cs); r.Spend.LogLikelihood < llTrue {
		t.Errorf("fitted Gamma-Gamma log-likelihood %.3f below the true parameters' %.3f", r.Spend.LogLikelihood, llTrue)
	}
}

func TestTooThin(t *testing.T) {
	all := Simulate(simBG, simGG, SimOptions{N: 2000, AgeMin: 26, AgeMax: 78, Seed: 2})
	var cs []Summary
	rep := 0
	for _, c := range all {
		if c.Frequency > 0 {
			if rep == 30 {
				continue
			}
			rep++
		}
		cs = append(cs, c)
	}
	_, err := FitBGNBD(cs, FitOptions{})
	var thin *ThinDataError
	if !errors.Is(err, ErrTooFewRepeaters) || !errors.As(err, &thin) {
		t.Fatalf("want a *ThinDataError, got %v", err)
	}
	if thin.Repeaters != 30 || thin.Customers != len(cs) || thin.Min != DefaultMinRepeaters {
		t.Errorf("counts in the verdict: %+v", thin)
	}
	if !strings.Contains(err.Error(), "only 30 repeat customers") {
		t.Errorf("message %q does not give the count", err)
	}
	r := BuildReport(cs, FitOptions{})
	if r.Verdict != VerdictTooThin || r.BGNBD != nil || r.Spend != nil || len(r.Errors) != 2 {
		t.Errorf("report on thin data: verdict %s, errors %v", r.Verdict, r.Errors)
	}
}

// About 50 repeat customers is enough to get an answer, and every
// prediction stays in range.
func TestSmallBaseStillFits(t *testing.T) {
	all := Simulate(simBG, simGG, SimOptions{N: 5000, AgeMin: 26, AgeMax: 78, Seed: 3})
	var cs []Summary
	rep := 0
	for _, c := range all {
		if c.Frequency > 0 {
			if rep == 55 {
				break
			}
			rep++
		}
		cs = append(cs, c)
	}
	r := BuildReport(cs, FitOptions{})
	t.Logf("\n%s", r)
	if r.BGNBD == nil || r.Spend == nil {
		t.Fatalf("no fit on %d customers / %d repeaters: %v", len(cs), rep, r.Errors)
	}
	if r.Verdict == VerdictFailed || r.Verdict == VerdictTooThin {
		t.Errorf("verdict %s", r.Verdict)
	}
	scores, err := ScoreAll(r.BGNBD.Params, &r.Spend.Params, cs, ScoreOptions{Horizon: 52, CLV: CLVOptions{PeriodLength: 4.345, DiscountRate: 0.01}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scores {
		if s.ProbAlive < 0 || s.ProbAlive > 1 || s.ChurnRisk < 0 || s.ChurnRisk > 1 ||
			!(s.ExpectedPurchases >= 0) || !s.HasSpend || !(s.CLV >= 0) || math.IsInf(s.CLV, 0) || !(s.NextPurchaseWait > 0) {
			t.Fatalf("out of range: %+v", s)
		}
	}
}

// Customers who never churn: the fit must say the dropout parameters run
// to the boundary instead of reporting them as if meaningful.
func TestNoDropoutIsBoundary(t *testing.T) {
	cs := Simulate(BGNBD{R: 0.8, Alpha: 6}, simGG, SimOptions{N: 5000, AgeMin: 26, AgeMax: 78, Seed: 4})
	fit, err := FitBGNBD(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("no-dropout fit: %+v status %s warnings %v", fit.Params, fit.Status, fit.Warnings)
	if fit.Status != StatusBoundary {
		t.Fatalf("status %s, want boundary; params %+v", fit.Status, fit.Params)
	}
	if !strings.Contains(strings.Join(fit.Warnings, "\n"), "dropout") {
		t.Errorf("warnings do not name the dropout boundary: %v", fit.Warnings)
	}
	if r := BuildReport(cs, FitOptions{}); r.Verdict != VerdictBoundary {
		t.Errorf("report verdict %s, want boundary", r.Verdict)
	}
	// The purchase side is still right.
	within(t, "r", fit.Params.R, 0.8, 0.15)
}

// Every customer buying at the same rate (no heterogeneity): r, α → ∞.
func TestHomogeneousRatesIsBoundary(t *testing.T) {
	cs := Simulate(BGNBD{R: 1e7, Alpha: 1e8, A: 1.2, B: 3.5}, simGG, SimOptions{N: 5000, AgeMin: 26, AgeMax: 78, Seed: 5})
	fit, err := FitBGNBD(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("homogeneous fit: %+v status %s warnings %v", fit.Params, fit.Status, fit.Warnings)
	if fit.Status != StatusBoundary {
		t.Fatalf("status %s, want boundary; params %+v", fit.Status, fit.Params)
	}
	within(t, "mean rate r/alpha", fit.Params.R/fit.Params.Alpha, 0.1, 0.05)
}

// An optimiser stopped early is reported, not passed off as a fit.
func TestNotConvergedIsReported(t *testing.T) {
	cs := Simulate(simBG, simGG, SimOptions{N: 2000, AgeMin: 26, AgeMax: 78, Seed: 6})
	fit, err := FitBGNBD(cs, FitOptions{MaxIterations: 2})
	if err != nil {
		t.Fatal(err)
	}
	if fit.Status != StatusNotConverged || fit.GradientNorm <= 1e-5 {
		t.Errorf("status %s, gradient %.2g after 2 iterations; warnings %v", fit.Status, fit.GradientNorm, fit.Warnings)
	}
}

func TestInvalidSummaryNamed(t *testing.T) {
	_, err := FitBGNBD([]Summary{{Customer: "c9", Frequency: 2, Recency: 50, Age: 40}}, FitOptions{MinRepeaters: 1})
	if err == nil || !strings.Contains(err.Error(), `"c9"`) || !strings.Contains(err.Error(), "recency") {
		t.Errorf("error %v does not name the customer and field", err)
	}
}

// Large fits run the multi-start on a subsample and polish on everyone; the
// result must be the full-data optimum.
func TestSubsampledMultiStart(t *testing.T) {
	cs := Simulate(simBG, simGG, SimOptions{N: 5000, AgeMin: 26, AgeMax: 78, Seed: 12})
	direct := BuildReport(cs, FitOptions{})
	defer func(f, s int) { subsampleFrom, subsampleSize = f, s }(subsampleFrom, subsampleSize)
	subsampleFrom, subsampleSize = 2000, 1000
	sub := BuildReport(cs, FitOptions{})
	t.Logf("\n%s", sub)
	if sub.Verdict != VerdictOK || sub.BGNBD.Subsample != 1000 || sub.Spend.Subsample == 0 {
		t.Fatalf("verdict %s, subsamples %d/%d", sub.Verdict, sub.BGNBD.Subsample, sub.Spend.Subsample)
	}
	if last := sub.BGNBD.Starts[len(sub.BGNBD.Starts)-1]; !strings.HasPrefix(last.Stop, "polished") {
		t.Errorf("last start %q is not the polish", last.Stop)
	}
	within(t, "BG/NBD log-likelihood", sub.BGNBD.LogLikelihood, direct.BGNBD.LogLikelihood, 1e-9)
	within(t, "Gamma-Gamma log-likelihood", sub.Spend.LogLikelihood, direct.Spend.LogLikelihood, 1e-9)
	within(t, "b", sub.BGNBD.Params.B, direct.BGNBD.Params.B, 1e-4)
	within(t, "q", sub.Spend.Params.Q, direct.Spend.Params.Q, 1e-4)
}
