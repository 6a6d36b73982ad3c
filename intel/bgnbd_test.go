package intel

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/mathext"
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

// The Euler-transformed conditional expectation must equal the textbook
// form of FHL 2005 (direct 2F1, fine for small x).
func TestConditionalExpectationMatchesTextbook(t *testing.T) {
	for _, m := range []BGNBD{{0.2426, 4.4136, 0.7929, 2.4259}, {1.5, 20, 2.5, 8}, {0.5, 3, 1.0000001, 4}} {
		for _, c := range []Summary{{Age: 38}, {Frequency: 1, Recency: 1.71, Age: 38.86}, {Frequency: 2, Recency: 30.43, Age: 38.86}, {Frequency: 5, Recency: 20, Age: 30}} {
			for _, tt := range []float64{1, 39, 200} {
				x := float64(c.Frequency)
				z := tt / (m.Alpha + c.Age + tt)
				f := mathext.Hypergeo(m.R+x, m.B+x, m.A+m.B+x-1, z)
				num := (m.A + m.B + x - 1) / (m.A - 1) * (1 - math.Pow((m.Alpha+c.Age)/(m.Alpha+c.Age+tt), m.R+x)*f)
				den := 1.0
				if x > 0 {
					den += m.A / (m.B + x - 1) * math.Pow((m.Alpha+c.Age)/(m.Alpha+c.Recency), m.R+x)
				}
				tol := 1e-9
				if m.A < 1.001 {
					tol = 1e-4 // the textbook form cancels catastrophically as a → 1
				}
				within(t, "E[Y|x]", m.ConditionalExpectedPurchases(c, tt), num/den, tol)
			}
		}
		for _, tt := range []float64{1, 39, 500} {
			direct := (m.A + m.B - 1) / (m.A - 1) * (1 - math.Pow(m.Alpha/(m.Alpha+tt), m.R)*mathext.Hypergeo(m.R, m.B, m.A+m.B-1, tt/(m.Alpha+tt)))
			within(t, "E[X(t)]", m.ExpectedPurchases(tt), direct, 1e-4)
		}
	}
}

// Very heavy buyers must not overflow anywhere (the textbook 2F1 form does
// for x in the hundreds).
func TestBGNBDHeavyBuyers(t *testing.T) {
	m := BGNBD{0.2426, 4.4136, 0.7929, 2.4259}
	for _, c := range []Summary{
		{Frequency: 10000, Recency: 100, Age: 100},  // bought daily, still buying
		{Frequency: 10000, Recency: 50, Age: 100},   // bought a lot, silent for half the time
		{Frequency: 10000, Recency: 99.9, Age: 100}, // just bought
		{Frequency: 1, Recency: 0.01, Age: 1e6},
	} {
		pa := m.ProbAlive(c)
		e := m.ConditionalExpectedPurchases(c, 52)
		w := m.NextPurchaseWait(c)
		pw := m.ProbPurchaseWithin(c, 1)
		for name, v := range map[string]float64{"P(alive)": pa, "E[Y(52)]": e, "wait": w, "P(buy within 1)": pw} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Errorf("%+v: %s = %v", c, name, v)
			}
		}
		if pa > 1 || pw > 1 || m.ChurnRisk(c) < 0 || math.Abs(m.ChurnRisk(c)+pa-1) > 1e-12 {
			t.Errorf("%+v: P(alive) %v, churn %v, P(buy) %v out of [0,1]", c, pa, m.ChurnRisk(c), pw)
		}
		t.Logf("x=%d t_x=%v T=%v: P(alive)=%.4g E[Y(52)]=%.5g wait=%.4g", c.Frequency, c.Recency, c.Age, pa, e, w)
	}
	// A daily buyer who is still active buys at rate (r+x)/(α+T) ≈ 96 per
	// unit, N ≈ 4,980 purchases in 52 units if none drops out; each purchase
	// ends the relationship with probability ≈ a/(a+b+x), so the expectation
	// is about N·(1-e^{-pN})/(pN).
	n := 52 * (m.R + 10000) / (m.Alpha + 100)
	pd := m.A / (m.A + m.B + 10000)
	within(t, "active heavy buyer", m.ConditionalExpectedPurchases(Summary{Frequency: 10000, Recency: 100, Age: 100}, 52), n*-math.Expm1(-pd*n)/(pd*n), 0.03)
	if v := m.ConditionalExpectedPurchases(Summary{Frequency: 10000, Recency: 50, Age: 100}, 52); v > 1e-6 {
		t.Errorf("a heavy buyer silent for 50 units should be dead, E[Y] = %v", v)
	}
	// The log-likelihood of such customers is finite too.
	ll, err := m.LogLikelihood([]Summary{{Frequency: 10000, Recency: 100, Age: 100}, {Frequency: 10000, Recency: 50, Age: 100}})
	if err != nil || math.IsNaN(ll) || math.IsInf(ll, 0) {
		t.Errorf("log-likelihood %v, %v", ll, err)
	}
}

// The analytic gradient used by the optimiser agrees with finite differences.
func TestBGNBDGradient(t *testing.T) {
	cs := []Summary{{Age: 30}, {Frequency: 1, Recency: 5, Age: 30}, {Frequency: 4, Recency: 25, Age: 35}, {Frequency: 40, Recency: 20, Age: 36}}
	d, err := newBGData(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, nodrop := range []bool{false, true} {
		m := BGNBD{0.7, 3.3, 1.3, 2.2}
		g := make([]float64, 4)
		d.logLik(m, g, nodrop)
		p := []float64{m.R, m.Alpha, m.A, m.B}
		for i := range p {
			if nodrop && i >= 2 {
				continue
			}
			h := 1e-6 * p[i]
			up, dn := slices.Clone(p), slices.Clone(p)
			up[i] += h
			dn[i] -= h
			fd := (d.logLik(BGNBD{up[0], up[1], up[2], up[3]}, nil, nodrop) - d.logLik(BGNBD{dn[0], dn[1], dn[2], dn[3]}, nil, nodrop)) / (2 * h)
			if math.Abs(fd-g[i]) > 1e-5*math.Max(1, math.Abs(fd)) {
				t.Errorf("noDropout=%v: d/d%d analytic %v, finite difference %v", nodrop, i, g[i], fd)
			}
		}
	}
}

// Over a wide random range of parameters and histories every prediction is
// finite, probabilities are in [0, 1], and expectations grow with the horizon.
func TestPredictionsStayInRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	logU := func(lo, hi float64) float64 {
		return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
	}
	for range 3000 {
		m := BGNBD{R: logU(1e-3, 1e3), Alpha: logU(1e-3, 1e4), A: logU(1e-3, 1e3), B: logU(1e-3, 1e4)}
		if rng.IntN(10) == 0 {
			m.A = 1 + (rng.Float64()-0.5)*1e-9 // the a → 1 limit
		}
		T := logU(1e-3, 1e4)
		if rng.IntN(20) == 0 {
			T = 0
		}
		x := int(logU(1, 1e5)) - 1
		c := Summary{Frequency: x, Age: T}
		if x > 0 {
			c.Recency = T * rng.Float64()
		}
		pa, cr := m.ProbAlive(c), m.ChurnRisk(c)
		if !(pa >= 0 && pa <= 1 && cr >= 0 && cr <= 1) || math.Abs(pa+cr-1) > 1e-12 {
			t.Fatalf("%+v %+v: P(alive) %v churn %v", m, c, pa, cr)
		}
		prev := 0.0
		for _, h := range []float64{0.1, 1, 10, 100} {
			e := m.ConditionalExpectedPurchases(c, h)
			u := m.ExpectedPurchases(h)
			pw := m.ProbPurchaseWithin(c, h)
			if math.IsNaN(e) || math.IsInf(e, 0) || e < prev*(1-1e-9) || math.IsNaN(u) || math.IsInf(u, 0) || u < 0 || !(pw >= 0 && pw <= 1) {
				t.Fatalf("%+v %+v t=%v: E[Y] %v (previous %v), E[X] %v, P(buy) %v", m, c, h, e, prev, u, pw)
			}
			prev = e
		}
		if w := m.NextPurchaseWait(c); !(w >= 0) || math.IsInf(w, 0) {
			t.Fatalf("%+v %+v: wait %v", m, c, w)
		}
	}
}

// The series and the quadrature are independent derivations of the same
// expectation; they must agree wherever the series accepts its result.
func TestSeriesAgreesWithQuadrature(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	logU := func(lo, hi float64) float64 {
		return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
	}
	checked := 0
	for range 2000 {
		r, al, a, b := logU(0.01, 50), logU(0.1, 100), logU(0.05, 20), logU(0.05, 50)
		x := int(logU(1, 200)) - 1
		T, tt := logU(1, 100), logU(0.1, 300)
		z := tt / (al + T + tt)
		g, ok := growthFactor(a-1, a+b-1-r, a+b+float64(x)-1, z)
		if !ok {
			continue
		}
		checked++
		series := (a + b + float64(x) - 1) * g
		quad := expectedIfAlive(r+float64(x), tt/(al+T), a, b+float64(x))
		if math.Abs(series-quad) > 1e-6*math.Max(1e-12, math.Abs(quad)) {
			t.Fatalf("r=%v α=%v a=%v b=%v x=%d T=%v t=%v: series %v, quadrature %v", r, al, a, b, x, T, tt, series, quad)
		}
	}
	if checked < 1500 {
		t.Errorf("series accepted only %d of 2000 cases", checked)
	}
}

// Extreme Beta posteriors (singular at an end, or very narrow) against
// values computed independently with mpmath 1.3 (hyp2f1 at 60 digits, and
// its quadrature for the a = 1e5 case where hyp2f1 fails).
func TestQuadratureReferenceValues(t *testing.T) {
	for _, c := range []struct{ s, k, a, b, want float64 }{
		{21.5, 19.1, 0.09, 19.8, 335.656481558},
		{372.9, 319, 559, 0.0068, 1.00001218638},
		{0.24, 5, 1e5, 3e5, 0.707422007526},
		{1e6, 0.01, 0.5, 2, 262.881337811},
		{2, 3, 0.01, 0.02, 4.25604416161},
	} {
		within(t, "quadrature", expectedIfAlive(c.s, c.k, c.a, c.b), c.want, 1e-8)
	}
}

func TestNextPurchase(t *testing.T) {
	m := BGNBD{0.2426, 4.4136, 0.7929, 2.4259}
	c := Summary{Frequency: 5, Recency: 30, Age: 32}
	w := m.NextPurchaseWait(c)
	// The median: P(next purchase within w | alive) = 1/2.
	within(t, "P(buy within median | alive)", m.ProbPurchaseWithin(c, w)/m.ProbAlive(c), 0.5, 1e-12)
	// Frequent buyers come back sooner than occasional ones with the same history length.
	if !(w < m.NextPurchaseWait(Summary{Frequency: 1, Recency: 30, Age: 32})) {
		t.Error("a frequent buyer should be expected back sooner")
	}
	asOf := time.Date(1997, 9, 30, 15, 0, 0, 0, time.UTC)
	got := m.NextPurchaseDate(c, asOf, week)
	want := time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC).Add(time.Duration(w * float64(week)))
	if !got.Equal(want) {
		t.Errorf("next purchase date %v, want %v", got, want)
	}
	if d := m.NextPurchaseDate(Summary{Age: 1e9}, asOf, week); d.Before(asOf) {
		t.Errorf("far-off date overflowed: %v", d)
	}
}
