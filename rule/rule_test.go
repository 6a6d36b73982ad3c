package rule

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln"
)

const sample = `
# Comments run to the end of the line.
trait spend_365d "Spend (365 days)" = sum(properties.revenue) of "Order Completed" in last 365 days
trait orders_365d = count of "Order Completed" in last 365 days
trait teaware_units = sum(products.quantity) of "Order Completed" where products.category = "teaware" all time
trait own_spend = sum(properties.revenue) of "Order Completed" where properties.gift != true in last 90 days
trait aov = spend_365d / orders_365d
trait last_city = last(properties.city) of "Order Completed" all time
trait mixed = distinct(products.sku) of "Order Completed" where (products.category in ["teaware", "glassware"] or not products.price < 10) and properties.currency = "GBP" this month
trait tagged = count of "Page Viewed" where properties.tags contains "sale" today
trait fixed = max(properties.revenue) of "Order Completed" between "2024-11-29" and "2024-12-02"
segment high_value "High-value customers" {
  spend_365d >= 500 and count of "Order Completed" in last 365 days >= 3
}
  description "Spent 500+ in a year"
  freshness cron "0 6 * * *" tz "Europe/London"
  backfill new
segment cart_abandoners "Abandoned checkout" {
  "Checkout Started" not followed by "Order Completed" within 4 hours in last 7 days
}
  freshness every 15 minutes
segment birthday_week { anniversary of traits.birthday within next 7 days }
segment birthday_soon { traits.birthday within next 3 days }
segment veterans { traits.created_at more than 30 days ago and not traits.created_at within last 1 days }
segment lapsed { did not perform "Order Completed" in last 90 days and performed "Order Completed" all time }
segment uk_vip {
  (traits.country in ["GB", "UK"] or traits.email contains "@example.co.uk") and traits.vip = true and traits.phone exists
  and not in segment high_value and (spend_365d + 10) * 2 > 100 and last_city != "Leeds"
}
  freshness manual
segment press static
  description "Uploaded by CSV"
  backfill none
segment press_buyers { in segment press and in segment lapsed }
`

func TestRoundTrip(t *testing.T) {
	set, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	text := Format(set)
	// text -> JSON -> text gives the same canonical text.
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got := Format(back); got != text {
		t.Errorf("text -> JSON -> text changed:\n%s\nwant\n%s", got, text)
	}
	if _, err := Check(back, nil); err != nil {
		t.Errorf("JSON form does not check: %v", err)
	}
	// The canonical text parses back to itself.
	again, err := Parse(text)
	if err != nil {
		t.Fatalf("canonical text does not parse: %v\n%s", err, text)
	}
	if Format(again) != text {
		t.Errorf("format is not stable:\n%s\nvs\n%s", Format(again), text)
	}
	// Spot checks of the structure.
	d := back.Defs[9]
	if d.Name != "high_value" || d.Title != "High-value customers" || d.Freshness.Mode != FreshCron || d.Freshness.TZ != "Europe/London" || d.Backfill != "new" {
		t.Errorf("high_value options: %+v %+v", d, d.Freshness)
	}
	if !strings.Contains(text, "segment birthday_soon {\n  anniversary of traits.birthday within next 3 days\n}") {
		t.Errorf("traits.X within next N days is the anniversary:\n%s", text)
	}
	if !strings.Contains(text, `sum(products.quantity) of "Order Completed" where products.category = "teaware" all time`) {
		t.Errorf("item filter not printed as written:\n%s", text)
	}
	if !strings.Contains(string(data), `"op":"not_followed"`) || !strings.Contains(string(data), `"within":{"n":4,"unit":"hours"}`) {
		t.Errorf("JSON form lacks the not-followed node: %s", data)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`trait x = sum(properties.revenue) of "Order Completed"`, `1:55: expected a window (in last N days, all time, today, this week/month/year, between "date" and "date"), found end of input`},
		{`trait x = count of Order in last 3 days`, `1:20: expected a quoted event name such as "Order Completed", found "Order"`},
		{"segment s {\n  x >= \n}", `3:1: expected a value (a trait, an aggregate such as count of "Order Completed" in last 30 days, traits.NAME, a quoted string or a number), found "}"`},
		{`segment s { x >= 1`, `1:19: expected "}" closing the segment condition`},
		{`trait x = count of "A" in last 3 weeks`, `1:34: expected minutes, hours or days after 3, found "weeks"`},
		{`trait x = count of "A" where revenue > 3 all time`, `1:30: expected an event property such as properties.revenue (or products.category, or traits.NAME for the profile), found "revenue"`},
		{"\n\nsegment s { \"A\" not followed \"B\" within 1 hours in last 1 days }", `3:30: expected "by", found "B"`},
		{`segment s { traits.birthday = "x }`, `1:31: unterminated string`},
		{`trait and = count of "A" all time`, `1:7: expected trait name, found "and"`},
		{`widget x`, `1:1: expected "trait" or "segment", found "widget"`},
		{`trait x = sum(traits.age) of "A" all time`, ``}, // caught by Check, not Parse
		{`segment s { properties.x = 1 }`, `1:13: properties.x is an event property`},
		{`segment s { x >= 1 } freshness sometimes`, `1:32: freshness must be realtime, every <span>, cron "<spec>" or manual`},
		{`segment s { x >= 1 } backfill most`, `1:31: backfill must be all, new or none`},
		{`trait x = traits.age + 1`, `1:11: a computed trait cannot read profile trait traits.age`},
		{`trait x = count of "A" where spend > 3 all time`, `1:30: expected an event property such as properties.spend (or products.category, or traits.NAME for the profile), found "spend"`},
		{`trait x = count of "A" where lower(properties.a, properties.b = "x" all time`, `1:63: expected ")" closing lower(, found "="`},
		{`trait x = count of "A" where count of "B" all time > 1 all time`, `1:30: an event filter cannot aggregate events`},
		{`segment s { x ~ 1 }`, `1:15: unexpected character '~'`},
		{"\ufeffsegment s { x >= 1 }\r\nsegment t { y >= 1 }\r\n", ``}, // BOM and CRLF are fine
		{"\ufeffsegment s { x >= 1 }\r\nsegment t { y >=  }\r\n", `2:19: expected a value`},
	}
	for _, c := range cases {
		_, err := Parse(c.src)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", c.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.src, err, c.want)
		}
		var list ErrorList
		if err != nil && (!errors.As(err, &list) || kiln.ErrorCode(err) != kiln.EInvalid) {
			t.Errorf("%q: error is not an EInvalid ErrorList: %T %v", c.src, err, err)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	base := "trait spend = sum(properties.revenue) of \"Order Completed\" in last 30 days\n" +
		"trait city = last(properties.city) of \"Order Completed\" all time\n"
	cases := []struct{ src, want string }{
		{"segment s { spnd >= 1 }", "3:13: unknown trait spnd (did you mean spend?)"},
		{"segment s { spend >= \"lots\" }", `3:13: wrong type: spend is a number, compared with a string ("lots")`},
		{"segment s { spend contains \"x\" }", "3:13: wrong type: spend is a number, contains needs a string or a list"},
		{"segment s { city = 3 }", ""}, // first/last are untyped
		{"segment s { in segment t }", "3:24: unknown segment t"},
		{"segment s { in segment spend }", "3:24: spend is a trait, not a segment"},
		{"segment s { s >= 1 }", "3:13: s is a segment, not a trait: write in segment s"},
		{"segment a { in segment b }\nsegment b { in segment c }\nsegment c { in segment a }", "5:24: segment cycle: a -> b -> c -> a"},
		{"trait t1 = t2 + 1\ntrait t2 = t1 * 2", "4:12: trait cycle: t1 -> t2 -> t1"},
		{"trait x = count of \"A\" in last 0 days", "3:24: window: span must be positive, not 0 days"},
		{"trait x = count of \"A\" in last 4000 days", "3:24: window: span 4000 days is longer than the limit of 3660 days"},
		{"trait x = count of \"A\" between \"2024-02-30\" and \"2024-03-01\"", `3:24: bad window start date "2024-02-30"`},
		{"trait x = count of \"A\" between \"2024-03-02\" and \"2024-03-01\"", "3:24: window ends (2024-03-01) before it starts (2024-03-02)"},
		{"trait x = sum of \"A\" all time", "3:11: sum needs a property"},
		{"trait x = sum(products.quantity) of \"A\" where dishes.category = \"x\" all time", "3:11: one aggregate cannot read items of two arrays (dishes, products)"},
		{"trait spend = count of \"A\" all time", "3:1: trait spend is already defined as a trait at 1:1"},
		{"segment s { \"A\" not followed by \"B\" within 1 hours all time }", "3:52: not followed by needs a rolling window (in last N days), not all time"},
		{"segment s { anniversary of traits.birthday within next 2 hours }", "3:56: anniversary within next needs 1 to 366 days"},
		{"segment s { x >= 1 } freshness cron \"61 * * * *\"", `3:32: bad cron schedule "61 * * * *"`},
		{"segment s { spend >= 1 } freshness cron \"0 6 * * *\" tz \"Mars/Olympus\"", `3:36: unknown time zone "Mars/Olympus"`},
		{"segment s { traits.shoe_size > 3 }", "3:13: unknown profile trait traits.shoe_size"},
		{"segment s { anniversary of traits.email within next 3 days }", "3:13: wrong type: traits.email is a string, not a date"},
		{"segment s { traits.created_at > \"last tuesday\" }", `3:13: traits.created_at is a date: "last tuesday" is not YYYY-MM-DD or RFC 3339`},
		{"segment s { traits.email = true }", "3:13: wrong type: traits.email is a string, compared with a bool (true)"},
		{"segment s { traits.age + 1 > 30 }", "3:13: unknown profile trait traits.age"},
		// Expressions: type-checked at apply time, with positions.
		{"segment s { traits.first_name + \" \" + traits.last_name = \"Ann Lee\" }", ""},
		{"segment s { traits.first_name + 1 = \"x\" }", "3:33: wrong type: traits.first_name + 1 joins strings, 1 is a number"},
		{"segment s { lower(traits.birthday) = \"x\" }", "3:19: wrong type: lower needs a string, traits.birthday is a date"},
		{"segment s { month(traits.email_consent) = 12 }", "3:19: wrong type: month needs a date, traits.email_consent is a bool"},
		{"segment s { month(traits.birthday) = \"May\" }", `3:13: wrong type: month(traits.birthday) is a number, compared with a string ("May")`},
		{"segment s { month(traits.birthday) = month(traits.created_at) and day(traits.birthday) = day(traits.created_at) }", ""},
		{"segment s { spend > traits.first_name }", "3:13: wrong type: spend > traits.first_name compares a number with a string"},
		{"segment s { spend > length(traits.first_name) * 10 }", ""},
		{"segment s { days_between(traits.birthday) > 3 }", "3:13: days_between takes 2 values, not 1"},
		{"trait x = count of \"A\" where properties.name != traits.first_name + \" \" + traits.last_name all time", ""},
		{"trait x = count of \"A\" where lower(properties.city) = lower(traits.home_location) and products.price > properties.min_price all time", ""},
		{"trait x = count of \"A\" where properties.a + 1 > traits.first_name all time", "3:30: wrong type: properties.a + 1 > traits.first_name compares a number with a string"},
		{"trait x = count of \"A\" where traits.nope = properties.a all time", "3:30: unknown profile trait traits.nope"},
		{"trait x = count of \"A\" where upper(traits.email_consent) = \"X\" all time", "3:36: wrong type: upper needs a string, traits.email_consent is a bool"},
		{"segment s { spend > 1 and nope = 2 and in segment ghost }", "3:27: unknown trait nope"},
	}
	for _, c := range cases {
		set, err := Parse(base + c.src)
		if err != nil {
			t.Errorf("%q: parse: %v", c.src, err)
			continue
		}
		_, err = Check(set, DemoSchema)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected %v", c.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.src, err, c.want)
		}
	}
	// Every problem is reported, in source order.
	set, _ := Parse(base + "segment s { spend > 1 and nope = 2 and in segment ghost }")
	_, err := Check(set, DemoSchema)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 || list[1].Col != 51 {
		t.Errorf("want two errors (3:27, 3:51), got %v", err)
	}
}

func TestCheckJSONErrorsNameTheDefinition(t *testing.T) {
	set, err := ParseJSON([]byte(`{"definitions":[{"kind":"segment","name":"vip","condition":{"op":"cmp","left":{"op":"trait","name":"ghost"},"cmp":">=","value":1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Check(set, nil)
	if err == nil || err.Error() != "segment vip: unknown trait ghost" {
		t.Errorf("got %v", err)
	}
	if _, err := ParseJSON([]byte(`{"definitions":[{"kind":"segment","nme":"x"}]}`)); err == nil || !strings.Contains(err.Error(), `unknown field "nme"`) {
		t.Errorf("unknown JSON fields must be rejected, got %v", err)
	}
}

func TestNeedsFollowsReferences(t *testing.T) {
	src := `
trait a = count of "X" all time
trait b = a + 1
trait c = count of "Y" all time
segment s1 { b >= 2 }
segment s2 { in segment s1 and c >= 1 }
segment s3 { c >= 5 }
`
	set, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Check(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := func(ds []*Def) string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Kind+":"+d.Name)
		}
		return strings.Join(out, " ")
	}
	for k, want := range map[DefKey]string{
		{KindSegment, "s2"}: "trait:a trait:b trait:c segment:s1 segment:s2",
		{KindSegment, "s1"}: "trait:a trait:b segment:s1",
		{KindSegment, "s3"}: "trait:c segment:s3",
		{KindTrait, "b"}:    "trait:a trait:b",
	} {
		if got := names(info.Needs(set, k)); got != want {
			t.Errorf("Needs(%v) = %s, want %s", k, got, want)
		}
	}
}
