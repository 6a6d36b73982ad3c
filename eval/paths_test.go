package eval

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// Explain shows the values paths and line-item conditions read.
func TestExplainPathsAndItems(t *testing.T) {
	set, err := rule.Parse(`
segment trade {
  traits.company exists and traits.company.name = "Teahouse Ltd" and length(traits.tags) >= 2
  and count of "Order Completed" where sum(products.quantity) >= 24 in last 365 days >= 2
}`)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	prof := &Profile{Traits: map[string]any{"company": map[string]any{"name": "Teahouse Ltd", "size": 12.0}, "tags": []any{"trade"}}}
	st := p.NewState()
	order := func(at time.Time, qty ...float64) {
		var items []any
		for _, q := range qty {
			items = append(items, map[string]any{"quantity": q})
		}
		p.Apply(st, prof, &kiln.Event{Type: kiln.Track, Name: "Order Completed", Timestamp: at, Properties: map[string]any{"products": items}}, now)
	}
	order(now.Add(-48*time.Hour), 20, 4)  // 24: counts
	order(now.Add(-24*time.Hour), 12, 11) // 23: does not
	order(now.Add(-400*24*time.Hour), 30) // too old
	node, err := p.Explain(st, prof, "trade", now)
	if err != nil {
		t.Fatal(err)
	}
	var whys []string
	for _, k := range node.Children {
		whys = append(whys, k.Condition+": "+k.Why)
	}
	got := strings.Join(whys, "\n")
	for _, want := range []string{
		`traits.company exists: value an object of 2 keys; needs exists`,
		`traits.company.name = "Teahouse Ltd": value Teahouse Ltd; needs = "Teahouse Ltd"`,
		`length(traits.tags) >= 2: value 1; needs >= 2`,
		`count of "Order Completed" where sum(products.quantity) >= 24 in last 365 days >= 2: value 1; needs >= 2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explain lacks %q:\n%s", want, got)
		}
	}
	if node.Holds {
		t.Error("trade holds with one tag and one trade-size order")
	}
}

// Absorb replaces a nested trait whole: a later company without a name
// leaves none.
func TestAbsorbReplacesNestedTraits(t *testing.T) {
	pr := &Profile{}
	pr.Absorb(&kiln.Event{Type: kiln.Identify, Traits: map[string]any{"company": map[string]any{"name": "Teahouse Ltd"}}})
	pr.Absorb(&kiln.Event{Type: kiln.Identify, Traits: map[string]any{"company": map[string]any{"size": 12.0}}})
	env := condEnv{prof: pr}
	if got := env.trait([]string{"company", "name"}); got != nil {
		t.Errorf("company.name = %v after a company without a name", got)
	}
	if got := env.trait([]string{"company", "size"}); got != 12.0 {
		t.Errorf("company.size = %v, want 12", got)
	}
}
