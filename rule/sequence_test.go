package rule

import (
	"encoding/json"
	"strings"
	"testing"
)

// Open-ended sequences and event times as values: they parse, check,
// format back to the same text and survive the JSON form.
const sequenceSample = `trait last_order_at = last time of "Order Completed"
trait first_visit_at = first time of "Page Viewed" from source "webstore" where properties.path = "/" in last 30 days
segment open_checkout { "Checkout Started" not followed by "Order Completed" in last 48 hours }
segment abandoned { "Checkout Started" where properties.value >= 20 not followed by "Order Completed" for at least 4 hours in last 7 days }
segment lapsed { last time of "Order Completed" more than 30 days ago }
segment recent { last_order_at within last 7 days and not last_order_at more than 90 days ago }
segment never { last_order_at not exists }
`

func TestSequencesRoundTrip(t *testing.T) {
	set, err := Parse(sequenceSample)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Check(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.TraitTypes["last_order_at"] != TDate || info.TraitTypes["first_visit_at"] != TDate {
		t.Errorf("event times are dates: %v", info.TraitTypes)
	}
	text := Format(set)
	for _, want := range []string{
		`trait last_order_at = last time of "Order Completed" all time`, // the window defaults to all time
		`trait first_visit_at = first time of "Page Viewed" from source "webstore" where properties.path = "/" in last 30 days`,
		`"Checkout Started" not followed by "Order Completed" in last 48 hours`,
		`"Checkout Started" where properties.value >= 20 not followed by "Order Completed" for at least 4 hours in last 7 days`,
		`last time of "Order Completed" all time more than 30 days ago`,
		"last_order_at within last 7 days\n  and not last_order_at more than 90 days ago",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("formatted text lacks %q:\n%s", want, text)
		}
	}
	again, err := Parse(text)
	if err != nil {
		t.Fatalf("canonical text does not parse: %v\n%s", err, text)
	}
	if Format(again) != text {
		t.Errorf("format is not stable:\n%s\nvs\n%s", Format(again), text)
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"func":"last_time"`, `"func":"first_time"`, `"for":{"n":4,"unit":"hours"}`, `"op":"ago","left":{"op":"aggregate"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s: %s", want, data)
		}
	}
	back, err := ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(back, nil); err != nil {
		t.Fatal(err)
	}
	if got := Format(back); got != text {
		t.Errorf("text -> JSON -> text changed:\n%s\nwant\n%s", got, text)
	}
	// The open-ended form has neither within nor for.
	c := set.Defs[2].Cond
	if c.Op != CNotFollowed || c.Within != nil || c.For != nil || c.Window.N != 48 {
		t.Errorf("open-ended sequence parsed as %+v", c)
	}
}

func TestSequenceErrors(t *testing.T) {
	base := "trait last_order_at = last time of \"Order Completed\"\ntrait spend = sum(properties.revenue) of \"Order Completed\" all time\n"
	parse := []struct{ src, want string }{
		{`segment s { "A" not followed by "B" }`, `3:37: expected within SPAN, for at least SPAN or the window (in last N days) after "not followed by" "B", found "}"`},
		{`segment s { "A" not followed by "B" for 4 hours in last 2 days }`, `3:41: expected "at least" and a time span (for at least 4 hours), found "4"`},
		{`segment s { last_order_at more than 3 days }`, `3:44: expected "ago", found "}"`},
		{`segment s { last time of "A" within 3 days }`, `3:30: expected a comparison`},
	}
	for _, c := range parse {
		_, err := Parse(base + c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.src, err, c.want)
		}
	}
	check := []struct{ src, want string }{
		{`segment s { spend more than 3 days ago }`, "3:13: wrong type: spend is a number, not a date"},
		{`segment s { last_order_at > 3 }`, "3:13: last_order_at is the time of an event: compare it with more than SPAN ago, within last SPAN, exists or not exists"},
		{`segment s { last time of "A" all time = "2024-01-01" }`, `3:13: last time of "A" all time is the time of an event`},
		{`segment s { last_order_at + 1 within last 3 days }`, "3:13: wrong type: arithmetic on a date (last_order_at)"},
		{`segment s { "A" not followed by "B" for at least 0 hours in last 2 days }`, "3:50: not followed by ... for at least: span must be positive"},
		{`segment s { "A" not followed by "B" in last 2 days }`, ""},
		{`segment s { "A" not followed by "B" for at least 48 hours in last 2 days }`, "3:50: not followed by ... for at least 48 hours in last 2 days: no event can stand that long inside the window"},
		{`segment s { "A" not followed by "B" all time }`, "3:37: not followed by needs a rolling window (in last N days), not all time"},
		{`segment s { last time of "A" in last 4 days within last 0 hours }`, "3:57: within_last: span must be positive"},
		{`segment s { last_order_at exists and first time of "B" where properties.x = 1 in last 1 days within last 2 hours }`, ""},
	}
	for _, c := range check {
		set, err := Parse(base + c.src)
		if err != nil {
			t.Errorf("%q: parse: %v", c.src, err)
			continue
		}
		_, err = Check(set, nil)
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
	// JSON: a time aggregate takes no property; within and for exclude each other.
	for _, c := range []struct{ js, want string }{
		{`{"op":"cmp","left":{"op":"aggregate","aggregate":{"func":"last_time","property":"properties.x","event":"A","window":{"kind":"all"}}},"cmp":"exists"}`, "segment s: last time takes no property"},
		{`{"op":"not_followed","first":{"event":"A"},"then":{"event":"B"},"within":{"n":1,"unit":"hours"},"for":{"n":1,"unit":"hours"},"window":{"kind":"last","n":1,"unit":"days"}}`, "segment s: not followed by takes within SPAN (a deadline) or for at least SPAN (up to now), not both"},
	} {
		set, err := ParseJSON([]byte(`{"definitions":[{"kind":"segment","name":"s","condition":` + c.js + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Check(set, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %s", c.js, err, c.want)
		}
	}
}
