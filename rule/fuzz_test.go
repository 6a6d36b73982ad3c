package rule

import (
	"encoding/json"
	"testing"

	"github.com/kiln-cdp/kiln/rule/library"
)

// FuzzParse: no input panics the parser or checker, and anything that
// checks formats to text that parses and checks to the same text, also
// through JSON. Run longer with: go test -fuzz FuzzParse ./rule
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add(library.Source("shop.kiln"))
	f.Add(`segment s { not (a > 1 or b < 2) and ((c = "x")) }`)
	f.Add(`trait x = (1 + count of "A" in last 2 hours) * -3`)
	f.Add(`trait x = count of "A" where sum(items.q where items.c = "p") >= 2 and any(items.k = "k\"1") and length(properties.t) > 1 all time
segment s { traits.a."b c".d exists and length(traits.tags) = 0 and count of "A" where all(items.q > 1) in last 1 days >= 2 }`)
	f.Add(`trait g = count of "A" where properties.n != traits.f + " " + traits.l and lower(trim(products.c)) = upper("x") or days_between(properties.d, traits.b) >= -2 all time
segment s { month(traits.b) = 12 and g * 2 > length(traits.f) - 1 and traits.f + "!" != traits.l and day_of_week(traits.b) in [6, 7] }`)
	f.Add(`trait g = count of "A" where "x" = properties.a and true = properties.b and 1 - -2 < properties.c all time`)
	f.Fuzz(func(t *testing.T, src string) {
		set, err := Parse(src)
		if err != nil {
			return
		}
		if _, err := Check(set, nil); err != nil {
			return
		}
		text := Format(set)
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("formatted text does not parse: %v\n%s", err, text)
		}
		if _, err := Check(again, nil); err != nil {
			t.Fatalf("formatted text does not check: %v\n%s", err, text)
		}
		if Format(again) != text {
			t.Fatalf("format not stable:\n%s\n%s", text, Format(again))
		}
		data, _ := json.Marshal(set)
		back, err := ParseJSON(data)
		if err != nil || Format(back) != text {
			t.Fatalf("JSON round trip: %v\n%s", err, data)
		}
	})
}
