package ruletest

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

const defs = `
trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days
trait orders_365d = count of "Order Completed" in last 365 days
segment vip { spend_365d >= 500 }
segment biz { traits.company exists }
segment abandoners { "Checkout Started" not followed by "Order Completed" within 4 hours in last 7 days }
segment press static
`

// run parses and runs a test file that loads defs.kiln.
func run(t *testing.T, src string) *Result {
	t.Helper()
	tt, err := Parse(fstest.MapFS{
		"t.kilntest": {Data: []byte(src)},
		"defs.kiln":  {Data: []byte(defs)},
	}, "t.kilntest")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return tt.Run()
}

func TestPassingFile(t *testing.T) {
	res := run(t, `
load "defs.kiln"   # a comment
at 2026-01-05 10:00
  user 42 "Order Completed" {"revenue": 300, "note": "order #1 // first"}
  user 42 "Order Completed" {"revenue": 200, "products": [
    {"sku": "T1", "quantity": 2}
  ]}
  user 42 identify {"company": "Teahouse"}
  email Ann@Example.com "Checkout Started"
  user 7 added to press
  expect user 42 in vip
  expect user 42 in biz
  expect user 42 spend_365d = 500
  expect user 42 spend_365d >= 499.99
  expect user 42 orders_365d != 3
  expect vip = [user 42]
  expect press = [user 7]
  expect user 42 explain vip contains "spend_365d >= 500 = 500"
  expect transition user 42 vip enter
  expect transition user 42 vip enter at 2026-01-05 10:00
at 2026-01-05 14:00
  expect email ann@example.com in abandoners
  expect no transition user 42 vip
at 2027-01-05 10:00
  expect user 42 not in vip
  expect user 42 spend_365d = 0
  user 7 removed from press
  expect press = []
`)
	for _, f := range res.Failures {
		t.Error(f)
	}
	if res.Expectations != 15 || len(res.Segments) != 4 || len(res.Tested) != 4 {
		t.Errorf("expectations %d, segments %v, tested %v", res.Expectations, res.Segments, res.Tested)
	}
	if got, want := res.Summary(), "t.kilntest: 15 expectations, 0 failed; 4 of 4 segments tested"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// Time alone moves segments at their exact instants, however far one at
// line jumps: both the entry at checkout + 4 hours and the exit at
// checkout + 7 days are recorded at their instants.
func TestTimeMovesAtExactInstants(t *testing.T) {
	res := run(t, `
load "defs.kiln"
tz Europe/London
at 2026-03-27 09:00
  user 1 "Checkout Started"
at 2026-06-01
  expect user 1 not in abandoners
  expect transition user 1 abandoners enter at 2026-03-27 13:00
  expect transition user 1 abandoners exit at 2026-04-03 10:00    # a week of 24-hour days, into summer time
  expect transition user 1 abandoners enter
  expect transition user 1 abandoners exit
`)
	for _, f := range res.Failures {
		t.Error(f)
	}
}

func TestFailuresSayWhatAndWhere(t *testing.T) {
	res := run(t, `load "defs.kiln"
at 2026-01-05 10:00
  user 42 "Order Completed" {"revenue": 300}
  expect user 42 in vip
  expect user 42 spend_365d = 301
  expect vip = [user 42, user 9]
  expect user 42 explain vip contains "orders"
  expect transition user 42 vip enter at 2026-01-05 10:00
  expect no transition user 42 vip
  expect user 9 in vip
at 2026-01-06
  user 42 "Order Completed" {"revenue": 200}
  expect no transition user 42 vip
`)
	want := []struct {
		line        int
		msg, detail string
	}{
		{4, "expected user 42 in vip at 2026-01-05 10:00:00, but it is not", "user 42 is OUT of vip\n  ✗ spend_365d >= 500 = 300.00  (value 300.00 USD; needs >= 500.00 USD)"},
		{5, "expected user 42 spend_365d = 301 at 2026-01-05 10:00:00, found 300", `trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days`},
		{6, "expected vip = [user 42, user 9] at 2026-01-05 10:00:00, found []", "user 42 is OUT of vip"},
		{7, `to contain "orders"; it does not`, "✗ spend_365d >= 500"},
		{8, "expected user 42 to enter vip at 2026-01-05 10:00:00, but it did not", "user 42 has no transitions in vip"},
		{10, "user 9 has no events yet", ""},
		{13, "expected no transition of user 42 in vip after 2026-01-05 10:00:00 up to 2026-01-06 00:00:00, but it entered at 2026-01-06 00:00:00", "user 42 entered vip at 2026-01-06 00:00:00 (event, line 12)"},
	}
	if len(res.Failures) != len(want) {
		for _, f := range res.Failures {
			t.Log(f)
		}
		t.Fatalf("%d failures, want %d", len(res.Failures), len(want))
	}
	for i, w := range want {
		f := res.Failures[i]
		if f.Line != w.line || !strings.Contains(f.Msg, w.msg) || !strings.Contains(f.Detail, w.detail) || f.File != "t.kilntest" || f.Disagreement {
			t.Errorf("failure %d:\n%s\nwant line %d, %q with %q", i, f, w.line, w.msg, w.detail)
		}
	}
	if s := res.Failures[0].String(); !strings.HasPrefix(s, "t.kilntest:4: expected user 42 in vip") || !strings.Contains(s, "\n    user 42 is OUT of vip\n      ✗ spend_365d") {
		t.Errorf("String:\n%s", s)
	}
	if got := res.Summary(); got != "t.kilntest: 8 expectations, 7 failed; 1 of 4 segments tested" {
		t.Errorf("summary %q", got)
	}
}

// expect-fail marks an expectation known to fail today: it does not fail
// the run, and once it holds it does, so the marker is removed.
func TestExpectFail(t *testing.T) {
	res := run(t, `load "defs.kiln"
at 2026-01-05 10:00
  user 1 "Order Completed" {"revenue": 0.1}
  user 1 "Order Completed" {"revenue": 0.2}
  expect-fail user 1 spend_365d = 0.4     # a known bug would look like this
  expect-fail user 1 orders_365d = 2
`)
	if len(res.Known) != 1 || res.Known[0].Line != 5 {
		t.Errorf("known %v", res.Known)
	}
	if len(res.Failures) != 1 || res.Failures[0].Line != 6 || !strings.Contains(res.Failures[0].Msg, "expect-fail holds now") {
		t.Errorf("failures %v", res.Failures)
	}
	if got := res.Summary(); got != "t.kilntest: 2 expectations, 1 failed, 1 known to fail; 0 of 4 segments tested" {
		t.Errorf("summary %q", got)
	}
}

// Traits a track event carries in its context move the profile at once,
// incrementally as naively (this was a real disagreement, found by a
// shipped test).
func TestContextTraitsAgree(t *testing.T) {
	res := run(t, `load "defs.kiln"
at 2026-01-05 10:00
  user 1 "Product Viewed"
  user 1 "Order Completed" {"revenue": 10} context {"traits": {"company": "Teahouse"}}
  expect user 1 in biz
  expect transition user 1 biz enter at 2026-01-05 10:00
`)
	for _, f := range res.Failures {
		t.Error(f)
	}
	if res.Disagreements() != 0 {
		t.Errorf("%d disagreements", res.Disagreements())
	}
}

func TestFileErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`at 2026-01-05`, "t.kilntest: no definitions"},
		{`load "defs.kiln"` + "\nuser 1 \"X\"", `t.kilntest:2: user 1: an event needs a clock`},
		{`load "defs.kiln"` + "\nfrobnicate", `t.kilntest:2: unknown statement "frobnicate"`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nat 2026-01-04\nat 2026-01-03", "t.kilntest:3: the clock goes back: 2026-01-04 00:00:00 is before the previous at, 2026-01-05 00:00:00"},
		{`load "defs.kiln"` + "\nat 2026-01-05\ntz Europe/London", "t.kilntest:3: tz must come before the first at"},
		{`load "defs.kiln"` + "\nat 2026-13-05", `t.kilntest:2: bad time "2026-13-05"`},
		{`load "defs.kiln"` + "\nat 2026-01-05 10:00:00.0001", "keeps times to the millisecond"},
		{`load "defs.kiln"` + "\nat 2026-01-05\nuser 1 \"X\" {\"a\": }", "t.kilntest:3: bad JSON"},
		{`load "defs.kiln"` + "\nat 2026-01-05\nuser 1 \"X\" {\"a\": 1", "t.kilntest:3: a { or [ opened here is never closed"},
		{`load "defs.kiln"` + "\nat 2026-01-05\nuser 1 \"X", "t.kilntest:3: unterminated string"},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect user 1 in vipp", `t.kilntest:3: unknown segment "vipp" (did you mean vip?)`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect user 1 spend = 3", `t.kilntest:3: unknown computed trait "spend"`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect user 1 vip = 3", `(vip is a segment: expect user 1 in vip)`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect user 1 spend_365d > \"a\"", `> compares numbers`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect user 1 in vip extra", `unexpected extra at the end of the line`},
		{`load "defs.kiln"` + "\nat 2026-01-05\nuser 1 added to vip", "t.kilntest:3: segment vip is not static"},
		{`load "defs.kiln"` + "\nat 2026-01-05\nexpect vip = [user 1, user 1]", "user 1 is listed twice"},
		{`load "missing.kiln"`, `t.kilntest:1: cannot load "missing.kiln": file does not exist`},
		{`load "../defs.kiln"`, `it must be in the test file's directory or below it`},
		{`library "nope.kiln"`, `no shipped file "nope.kiln"`},
		{`load "bad.kiln"`, "bad.kiln:3:17: unknown trait ghost"},
		{"load \"defs.kiln\"\n\ndefine {\n  segment x {\n    ghost > 1 }\n}", "t.kilntest:5:5: unknown trait ghost"},
		{"define { segment x { ghost > 1 } }", "t.kilntest:1:22: unknown trait ghost"},
		{`load "defs.kiln"` + "\ndefine { segment vip { orders_365d > 1 } }", "t.kilntest:2:10: segment vip is already defined as a segment at defs.kiln:4:1"},
	}
	for _, c := range cases {
		_, err := Parse(fstest.MapFS{
			"t.kilntest": {Data: []byte(c.src)},
			"defs.kiln":  {Data: []byte(defs)},
			"bad.kiln":   {Data: []byte("# bad\n\nsegment y { 1 + ghost > 2 }\n")},
		}, "t.kilntest")
		var list ErrorList
		if !errors.As(err, &list) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.src, err, c.want)
		}
	}
	// Every problem is reported, not just the first.
	_, err := Parse(fstest.MapFS{"t.kilntest": {Data: []byte("load \"defs.kiln\"\nat x\nfoo\n")}, "defs.kiln": {Data: []byte(defs)}}, "t.kilntest")
	if list, _ := err.(ErrorList); len(list) != 2 || list[0].Line != 2 || list[1].Line != 3 {
		t.Errorf("want errors at lines 2 and 3, got %v", err)
	}
}

func TestLibraryAndTimeZone(t *testing.T) {
	tt, err := Parse(fstest.MapFS{"t.kilntest": {Data: []byte(`
tz Europe/London
library "shop.kiln"
at 2026-07-01 09:00          # 08:00 UTC
  user 1 "Order Completed" {"revenue": 10}
  user 1 at 2026-06-30T23:30:00Z "Order Completed" {"revenue": 5}   # 00:30 on 1 July in London
  expect user 1 orders_this_month = 2
  expect user 1 orders_today = 2
  expect transition user 1 occasional_customers enter at 2026-07-01T08:00:00Z
`)}}, "t.kilntest")
	if err != nil {
		t.Fatal(err)
	}
	res := tt.Run()
	for _, f := range res.Failures {
		t.Error(f)
	}
	if res.Expectations != 3 {
		t.Errorf("%d expectations", res.Expectations)
	}
}
