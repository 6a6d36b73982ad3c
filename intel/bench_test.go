package intel

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Benchmarks. The 1M-customer ones are meant to be run once:
//
//	go test -run '^$' -bench . -benchtime 1x ./intel

var (
	millionOnce sync.Once
	million     []Summary
)

// millionCustomers simulates 1,000,000 customers (CDNOW-like parameters,
// ages 1-2 years in weeks) once per test binary.
func millionCustomers(b *testing.B) []Summary {
	b.Helper()
	millionOnce.Do(func() {
		million = Simulate(BGNBD{R: 0.25, Alpha: 4.4, A: 0.8, B: 2.4}, GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44},
			SimOptions{N: 1_000_000, AgeMin: 52, AgeMax: 104, Seed: 11})
	})
	return million
}

func BenchmarkFitCDNOW(b *testing.B) {
	bg, gg := cdnowSummary(b), cdnowSpend(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := FitBGNBD(bg, FitOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := FitGammaGamma(gg, FitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFit1M fits continuous-time simulated customers: every customer
// is a distinct (x, t_x, T), the worst case for the likelihood.
func BenchmarkFit1M(b *testing.B) {
	benchFit(b, millionCustomers(b))
}

// BenchmarkFit1MDays fits the same kind of base at day resolution, as
// Summarize produces from real transactions: customers share (x, t_x, T)
// and the likelihood sums each distinct one once.
func BenchmarkFit1MDays(b *testing.B) {
	cs := Simulate(BGNBD{R: 0.25, Alpha: 4.4, A: 0.8, B: 2.4}, GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44},
		SimOptions{N: 1_000_000, AgeMin: 52, AgeMax: 104, Seed: 11, Resolution: 1.0 / 7})
	benchFit(b, cs)
}

func benchFit(b *testing.B, cs []Summary) {
	b.ResetTimer()
	for b.Loop() {
		bg, err := FitBGNBD(cs, FitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		gg, err := FitGammaGamma(cs, FitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(bg.Repeaters), "repeaters")
		b.Logf("BG/NBD %+v %s; Gamma-Gamma %+v %s", bg.Params, bg.Status, gg.Params, gg.Status)
	}
}

func BenchmarkScore1M(b *testing.B) {
	cs := millionCustomers(b)
	bg, gg := BGNBD{R: 0.25, Alpha: 4.4, A: 0.8, B: 2.4}, GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}
	o := ScoreOptions{Horizon: 52, CLV: CLVOptions{Periods: 12, PeriodLength: 4.345, DiscountRate: 0.01}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := ScoreAll(bg, &gg, cs, o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRFM1M(b *testing.B) {
	cs := millionCustomers(b)
	in := make([]RFMInput, len(cs))
	for i, c := range cs {
		in[i] = RFMFromSummary(c)
	}
	cfg := DefaultRFMConfig()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ScoreRFM(in, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKMeans1M(b *testing.B) {
	cs := millionCustomers(b)
	in := make([]ClusterInput, len(cs))
	for i, c := range cs {
		r := RFMFromSummary(c)
		in[i] = ClusterInput{Recency: r.Recency, Frequency: r.Frequency, Monetary: r.Monetary}
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := ClusterCustomers(in, ClusterOptions{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("k=%d silhouettes %v", res.K, res.Silhouettes)
	}
}

func BenchmarkSummarize1M(b *testing.B) {
	// 1M customers, 4 transactions each on average, over two years.
	rng := rand.New(rand.NewPCG(13, 0))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var txns []Txn
	for c := range 1_000_000 {
		id := fmt.Sprintf("cust-%07d", c)
		for range 1 + rng.IntN(7) {
			txns = append(txns, Txn{Customer: id, Time: start.Add(time.Duration(rng.IntN(730*24)) * time.Hour), Amount: 5 + 100*rng.Float64()})
		}
	}
	calEnd, holdEnd := start.AddDate(1, 6, 0), start.AddDate(2, 0, 0)
	b.ResetTimer()
	for b.Loop() {
		cs, err := SummarizeHoldout(txns, calEnd, holdEnd, week)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(txns)), "txns")
		b.ReportMetric(float64(len(cs)), "customers")
	}
}
