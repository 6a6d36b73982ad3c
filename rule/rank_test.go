package rule

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRankConditions(t *testing.T) {
	src := `trait spend = sum(properties.revenue) of "Order Completed" all time
trait visits = count of "Visit" in last 90 days
trait last_at = last time of "Visit"
segment buyers { spend > 0 }
segment top { spend in top 20% }
segment top_b { spend in top 12.5% among buyers and visits >= 1 }
segment r { rank of spend <= 100 or percentile of visits among buyers >= 50 }
segment q { quintile of spend = 5 or quartile of visits among buyers != 1 or decile of spend < 10 }
segment b { visits in bottom 33.3333% among buyers }
`
	s, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(s, nil); err != nil {
		t.Fatal(err)
	}
	// Text -> JSON -> text.
	text := Format(s)
	b, _ := json.Marshal(s)
	back, err := ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if Format(back) != text {
		t.Errorf("JSON round trip:\n%s\nwant\n%s", Format(back), text)
	}
	again, err := Parse(text)
	if err != nil || Format(again) != text {
		t.Errorf("format is not stable: %v", err)
	}
	for _, want := range []string{"spend in top 12.5% among buyers", "percentile of visits among buyers >= 50", "visits in bottom 33.3333% among buyers"} {
		if !strings.Contains(text, want) {
			t.Errorf("formatted text lacks %q", want)
		}
	}

	// Errors, each at its line and column.
	for _, c := range []struct{ cond, want string }{
		{`decile of spend = 11`, "2:13: decile of spend is a score from 1 to 10"},
		{`rank of x < 3`, "2:13: x is a segment, not a computed trait"},
		{`rank of spend < 2.5`, "2:13: rank of spend compares with a whole number of at least 1"},
		{`rank of spendd <= 3`, "2:13: unknown computed trait spendd (did you mean spend?)"},
		{`percentile of spend >= 101`, "2:13: percentile of spend compares with a number from 0 to 100"},
		{`percentile of spend >= 50.00001`, "with at most 4 decimals"},
		{`spend in top 0%`, "2:13: in top 0%: the percentage must be above 0"},
		{`last_at in top 10%`, "2:13: wrong type: last_at is a date; top ranks numbers"},
		{`spend in top 10% among nobody`, "2:13: unknown segment nobody"},
		{`spend in top 10% among x`, "2:13: population x uses a population-relative condition itself"},
		{`rank of spend among spend <= 3`, "2:13: spend is a trait, not a segment"},
		{`percentile of spend contains 3`, "2:13: percentile of spend compares with =, !=, <, <=, > or >= and a number"},
	} {
		src := "trait spend = sum(properties.revenue) of \"Order Completed\" all time\nsegment x { " + c.cond + " }\ntrait last_at = last time of \"Visit\"\n"
		s, err := Parse(src)
		if err == nil {
			_, err = Check(s, nil)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.cond, err, c.want)
		}
	}
	// Syntax.
	for _, c := range []struct{ cond, want string }{
		{`spend in top 20`, `2:29: expected "%" after the percentage`},
		{`(spend + 1) in top 20%`, "in top / in bottom ranks a computed trait by its name"},
		{`spend in top x%`, "expected a percentage such as 20% after in top"},
	} {
		_, err := Parse("trait spend = count of \"A\" all time\nsegment x { " + c.cond + " }\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.cond, err, c.want)
		}
	}
	// A trait named like a ranking function still reads as a trait.
	if _, _, err := Load("trait rank = count of \"A\" all time\nsegment x { rank >= 1 and rank of rank <= 2 }\n", nil); err != nil {
		t.Errorf("a trait named rank: %v", err)
	}
}
