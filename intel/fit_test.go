package intel

import (
	"math"
	"strings"
	"testing"
)

// A likelihood with two local maxima: the start that ends in the worse one
// is reported, and the better one is kept.
func TestMultiStartReportsLocalOptimum(t *testing.T) {
	p := &problem{
		names: []string{"x"},
		scale: []float64{1},
		n:     1000,
		negLL: func(th, g []float64) float64 {
			x := th[0]
			if g != nil {
				g[0] = 4*x*(x*x-1) + 0.3
			}
			return (x*x-1)*(x*x-1) + 0.3*x
		},
	}
	fr, err := p.run([][]float64{{math.Exp(1)}, {math.Exp(-1)}}, 200)
	if err != nil {
		t.Fatal(err)
	}
	if x := math.Log(fr.params[0]); x > -1 || x < -1.1 {
		t.Errorf("kept θ = %v, want the global optimum near -1.04", x)
	}
	if fr.diag.Status != StatusConverged || fr.diag.StartsAgreeing != 1 ||
		!strings.Contains(strings.Join(fr.diag.Warnings, "\n"), "1 of 2 starts stopped at a worse log-likelihood") {
		t.Errorf("status %s, agreeing %d, warnings %v", fr.diag.Status, fr.diag.StartsAgreeing, fr.diag.Warnings)
	}
}

// A ridge (only θ1+θ2 is identified): starts agree on the likelihood but
// not on the parameters, which must be called weakly identified.
func TestMultiStartReportsFlatLikelihood(t *testing.T) {
	p := &problem{
		names: []string{"u", "v"},
		scale: []float64{1, 1},
		n:     1000,
		negLL: func(th, g []float64) float64 {
			s := th[0] + th[1] - 1
			if g != nil {
				g[0], g[1] = 2*s, 2*s
			}
			return s * s
		},
	}
	fr, err := p.run([][]float64{{1, 1}, {math.Exp(3), math.Exp(-1)}}, 200)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(fr.diag.Warnings, "\n"), "weakly identified") {
		t.Errorf("ridge not reported: %v", fr.diag.Warnings)
	}
}
