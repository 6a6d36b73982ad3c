package intel

import "math"

// HoldoutRow compares predicted and actual holdout purchases for the
// customers with one calibration frequency (the last row holds x ≥ its
// Frequency), as in FHL 2005, figure 4.
type HoldoutRow struct {
	Frequency int // calibration x; the last row is "this many or more"
	Customers int
	Predicted float64 // sum of E[Y(holdout) | history]
	Actual    int     // sum of holdout purchase days
}

// HoldoutCheck is the out-of-sample check of a BG/NBD fit: the conditional
// expectation for each customer's holdout period against what they did.
type HoldoutCheck struct {
	Customers int
	Duration  float64 // holdout length in time units (the longest, if they differ)
	Predicted float64
	Actual    int
	// RelativeError is (Predicted - Actual) / Actual; nil when there was no
	// holdout purchase.
	RelativeError *float64
	ByFrequency   []HoldoutRow // x = 0, 1, ..., 6 and 7+
}

// holdoutBuckets is the number of frequency rows; the last is open-ended.
const holdoutBuckets = 8

// CheckHoldout predicts each customer's holdout purchases with
// ConditionalExpectedPurchases over its HoldoutDuration and compares them
// with HoldoutFrequency. Customers without a holdout period are skipped.
func (m BGNBD) CheckHoldout(cs []Summary) HoldoutCheck {
	h := HoldoutCheck{ByFrequency: make([]HoldoutRow, holdoutBuckets)}
	for i := range h.ByFrequency {
		h.ByFrequency[i].Frequency = i
	}
	for _, c := range cs {
		if c.HoldoutDuration <= 0 {
			continue
		}
		pred := m.ConditionalExpectedPurchases(c, c.HoldoutDuration)
		row := &h.ByFrequency[min(c.Frequency, holdoutBuckets-1)]
		row.Customers++
		row.Predicted += pred
		row.Actual += c.HoldoutFrequency
		h.Customers++
		h.Predicted += pred
		h.Actual += c.HoldoutFrequency
		h.Duration = math.Max(h.Duration, c.HoldoutDuration)
	}
	if h.Actual > 0 {
		e := (h.Predicted - float64(h.Actual)) / float64(h.Actual)
		h.RelativeError = &e
	}
	return h
}
