package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// rng is a random stream. Each actor has its own, seeded from the config
// seed and the actor's identity, so an actor's events do not depend on how
// generation interleaves actors.
type rng struct{ *rand.Rand }

// Stream domains keep the shop's, the restaurant's and the schedules'
// random streams apart for the same index.
const (
	streamCustomer uint64 = iota + 1
	streamVisitor
	streamGuest
	streamSchedule
	streamHousehold
)

func newRNG(seed int64, domain uint64, index int) rng {
	return rng{rand.New(rand.NewPCG(uint64(seed), domain<<40|uint64(index)))}
}

func (r rng) chance(p float64) bool { return r.Float64() < p }

func (r rng) uniform(a, b float64) float64 { return a + (b-a)*r.Float64() }

// between returns an int in [a, b].
func (r rng) between(a, b int) int { return a + r.IntN(b-a+1) }

func (r rng) exp(mean float64) float64 { return r.ExpFloat64() * mean }

func (r rng) logNormal(mu, sigma float64) float64 { return math.Exp(mu + sigma*r.NormFloat64()) }

// gamma draws from a gamma distribution with the given shape and scale
// (Marsaglia and Tsang; shapes below 1 by boosting).
func (r rng) gamma(shape, scale float64) float64 {
	if shape < 1 {
		return r.gamma(shape+1, scale) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v * scale
		}
	}
}

func (r rng) beta(a, b float64) float64 {
	x := r.gamma(a, 1)
	return x / (x + r.gamma(b, 1))
}

// weighted returns an index drawn with probability proportional to w.
func (r rng) weighted(w []float64) int {
	total := 0.0
	for _, v := range w {
		total += v
	}
	x := r.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func pick[T any](r rng, xs []T) T { return xs[r.IntN(len(xs))] }

// uuid returns a random version-4 UUID, as browsers' analytics libraries
// make anonymous ids.
func (r rng) uuid() string {
	a, b := r.Uint64(), r.Uint64()
	a = a&^(0xf<<12) | 4<<12
	b = b&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// hourOf draws an hour of day (with minutes) from 24 hourly weights.
func (r rng) hourOf(w *[24]float64) float64 {
	return float64(r.weighted(w[:])) + r.Float64()
}
