package eval

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

func TestParseRates(t *testing.T) {
	r, err := ParseRates("1 USD = 0.79 GBP, EUR=0.860 GBP ,")
	if err != nil {
		t.Fatal(err)
	}
	if r.String() != "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP" {
		t.Errorf("String() = %q", r.String())
	}
	if n, ok := r.rate("EUR", "GBP"); !ok || numText(n) != "0.86" {
		t.Errorf("EUR->GBP = %v %v", n, ok)
	}
	if _, ok := r.rate("GBP", "EUR"); ok {
		t.Error("a rate converts one way only")
	}
	for _, tc := range []struct{ in, want string }{
		{"EUR 0.86 GBP", `rate "EUR 0.86 GBP": want "1 EUR = 0.86 GBP"`},
		{"1 euro = 0.86 GBP", `"euro" is not a three-letter currency code`},
		{"1 EUR = -2 GBP", `"-2" is not a positive number`},
		{"1 EUR = 1 EUR", `converts EUR into itself`},
		{"1 EUR = 0.86 GBP, 1 EUR = 0.87 GBP", `EUR into GBP is given twice`},
	} {
		if _, err := ParseRates(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRates(%q) = %v, want %s", tc.in, err, tc.want)
		}
	}
}

// Arithmetic that adds two currencies does not compile; a ratio or a
// per-order amount does, and keeps (or drops) the currency.
func TestCurrencyArithmetic(t *testing.T) {
	src := `trait gbp = sum(properties.revenue) of "Order Completed" in currency GBP all time
trait usd = sum(properties.revenue) of "Order Completed" in currency USD all time
trait orders = count of "Order Completed" all time
trait per_order = gbp / orders
trait ratio = gbp / usd
segment both {
  gbp + usd > 100
}
`
	set, err := rule.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(set, Options{})
	want := `7:3: gbp + usd adds gbp (GBP) and usd (USD): amounts in two currencies; convert one, e.g. sum(properties.revenue in GBP)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	set.Defs = set.Defs[:5]
	p, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Apply(st, nil, track("Order Completed", now, map[string]any{"revenue": 30, "currency": "GBP"}), now)
	p.Apply(st, nil, track("Order Completed", now, map[string]any{"revenue": 15, "currency": "USD"}), now)
	got := p.TraitValues(st)
	if got["per_order"] != (Number{Text: "15.00", Currency: "GBP"}) || got["ratio"] != (Number{Text: "2"}) || got["orders"] != (Number{Text: "2"}) {
		t.Errorf("traits %v", got)
	}
}

// The check the engine runs when definitions are applied: amounts an
// aggregate would leave out are errors at the aggregate's line:column.
func TestCurrencyCheck(t *testing.T) {
	src := `trait spend = sum(properties.revenue) of "Order Completed" all time
trait web_spend = sum(properties.revenue) of "Order Completed" from source "web" all time
trait gbp_spend = sum(properties.revenue) of "Order Completed" in currency GBP all time
trait in_gbp = sum(properties.revenue in GBP) of "Order Completed" all time
trait units = sum(properties.quantity) of "Order Completed" all time
trait visits = sum(properties.spend) of "Visit Completed" all time
`
	set, err := rule.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	rates, _ := ParseRates("1 EUR = 0.86 GBP")
	p, err := Compile(set, Options{Currency: "GBP", Rates: rates})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(source string, props map[string]any) *kiln.Event {
		e := track("Order Completed", time.Now(), props)
		e.SourceID = source
		return e
	}
	chk := p.NewCurrencyCheck()
	chk.Note(ev("web", map[string]any{"revenue": 10}))                    // GBP by default
	chk.Note(ev("web", map[string]any{"quantity": 2, "currency": "JPY"})) // no amount
	chk.Note(track("Visit Completed", time.Now(), map[string]any{"spend": 5, "currency": "GBP"}))
	if err := chk.Err(); err != nil {
		t.Fatalf("%v", err)
	}
	chk.Note(ev("web", map[string]any{"revenue": 10, "currency": "EUR"}))
	chk.Note(ev("web", map[string]any{"revenue": 20, "currency": "eur"}))
	chk.Note(ev("pos", map[string]any{"revenue": 1000, "currency": "JPY"}))
	err = chk.Err()
	if err == nil {
		t.Fatal("no error for euros and yen in a pounds sum")
	}
	msgs := strings.Split(err.Error(), "\n")
	want := []string{
		`1:15: sum(properties.revenue) of "Order Completed" all time reads amounts in GBP, the default currency, but "Order Completed" events received hold amounts in EUR (2 events), JPY (1 event) too: say which currency`,
		`2:19: sum(properties.revenue) of "Order Completed" from source "web" all time reads amounts in GBP, the default currency, but "Order Completed" events received hold amounts in EUR (2 events) too`,
		`4:16: sum(properties.revenue in GBP) of "Order Completed" all time converts amounts into GBP, but there is no rate from JPY (1 event): give one (1 JPY = ... GBP)`,
	}
	if len(msgs) != len(want) {
		t.Fatalf("errors:\n%s", err)
	}
	for i := range want {
		if !strings.HasPrefix(msgs[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s...", i, msgs[i], want[i])
		}
	}
}

// Scoped conditions explain themselves in their own words, with values.
func TestExplainScope(t *testing.T) {
	src := `segment york { performed "Order Completed" from source "pos" at store "york" in currency GBP in last 30 days and sum(properties.revenue in GBP) of "Order Completed" at store "york" in last 30 days >= 20 }`
	set, err := rule.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	rates, _ := ParseRates("1 USD = 0.79 GBP")
	p, err := Compile(set, Options{Currency: "GBP", Rates: rates})
	if err != nil {
		t.Fatal(err)
	}
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range []struct {
		source, store string
		props         map[string]any
	}{
		{"pos", "york", map[string]any{"revenue": 10}},
		{"web", "york", map[string]any{"revenue": 12.66, "currency": "USD"}}, // 10.0014, 10.00 GBP
		{"pos", "leeds", map[string]any{"revenue": 50}},
	} {
		ev := track("Order Completed", now, e.props)
		ev.SourceID, ev.Store = e.source, e.store
		p.Apply(st, nil, ev, now)
	}
	n, err := p.Explain(st, nil, "york", now)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Holds || len(n.Children) != 2 {
		t.Fatalf("explain %+v", n)
	}
	if c := n.Children[0]; c.Condition != `performed "Order Completed" from source "pos" at store "york" in currency GBP in last 30 days` || c.Why != "value 1; needs > 0" {
		t.Errorf("performed: %+v", c)
	}
	if c := n.Children[1]; c.Condition != `sum(properties.revenue in GBP) of "Order Completed" at store "york" in last 30 days >= 20` || c.Why != "value 20.00 GBP; needs >= 20.00 GBP" {
		t.Errorf("sum: %+v", c)
	}
}
