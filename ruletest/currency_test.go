package ruletest

import (
	"strings"
	"testing"
	"testing/fstest"
)

// The workspace currency and rates, events' source and store, and
// amounts written with their currency.
func TestCurrencyScopeAndRates(t *testing.T) {
	src := `currency GBP
rates "1 USD = 0.79 GBP"
define {
  trait spend = sum(properties.revenue) of "Order Completed" all time
  trait all_spend = sum(properties.revenue in GBP) of "Order Completed" all time
  trait york = count of "Order Completed" from source "pos" at store "york" all time
}
at 2026-01-05 10:00
  user 1 "Order Completed" {"revenue": 10}
  user 1 "Order Completed" from "pos" store "york" {"revenue": 20, "currency": "USD"}
  user 1 "Order Completed" store "york" from "web" {"revenue": 5}
  expect user 1 spend = 15.00 GBP
  expect user 1 spend = 15
  expect user 1 all_spend = 30.80 GBP
  expect user 1 york = 1
  expect user 1 spend = 15.00 USD
`
	tt, err := Parse(fstest.MapFS{"t.kilntest": {Data: []byte(src)}}, "t.kilntest")
	if err != nil {
		t.Fatal(err)
	}
	res := tt.Run()
	if len(res.Failures) != 1 {
		t.Fatalf("failures: %v", res.Failures)
	}
	if f := res.Failures[0].String(); !strings.Contains(f, "t.kilntest:16: expected user 1 spend = 15.00 USD at 2026-01-05 10:00:00, found 15.00 GBP") {
		t.Errorf("failure %s", f)
	}
	for _, tc := range []struct{ src, want string }{
		{"define { trait a = count of \"X\" all time }\nat 2026-01-01\ncurrency GBP\n", "t.kilntest:3: currency must come before the first at"},
		{"rates \"1 EUR 0.86 GBP\"\ndefine { trait a = count of \"X\" all time }\n", `t.kilntest:1: rate "1 EUR 0.86 GBP": want "1 EUR = 0.86 GBP"`},
		{"currency pounds\ndefine { trait a = count of \"X\" all time }\n", `default currency "pounds" is not a three-letter code`},
	} {
		_, err := Parse(fstest.MapFS{"t.kilntest": {Data: []byte(tc.src)}}, "t.kilntest")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.src, err, tc.want)
		}
	}
}
