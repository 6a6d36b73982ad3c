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

// Line-item conditions on one order, compiled and interpreted (Naive),
// against answers worked out by hand.
func TestItemConditions(t *testing.T) {
	props := map[string]any{
		"products": []any{
			map[string]any{"sku": "A", "category": "Teaware", "quantity": 20.0, "price": 19.99, "dims": map[string]any{"w": 1.0}},
			map[string]any{"sku": "B", "category": "Gift Sets", "quantity": 4.0, "price": 20.01, "dims": map[string]any{"w": 1.0}},
			map[string]any{"category": "Teaware", "quantity": "lots", "price": 0.1},
			"not an item",
		},
		"huge":  []any{map[string]any{"q": 1e300}, map[string]any{"q": 1.0}},
		"empty": []any{},
	}
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{`sum(products.quantity) >= 24`, true}, // 20 + 4; "lots" is not a number
		{`sum(products.quantity) > 24`, false},
		{`sum(products.price) = 40.1`, true}, // exactly, not 40.099999999999994
		{`sum(products.quantity where products.category = "Teaware") = 20`, true},
		{`avg(products.price where products.category = "Gift Sets") = 20.01`, true},
		{`avg(products.price) = 13.366666666666667`, false}, // 40.1 / 3 does not end
		{`avg(products.price) > 13.36`, true},
		{`avg(products.quantity where products.sku = "Z") != 1`, true}, // no value: only != holds
		{`avg(products.quantity where products.sku = "Z") >= 0`, false},
		{`min(products.quantity) = 4`, true},
		{`max(products.price) = 20.01`, true},
		{`count(products) = 3`, true}, // the string is not an item
		{`count(products.sku) = 2`, true},
		{`count(products where products.price < 1) = 1`, true},
		{`distinct(products.category) = 2`, true},
		{`distinct(products.dims) = 1`, true}, // two equal objects
		{`any(products.category = "Teaware") and any(products.category = "Gift Sets")`, true},
		{`any(products.category = "Teaware" and products.category = "Gift Sets")`, false},
		{`all(products.price < 25)`, true},
		{`all(products.quantity >= 4)`, false},
		{`all(empty.x = 1)`, false}, // no items: not "all"
		{`not any(empty.x = 1)`, true},
		{`sum(empty.q) = 0`, true},
		{`sum(huge.q) > 0`, false}, // overflow compares false
		{`sum(huge.q) != 0`, true},
		{`length(properties.products) = 4`, true},
		{`length(properties.missing) exists`, false},
	} {
		set, err := rule.Parse(`trait t = count of "O" where ` + c.filter + ` all time`)
		if err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if _, err := rule.Check(set, nil); err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		where := set.Defs[0].Value.Agg.Where
		var arr string
		if got := compileFilter(where, &arr, time.UTC).eval(props, nil, nil); got != c.want {
			t.Errorf("compiled %s = %v, want %v", c.filter, got, c.want)
		}
		if got := (&Program{loc: time.UTC}).naiveFilter(where, props, nil, nil); got != c.want {
			t.Errorf("naive %s = %v, want %v", c.filter, got, c.want)
		}
	}
}
