package intel_test

import (
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln/intel"
)

// Fit the models on a customer base and score one customer.
func Example() {
	// A simulated base stands in for Summarize(transactions, calibrationEnd, week).
	cs := intel.Simulate(intel.BGNBD{R: 0.8, Alpha: 6, A: 1.2, B: 3.5}, intel.GammaGamma{P: 4, Q: 5, Gamma: 30},
		intel.SimOptions{N: 3000, AgeMin: 26, AgeMax: 78, Seed: 1})
	rep := intel.BuildReport(cs, intel.FitOptions{})
	fmt.Println("verdict:", rep.Verdict)

	bg, gg := rep.BGNBD.Params, rep.Spend.Params
	regular := intel.Summary{Frequency: 12, Recency: 50, Age: 52, Monetary: 40}
	lapsed := intel.Summary{Frequency: 12, Recency: 10, Age: 52, Monetary: 40}
	fmt.Println("regular more likely alive:", bg.ProbAlive(regular) > bg.ProbAlive(lapsed))
	clv := intel.CLV(bg, gg, regular, intel.CLVOptions{Periods: 12, PeriodLength: 4.345, DiscountRate: 0.01})
	fmt.Println("regular worth more than lapsed:", clv > intel.CLV(bg, gg, lapsed, intel.CLVOptions{Periods: 12, PeriodLength: 4.345, DiscountRate: 0.01}))
	// Output:
	// verdict: ok
	// regular more likely alive: true
	// regular worth more than lapsed: true
}

// Summaries from raw transactions: same-day purchases are one purchase day.
func ExampleSummarize() {
	day := func(d int) time.Time { return time.Date(2024, 1, d, 12, 0, 0, 0, time.UTC) }
	txns := []intel.Txn{
		{Customer: "ann", Time: day(1), Amount: 20},
		{Customer: "ann", Time: day(8), Amount: 30},
		{Customer: "ann", Time: day(8), Amount: 10},
		{Customer: "ann", Time: day(15), Amount: 50},
	}
	cs, _ := intel.Summarize(txns, day(29), 7*24*time.Hour)
	c := cs[0]
	fmt.Printf("x=%d t_x=%.0f T=%.0f mean repeat spend=%.0f\n", c.Frequency, c.Recency, c.Age, c.Monetary)
	// Output: x=2 t_x=2 T=4 mean repeat spend=45
}

// RFM scores and named groups.
func ExampleScoreRFM() {
	in := []intel.RFMInput{
		{Recency: 2, Frequency: 20, Monetary: 900}, // bought yesterday, often, a lot
		{Recency: 300, Frequency: 1, Monetary: 15}, // once, long ago
		{Recency: 30, Frequency: 4, Monetary: 120},
		{Recency: 200, Frequency: 12, Monetary: 700},
		{Recency: 10, Frequency: 1, Monetary: 40},
	}
	scores, _ := intel.ScoreRFM(in, intel.DefaultRFMConfig())
	for _, s := range scores {
		fmt.Printf("R%d F%d M%d %s\n", s.R, s.F, s.M, s.Segment)
	}
	// Output:
	// R5 F5 M5 Champions
	// R1 F1 M1 Lost
	// R3 F3 M3 Loyal
	// R2 F4 M4 At Risk
	// R4 F1 M2 Promising
}
