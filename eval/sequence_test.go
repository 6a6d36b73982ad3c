package eval

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Explain names the events that decide a sequence, and shows the time of
// an event with how long ago it was.
func TestExplainSequencesAndEventTimes(t *testing.T) {
	p := mustCompile(t, `
trait last_order_at = last time of "Order Completed"
segment open_checkout { "Checkout Started" not followed by "Order Completed" for at least 4 hours in last 7 days }
segment slow_checkout { "Checkout Started" not followed by "Order Completed" within 1 hours in last 7 days }
segment lapsed { last_order_at more than 2 days ago }
`, time.UTC)
	st := p.NewState()
	prof := &Profile{}
	t0 := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	send := func(name string, at, now time.Time) {
		p.Apply(st, prof, &kiln.Event{Type: kiln.Track, Name: name, Timestamp: at}, now)
	}
	why := func(seg string, now time.Time) (bool, string) {
		t.Helper()
		n, err := p.Explain(st, prof, seg, now)
		if err != nil {
			t.Fatal(err)
		}
		return n.Holds, n.Why
	}
	check := func(seg string, now time.Time, holds bool, want string) {
		t.Helper()
		h, w := why(seg, now)
		if h != holds || !strings.Contains(w, want) {
			t.Errorf("%s at %s: holds %v (want %v), why %q, want it to contain %q", seg, now.Format(time.RFC3339Nano), h, holds, w, want)
		}
	}
	check("open_checkout", t0, false, `no "Checkout Started" in the window`)
	send("Checkout Started", t0, t0)
	check("open_checkout", t0.Add(time.Hour), false, `no "Checkout Started" in the window is 4.0 hours old yet (the latest at 2026-03-10T09:00:00.000Z)`)
	check("open_checkout", t0.Add(4*time.Hour), true, `"Checkout Started" at 2026-03-10T09:00:00.000Z has no "Order Completed" at or after it`)
	check("slow_checkout", t0.Add(time.Hour-time.Millisecond), false, `no "Checkout Started" in the window is 60 minutes old yet`)
	check("slow_checkout", t0.Add(time.Hour), true, `"Checkout Started" at 2026-03-10T09:00:00.000Z had no "Order Completed" within 60 minutes (by 2026-03-10T10:00:00.000Z)`)
	// An order in the checkout's millisecond, arriving late, follows it.
	now := t0.Add(5 * time.Hour)
	send("Order Completed", t0, now)
	check("open_checkout", now, false, `the latest "Checkout Started", at 2026-03-10T09:00:00.000Z, was followed by "Order Completed" at 2026-03-10T09:00:00.000Z`)
	check("slow_checkout", now, false, `each of 1 "Checkout Started" was followed by "Order Completed" within 60 minutes`)
	if got := p.TraitValues(st)["last_order_at"]; got != "2026-03-10T09:00:00.000Z" {
		t.Errorf("last_order_at = %v", got)
	}
	check("lapsed", now, false, "2026-03-10T09:00:00Z was 5.0 hours ago; needs more than 2.0 days")
	res := p.Advance(st, prof, now)
	// Due instants: the lapse at exactly t0 + 2 days is among them.
	for !res.NextDue.IsZero() && res.NextDue.Before(t0.Add(48*time.Hour)) {
		res = p.Advance(st, prof, res.NextDue)
	}
	if !res.NextDue.Equal(t0.Add(48 * time.Hour)) {
		t.Fatalf("NextDue %s, want the lapse at %s", res.NextDue, t0.Add(48*time.Hour))
	}
	res = p.Advance(st, prof, res.NextDue)
	if len(res.Changed) != 1 || res.Changed[0].Segment != "lapsed" || !res.Changed[0].Entered {
		t.Fatalf("at t0+48h: changes %+v, want lapsed entered", res.Changed)
	}
	ev := res.Changed[0].Evidence
	if len(ev) != 1 || ev[0].Condition != "last_order_at more than 2 days ago" || ev[0].Value.Any() != "2026-03-10T09:00:00.000Z" || !ev[0].Holds {
		t.Errorf("evidence %+v", ev)
	}
}
