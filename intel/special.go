package intel

import "math"

// logSumExp returns log(exp(u) + exp(v)) without overflow.
func logSumExp(u, v float64) float64 {
	if u < v {
		u, v = v, u
	}
	if math.IsInf(u, -1) {
		return u
	}
	return u + math.Log1p(math.Exp(v-u))
}

// lgamma is math.Lgamma without the sign: every argument in this package is
// positive, where Γ is positive.
func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// logistic returns 1/(1+exp(u)) without overflow, always in [0, 1].
func logisticNeg(u float64) float64 {
	if u > 0 {
		e := math.Exp(-u)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(u))
}

// maxSeriesTerms bounds the hypergeometric series. The series converges
// geometrically with ratio z < 1; z = 0.9999 (a horizon 10,000 times the
// customer's age) needs about 400,000 terms, which is the practical limit.
const maxSeriesTerms = 1 << 19

// growthFactor returns
//
//	G(ε, B, C, z) = [1 - (1-z)^ε · 2F1(ε, B; C; z)] / ε
//
// evaluated without cancellation, also as ε = a-1 → 0 where the ratio has a
// finite limit. It is the bracket of the BG/NBD expectations after Euler's
// transformation (see doc.go):
//
//	G = -expm1(ε·L)/ε - (1-z)^ε · Σ_{n≥1} (ε+1)_{n-1} (B)_n / ((C)_n n!) z^n,  L = ln(1-z)
//
// The (ε)_n Pochhammer factor of every series term has its leading ε divided
// out analytically, so no division by a small ε happens anywhere.
func growthFactor(eps, B, C, z float64) float64 {
	if z <= 0 {
		return 0
	}
	L := math.Log1p(-z)
	var h float64
	if u := eps * L; math.Abs(u) < 1e-8 {
		h = -L * (1 + u/2)
	} else {
		h = -math.Expm1(u) / eps
	}
	term := B * z / C
	sum := term
	for n := 1.0; n < maxSeriesTerms; n++ {
		term *= (eps + n) * (B + n) * z / ((C + n) * (n + 1))
		sum += term
		if math.Abs(term) <= 1e-16*math.Abs(sum) || term == 0 {
			break
		}
	}
	return h - math.Exp(eps*L)*sum
}
