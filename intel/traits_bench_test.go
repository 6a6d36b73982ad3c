package intel

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// syntheticHistories makes n shop customers with about ten purchases of
// one to five lines each over two years (SKUs from a 500-piece catalog in
// 6 categories and 20 patterns, a tenth of the orders gifts), and every
// tenth customer a restaurant guest with visits, ratings and RSVPs.
func syntheticHistories(n int) []CustomerHistory {
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cats := []string{"dinnerware", "teaware", "glassware", "serveware", "cutlery", "gift sets"}
	skus := make([]Line, 500)
	for i := range skus {
		skus[i] = Line{SKU: fmt.Sprintf("SKU-%03d", i), Name: fmt.Sprintf("Piece %d", i), Category: cats[i%len(cats)], Price: float64(5 + i%60)}
		if i%3 != 0 {
			skus[i].Pattern = fmt.Sprintf("Pattern %d", i%20)
		}
	}
	dishes := make([]Line, 40)
	for i := range dishes {
		dishes[i] = Line{SKU: fmt.Sprintf("dish-%d", i), Name: fmt.Sprintf("Dish %d", i), Category: cats[i%5], Price: 20}
	}
	hs := make([]CustomerHistory, n)
	for c := range hs {
		h := CustomerHistory{Customer: fmt.Sprintf("c%d", c), Traits: map[string]any{"email": fmt.Sprintf("c%d@gmail.com", c)}}
		t := start.Add(time.Duration(r.Float64() * 200 * 24 * float64(time.Hour)))
		for k := 4 + r.IntN(13); k > 0; k-- {
			p := Purchase{Time: t, Gift: r.IntN(10) == 0}
			for l := 1 + r.IntN(5); l > 0; l-- {
				ln := skus[r.IntN(20)*25+r.IntN(25)]
				ln.Quantity = float64(1 + r.IntN(4))
				p.Lines = append(p.Lines, ln)
			}
			h.Purchases = append(h.Purchases, p)
			t = t.Add(time.Duration((1 + r.ExpFloat64()*50) * 24 * float64(time.Hour)))
		}
		if c%10 == 0 {
			t = start
			for k := 2 + r.IntN(20); k > 0; k-- {
				p := Purchase{Time: t, Visit: true, Location: fmt.Sprint("L", r.IntN(3)), PartySize: 1 + r.IntN(6)}
				for l := 2 + r.IntN(5); l > 0; l-- {
					d := dishes[r.IntN(len(dishes))]
					d.Quantity = 1
					p.Lines = append(p.Lines, d)
				}
				h.Purchases = append(h.Purchases, p)
				h.Ratings = append(h.Ratings, Rating{Time: t, Value: float64(1 + r.IntN(5))})
				t = t.Add(time.Duration((1 + r.ExpFloat64()*30) * 24 * float64(time.Hour)))
			}
			h.RSVPs = []time.Time{start}
		}
		h.Purchases = upTo(h.Purchases, start.AddDate(5, 0, 0)) // time order
		hs[c] = h
	}
	return hs
}

// BenchmarkCustomerTraits100k: LearnPopulation and CustomerTraits for
// 100,000 customers with about ten purchases each, as a refit runs them.
func BenchmarkCustomerTraits100k(b *testing.B) {
	hs := syntheticHistories(100_000)
	asOf := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	purchases := 0
	for _, h := range hs {
		purchases += len(h.Purchases)
	}
	b.ReportMetric(float64(purchases)/float64(len(hs)), "purchases/customer")
	b.ResetTimer()
	cpu := cpuTime()
	var learn, score time.Duration
	for b.Loop() {
		t0 := time.Now()
		pop := LearnPopulation(hs, asOf)
		t1 := time.Now()
		learn += t1.Sub(t0)
		n := 0
		for _, h := range hs {
			n += len(CustomerTraits(h, pop, asOf))
		}
		score += time.Since(t1)
		if n == 0 {
			b.Fatal("no traits")
		}
	}
	b.ReportMetric(learn.Seconds()/float64(b.N), "learn-s/op")
	b.ReportMetric(score.Seconds()/float64(b.N), "traits-s/op")
	if c := cpuTime() - cpu; c > 0 {
		b.ReportMetric(c.Seconds()/float64(b.N), "cpu-s/op")
	}
}
