package intel

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReportCDNOW(t *testing.T) {
	cs, err := SummarizeHoldout(cdnowTxns(t), cdnowCalEnd, cdnowHoldEnd, week)
	if err != nil {
		t.Fatal(err)
	}
	r := BuildReport(cs, FitOptions{})
	text := r.String()
	t.Logf("\n%s", text)
	if r.Verdict != VerdictOK || r.Customers != 2357 || r.Repeaters != 946 {
		t.Fatalf("verdict %s, customers %d, repeaters %d", r.Verdict, r.Customers, r.Repeaters)
	}
	for _, want := range []string{
		"verdict: ok",
		"customers: 2357, with repeat purchases: 946",
		"r = 0.2426  alpha = 4.4136  a = 0.7929  b = 2.4259", // the published values,
		"p = 6.2",
		"holdout (39 time units, 2357 customers)",
		"1882 actual",
		"4 of 4 starts agree",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// In-sample, the fitted model reproduces the calibration repeat purchases.
	within(t, "calibration expected repeats", r.Calibration.Expected, float64(r.Calibration.RepeatPurchases), 0.02)

	// The CLI may print JSON: the report must marshal.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.BGNBD.Params != r.BGNBD.Params {
		t.Errorf("JSON round trip: %v", err)
	}
}

func TestReportThinMarshals(t *testing.T) {
	r := BuildReport([]Summary{{Customer: "a", Age: 3}, {Customer: "b", Frequency: 1, Recency: 1, Age: 3, Monetary: 5}}, FitOptions{})
	if r.Verdict != VerdictTooThin {
		t.Errorf("verdict %s", r.Verdict)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("thin report does not marshal: %v", err)
	}
	if !strings.Contains(r.String(), "only 1 repeat customers among 2 customers, need at least 50") {
		t.Errorf("report text:\n%s", r)
	}
}
