package intel

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// Published CDNOW Gamma-Gamma estimates (Fader, Hardie and Lee 2005, "RFM
// and CLV"; the same figures lifetimes reproduces).
func TestGammaGammaCDNOWPublished(t *testing.T) {
	cs := cdnowSpend(t)
	fit, err := FitGammaGamma(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit %+v LL=%.3f status=%s warnings=%v", fit.Params, fit.LogLikelihood, fit.Status, fit.Warnings)
	if fit.Repeaters != 946 {
		t.Errorf("repeaters used = %d, want 946", fit.Repeaters)
	}
	within(t, "p", fit.Params.P, 6.25, 0.01)
	within(t, "q", fit.Params.Q, 3.74, 0.01)
	within(t, "gamma", fit.Params.Gamma, 15.44, 0.01)
	within(t, "log-likelihood", fit.LogLikelihood, -4055.92, 0.01)
	if fit.Status != StatusConverged {
		t.Errorf("status %q: %v", fit.Status, fit.Warnings)
	}
	// Conditional spend shrinks the customer's own mean towards the
	// population mean: between the two, closer to z̄ for more purchases.
	pop := fit.Params.MeanSpend()
	for _, c := range []Summary{{Frequency: 1, Monetary: 100}, {Frequency: 10, Monetary: 100}, {Frequency: 2, Monetary: 5}} {
		e := fit.Params.ExpectedSpend(c)
		lo, hi := min(pop, c.Monetary), max(pop, c.Monetary)
		if e < lo || e > hi {
			t.Errorf("ExpectedSpend(%+v) = %v, not between population %v and own mean", c, e, pop)
		}
	}
	if a, b := fit.Params.ExpectedSpend(Summary{Frequency: 1, Monetary: 100}), fit.Params.ExpectedSpend(Summary{Frequency: 10, Monetary: 100}); !(b > a) {
		t.Errorf("more purchases at the same mean should move the estimate towards it: x=1 %v, x=10 %v", a, b)
	}
}

func TestGammaGammaGradient(t *testing.T) {
	d, _, err := newGGData([]Summary{{Frequency: 1, Recency: 1, Age: 2, Monetary: 12}, {Frequency: 3, Recency: 2, Age: 5, Monetary: 40}, {Frequency: 30, Recency: 9, Age: 10, Monetary: 7}})
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float64, 3)
	p := []float64{2.5, 3.2, 17}
	d.logLik(GammaGamma{p[0], p[1], p[2]}, g)
	for i := range p {
		up, dn := slices.Clone(p), slices.Clone(p)
		h := 1e-6 * p[i]
		up[i] += h
		dn[i] -= h
		fd := (d.logLik(GammaGamma{up[0], up[1], up[2]}, nil) - d.logLik(GammaGamma{dn[0], dn[1], dn[2]}, nil)) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-5*math.Max(1, math.Abs(fd)) {
			t.Errorf("d/d%d analytic %v, finite difference %v", i, g[i], fd)
		}
	}
}

func TestCLV(t *testing.T) {
	bg := BGNBD{0.2426, 4.4136, 0.7929, 2.4259}
	gg := GammaGamma{6.25, 3.74, 15.44}
	c := Summary{Frequency: 2, Recency: 30.43, Age: 38.86, Monetary: 22.35}
	o := CLVOptions{Periods: 12, PeriodLength: 4.345, DiscountRate: 0.01}
	got := CLV(bg, gg, c, o)
	// Undiscounted, CLV is expected spend × expected purchases over the
	// whole horizon; discounting can only lower it, by at most (1+d)^-12.
	flat := gg.ExpectedSpend(c) * bg.ConditionalExpectedPurchases(c, 12*4.345)
	if !(got < flat && got > flat/math.Pow(1.01, 12)) {
		t.Errorf("CLV %v outside (%v, %v)", got, flat/math.Pow(1.01, 12), flat)
	}
	within(t, "undiscounted CLV", CLV(bg, gg, c, CLVOptions{Periods: 12, PeriodLength: 4.345}), flat, 1e-12)
	// A longer horizon is worth more; a dead customer (heavy, long silent) almost nothing.
	if long := CLV(bg, gg, c, CLVOptions{Periods: 36, PeriodLength: 4.345, DiscountRate: 0.01}); !(long > got) {
		t.Errorf("36-month CLV %v not above 12-month %v", long, got)
	}
	if dead := CLV(bg, gg, Summary{Frequency: 30, Recency: 2, Age: 38, Monetary: 50}, o); dead > 0.01 {
		t.Errorf("CLV of a customer silent for 36 weeks after 30 purchases = %v", dead)
	}
	if err := (CLVOptions{PeriodLength: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "PeriodLength") {
		t.Errorf("invalid options accepted or error unclear: %v", err)
	}
}
