package rule

import (
	"encoding/json"
	"strings"
	"testing"
)

// Paths, lengths and per-event line-item conditions parse, check,
// format back to the same text and survive the JSON form.
func TestPathsAndItemConditionsRoundTrip(t *testing.T) {
	src := `trait trade_orders = count of "Order Completed" where sum(products.quantity) >= 24 in last 365 days
trait teaware_and_gifts = count of "Order Completed" where any(products.category = "Teaware") and any(products.category = "Gift Sets") all time
trait only_teaware = count of "Order Completed" where all(products.category = "Teaware" and products.price > 10) all time
trait big_baskets = count of "Order Completed" where length(properties.products) >= 3 or count(products where products.price >= 100) >= 2 all time
trait mixed = count of "Order Completed" where distinct(products.category) >= 3 and avg(products.price) < 20.5 and max(products.quantity where properties.gift = true) > 1 this month
trait ship_name = last(properties.shipping_address.name) of "Order Completed" where properties."utm-source" = "mail" all time
trait odd = sum(properties.meta."unit price") of "Order Completed" where properties.tags contains "gift" all time
segment trade {
  traits.company.name exists and length(traits.tags) >= 2 and traits."VAT id" exists and traits.account.created_at more than 30 days ago and count of "Order Completed" where min(products.quantity) >= 2 in last 30 days >= 2
}
`
	set, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	text := Format(set)
	for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "}" || strings.HasPrefix(line, "segment") || strings.HasPrefix(line, "traits.company") {
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
	if f.Op != FItems || f.Func != FnSum || f.Path != "products.quantity" || f.Cmp != CmpGe || f.Value != 24.0 {
		t.Errorf("sum(products.quantity) >= 24 parsed as %+v", f)
	}
	if a := set.Defs[1].Value.Agg.Where.Args[1]; a.Op != FItems || a.Func != FnAny || a.Path != "products" || a.Where.Value != "Gift Sets" {
		t.Errorf("any(...) parsed as %+v", a)
	}
	if !strings.Contains(text, "  and traits.\"VAT id\" exists\n") || !strings.Contains(text, "  and traits.account.created_at more than 30 days ago\n") {
		t.Errorf("profile paths not formatted back:\n%s", text)
	}
	if !strings.Contains(string(data), `"property":"properties.\"utm-source\""`) {
		t.Errorf("quoted path segment not kept in JSON: %s", data)
	}
}

func TestSplitPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`properties.a.b`, []string{"properties", "a", "b"}},
		{`traits."VAT id".x`, []string{"traits", "VAT id", "x"}},
		{`a."b.c"`, []string{"a", "b.c"}},
		{`a.""`, nil},
		{`a..b`, nil},
		{`a.`, nil},
		{`a.b c`, nil},
		{`a."b`, nil},
		{`a."b"c`, nil},
		{``, nil},
	} {
		got, ok := SplitPath(c.in)
		if ok != (c.want != nil) || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("SplitPath(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
		if ok && SplitPath2(JoinPath(got)) != strings.Join(got, "|") {
			t.Errorf("JoinPath(%q) = %q does not split back", got, JoinPath(got))
		}
	}
}

func SplitPath2(p string) string {
	s, _ := SplitPath(p)
	return strings.Join(s, "|")
}

// Every misuse is an error at its line and column.
func TestPathAndItemErrors(t *testing.T) {
	schema := &Schema{Traits: map[string]Type{"company": TObject, "email": TString, "tags": TList, "age": TNumber}}
	for _, c := range []struct{ src, want string }{
		{"trait x = count of \"O\" where sum(products.quantity) >= \"many\" all time", `1:30: wrong type: sum(products.quantity) is a number, compared with a string ("many")`},
		{"trait x = count of \"O\" where sum(products) >= 3 all time", `1:34: expected line items such as products.quantity (or products, for count), found "products"`},
		{"trait x = count of \"O\" where any(properties.gift = true) all time", `1:30: any(properties.gift = true): want line items of one array`},
		{"trait x = count of \"O\" where any(products.c = 1 and lines.c = 2) all time", `1:30: any(products.c = 1 and lines.c = 2) reads items of products and of lines`},
		{"trait x = count of \"O\" where sum(products.q where lines.c = 1) > 2 all time", `1:30: sum(products.q where lines.c = 1) > 2 reads items of products and of lines`},
		{"trait x = count of \"O\" where length(properties.tags) = \"x\" all time", `1:30: wrong type: length(properties.tags) is a number, compared with a string ("x")`},
		{"\nsegment s { traits.email.domain = \"x\" }", `2:13: wrong type: traits.email is a string, it has no field domain`},
		{"segment s { length(traits.age) > 1 }", `1:13: wrong type: traits.age is a number, length needs a list`},
		{"segment s { traits.tags = \"vip\" }", `1:13: wrong type: traits.tags is a list: test it with exists, contains or length(...)`},
		{"segment s { traits.shoe.size > 1 }", `1:13: unknown profile trait traits.shoe`},
	} {
		set, err := Parse(c.src)
		if err == nil {
			_, err = Check(set, schema)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %s", c.src, err, c.want)
		}
	}
	// With the schema, the right uses check.
	ok := "segment s { traits.company.name exists and traits.tags contains \"vip\" and length(traits.tags) >= 2 and length(traits.email) > 3 }"
	if _, _, err := Load(ok, schema); err != nil {
		t.Errorf("%s: %v", ok, err)
	}
}

// A path from JSON that quotes plain names formats canonically, so the
// text parses back to the same text.
func TestJSONPathsFormatCanonically(t *testing.T) {
	set, err := ParseJSON([]byte(`{"definitions":[{"kind":"segment","name":"s","condition":
	  {"op":"cmp","left":{"op":"profile","name":"\"company\".\"name\""},"cmp":"exists"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	text := Format(set)
	if !strings.Contains(text, "traits.company.name exists") {
		t.Errorf("not canonical:\n%s", text)
	}
	again, err := Parse(text)
	if err != nil || Format(again) != text {
		t.Errorf("does not reparse to itself: %v\n%s", err, text)
	}
	bad, _ := ParseJSON([]byte(`{"definitions":[{"kind":"segment","name":"s","condition":
	  {"op":"cmp","left":{"op":"profile","name":"company..name"},"cmp":"exists"}}]}`))
	if _, err := Check(bad, nil); err == nil || !strings.Contains(err.Error(), `segment s: bad profile trait name "company..name"`) {
		t.Errorf("a bad path from JSON: %v", err)
	}
}
