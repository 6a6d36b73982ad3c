package intel

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SimOptions describes a simulated customer base.
type SimOptions struct {
	N       int     // customers
	AgeMin  float64 // each customer's age T is uniform in [AgeMin, AgeMax]
	AgeMax  float64
	Holdout float64 // length of a holdout period after T (0: none)
	Seed    uint64  // same seed, same customers
	// Resolution, if > 0, floors T and t_x to multiples of it (1.0/7 for
	// days when the unit is weeks), as Summarize's day grouping does with
	// real data.
	Resolution float64
}

// Simulate draws customers from BG/NBD (purchases) and Gamma-Gamma (spend)
// with the given parameters: λ ~ Gamma(r, α), p ~ Beta(a, b), exponential
// gaps with rate λ, dropout with probability p after each repeat purchase;
// ν ~ Gamma(q, γ) and each purchase worth Gamma(p, ν). bg.A = 0 means no
// dropout at all (p ≡ 0). It is for tests, benchmarks and demo data.
func Simulate(bg BGNBD, gg GammaGamma, o SimOptions) []Summary {
	rng := rand.New(rand.NewPCG(o.Seed, 0x6b696c6e))
	out := make([]Summary, o.N)
	for i := range out {
		T := o.AgeMin + (o.AgeMax-o.AgeMin)*rng.Float64()
		lambda := gammaRand(rng, bg.R) / bg.Alpha
		p := 0.0
		if bg.A > 0 {
			g1, g2 := gammaRand(rng, bg.A), gammaRand(rng, bg.B)
			p = g1 / (g1 + g2)
		}
		nu := gammaRand(rng, gg.Q) / gg.Gamma
		s := Summary{Customer: fmt.Sprintf("c%07d", i), Age: T, HoldoutDuration: o.Holdout}
		s.Total = gammaRand(rng, gg.P) / nu
		sum := 0.0
		for t := 0.0; ; {
			t += rng.ExpFloat64() / lambda
			if t > T+o.Holdout {
				break
			}
			if t > T {
				s.HoldoutFrequency++
			} else {
				s.Frequency++
				s.Recency = t
				z := gammaRand(rng, gg.P) / nu
				sum += z
				s.Total += z
			}
			if rng.Float64() < p {
				break
			}
		}
		if s.Frequency > 0 {
			s.Monetary = sum / float64(s.Frequency)
		}
		if o.Resolution > 0 {
			s.Age = math.Floor(s.Age/o.Resolution) * o.Resolution
			s.Recency = math.Floor(s.Recency/o.Resolution) * o.Resolution
		}
		out[i] = s
	}
	return out
}

// gammaRand draws from Gamma(shape k, rate 1) (Marsaglia and Tsang 2000;
// for k < 1 via the boost Gamma(k) = Gamma(k+1)·U^{1/k}).
func gammaRand(rng *rand.Rand, k float64) float64 {
	if k < 1 {
		return gammaRand(rng, k+1) * math.Pow(rng.Float64(), 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
