package intel

import (
	"math"
	"testing"
)

func within(t *testing.T, what string, got, want, rel float64) {
	t.Helper()
	if math.Abs(got-want) > rel*math.Abs(want) {
		t.Errorf("%s = %.6g, want %.6g within %.2g%%", what, got, want, rel*100)
	}
}

// Published CDNOW BG/NBD estimates (FHL 2005, section 5).
func checkCDNOWParams(t *testing.T, fit *BGNBDFit) {
	t.Helper()
	p := fit.Params
	within(t, "r", p.R, 0.2426, 0.005)
	within(t, "alpha", p.Alpha, 4.4136, 0.005)
	within(t, "a", p.A, 0.7929, 0.005)
	within(t, "b", p.B, 2.4259, 0.005)
	within(t, "log-likelihood", fit.LogLikelihood, -9582.43, 0.005)
	if fit.Status != StatusConverged {
		t.Errorf("status %q, warnings %v", fit.Status, fit.Warnings)
	}
}

func TestBGNBDCDNOWPublished(t *testing.T) {
	cs := cdnowSummary(t)
	fit, err := FitBGNBD(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CDNOW summary fit: %+v LL=%.3f grad=%.2g starts=%d warnings=%v", fit.Params, fit.LogLikelihood, fit.GradientNorm, len(fit.Starts), fit.Warnings)
	for _, s := range fit.Starts {
		t.Logf("  start %v -> %v LL=%.4f it=%d %s", s.Start, s.Params, s.LogLikelihood, s.Iterations, s.Stop)
	}
	checkCDNOWParams(t, fit)
}
