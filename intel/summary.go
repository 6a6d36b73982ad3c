package intel

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Txn is one purchase: who, when, how much. Amount is in the shop's
// currency. A negative Amount is a refund: see Summarize.
type Txn struct {
	Customer string
	Time     time.Time
	Amount   float64
}

// Summary is one customer's purchase history in the form the models use,
// with times in a chosen unit (the "time unit" of the fit, e.g. weeks).
// Field names follow Fader, Hardie and Lee; lifetimes calls them frequency,
// recency, T and monetary_value.
type Summary struct {
	Customer string
	// Frequency (x) is the number of repeat purchases in the calibration
	// period: distinct purchase days after the first one.
	Frequency int
	// Recency (t_x) is the time from the first to the last purchase in the
	// calibration period (0 when Frequency is 0).
	Recency float64
	// Age (T) is the time from the first purchase to the end of the
	// calibration period.
	Age float64
	// Monetary (z̄) is the mean amount of the repeat purchase days (the first
	// purchase is excluded, as in the Gamma-Gamma papers); 0 when Frequency
	// is 0.
	Monetary float64
	// Total is the amount of all calibration purchase days, first included.
	Total float64
	// HoldoutFrequency is the number of purchase days after the calibration
	// period, up to the end of the holdout period (only SummarizeHoldout sets
	// it).
	HoldoutFrequency int
	// HoldoutDuration is the length of the holdout period in time units
	// (0 when there is none).
	HoldoutDuration float64
}

// Validate reports the first impossible value, naming the customer.
func (s Summary) Validate() error {
	switch {
	case s.Frequency < 0:
		return fmt.Errorf("customer %q: frequency %d is negative", s.Customer, s.Frequency)
	case !(s.Age >= 0) || math.IsInf(s.Age, 0):
		return fmt.Errorf("customer %q: age T=%v must be finite and >= 0", s.Customer, s.Age)
	case !(s.Recency >= 0) || s.Recency > s.Age*(1+1e-9):
		return fmt.Errorf("customer %q: recency t_x=%v must be within [0, T=%v]", s.Customer, s.Recency, s.Age)
	case s.Frequency == 0 && s.Recency != 0:
		return fmt.Errorf("customer %q: recency t_x=%v but no repeat purchase (x=0)", s.Customer, s.Recency)
	}
	return nil
}

// Summarize turns raw transactions into per-customer summaries for a
// calibration period ending at calibrationEnd, with times in unit (e.g.
// 7*24*time.Hour for weeks).
//
// Rules (those of the published CDNOW analyses):
//   - transactions are grouped into UTC calendar days; several purchases on
//     the same day count as one purchase day whose amount is their sum;
//   - refunds (Amount < 0) never make a purchase day: on a day with a
//     purchase (Amount >= 0, zero included) they reduce that day's amount,
//     on other days they are ignored, because a late refund cannot be
//     matched to its purchase here (net refunds onto their orders before
//     summarising when the source can). A day whose refunds exceed its
//     purchases has a negative amount; Gamma-Gamma skips customers whose
//     mean spend is not positive;
//   - the calibration period holds the days up to and including
//     calibrationEnd's UTC day; customers whose first purchase is later are
//     left out (they are not yet part of the cohort);
//   - x = purchase days after the first, t_x = last day - first day,
//     T = calibrationEnd's day - first day, each divided by unit.
//
// The result is sorted by customer id.
func Summarize(txns []Txn, calibrationEnd time.Time, unit time.Duration) ([]Summary, error) {
	return summarize(txns, calibrationEnd, time.Time{}, unit, false)
}

// SummarizeHoldout is Summarize plus the holdout figures: for each
// calibration customer, the purchase days after calibrationEnd's day up to
// and including holdoutEnd's day (HoldoutFrequency), and the holdout length
// (HoldoutDuration, the same for every customer).
func SummarizeHoldout(txns []Txn, calibrationEnd, holdoutEnd time.Time, unit time.Duration) ([]Summary, error) {
	if utcDay(holdoutEnd).Before(utcDay(calibrationEnd)) {
		return nil, fmt.Errorf("summarize: holdout end %s is before calibration end %s",
			holdoutEnd.Format(time.DateOnly), calibrationEnd.Format(time.DateOnly))
	}
	return summarize(txns, calibrationEnd, holdoutEnd, unit, true)
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Day is one purchase day of one customer: its UTC calendar day and the
// day's amount (every order that day summed, net of refunds).
type Day struct {
	Day    int32 // days since 1970-01-01, UTC (DayOf)
	Amount float64
}

// DayOf is t's UTC calendar day, counted from 1970-01-01.
func DayOf(t time.Time) int32 { return int32(utcDay(t).Unix() / 86400) }

// SummarizeDays summarises one customer's purchase days, given ascending
// and without repeats, by Summarize's rules (Summarize uses it, so the two
// agree exactly). A zero holdoutEnd means no holdout figures. ok is false
// when there is no day up to calibrationEnd's, or the unit is not positive.
//
// It lets a caller that keeps each customer's days as they arrive (the
// engine does, to rescore a customer on each purchase) summarise the same
// way the fit does, without a list of every transaction.
func SummarizeDays(customer string, days []Day, calibrationEnd, holdoutEnd time.Time, unit time.Duration) (Summary, bool) {
	if unit <= 0 {
		return Summary{}, false
	}
	return summarizeDays(customer, days, DayOf(calibrationEnd), DayOf(holdoutEnd), unit.Seconds(), !holdoutEnd.IsZero())
}

func summarize(txns []Txn, calEnd, holdEnd time.Time, unit time.Duration, holdout bool) ([]Summary, error) {
	if unit <= 0 {
		return nil, fmt.Errorf("summarize: time unit must be positive, got %v", unit)
	}
	for i, t := range txns {
		if math.IsNaN(t.Amount) || math.IsInf(t.Amount, 0) {
			return nil, fmt.Errorf("summarize: transaction %d (customer %q): amount %v is not a number", i, t.Customer, t.Amount)
		}
	}
	type dayTxn struct {
		cust string
		day  int32
		amt  float64
	}
	rows := make([]dayTxn, len(txns))
	for i, t := range txns {
		rows[i] = dayTxn{t.Customer, DayOf(t.Time), t.Amount}
	}
	slices.SortFunc(rows, func(a, b dayTxn) int {
		if c := cmp.Compare(a.cust, b.cust); c != 0 {
			return c
		}
		return cmp.Compare(a.day, b.day)
	})
	calDay, holdDay, u := DayOf(calEnd), DayOf(holdEnd), unit.Seconds()
	var days []Day // reused across customers
	var out []Summary
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].cust == rows[i].cust {
			j++
		}
		// Collapse the customer's rows into days; a day is a purchase day
		// when it has a transaction with Amount >= 0.
		days = days[:0]
		for k := i; k < j; {
			d, purchase := Day{Day: rows[k].day}, false
			for ; k < j && rows[k].day == d.Day; k++ {
				d.Amount += rows[k].amt
				purchase = purchase || rows[k].amt >= 0
			}
			if purchase {
				days = append(days, d)
			}
		}
		i = j
		if s, ok := summarizeDays(rows[j-1].cust, days, calDay, holdDay, u, holdout); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// summarizeDays is SummarizeDays with days as numbers and the unit in
// seconds.
func summarizeDays(customer string, days []Day, calDay, holdDay int32, u float64, holdout bool) (Summary, bool) {
	if len(days) == 0 || days[0].Day > calDay {
		return Summary{}, false // no purchase, or not in the cohort yet
	}
	secs := func(from, to int32) float64 { return float64((int64(to) - int64(from)) * 86400) }
	first := days[0].Day
	s := Summary{Customer: customer, Age: secs(first, calDay) / u, Total: days[0].Amount}
	last, sumRepeat := first, 0.0
	for _, d := range days[1:] {
		switch {
		case d.Day <= calDay:
			s.Total += d.Amount
			s.Frequency++
			sumRepeat += d.Amount
			last = d.Day
		case holdout && d.Day <= holdDay:
			s.HoldoutFrequency++
		}
	}
	s.Recency = secs(first, last) / u
	if s.Frequency > 0 {
		s.Monetary = sumRepeat / float64(s.Frequency)
	}
	if holdout {
		s.HoldoutDuration = secs(calDay, holdDay) / u
	}
	return s, true
}

// countRepeaters returns how many summaries have x > 0.
func countRepeaters(cs []Summary) int {
	n := 0
	for _, c := range cs {
		if c.Frequency > 0 {
			n++
		}
	}
	return n
}
