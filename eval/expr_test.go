package eval

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// The motivating rule: an order shipped to a name other than the
// customer's own. The filter reads the profile's names as each order
// arrives; renaming the customer later does not change which orders
// were gifts, incrementally, naively and when rebuilt.
func TestGiftOrdersByShippingName(t *testing.T) {
	p := mustCompile(t, `
trait gift_orders = count of "Order Completed" where lower(trim(properties.shipping_address.name)) != lower(traits.first_name + " " + traits.last_name) in last 365 days
segment gift_buyer { performed "Order Completed" where properties.shipping_address.name != traits.first_name + " " + traits.last_name in last 365 days }
segment own_name { count of "Order Completed" where upper(trim(properties.shipping_address.name)) = upper(traits.first_name + " " + traits.last_name) all time >= 2 }
`, time.UTC)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := p.NewState()
	prof := &Profile{}
	var events []*kiln.Event
	apply := func(ev *kiln.Event) Result {
		prof.Absorb(ev)
		events = append(events, ev)
		return p.Apply(st, prof, ev, now)
	}
	order := func(at time.Time, shipTo any) *kiln.Event {
		props := map[string]any{"revenue": 20.0}
		if shipTo != nil {
			props["shipping_address"] = map[string]any{"name": shipTo, "city": "York"}
		}
		return track("Order Completed", at, props)
	}
	// Before the profile has names, nothing is known: no gift.
	apply(order(now.Add(-72*time.Hour), "Bob Smith"))
	apply(&kiln.Event{Type: kiln.Identify, Timestamp: now.Add(-71 * time.Hour), Traits: map[string]any{"first_name": "Ann", "last_name": "Lee"}})
	apply(order(now.Add(-70*time.Hour), "Ann Lee"))
	apply(order(now.Add(-69*time.Hour), nil)) // no shipping name: unknown, no gift
	if member(t, p, st, "gift_buyer") {
		t.Fatal("gift_buyer before any order shipped to someone else")
	}
	if res := apply(order(now.Add(-68*time.Hour), "Bob Smith")); changed(res, "gift_buyer") != "entered" {
		t.Fatalf("an order shipped to Bob Smith by Ann Lee: %+v", res.Changed)
	}
	// Her own name written differently is hers: not a gift once trimmed
	// and lowered.
	if res := apply(order(now.Add(-67*time.Hour), " ann LEE ")); changed(res, "own_name") != "entered" {
		t.Errorf(`upper(trim(" ann LEE ")) should equal upper("Ann" + " " + "Lee"): %+v`, res.Changed)
	}
	// She renames herself Bob Smith: the earlier order stays a gift
	// (decided as it arrived), and a new order to Bob Smith is not one.
	apply(&kiln.Event{Type: kiln.Identify, Timestamp: now.Add(-1 * time.Hour), Traits: map[string]any{"first_name": "Bob", "last_name": "Smith"}})
	apply(order(now.Add(-30*time.Minute), "Bob Smith"))
	if got := p.TraitValues(st)["gift_orders"]; got != nv("1") {
		t.Errorf("gift_orders = %v, want 1", got)
	}
	// Two raw gifts: Bob Smith, and " ann LEE " (not her name as written).
	node, err := p.Explain(st, prof, "gift_buyer", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := `value 2; needs > 0; its filter reads traits.first_name (now "Bob"), traits.last_name (now "Smith") as each event arrived`; !node.Holds || node.Why != want {
		t.Errorf("explain gift_buyer: %v %q, want %q", node.Holds, node.Why, want)
	}
	snap := p.Naive(events, prof, now)
	if snap.Traits["gift_orders"] != nv("1") || !snap.Segments["gift_buyer"] || !snap.Segments["own_name"] {
		t.Errorf("naive disagrees: %v %v", snap.Traits, snap.Segments)
	}
	st2, _ := p.Rebuild(events, prof, now)
	if got := p.TraitValues(st2)["gift_orders"]; got != nv("1") {
		t.Errorf("rebuilt gift_orders = %v, want 1", got)
	}
	// Read with the final names for every order instead, the answer
	// would differ: the orders to Ann Lee would be gifts, those to Bob
	// Smith not.
	final := make([]map[string]any, len(events))
	for i := range final {
		final[i] = prof.Traits
	}
	if got := p.NaiveAt(events, final, prof, now).Traits["gift_orders"]; got != nv("2") {
		t.Errorf("with the final names for every order gift_orders = %v, want 2 (the two to Ann Lee)", got)
	}
}

// Conditions compare computed traits, profile traits and constants,
// with functions, and Explain shows both sides' values.
func TestConditionExpressions(t *testing.T) {
	p := mustCompile(t, `
trait orders = count of "Order Completed" all time
trait last_city = last(properties.city) of "Order Completed" all time
segment birthday_in_december { month(traits.birthday) = 12 and day_of_week(traits.birthday) = 7 }
segment more_orders_than_letters { orders > length(traits.first_name) }
segment moved { lower(last_city) != lower(traits.home_city) }
segment long_time { days_between(traits.created_at, traits.last_seen) >= 365 }
`, time.UTC)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := p.NewState()
	// 2024-12-01 was a Sunday.
	prof := &Profile{Traits: map[string]any{"birthday": "2024-12-01", "first_name": "Al", "home_city": "york",
		"created_at": "2025-05-01T23:30:00Z", "last_seen": "2026-05-01"}}
	p.ApplyProfile(st, prof, now)
	for _, seg := range []string{"birthday_in_december", "long_time"} {
		if !member(t, p, st, seg) {
			t.Errorf("not in %s", seg)
		}
	}
	if member(t, p, st, "moved") {
		t.Error("moved without an order: the last city is unknown, nothing compares")
	}
	for i, city := range []string{"York", "Leeds"} {
		p.Apply(st, prof, track("Order Completed", now.Add(time.Duration(i-5)*time.Minute), map[string]any{"city": city}), now)
		if got, want := member(t, p, st, "moved"), city == "Leeds"; got != want {
			t.Errorf("after an order in %s: moved = %v", city, got)
		}
	}
	if member(t, p, st, "more_orders_than_letters") {
		t.Error("2 orders are not more than the 2 letters of Al")
	}
	p.Apply(st, prof, track("Order Completed", now.Add(-time.Minute), nil), now)
	if !member(t, p, st, "more_orders_than_letters") {
		t.Error("3 orders are more than the 2 letters of Al")
	}
	prof.Traits["first_name"] = "Alice"
	if res := p.ApplyProfile(st, prof, now); changed(res, "more_orders_than_letters") != "exited" {
		t.Errorf("renamed Alice: %+v", res.Changed)
	}
	node, err := p.Explain(st, prof, "moved", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := `value leeds; needs != "york", the value of lower(traits.home_city)`; !node.Holds || !strings.Contains(node.Why, want) {
		t.Errorf("explain moved: %v %q, want %q", node.Holds, node.Why, want)
	}
	snap := p.Naive(nil, prof, now)
	if snap.Segments["birthday_in_december"] != true || snap.Segments["long_time"] != true {
		t.Errorf("naive: %v", snap.Segments)
	}
}

// A filter comparison from JSON with a literal value reads it as the
// text form does, a constant right side: a missing value compares false,
// != included.
func TestJSONCompareWithValueIsAConstantRightSide(t *testing.T) {
	set, err := rule.ParseJSON([]byte(`{"definitions": [{"kind": "trait", "name": "n", "value": {"op": "aggregate", "aggregate": {
  "func": "count", "event": "A", "window": {"kind": "all"},
  "where": {"op": "compare", "left": {"op": "call", "func": "lower", "args": [{"op": "property", "name": "properties.s"}]}, "cmp": "!=", "value": "x"}}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	text, err := rule.Parse(rule.Format(set))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Compile(text, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	events := []*kiln.Event{track("A", now, map[string]any{"s": "Y"}), track("A", now, map[string]any{"s": "X"}), track("A", now, nil)}
	for _, prog := range []*Program{p, q} {
		st := prog.NewState()
		for _, ev := range events {
			prog.Apply(st, nil, ev, now)
		}
		if got := prog.TraitValues(st)["n"]; got != nv("1") {
			t.Errorf("%s: n = %v, want 1 (only Y: X is x lowered, and a missing s compares false)", rule.Format(prog.Definitions()), got)
		}
		if got := prog.Naive(events, nil, now).Traits["n"]; got != nv("1") {
			t.Errorf("naive n = %v, want 1", got)
		}
	}
}

// Comparing amounts in two currencies is an error, as adding them is; an
// amount compared with a count or with an amount in its own currency is
// not.
func TestCompareAmountsInTwoCurrencies(t *testing.T) {
	base := `trait gbp = sum(properties.revenue) of "Order Completed" in currency GBP all time
trait usd = sum(properties.revenue) of "Order Completed" in currency USD all time
trait gbp_max = max(properties.revenue) of "Order Completed" in currency GBP all time
trait orders = count of "Order Completed" all time
`
	set, err := rule.Parse(base + "segment s {\n  gbp > usd * 2\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := `6:3: gbp > usd * 2 compares amounts in two currencies (GBP and USD); convert one, e.g. sum(properties.revenue in GBP)`
	if _, err := Compile(set, Options{}); err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	for _, ok := range []string{"gbp >= gbp_max * 2", "gbp > orders", "gbp / usd > orders"} {
		set, err := rule.Parse(base + "segment s { " + ok + " }\n")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Compile(set, Options{}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
