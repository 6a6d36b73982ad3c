package eval

import (
	"math"
	"testing"
)

// The representation benchmark behind num (docs/ARCHITECTURE.md,
// "Numbers"): what a windowed sum does per evaluation (read ten stored
// amounts, add them, compare the total with a threshold), and the
// conversion of a JSON float64 done once per extracted value.
//
//	go test ./eval -run '^$' -bench 'Representation' -cpu 1
//
// The same loop over github.com/cockroachdb/apd/v3 and
// github.com/shopspring/decimal, measured out of tree, took about
// 1,150 ns (shopspring: 21 allocations), against about 35 ns here
// and 5 ns for float64.

var benchAmounts = func() []float64 {
	out := make([]float64, 1000)
	for i := range out {
		out[i] = float64(500+i*37%9000) / 100 // 5.00 .. 94.99
	}
	return out
}()

func BenchmarkRepresentationSumFloat64(b *testing.B) {
	words := make([]uint64, len(benchAmounts))
	for i, f := range benchAmounts {
		words[i] = math.Float64bits(f)
	}
	n := 0
	for i := 0; i < b.N; i++ {
		var s float64
		off := i % (len(words) - 10)
		for _, w := range words[off : off+10] {
			s += math.Float64frombits(w)
		}
		if s >= 500 {
			n++
		}
	}
	_ = n
}

func BenchmarkRepresentationSumDecimal(b *testing.B) {
	words := make([]uint64, len(benchAmounts))
	for i, f := range benchAmounts {
		n, _ := numFromFloat(f)
		words[i], _ = wordNum(n)
	}
	threshold := intNum(500)
	n := 0
	for i := 0; i < b.N; i++ {
		s := sumAcc{n: num{d: 1}}
		off := i % (len(words) - 10)
		for _, w := range words[off : off+10] {
			s.addWord(w)
		}
		if !s.over && cmpNum(s.n, threshold) >= 0 {
			n++
		}
	}
	_ = n
}

func BenchmarkRepresentationConvert(b *testing.B) {
	for i := 0; i < b.N; i++ {
		numFromFloat(benchAmounts[i%len(benchAmounts)])
	}
}
