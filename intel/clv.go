package intel

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// CLVOptions sets the horizon and discounting of CLV.
type CLVOptions struct {
	// Periods is the number of discounting periods in the horizon (e.g. 12
	// months); 0 means 12.
	Periods int
	// PeriodLength is one period in the fit's time unit (e.g. 30.4375/7 ≈
	// 4.348 for months when the unit is weeks; lifetimes uses 4.345).
	PeriodLength float64
	// DiscountRate is the discount rate per period (e.g. 0.01 a month).
	DiscountRate float64
}

func (o CLVOptions) periods() int {
	if o.Periods > 0 {
		return o.Periods
	}
	return 12
}

// Validate names the first bad field.
func (o CLVOptions) Validate() error {
	switch {
	case o.Periods < 0:
		return fmt.Errorf("clv: Periods %d is negative", o.Periods)
	case !(o.PeriodLength > 0) || math.IsInf(o.PeriodLength, 0):
		return fmt.Errorf("clv: PeriodLength %v must be a positive number of time units", o.PeriodLength)
	case !(o.DiscountRate > -1) || math.IsInf(o.DiscountRate, 0):
		return fmt.Errorf("clv: DiscountRate %v must be > -1", o.DiscountRate)
	}
	return nil
}

// CLV is the discounted expected spend of the customer over the horizon,
// the method of lifetimes' customer_lifetime_value:
//
//	CLV = Σ_{i=1..N} E[Z] · (E[Y(iL)] - E[Y((i-1)L)]) / (1+d)^i
//
// with E[Y(t)] BG/NBD's ConditionalExpectedPurchases, E[Z] Gamma-Gamma's
// ExpectedSpend, L the period length and d the per-period discount rate:
// the purchases expected in each period, valued at the expected spend and
// discounted to today at the end of their period. Options must be valid
// (see CLVOptions.Validate); NaN when the expected spend is undefined.
func CLV(bg BGNBD, gg GammaGamma, c Summary, o CLVOptions) float64 {
	return gg.ExpectedSpend(c) * discountedPurchases(bg, c, o)
}

// discountedPurchases is Σ_i (E[Y(iL)] - E[Y((i-1)L)]) / (1+d)^i.
func discountedPurchases(bg BGNBD, c Summary, o CLVOptions) float64 {
	pa := bg.ProbAlive(c)
	if pa == 0 {
		return 0
	}
	prev, sum, disc := 0.0, 0.0, 1.0
	for i := 1; i <= o.periods(); i++ {
		cum := bg.expectedIfAlive(c, float64(i)*o.PeriodLength)
		disc /= 1 + o.DiscountRate
		sum += (cum - prev) * disc
		prev = cum
	}
	return pa * sum
}

// Score is everything the models say about one customer.
type Score struct {
	Customer  string
	ProbAlive float64
	ChurnRisk float64
	// ExpectedPurchases is E[Y(Horizon) | history].
	ExpectedPurchases float64
	// NextPurchaseWait is the median wait to the next purchase if alive
	// (BGNBD.NextPurchaseWait), in time units after the end of the history.
	NextPurchaseWait float64
	// HasSpend says whether ExpectedSpend and CLV are set: false without a
	// spend model, or when the spend model cannot value this customer (q ≤ 1
	// and no repeat purchase). They are then 0.
	HasSpend bool
	// ExpectedSpend is the expected value per future purchase.
	ExpectedSpend float64
	// CLV is the discounted expected spend over the CLV horizon.
	CLV float64
}

// ScoreOptions sets the prediction horizon and CLV method for ScoreAll.
type ScoreOptions struct {
	Horizon float64 // for ExpectedPurchases, in time units
	CLV     CLVOptions
}

// ScoreAll scores every customer, in parallel on all CPUs. gg may be nil
// (no spend model; HasSpend is then false). The result is in the order of
// cs and has no NaN or infinite values.
func ScoreAll(bg BGNBD, gg *GammaGamma, cs []Summary, o ScoreOptions) ([]Score, error) {
	if gg != nil {
		if err := o.CLV.Validate(); err != nil {
			return nil, err
		}
	}
	if !(o.Horizon >= 0) {
		return nil, fmt.Errorf("score: horizon %v must be >= 0", o.Horizon)
	}
	out := make([]Score, len(cs))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(cs)/1000))
	var wg sync.WaitGroup
	chunk := (len(cs) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(cs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				c := cs[i]
				pa := bg.ProbAlive(c)
				s := Score{
					Customer:          c.Customer,
					ProbAlive:         pa,
					ChurnRisk:         bg.ChurnRisk(c),
					ExpectedPurchases: bg.ConditionalExpectedPurchases(c, o.Horizon),
					NextPurchaseWait:  bg.NextPurchaseWait(c),
				}
				if gg != nil {
					if spend := gg.ExpectedSpend(c); !math.IsNaN(spend) {
						s.HasSpend, s.ExpectedSpend = true, spend
						s.CLV = spend * discountedPurchases(bg, c, o.CLV)
					}
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	return out, nil
}
