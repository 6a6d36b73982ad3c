package action_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
)

// profiles creates profiles in one resolution (one per transition would
// cost a commit each, more than the deliveries measured).
func (r *rig) profiles(ids []string) {
	r.t.Helper()
	res := store.Resolution{}
	now := time.Now().UTC()
	for _, id := range ids {
		res.Profiles = append(res.Profiles, store.ProfileChange{ID: id, EventCount: 1, At: now})
		res.Identities = append(res.Identities, kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.Email, Value: id + "@example.com"}, ProfileID: id, FirstSeen: now})
	}
	if err := r.st.ApplyResolution(ctx, res); err != nil {
		r.t.Fatal(err)
	}
}

// Under sustained entries, webhook delivery keeps up and the backlog
// drains: items wait in their destination's queue with their leases
// renewed instead of going back to the outbox ("handed back: waited too
// long for a worker" stalled delivery for 80 s and left 179k queued in
// the issue). KILN_SUSTAIN sets how long the load lasts (default 3s).
func TestSustainedEntriesDrain(t *testing.T) {
	d := 3 * time.Second
	if v := os.Getenv("KILN_SUSTAIN"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	onBackends(t, func(c *action.Config) { c.Workers, c.Lease = 32, 4*time.Second }, func(t *testing.T, r *rig) {
		rc := newReceiver(t, nil)
		r.webhook("crm", rc.URL, 0)
		r.automation(action.AutomationSpec{Name: "welcome", Segment: "new", Destination: "crm"})
		const per = 500 // entries per engine batch
		start := time.Now()
		written, batches := 0, 0
		for time.Since(start) < d {
			ids := make([]string, per)
			ts := make([]kiln.Transition, per)
			for i := range ids {
				ids[i] = fmt.Sprintf("p_%d_%d", batches, i)
				ts[i] = enter(ids[i], "new")
			}
			r.profiles(ids)
			r.transition(ts...)
			written += per
			batches++
		}
		loadEnd := time.Now()
		duringLoad := rc.count()
		waitFor(t, "the backlog drained", func() bool { return rc.count() >= written })
		drained := time.Since(loadEnd)
		waitFor(t, "the outcomes recorded", r.settled)
		handedBack := 0
		for _, it := range r.items(store.OutboxDelivered) {
			if strings.Contains(it.LastError, "handed back") {
				handedBack++
			}
		}
		t.Logf("%d entries over %v (%.0f/s written): %d webhooks during the load (%.0f/s), the rest %d drained %v after it; %d items had been handed back once",
			written, loadEnd.Sub(start).Round(time.Millisecond), float64(written)/loadEnd.Sub(start).Seconds(), duringLoad,
			float64(duringLoad)/loadEnd.Sub(start).Seconds(), written-duringLoad, drained.Round(time.Millisecond), handedBack)
		if drained > 15*time.Second { // about 2 s on a quiet machine
			t.Errorf("the backlog took %v to drain after the load", drained)
		}
		seen := map[string]bool{}
		for _, g := range rc.received() {
			seen[g.header.Get(action.HeaderID)] = true
		}
		if len(seen) != written {
			t.Errorf("%d distinct webhooks for %d entries", len(seen), written)
		}
	})
}
