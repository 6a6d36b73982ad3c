package intel

import "math"

// lgamma is math.Lgamma without the sign: every argument in this package is
// positive, where Γ is positive.
func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// logisticNeg returns 1/(1+exp(u)) without overflow, always in [0, 1].
func logisticNeg(u float64) float64 {
	if u > 0 {
		e := math.Exp(-u)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(u))
}

// maxSeriesTerms bounds the fast hypergeometric series; a series that
// needs more (z very close to 1 with large a) is left to the quadrature.
const maxSeriesTerms = 20000

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
// out analytically, so no division by a small ε happens anywhere. ok is
// false when the series did not converge within maxSeriesTerms or lost more
// than 6 significant digits to cancellation (large a or |B| with z near 1);
// the caller then integrates instead.
func growthFactor(eps, B, C, z float64) (g float64, ok bool) {
	if z <= 0 {
		return 0, true
	}
	L := math.Log1p(-z)
	var h float64
	if u := eps * L; math.Abs(u) < 1e-8 {
		h = -L * (1 + u/2)
	} else {
		h = -math.Expm1(u) / eps
	}
	term := B * z / C
	sum, big := term, math.Abs(term)
	converged := false
	for n := 1.0; n < maxSeriesTerms; n++ {
		term *= (eps + n) * (B + n) * z / ((C + n) * (n + 1))
		sum += term
		big = math.Max(big, math.Abs(term))
		if math.Abs(term) <= 1e-16*math.Abs(sum) || term == 0 {
			converged = true
			break
		}
	}
	scale := math.Exp(eps * L)
	g = h - scale*sum
	if !converged || math.IsNaN(g) || math.IsInf(g, 0) || math.Max(math.Abs(h), scale*big) > 1e6*math.Abs(g) {
		return g, false
	}
	return g, true
}

// expectedIfAlive is E[(1 - (1 + p·k)^(-s)) / p] for p ~ Beta(a, b): the
// expected number of purchases of a live customer in a period of length
// t = k·(α+T), with purchase rate λ ~ Gamma(s, α+T) already integrated out
// (E[e^{-λpt}] = (1+pk)^(-s)) and E[X(t) | λ, p] = (1 - e^{-λpt})/p
// (FHL 2005, section 3). It is the slow, always-stable route to the same number
// as the series: tanh-sinh quadrature over p, split at the mean m of p so
// the nodes crowd at the peak (which may be very narrow) as well as at the
// ends. Where the Beta density is singular (a < 1 at 0, b < 1 at 1) the
// half next to that end is integrated in v = p^a (or (1-p)^b), which
// removes the singularity: for a = 0.01 most of the mass lies below
// p = 1e-300, out of reach of any grid in p.
func expectedIfAlive(s, k, a, b float64) float64 {
	if k <= 0 {
		return 0
	}
	lnB := lgamma(a) + lgamma(b) - lgamma(a+b)
	m := a / (a + b)
	g := func(p float64) float64 {
		if p*k < 1e-12 {
			return s * k // the p → 0 limit
		}
		return -math.Expm1(-s*math.Log1p(p*k)) / p
	}
	// half integrates g·Beta density over the half between the end e (0 or
	// 1) and m. d is the distance |p - e| as a function of the node; ex is
	// the Beta exponent at that end (a at 0, b at 1) and ox the other one.
	half := func(toward0 bool, width, ex, ox float64) float64 {
		lnW := math.Log(width)
		total := 0.0
		for i := range deNodes {
			w, c := deWeights[i], deComplement[i]
			for _, y := range [2]float64{c / 2, 1 - c/2} { // (1-x)/2 and (1+x)/2 with x ≥ 0
				// y ∈ (0, 1) is the position from the end towards m; the
				// distance to the end is width·y, or width·y^{1/ex} after
				// the power substitution.
				var dist, dens float64
				if ex < 1 {
					dist = math.Exp(lnW + math.Log(y)/ex)
					// p^{ex-1}·dp = dv/ex: only the other factor remains,
					// and dv = width^ex·dy.
					other := 1 - dist // distance to the far end
					if other <= 0 {
						continue
					}
					dens = math.Exp((ox-1)*math.Log(other)+ex*lnW-lnB) / ex
				} else {
					dist = width * y
					other := 1 - dist
					if dist <= 0 || other <= 0 {
						continue
					}
					dens = width * math.Exp((ex-1)*math.Log(dist)+(ox-1)*math.Log(other)-lnB)
				}
				p := dist
				if !toward0 {
					p = 1 - dist
				}
				total += w * dens * g(p)
			}
		}
		return total / 2 // dy = dx/2 on the rule's [-1, 1]
	}
	return half(true, m, a, b) + half(false, 1-m, b, a)
}

// Tanh-sinh (double exponential) nodes on [0, 1) for the symmetric rule on
// [-1, 1]: x_j = tanh(π/2·sinh(jh)), weight h·(π/2)cosh(jh)/cosh²(π/2·sinh(jh)),
// with 1 - x_j kept separately. The node at x = 0 is halved because the rule
// above evaluates it from both sides.
var deNodes, deWeights, deComplement = tanhSinh(1.0/32, 3.6)

func tanhSinh(h, tmax float64) (xs, ws, cs []float64) {
	for j := 0; float64(j)*h <= tmax; j++ {
		t := float64(j) * h
		u := math.Pi / 2 * math.Sinh(t)
		x := math.Tanh(u)
		c := 2 / (1 + math.Exp(2*u)) // 1 - tanh(u) without cancellation
		ch := math.Cosh(u)
		w := h * math.Pi / 2 * math.Cosh(t) / (ch * ch)
		if j == 0 {
			w /= 2
		}
		xs, ws, cs = append(xs, x), append(ws, w), append(cs, c)
	}
	return xs, ws, cs
}
