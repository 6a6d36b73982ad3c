package intel

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// RFMInput is one customer's raw recency, frequency and monetary values.
type RFMInput struct {
	// Recency is the time since the last purchase (lower is better).
	Recency float64
	// Frequency is the number of purchases (higher is better).
	Frequency float64
	// Monetary is the spend, total or mean per purchase (higher is better).
	Monetary float64
}

// RFMFromSummary derives RFM inputs from a calibration summary: recency =
// T - t_x (time since the last purchase), frequency = x + 1 purchase days,
// monetary = total calibration spend.
func RFMFromSummary(s Summary) RFMInput {
	return RFMInput{Recency: s.Age - s.Recency, Frequency: float64(s.Frequency + 1), Monetary: s.Total}
}

// RFMScore is a customer's quintile scores (1 worst … 5 best) and the
// named group they fall in.
type RFMScore struct {
	R, F, M int
	Segment string
}

// SegmentRule names the customers whose scores lie in the inclusive ranges.
type SegmentRule struct {
	Name    string
	R, F, M [2]int // inclusive [low, high], each within 1..5
}

// RFMConfig holds the named groups; rules are tried in order and the first
// match wins. A score triple no rule covers goes to the rule whose box is
// nearest (L1 distance in score units, earlier rule on ties), so every
// customer gets a name.
type RFMConfig struct {
	Segments []SegmentRule
}

// DefaultRFMConfig is the usual score-range mapping (the one popularised by
// the R package rfm and most RFM guides), put in an order where the first
// match is the intended one.
func DefaultRFMConfig() RFMConfig {
	return RFMConfig{Segments: []SegmentRule{
		{"Champions", [2]int{4, 5}, [2]int{4, 5}, [2]int{4, 5}},
		{"Can't Lose Them", [2]int{1, 1}, [2]int{4, 5}, [2]int{4, 5}},
		{"At Risk", [2]int{1, 2}, [2]int{3, 5}, [2]int{3, 5}},
		{"Loyal", [2]int{3, 5}, [2]int{3, 5}, [2]int{3, 5}},
		{"New Customers", [2]int{5, 5}, [2]int{1, 1}, [2]int{1, 5}},
		{"Promising", [2]int{4, 4}, [2]int{1, 1}, [2]int{1, 5}},
		{"Potential Loyalist", [2]int{4, 5}, [2]int{2, 3}, [2]int{1, 3}},
		{"About to Sleep", [2]int{3, 3}, [2]int{1, 2}, [2]int{1, 2}},
		{"Need Attention", [2]int{2, 3}, [2]int{2, 3}, [2]int{2, 3}},
		{"Lost", [2]int{1, 1}, [2]int{1, 2}, [2]int{1, 2}},
		{"Hibernating", [2]int{1, 2}, [2]int{1, 2}, [2]int{1, 5}},
	}}
}

// Validate checks every rule's ranges.
func (c RFMConfig) Validate() error {
	if len(c.Segments) == 0 {
		return fmt.Errorf("rfm config: no segments")
	}
	for i, s := range c.Segments {
		if s.Name == "" {
			return fmt.Errorf("rfm config: segment %d has no name", i)
		}
		for j, r := range [3][2]int{s.R, s.F, s.M} {
			if r[0] < 1 || r[1] > 5 || r[0] > r[1] {
				return fmt.Errorf("rfm config: segment %q: %c range [%d, %d] must satisfy 1 <= low <= high <= 5",
					s.Name, "RFM"[j], r[0], r[1])
			}
		}
	}
	return nil
}

// Segment names the group of a score triple.
func (c RFMConfig) Segment(r, f, m int) string {
	best, bestD := "", math.MaxInt
	for _, s := range c.Segments {
		d := boxDist(r, s.R) + boxDist(f, s.F) + boxDist(m, s.M)
		if d == 0 {
			return s.Name
		}
		if d < bestD {
			best, bestD = s.Name, d
		}
	}
	return best
}

func boxDist(v int, r [2]int) int {
	switch {
	case v < r[0]:
		return r[0] - v
	case v > r[1]:
		return v - r[1]
	}
	return 0
}

// ScoreRFM gives each customer R, F and M quintile scores over the whole
// base and a named group.
//
// Tie rule: a customer's score is 1 + ⌊5·w/n⌋, where w is the number of
// customers with a strictly worse value (for R: a strictly longer time since
// the last purchase) and n the number of customers. Equal values always get
// the same score, the worst value always scores 1, and a score of k means at
// least (k-1)/5 of the base is strictly worse. With heavy ties (most
// customers bought once) scores skip levels rather than split equal
// customers: the one-time buyers all get F = 1 and the next value jumps to
// the quintile its rank reaches.
func ScoreRFM(in []RFMInput, cfg RFMConfig) ([]RFMScore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for i, v := range in {
		for _, x := range []float64{v.Recency, v.Frequency, v.Monetary} {
			if math.IsNaN(x) {
				return nil, fmt.Errorf("rfm: customer %d has a NaN value", i)
			}
		}
	}
	n := len(in)
	out := make([]RFMScore, n)
	if n == 0 {
		return out, nil
	}
	vals := make([]float64, n)
	score := func(get func(RFMInput) float64, set func(*RFMScore, int)) {
		for i, v := range in {
			vals[i] = get(v)
		}
		slices.Sort(vals)
		for i, v := range in {
			worse := sort.SearchFloat64s(vals, get(v)) // values strictly below
			set(&out[i], 1+min(4, 5*worse/n))
		}
	}
	// Recency is negated so that "strictly worse" is "strictly below" for all three.
	score(func(v RFMInput) float64 { return -v.Recency }, func(s *RFMScore, k int) { s.R = k })
	score(func(v RFMInput) float64 { return v.Frequency }, func(s *RFMScore, k int) { s.F = k })
	score(func(v RFMInput) float64 { return v.Monetary }, func(s *RFMScore, k int) { s.M = k })
	for i := range out {
		out[i].Segment = cfg.Segment(out[i].R, out[i].F, out[i].M)
	}
	return out, nil
}
