package intel

import (
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
