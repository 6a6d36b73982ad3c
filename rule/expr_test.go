package rule

import (
	"encoding/json"
	"strings"
	"testing"
)

// Expressions parse into comparisons of two sides, check, format back to
// the text as written and survive the JSON form; a property compared
// with a literal keeps the plain form.
func TestExpressionsRoundTrip(t *testing.T) {
	src := `trait gift_orders = count of "Order Completed" where properties.shipping_address.name != traits.first_name + " " + traits.last_name in last 365 days
trait local = count of "Order Completed" where lower(trim(properties.city)) = lower(traits.home_location) and length(properties.note) > 3 all time
trait above_list = count of "Order Completed" where products.price * products.quantity > properties.total / 2 all time
trait gift = count of "Order Completed" where properties.gift = true all time
trait late = count of "Order Completed" where days_between(properties.ordered_at, properties.delivered_at) >= 3 and month(properties.ordered_at) in [11, 12] all time
trait weekend = count of "Order Completed" where day_of_week(properties.ordered_at) >= 6 and upper(properties.coupon) contains "XMAS" all time
segment birthday_month {
  month(traits.birthday) = month(traits.created_at)
  and gift_orders > length(traits.first_name) - 1
}
segment named {
  traits.first_name + " " + traits.last_name != traits.company
  and day(traits.birthday) = 1
}
`
	set, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, DemoSchema); err != nil {
		t.Fatal(err)
	}
	text := Format(set)
	for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "}" || strings.HasPrefix(line, "segment") || strings.HasPrefix(line, "and ") {
			continue
		}
		if !strings.Contains(text, line) {
			t.Errorf("not formatted back as written: %s\n%s", line, text)
		}
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(back); got != text {
		t.Errorf("text -> JSON -> text changed:\n%s\nwant\n%s", got, text)
	}
	again, err := Parse(text)
	if err != nil || Format(again) != text {
		t.Errorf("canonical text does not reparse to itself: %v\n%s", err, text)
	}
	f := set.Defs[0].Value.Agg.Where
	if f.Op != FExpr || f.Cmp != CmpNe || f.Left.Op != ExprProp || f.Left.Name != "properties.shipping_address.name" ||
		f.Right.Op != ExprAdd || f.Right.Args[0].Op != ExprAdd || f.Right.Args[0].Args[1].Str != " " || f.Right.Args[1].Name != "last_name" {
		t.Errorf("shipping name filter parsed as %s: %+v", FormatFilter(f), f)
	}
	if g := set.Defs[3].Value.Agg.Where; g.Op != FCmp || g.Path != "properties.gift" || g.Value != true {
		t.Errorf("properties.gift = true should keep the plain form, got %+v", g)
	}
	if l := set.Defs[1].Value.Agg.Where.Args[1]; l.Op != FCmp || l.Func != FnLength || l.Value != 3.0 {
		t.Errorf("length(properties.note) > 3 should keep the plain form, got %+v", l)
	}
	c := set.Defs[6].Cond.Args[0]
	if c.Op != CCmp || c.Right == nil || c.Right.Op != ExprCall || c.Right.Func != FnMonth || c.Value != nil {
		t.Errorf("month(...) = month(...) parsed as %+v", c)
	}
	if !strings.Contains(string(data), `"op":"compare"`) || !strings.Contains(string(data), `"func":"lower"`) {
		t.Errorf("JSON form lacks the comparison or the function: %s", data)
	}
}

// Arithmetic in parentheses may open a filter's comparison, as it may a
// condition's; a parenthesised sub-filter still reads as one.
func TestParenthesesOpenArithmeticInFilters(t *testing.T) {
	for src, want := range map[string]string{
		`trait x = count of "A" where (properties.a + properties.b) * 2 > traits.limit all time`:               `(properties.a + properties.b) * 2 > traits.limit`,
		`trait x = count of "A" where (properties.a = 1 or properties.b = 2) and properties.c exists all time`: `(properties.a = 1 or properties.b = 2) and properties.c exists`,
		`trait x = count of "A" where ("x" + properties.a) = lower(properties.b) all time`:                     `"x" + properties.a = lower(properties.b)`,
		`trait x = count of "A" where not (lower(properties.a) != "b") and (properties.q) exists all time`:     `not lower(properties.a) != "b" and properties.q exists`,
	} {
		set, err := Parse(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if _, err := Check(set, nil); err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		got := FormatFilter(set.Defs[0].Value.Agg.Where)
		if got != want {
			t.Errorf("%s:\n got  %s\n want %s", src, got, want)
		}
		if again, err := Parse(Format(set)); err != nil || Format(again) != Format(set) {
			t.Errorf("%s: formatted text does not reparse to itself: %v\n%s", src, err, Format(set))
		}
	}
}

// A condition whose left side starts with a quoted string (from JSON) is
// formatted in parentheses, so the text does not read as an event name.
func TestConditionStartingWithAStringFormats(t *testing.T) {
	set, err := ParseJSON([]byte(`{"definitions": [{"kind": "segment", "name": "s", "condition": {"op": "cmp",
  "left": {"op": "+", "args": [{"op": "string", "str": "Dr "}, {"op": "profile", "name": "last_name"}]}, "cmp": "=", "right": {"op": "profile", "name": "title"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	text := Format(set)
	if !strings.Contains(text, `("Dr " + traits.last_name) = traits.title`) {
		t.Errorf("formatted as:\n%s", text)
	}
	again, err := Parse(text)
	if err != nil || Format(again) != text {
		t.Fatalf("does not reparse to itself: %v\n%s", err, text)
	}
	if c := again.Defs[0].Cond; c.Op != CCmp || c.Left.Op != ExprAdd || c.Right == nil {
		t.Errorf("reparsed as %+v", c)
	}
}
