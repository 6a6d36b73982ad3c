package rule

import (
	"encoding/json"
	"strings"
	"testing"
)

// Scope clauses and conversions read back as written (canonical order:
// source, store, currency; "at location" is "at store"), survive JSON,
// and reach the tree.
func TestScopeRoundTrip(t *testing.T) {
	src := `trait gbp_spend = sum(properties.revenue in GBP) of "Order Completed" in currency ["EUR", USD] from source "webstore" where properties.gift = true in last 30 days
trait glendale_visits = count of "Visit Completed" at location "glendale" all time
segment s {
  performed "Visit Completed" at store ["glendale", "pasadena"] from source "pos-glendale" in last 7 days
  and "Checkout Started" from source "webstore" not followed by "Order Completed" in currency GBP within 4 hours in last 7 days
  and did not perform "Order Completed" in currency JPY all time
}
`
	want := `trait gbp_spend = sum(properties.revenue in GBP) of "Order Completed" from source "webstore" in currency [EUR, USD] where properties.gift = true in last 30 days

trait glendale_visits = count of "Visit Completed" at store "glendale" all time

segment s {
  performed "Visit Completed" from source "pos-glendale" at store ["glendale", "pasadena"] in last 7 days
  and "Checkout Started" from source "webstore" not followed by "Order Completed" in currency GBP within 4 hours in last 7 days
  and did not perform "Order Completed" in currency JPY all time
}
`
	set, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	if got := Format(set); got != want {
		t.Fatalf("Format:\n%s\nwant:\n%s", got, want)
	}
	a := set.Defs[0].Value.Agg
	if a.Convert != "GBP" || strings.Join(a.Scope.Sources, ",") != "webstore" || strings.Join(a.Scope.Currencies, ",") != "EUR,USD" {
		t.Fatalf("tree: convert %q scope %+v", a.Convert, a.Scope)
	}
	if !IsAmount(a) {
		t.Fatal("a converted sum is an amount")
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"scope":{"sources":["webstore"],"currencies":["EUR","USD"]}`) || !strings.Contains(string(data), `"convert":"GBP"`) {
		t.Fatalf("JSON form lacks the scope or conversion: %s", data)
	}
	back, err := ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(back); got != want {
		t.Fatalf("Format(JSON):\n%s\nwant:\n%s", got, want)
	}
}

func TestScopeErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`trait a = count of "X" from source "a" from source "b" all time`, `1:40: the source is limited twice`},
		{`trait a = count of "X" in currency pounds all time`, `1:24: bad currency "pounds"`},
		{`trait a = sum(properties.revenue in gbp) of "X" all time`, `1:11: bad currency "gbp"`},
		{`trait a = count of "X" from source [] all time`, `1:24: from source [] matches no event`},
		{`trait a = count of "X" at store ["a", "a"] all time`, `1:24: at store lists "a" twice`},
		{`trait a = distinct(properties.sku in GBP) of "X" all time`, `1:11: distinct does not add amounts`},
		{`trait a = sum(properties.revenue) of "X" in currency [GBP, USD] all time`, `1:11: sum(properties.revenue) would mix amounts in GBP and USD: convert them into one, sum(properties.revenue in GBP)`},
		{`trait a = count of "X" from source webstore all time`, `1:36: expected a quoted source id`},
	} {
		set, err := Parse(tc.src)
		if err == nil {
			_, err = Check(set, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
	// A converted or scoped sum of one currency, and a sum of quantities
	// in two currencies (not money), are fine.
	for _, src := range []string{
		`trait a = sum(properties.revenue in GBP) of "X" in currency [GBP, USD] all time`,
		`trait a = sum(properties.quantity) of "X" in currency [GBP, USD] all time`,
		`trait a = sum(properties.revenue) of "X" in currency GBP all time`,
	} {
		if _, _, err := Load(src, nil); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestIsAmount(t *testing.T) {
	for path, want := range map[string]bool{
		"properties.revenue": true, "products.price": true, "properties.total": true, "properties.spend": true,
		"properties.quantity": false, "products.quantity": false, "properties.rating": false,
	} {
		if got := IsAmount(&Agg{Func: FnSum, Path: path}); got != want {
			t.Errorf("IsAmount(sum(%s)) = %v", path, got)
		}
	}
	if IsAmount(&Agg{Func: FnCount, Path: "properties.revenue"}) {
		t.Error("a count of amounts is not money")
	}
	if !IsAmount(&Agg{Func: FnSum, Path: "properties.order_value", Convert: "GBP"}) {
		t.Error("a conversion makes any field an amount")
	}
}
