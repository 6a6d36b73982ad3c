package eval

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

func mustCompile(t *testing.T, src string, loc *time.Location) *Program {
	t.Helper()
	set, err := rule.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(set, Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func london(t *testing.T) *time.Location {
	t.Helper()
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func track(name string, at time.Time, props map[string]any) *kiln.Event {
	return &kiln.Event{Type: kiln.Track, Name: name, Timestamp: at, Properties: props}
}

func changed(res Result, seg string) string {
	for _, c := range res.Changed {
		if c.Segment == seg {
			if c.Entered {
				return "entered"
			}
			return "exited"
		}
	}
	return ""
}

func member(t *testing.T, p *Program, st *State, seg string) bool {
	t.Helper()
	in, err := p.Member(st, seg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// An order at t counts in "last 90 days" for (t-90d... no: for now in
// [t, t+90d): the window is (now-90d, now], so the customer leaves at
// exactly t+90d, and NextDue says so.
func TestRollingWindowExpiresExactly(t *testing.T) {
	p := mustCompile(t, `segment recent { count of "Order Completed" in last 90 days >= 1 }`, nil)
	st := p.NewState()
	t0 := time.Date(2025, 1, 10, 9, 30, 15, 250e6, time.UTC)
	res := p.Apply(st, nil, track("Order Completed", t0, nil), t0)
	if changed(res, "recent") != "entered" {
		t.Fatalf("order did not enter: %+v", res)
	}
	exit := t0.Add(90 * 24 * time.Hour)
	if !res.NextDue.Equal(exit) {
		t.Fatalf("NextDue %v, want exactly %v", res.NextDue, exit)
	}
	res = p.Advance(st, nil, exit.Add(-time.Millisecond))
	if len(res.Changed) != 0 || !member(t, p, st, "recent") {
		t.Fatalf("left before t+90d: %+v", res)
	}
	res = p.Advance(st, nil, exit)
	if changed(res, "recent") != "exited" || !res.NextDue.IsZero() {
		t.Fatalf("at t+90d: %+v", res)
	}
	if ev := res.Changed[0].Evidence; len(ev) != 1 || ev[0].Value.Any() != nv("0") || ev[0].Holds {
		t.Errorf("evidence: %+v", ev)
	}
}

func TestDidNotPerform(t *testing.T) {
	p := mustCompile(t, `
segment quiet { did not perform "Order Completed" in last 30 days }
segment lapsed { performed "Order Completed" all time and did not perform "Order Completed" in last 30 days }`, nil)
	st := p.NewState()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// A fresh profile has done nothing: it enters "quiet" at once.
	res := p.ApplyProfile(st, nil, t0)
	if changed(res, "quiet") != "entered" || changed(res, "lapsed") != "" {
		t.Fatalf("fresh profile: %+v", res)
	}
	res = p.Apply(st, nil, track("Order Completed", t0, nil), t0)
	if changed(res, "quiet") != "exited" {
		t.Fatalf("after the order: %+v", res)
	}
	due := t0.Add(30 * 24 * time.Hour)
	if !res.NextDue.Equal(due) {
		t.Fatalf("NextDue %v, want %v", res.NextDue, due)
	}
	res = p.Advance(st, nil, due)
	if changed(res, "quiet") != "entered" || changed(res, "lapsed") != "entered" {
		t.Fatalf("when the order ages out: %+v", res)
	}
}

func TestAbandonedCheckout(t *testing.T) {
	p := mustCompile(t, `segment abandoners { "Checkout Started" not followed by "Order Completed" within 4 hours in last 7 days }`, nil)
	t0 := time.Date(2025, 5, 5, 10, 0, 0, 0, time.UTC)

	// No order: the profile enters exactly 4 hours later, and leaves when
	// the checkout is older than 7 days.
	st := p.NewState()
	res := p.Apply(st, nil, track("Checkout Started", t0, nil), t0)
	if len(res.Changed) != 0 || !res.NextDue.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("checkout: %+v", res)
	}
	res = p.Advance(st, nil, res.NextDue)
	if changed(res, "abandoners") != "entered" || !res.NextDue.Equal(t0.Add(7*24*time.Hour)) {
		t.Fatalf("deadline: %+v", res)
	}
	// A late order (sent before the deadline, received after) takes the
	// profile out again.
	res = p.Apply(st, nil, track("Order Completed", t0.Add(3*time.Hour+59*time.Minute), nil), t0.Add(5*time.Hour))
	if changed(res, "abandoners") != "exited" {
		t.Fatalf("late order: %+v", res)
	}

	// An order exactly at the deadline is too late ([t, t+4h) follows).
	st = p.NewState()
	p.Apply(st, nil, track("Checkout Started", t0, nil), t0)
	res = p.Apply(st, nil, track("Order Completed", t0.Add(4*time.Hour), nil), t0.Add(4*time.Hour))
	if changed(res, "abandoners") != "entered" {
		t.Fatalf("order at the deadline: %+v", res)
	}
}

func TestAnniversary(t *testing.T) {
	loc := london(t)
	p := mustCompile(t, `segment birthday_week { anniversary of traits.birthday within next 7 days }`, loc)
	cases := []struct {
		birthday string
		now      time.Time
		in       bool
		due      time.Time
	}{
		// Feb 29 falls on Feb 28 in 2025: 7 days away on Feb 21, so out
		// until midnight (London) on Feb 22, then in through Feb 28.
		{"2000-02-29", time.Date(2025, 2, 21, 12, 0, 0, 0, loc), false, time.Date(2025, 2, 22, 0, 0, 0, 0, loc)},
		{"2000-02-29", time.Date(2025, 2, 22, 0, 0, 0, 0, loc), true, time.Date(2025, 3, 1, 0, 0, 0, 0, loc)},
		// In a leap year it is Feb 29 itself.
		{"2000-02-29", time.Date(2028, 2, 29, 23, 59, 0, 0, loc), true, time.Date(2028, 3, 1, 0, 0, 0, 0, loc)},
		// The year wraps: Jan 2 is 5 days after Dec 28.
		{"1990-01-02", time.Date(2024, 12, 28, 8, 0, 0, 0, loc), true, time.Date(2025, 1, 3, 0, 0, 0, 0, loc)},
		// Today counts; midnight is in London, in summer time too.
		{"1985-07-01", time.Date(2025, 6, 30, 23, 30, 0, 0, time.UTC), true, time.Date(2025, 7, 2, 0, 0, 0, 0, loc)},
		{"1985-07-09", time.Date(2025, 7, 1, 12, 0, 0, 0, loc), false, time.Date(2025, 7, 3, 0, 0, 0, 0, loc)},
		{"not a date", time.Date(2025, 7, 1, 12, 0, 0, 0, loc), false, time.Time{}},
	}
	for _, c := range cases {
		st := p.NewState()
		prof := &Profile{Traits: map[string]any{"birthday": c.birthday}}
		res := p.ApplyProfile(st, prof, c.now)
		if got := member(t, p, st, "birthday_week"); got != c.in || !res.NextDue.Equal(c.due) {
			t.Errorf("%s at %s: in=%v NextDue=%s, want in=%v NextDue=%s", c.birthday, c.now, got, res.NextDue.In(loc), c.in, c.due)
		}
		if snap := p.Naive(nil, prof, c.now); snap.Segments["birthday_week"] != c.in {
			t.Errorf("naive disagrees for %s at %s", c.birthday, c.now)
		}
	}
}

func TestCalendarWindowsAndSignupAge(t *testing.T) {
	loc := london(t)
	p := mustCompile(t, `
trait orders_today = count of "Order Completed" today
trait orders_week = count of "Order Completed" this week
segment veterans { traits.created_at more than 30 days ago }`, loc)
	st := p.NewState()
	created := time.Date(2025, 5, 20, 8, 15, 0, 0, time.UTC)
	prof := &Profile{Traits: map[string]any{"created_at": created.Format(time.RFC3339)}}
	at := time.Date(2025, 6, 11, 22, 30, 0, 0, time.UTC) // Wednesday, 23:30 in London (BST)
	res := p.Apply(st, prof, track("Order Completed", at, nil), at)
	midnight := time.Date(2025, 6, 12, 0, 0, 0, 0, loc) // 23:00 UTC
	if !res.NextDue.Equal(midnight) {
		t.Fatalf("NextDue %v, want London midnight %v", res.NextDue, midnight)
	}
	res = p.Advance(st, prof, midnight)
	if v := p.TraitValues(st); v["orders_today"] != nv("0") || v["orders_week"] != nv("1") {
		t.Fatalf("after midnight: %v", v)
	}
	// Next: the signup turns 30 days old (June 19, 08:15 UTC), then the
	// week ends (Monday June 16, 00:00 London) — whichever comes first.
	monday := time.Date(2025, 6, 16, 0, 0, 0, 0, loc)
	if !res.NextDue.Equal(monday) {
		t.Fatalf("NextDue %v, want %v", res.NextDue, monday)
	}
	res = p.Advance(st, prof, monday)
	veteran := created.Add(30 * 24 * time.Hour)
	if !res.NextDue.Equal(veteran) {
		t.Fatalf("NextDue %v, want %v", res.NextDue, veteran)
	}
	res = p.Advance(st, prof, veteran)
	if changed(res, "veterans") != "entered" {
		t.Fatalf("30 days after signup: %+v", res)
	}
}

func TestLineItemsAndFilters(t *testing.T) {
	p := mustCompile(t, `
trait teaware_units = sum(products.quantity) of "Order Completed" where products.category = "teaware" all time
trait teaware_orders = count of "Order Completed" where products.category = "teaware" all time
trait own_revenue = sum(properties.revenue) of "Order Completed" where properties.gift != true all time
trait patterns = distinct(products.pattern) of "Order Completed" in last 30 days
trait priciest = max(products.price) of "Order Completed" where products.category in ["teaware", "glassware"] in last 30 days`, nil)
	st := p.NewState()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	order := func(at time.Time, revenue float64, gift bool, items ...map[string]any) {
		list := make([]any, len(items))
		for i, it := range items {
			list[i] = it
		}
		p.Apply(st, nil, track("Order Completed", at, map[string]any{"revenue": revenue, "gift": gift, "products": list}), at)
	}
	item := func(cat, pattern string, price, q float64) map[string]any {
		return map[string]any{"category": cat, "pattern": pattern, "price": price, "quantity": q}
	}
	order(t0, 100, false, item("teaware", "willow", 30, 2), item("glassware", "plain", 45, 1), item("teaware", "rose", 12, 3))
	order(t0.Add(time.Hour), 60, true, item("dinnerware", "willow", 60, 1))
	order(t0.Add(2*time.Hour), 40, false, item("glassware", "cobalt", 40, 1))
	want := map[string]any{"teaware_units": nv("5"), "teaware_orders": nv("1"), "own_revenue": Number{Text: "140.00", Currency: "USD"}, "patterns": nv("4"), "priciest": Number{Text: "45.00", Currency: "USD"}}
	got := p.TraitValues(st)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestLateEventsAndFirstLast(t *testing.T) {
	p := mustCompile(t, `
trait first_city = first(properties.city) of "Order Completed" all time
trait last_city = last(properties.city) of "Order Completed" in last 30 days`, nil)
	st := p.NewState()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(48 * time.Hour)
	p.Apply(st, nil, track("Order Completed", t0.Add(24*time.Hour), map[string]any{"city": "Leeds"}), now)
	p.Apply(st, nil, track("Order Completed", t0, map[string]any{"city": "York"}), now) // late: placed by time
	res := p.Apply(st, nil, track("Order Completed", now.Add(time.Hour), map[string]any{"city": "Bath"}), now)
	if v := p.TraitValues(st); v["first_city"] != "York" || v["last_city"] != "Leeds" {
		t.Fatalf("got %v", v)
	}
	// The future event counts from its own time.
	if !res.NextDue.Equal(now.Add(time.Hour)) {
		t.Fatalf("NextDue %v", res.NextDue)
	}
	res = p.Advance(st, nil, res.NextDue)
	if v := p.TraitValues(st); v["last_city"] != "Bath" || len(res.Traits) != 1 || res.Traits[0].Old.Any() != "Leeds" {
		t.Fatalf("got %v, %+v", v, res.Traits)
	}
}

func TestStaticSegmentsProfileChangesAndExplain(t *testing.T) {
	p := mustCompile(t, `
trait spend = sum(properties.revenue) of "Order Completed" in last 365 days
segment press static
segment press_vips "Press VIPs" { in segment press and (spend >= 100 or traits.vip = true) }`, nil)
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	prof := &Profile{Traits: map[string]any{"vip": false}, Static: []string{"press"}}
	res := p.ApplyProfile(st, prof, now)
	if changed(res, "press") != "entered" || changed(res, "press_vips") != "" {
		t.Fatalf("static listing: %+v", res)
	}
	// An identify that sets vip re-evaluates conditions on traits.
	prof = &Profile{Traits: map[string]any{"vip": true}, Static: []string{"press"}}
	res = p.Apply(st, prof, &kiln.Event{Type: kiln.Identify, Timestamp: now, Traits: map[string]any{"vip": true}}, now)
	if changed(res, "press_vips") != "entered" {
		t.Fatalf("identify: %+v", res)
	}
	node, err := p.Explain(st, prof, "press_vips", now)
	if err != nil {
		t.Fatal(err)
	}
	if !node.Holds || len(node.Children) != 2 || node.Children[1].Why != "1 of 2 conditions hold" ||
		node.Children[1].Children[0].Why != "value 0.00 USD; needs >= 100.00 USD" {
		t.Errorf("explain: %+v / %+v", node, node.Children[1].Children[0])
	}
	// Removed from the static list: out of both.
	res = p.ApplyProfile(st, &Profile{Traits: prof.Traits}, now)
	if changed(res, "press") != "exited" || changed(res, "press_vips") != "exited" {
		t.Fatalf("unlisted: %+v", res)
	}
	if _, err := p.Explain(st, prof, "nope", now); err == nil {
		t.Error("Explain of an unknown segment must fail")
	}
}

func TestSnapshotBelongsToItsProgram(t *testing.T) {
	p := mustCompile(t, `trait n = count of "A" in last 1 days
trait c = last(properties.city) of "A" all time
trait d = distinct(properties.city) of "A" all time`, nil)
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Apply(st, nil, track("A", now, map[string]any{"city": "Hull"}), now)
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := p.Adopt(&back); err != nil {
		t.Fatal(err)
	}
	if v := p.TraitValues(&back); v["n"] != nv("1") || v["c"] != "Hull" || v["d"] != nv("1") {
		t.Fatalf("restored: %v", v)
	}
	if err := back.UnmarshalBinary(b[:len(b)-3]); err == nil {
		t.Error("truncated snapshot accepted")
	}
	other := mustCompile(t, `trait n = count of "A" in last 2 days`, nil)
	if err := other.Adopt(&back); err == nil || !strings.Contains(err.Error(), "another definition set") {
		t.Errorf("Adopt by another program: %v", err)
	}
}

func TestNaiveAsOf(t *testing.T) {
	p := mustCompile(t, `segment buyers { count of "Order Completed" in last 7 days >= 2 }`, nil)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []*kiln.Event{
		track("Order Completed", t0.Add(48*time.Hour), nil),
		track("Order Completed", t0, nil), // any order
		track("Page Viewed", t0, nil),
	}
	for _, c := range []struct {
		at time.Time
		in bool
	}{
		{t0.Add(24 * time.Hour), false},
		{t0.Add(48 * time.Hour), true},
		{t0.Add(7 * 24 * time.Hour).Add(-time.Millisecond), true},
		{t0.Add(7 * 24 * time.Hour), false},
	} {
		if got := p.Naive(events, nil, c.at).Segments["buyers"]; got != c.in {
			t.Errorf("as of %s: %v, want %v", c.at, got, c.in)
		}
	}
}

// Replaced first/last strings and pruned records' strings do not pile up
// in a long-lived state.
func TestStringPoolStaysBounded(t *testing.T) {
	p := mustCompile(t, `
trait last_order = last(properties.order_id) of "Order Completed" all time
trait recent_city = last(properties.city) of "Order Completed" in last 1 days`, nil)
	st := p.NewState()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		at := t0.Add(time.Duration(i) * time.Hour)
		p.Apply(st, nil, track("Order Completed", at, map[string]any{"order_id": fmt.Sprintf("O%d", i), "city": fmt.Sprintf("C%d", i)}), at)
	}
	v := p.TraitValues(st)
	if v["last_order"] != "O999" || v["recent_city"] != "C999" {
		t.Fatalf("values %v", v)
	}
	if len(st.strs) > 80 {
		t.Errorf("string pool holds %d strings for 25 live ones", len(st.strs))
	}
}

// Large programs: more than 64 features (multi-word record masks) and
// more than 512 nodes and segments (the heap-backed bitsets).
func TestLargeProgramMatchesNaive(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 600; i++ {
		fmt.Fprintf(&b, "trait t%d = sum(properties.v) of \"A\" where properties.k >= %d in last %d minutes\n", i, i%80, 30+i)
	}
	for i := 0; i < 520; i++ {
		fmt.Fprintf(&b, "segment s%d { t%d >= %d or t%d > 0 }\n", i, i, 1+i%5, (i*7)%600)
	}
	p := mustCompile(t, b.String(), nil)
	if s := p.Stats(); s.Features < 80 {
		t.Fatalf("only %d features", s.Features)
	}
	st := p.NewState()
	var events []*kiln.Event
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	check := func() {
		t.Helper()
		want := p.Naive(events, nil, now)
		got := p.TraitValues(st)
		for k, v := range want.Traits {
			if got[k] != v {
				t.Fatalf("at %s: %s = %v, naive %v", now, k, got[k], v)
			}
		}
		for k, v := range want.Segments {
			if in, _ := p.Member(st, k); in != v {
				t.Fatalf("at %s: %s member %v, naive %v", now, k, in, v)
			}
		}
	}
	for i := 0; i < 40; i++ {
		now = now.Add(time.Duration(7*i%50) * time.Minute)
		ev := track("A", now.Add(-time.Duration(i%13)*time.Minute), map[string]any{"v": float64(i%9) / 2, "k": float64(i * 3 % 90)})
		events = append(events, ev)
		res := p.Apply(st, nil, ev, now)
		check()
		if !res.NextDue.IsZero() && i%3 == 0 {
			now = res.NextDue
			p.Advance(st, nil, now)
			check()
		}
	}
}

func TestExplainDates(t *testing.T) {
	p := mustCompile(t, `segment s { anniversary of traits.birthday within next 7 days or traits.created_at more than 30 days ago }`, nil)
	st := p.NewState()
	now := time.Date(2025, 2, 25, 12, 0, 0, 0, time.UTC)
	prof := &Profile{Traits: map[string]any{"birthday": "2000-02-29", "created_at": "2025-02-15T12:00:00Z"}}
	p.ApplyProfile(st, prof, now)
	node, err := p.Explain(st, prof, "s", now)
	if err != nil {
		t.Fatal(err)
	}
	got := node.Children[0].Why + " | " + node.Children[1].Why
	want := "next anniversary 2025-02-28, in 3 days; needs fewer than 7 | 2025-02-15T12:00:00Z was 10.0 days ago; needs more than 30.0 days"
	if got != want || !node.Holds {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A future event in a program without windows is kept until its time
// comes, then folded and dropped.
func TestFutureEventWithoutWindows(t *testing.T) {
	p := mustCompile(t, `trait n = count of "A" all time`, nil)
	st := p.NewState()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	res := p.Apply(st, nil, track("A", now.Add(time.Hour), nil), now)
	if p.TraitValues(st)["n"] != nv("0") || !res.NextDue.Equal(now.Add(time.Hour)) {
		t.Fatalf("before: %v %v", p.TraitValues(st), res.NextDue)
	}
	res = p.Advance(st, nil, res.NextDue)
	if p.TraitValues(st)["n"] != nv("1") || !res.NextDue.IsZero() || len(p.recsOf(st)) != 0 {
		t.Fatalf("after: %v %v, %d record words left", p.TraitValues(st), res.NextDue, len(p.recsOf(st)))
	}
}

// nv is a plain (not money) number as TraitValues shows it.
func nv(text string) Number { return Number{Text: text} }
