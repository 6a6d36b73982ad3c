package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

func runOutbox(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"WrittenWithTransitions", testOutboxWritten},
		{"RefusedAtomically", testOutboxRefused},
		{"LaneOrder", testOutboxLaneOrder},
		{"LeaseExpires", testOutboxLease},
		{"WrittenClaimed", testOutboxWrittenClaimed},
		{"ClaimDestinations", testOutboxClaimDestinations},
		{"ClaimRuns", testOutboxClaimRuns},
		{"ExtendLeases", testOutboxExtend},
		{"Backlog", testOutboxBacklog},
		{"DeadAndReplay", testOutboxDeadReplay},
		{"CountDelivered", testOutboxCountDelivered},
		{"Destinations", testDestinations},
		{"Automations", testAutomations},
		{"SyncAcks", testSyncAcks},
		{"SyncAckOnFinish", testSyncAckOnFinish},
		{"Enqueue", testEnqueueOutbox},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// item is an outbox item for transition i, due at minute m.
func item(i int, profile, dest string, m int) store.OutboxItem {
	return store.OutboxItem{Transition: i, ProfileID: profile, Destination: dest, Automation: "a_" + dest,
		Key: kiln.NewID("k_"), Payload: json.RawMessage(`{"n":1}`), Due: at(m), CreatedAt: at(0)}
}

// plan writes one entry transition per item (in the item's profile) with the items.
func plan(t *testing.T, s store.Store, items ...store.OutboxItem) []store.OutboxItem {
	t.Helper()
	r := store.Resolution{}
	for i := range items {
		r.Transitions = append(r.Transitions, tr("vip", items[i].ProfileID, true, 0, 1, kiln.ReasonEvent))
		items[i].Transition = i
	}
	r.Actions = items
	mustApply(t, s, r)
	for i, it := range items {
		if it.ID == 0 || it.TransitionID != r.Transitions[i].ID || it.TransitionID == 0 {
			t.Fatalf("item %d: ID %d, transition ID %d, want IDs set and transition %d", i, it.ID, it.TransitionID, r.Transitions[i].ID)
		}
	}
	return items
}

func claim(t *testing.T, s store.Store, now time.Time, limit int) []store.OutboxItem {
	t.Helper()
	got, err := s.ClaimOutbox(ctx, now, time.Minute, limit)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func ids(items []store.OutboxItem) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, got []store.OutboxItem, want ...int64) {
	t.Helper()
	g := ids(got)
	if len(g) != len(want) {
		t.Fatalf("%s: got items %v, want %v", what, g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("%s: got items %v, want %v", what, g, want)
		}
	}
}

func finish(t *testing.T, s store.Store, rs ...store.OutboxResult) {
	t.Helper()
	if err := s.FinishOutbox(ctx, rs); err != nil {
		t.Fatal(err)
	}
}

func testOutboxWritten(t *testing.T, s store.Store) {
	items := plan(t, s, item(0, "p1", "d1", 0), item(1, "p2", "d1", 5))
	got, err := s.ListOutbox(ctx, store.OutboxQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("listed %d items, want 2", len(got))
	}
	for i, g := range got {
		w := items[i]
		if g.ID != w.ID || g.TransitionID != w.TransitionID || g.ProfileID != w.ProfileID || g.Destination != w.Destination ||
			g.Automation != w.Automation || g.Key != w.Key || g.State != store.OutboxPending || g.Attempts != 0 {
			t.Errorf("item %d: got %+v, want %+v", i, g, w)
		}
		wantTime(t, "due", g.Due, w.Due)
		wantTime(t, "next attempt", g.NextAt, w.Due)
		if !jsonEqual(decodeMap(t, g.Payload), map[string]any{"n": 1.0}) {
			t.Errorf("payload %s", g.Payload)
		}
	}
	trs, err := s.Transitions(ctx, store.TransitionQuery{})
	if err != nil || len(trs) != 2 || trs[0].ID != got[0].TransitionID {
		t.Fatalf("transitions %v (err %v) do not match the items", trs, err)
	}
}

func decodeMap(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

func testOutboxRefused(t *testing.T, s store.Store) {
	r := store.Resolution{
		Transitions: []kiln.Transition{tr("vip", "p1", true, 0, 1, kiln.ReasonEvent)},
		Actions:     []store.OutboxItem{item(0, "p1", "d1", 0), item(3, "p1", "d1", 0)},
		Checkpoint:  store.Checkpoint{Name: "resolver", Seq: 7},
	}
	if err := s.ApplyResolution(ctx, r); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Fatalf("an item referring to a missing transition: got %v, want an invalid error", err)
	}
	got, _ := s.ListOutbox(ctx, store.OutboxQuery{})
	trs, _ := s.Transitions(ctx, store.TransitionQuery{})
	cp, _ := s.GetCheckpoint(ctx, "resolver")
	if len(got) != 0 || len(trs) != 0 || cp != 0 {
		t.Fatalf("a refused resolution left %d items, %d transitions, checkpoint %d", len(got), len(trs), cp)
	}
}

func testOutboxLaneOrder(t *testing.T, s store.Store) {
	// p1->d1 has three items; p1->d2 and p2->d1 are other lanes.
	it := plan(t, s, item(0, "p1", "d1", 0), item(1, "p1", "d1", 1), item(2, "p1", "d2", 2), item(3, "p2", "d1", 3), item(4, "p1", "d1", 4))
	now := at(10)
	got := claim(t, s, now, 10)
	wantIDs(t, "first claim: one head per lane", got, it[0].ID, it[2].ID, it[3].ID)
	wantIDs(t, "claimed items are leased", claim(t, s, now, 10))
	// The head fails and retries at minute 12: its lane waits for it.
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxPending, Attempted: true, NextAt: at(12), At: now, Error: "HTTP 503"},
		store.OutboxResult{ID: it[2].ID, State: store.OutboxDelivered, Attempted: true, At: now},
		store.OutboxResult{ID: it[3].ID, State: store.OutboxDelivered, Attempted: true, At: now})
	wantIDs(t, "lane held by a retry", claim(t, s, at(11), 10))
	next, err := s.NextOutboxDue(ctx, at(11))
	if err != nil {
		t.Fatal(err)
	}
	wantTime(t, "next due", next, at(12))
	got = claim(t, s, at(12), 10)
	wantIDs(t, "retry due", got, it[0].ID)
	if got[0].Attempts != 1 || got[0].State != store.OutboxPending {
		t.Fatalf("retried item: %+v, want 1 attempt, pending", got[0])
	}
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(12)})
	wantIDs(t, "next in lane", claim(t, s, at(12), 10), it[1].ID)
	finish(t, s, store.OutboxResult{ID: it[1].ID, State: store.OutboxSkipped, At: at(12), Error: "no consent"})
	wantIDs(t, "last in lane", claim(t, s, at(12), 10), it[4].ID)
	list, _ := s.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxDelivered})
	wantIDs(t, "delivered", list, it[0].ID, it[2].ID, it[3].ID)
	if list[0].Attempts != 2 || list[0].LastError != "" {
		t.Errorf("delivered after a retry: %+v, want 2 attempts", list[0])
	}
	wantTime(t, "finished", list[0].FinishedAt, at(12))
	if next, _ := s.NextOutboxDue(ctx, at(12)); !next.IsZero() {
		t.Errorf("nothing is due later, got %v", next)
	}
}

func testOutboxLease(t *testing.T, s store.Store) {
	it := plan(t, s, item(0, "p1", "d1", 0))
	wantIDs(t, "claim", claim(t, s, at(1), 5), it[0].ID)
	wantIDs(t, "within the lease", claim(t, s, at(1).Add(59*time.Second), 5))
	wantIDs(t, "after the lease", claim(t, s, at(2).Add(time.Second), 5), it[0].ID)
	if err := s.FinishOutbox(ctx, []store.OutboxResult{{ID: it[0].ID, State: "lost"}}); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("unknown state: got %v, want invalid", err)
	}
}

func laneHead(t *testing.T, s store.Store, id int64) bool {
	t.Helper()
	ok, err := s.LaneHead(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// An item written with ClaimedUntil is leased from the start; LaneHead says
// whether it may go before the items ahead of it in its lane.
func testOutboxWrittenClaimed(t *testing.T, s store.Store) {
	a, b, c := item(0, "p1", "d1", 0), item(1, "p1", "d1", 0), item(2, "p2", "d1", 0)
	b.ClaimedUntil, c.ClaimedUntil = at(2), at(2)
	it := plan(t, s, a, b, c)
	wantIDs(t, "pre-claimed items are not claimed again", claim(t, s, at(1), 10), it[0].ID)
	if !laneHead(t, s, it[2].ID) || laneHead(t, s, it[1].ID) || !laneHead(t, s, it[0].ID) || laneHead(t, s, 999) {
		t.Fatalf("lane heads: %v %v %v", laneHead(t, s, it[0].ID), laneHead(t, s, it[1].ID), laneHead(t, s, it[2].ID))
	}
	for i, want := range []int{0, 1, 0} {
		if n, err := s.LaneAhead(ctx, it[i].ID); err != nil || n != want {
			t.Fatalf("LaneAhead(item %d) = %d, %v; want %d", i, n, err, want)
		}
	}
	if n, err := s.LaneAhead(ctx, 999); err != nil || n != -1 {
		t.Fatalf("LaneAhead(unknown) = %d, %v; want -1", n, err)
	}
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(1)})
	if n, err := s.LaneAhead(ctx, it[0].ID); err != nil || n != -1 {
		t.Fatalf("LaneAhead(finished) = %d, %v; want -1", n, err)
	}
	if n, err := s.LaneAhead(ctx, it[1].ID); err != nil || n != 0 {
		t.Fatalf("LaneAhead(new head) = %d, %v; want 0", n, err)
	}
	if !laneHead(t, s, it[1].ID) || laneHead(t, s, it[0].ID) {
		t.Fatal("after the first is delivered the second heads the lane, and a finished item heads nothing")
	}
	wantIDs(t, "after the lease", claim(t, s, at(2), 10), it[1].ID, it[2].ID)
}

func testOutboxDeadReplay(t *testing.T, s store.Store) {
	it := plan(t, s, item(0, "p1", "d1", 0), item(1, "p1", "d1", 1), item(2, "p2", "d1", 2))
	claim(t, s, at(5), 10)
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDead, Attempted: true, At: at(5), Error: "HTTP 400: bad"},
		store.OutboxResult{ID: it[2].ID, State: store.OutboxDead, Attempted: true, At: at(5), Error: "HTTP 404"})
	dead, err := s.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxDead})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "dead letters", dead, it[0].ID, it[2].ID)
	if dead[0].LastError != "HTTP 400: bad" || dead[0].Attempts != 1 {
		t.Errorf("dead letter %+v", dead[0])
	}
	// A dead item does not hold its lane.
	wantIDs(t, "lane after a dead letter", claim(t, s, at(5), 10), it[1].ID)
	n, err := s.ReplayOutbox(ctx, []int64{it[0].ID, it[1].ID}, at(6))
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v; want 1 (only dead items replay)", n, err)
	}
	finish(t, s, store.OutboxResult{ID: it[1].ID, State: store.OutboxDelivered, Attempted: true, At: at(6)})
	got := claim(t, s, at(6), 10)
	wantIDs(t, "replayed", got, it[0].ID)
	if got[0].Attempts != 0 || got[0].LastError != "" {
		t.Errorf("replayed item starts afresh, got %+v", got[0])
	}
	if n, err := s.ReplayOutbox(ctx, nil, at(7)); err != nil || n != 1 {
		t.Fatalf("replay all: %d, %v; want 1", n, err)
	}
}

func testOutboxCountDelivered(t *testing.T, s store.Store) {
	a, b, c, e := item(0, "p1", "d1", 0), item(1, "p1", "d2", 0), item(2, "p1", "d3", 0), item(3, "p1", "d4", 0)
	a.Capped, b.Capped, e.Capped = true, true, true
	it := plan(t, s, a, b, c, e)
	claim(t, s, at(1), 10)
	// The fourth is delivered without an attempt (superseded in its
	// batch): nothing reached the customer, so it does not count.
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(1)},
		store.OutboxResult{ID: it[1].ID, State: store.OutboxDelivered, Attempted: true, At: at(30)},
		store.OutboxResult{ID: it[2].ID, State: store.OutboxDelivered, Attempted: true, At: at(30)},
		store.OutboxResult{ID: it[3].ID, State: store.OutboxDelivered, At: at(30)})
	for _, tc := range []struct {
		profile string
		since   int
		want    int
	}{{"p1", 0, 2}, {"p1", 10, 1}, {"p1", 31, 0}, {"p2", 0, 0}} {
		n, err := s.CountDelivered(ctx, tc.profile, at(tc.since))
		if err != nil || n != tc.want {
			t.Errorf("CountDelivered(%s, minute %d) = %d, %v; want %d", tc.profile, tc.since, n, err, tc.want)
		}
	}
}

func testDestinations(t *testing.T, s store.Store) {
	d := store.Destination{ID: "d_1", Name: "crm", Kind: "webhook", Config: json.RawMessage(`{"url":"http://x"}`), Sealed: []byte{1, 2, 3}, RateLimit: 5, CreatedAt: at(0)}
	if err := s.CreateDestination(ctx, d); err != nil {
		t.Fatal(err)
	}
	dup := d
	dup.ID = "d_2"
	wantErr(t, "same name", s.CreateDestination(ctx, dup), store.ErrConflict)
	for _, key := range []string{"d_1", "crm"} {
		got, err := s.GetDestination(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != d.ID || got.Kind != d.Kind || string(got.Sealed) != string(d.Sealed) || got.RateLimit != 5 ||
			!jsonEqual(decodeMap(t, got.Config), map[string]any{"url": "http://x"}) {
			t.Errorf("GetDestination(%s) = %+v", key, got)
		}
		wantTime(t, "created", got.CreatedAt, at(0))
	}
	_, err := s.GetDestination(ctx, "nope")
	wantErr(t, "missing", err, store.ErrNotFound)
	if err := s.CreateDestination(ctx, store.Destination{ID: "d_3", Name: "a", Kind: "smtp"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListDestinations(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "crm" {
		t.Fatalf("list %+v, %v", list, err)
	}
	if err := s.DeleteDestination(ctx, "d_3"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteDestination(ctx, "d_3"), store.ErrNotFound)
}

func testAutomations(t *testing.T, s store.Store) {
	a := store.Automation{ID: "a_1", Name: "welcome", Segment: "new", On: "enter", Delay: 90 * time.Second, Recheck: "new",
		Destination: "d_1", Options: json.RawMessage(`{"traits":["name"]}`), Enabled: true, CreatedAt: at(0), UpdatedAt: at(0)}
	if err := s.PutAutomation(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAutomation(ctx, "welcome")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a_1" || got.Segment != "new" || got.On != "enter" || got.Delay != a.Delay || got.Recheck != "new" ||
		got.Destination != "d_1" || !got.Enabled || got.Hook || !jsonEqual(decodeMap(t, got.Options), map[string]any{"traits": []any{"name"}}) {
		t.Errorf("GetAutomation = %+v", got)
	}
	a.Enabled, a.UpdatedAt = false, at(5)
	if err := s.PutAutomation(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetAutomation(ctx, "a_1")
	if got.Enabled {
		t.Error("disable did not stick")
	}
	wantTime(t, "created kept", got.CreatedAt, at(0))
	wantTime(t, "updated", got.UpdatedAt, at(5))
	other := store.Automation{ID: "a_2", Name: "welcome", Segment: "x", On: "exit", Destination: "d_1", Hook: true}
	if err := s.PutAutomation(ctx, other); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same name: got %v, want conflict", err)
	}
	other.Name = "bye"
	if err := s.PutAutomation(ctx, other); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAutomations(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "bye" || !list[0].Hook {
		t.Fatalf("list %+v, %v", list, err)
	}
	if err := s.DeleteAutomation(ctx, "a_2"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteAutomation(ctx, "a_2"), store.ErrNotFound)
	_, err = s.GetAutomation(ctx, "bye")
	wantErr(t, "deleted", err, store.ErrNotFound)
}

func claimDests(t *testing.T, s store.Store, now time.Time, want ...store.DestinationClaim) []store.OutboxItem {
	t.Helper()
	got, err := s.ClaimDestinations(ctx, now, time.Minute, want)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Each destination is claimed on its own, up to its own limit, in lane
// order; a destination not asked for is left alone.
func testOutboxClaimDestinations(t *testing.T, s store.Store) {
	it := plan(t, s, item(0, "p1", "d1", 0), item(1, "p1", "d1", 1), item(2, "p2", "d1", 2), item(3, "p3", "d1", 3),
		item(4, "p1", "d2", 4), item(5, "p2", "d2", 5), item(6, "p1", "d3", 6))
	got := claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 2}, store.DestinationClaim{Destination: "d2", Limit: 5},
		store.DestinationClaim{Destination: "d9", Limit: 5}, store.DestinationClaim{Destination: "d3", Limit: 0})
	wantIDs(t, "d1 up to 2 heads (p1's second waits for its first), all of d2", got, it[0].ID, it[2].ID, it[4].ID, it[5].ID)
	wantIDs(t, "leased items are not claimed again", claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 5}), it[3].ID)
	wantIDs(t, "nothing due yet", claimDests(t, s, at(5), store.DestinationClaim{Destination: "d3", Limit: 5}))
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(10)})
	wantIDs(t, "next in lane, other destinations untouched", claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 5}), it[1].ID)
	wantIDs(t, "the global claim sees what is left", claim(t, s, at(10), 10), it[6].ID)
}

// A claim of runs takes a lane's due items behind its head too, up to the
// first that is not due or is leased.
func testOutboxClaimRuns(t *testing.T, s store.Store) {
	later := at(10).Add(30 * time.Second) // within the leases taken at at(10)
	i3, i4 := item(3, "p1", "d1", 0), item(4, "p1", "d1", 0)
	i3.Due, i4.Due = later, later.Add(time.Second)
	it := plan(t, s, item(0, "p1", "d1", 0), item(1, "p1", "d1", 1), item(2, "p2", "d1", 2), i3, i4, item(5, "p3", "d1", 3), item(6, "p3", "d1", 4))
	wantIDs(t, "p1's head, by a head claim", claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 1, Runs: false}), it[0].ID)
	got := claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 10, Runs: true})
	wantIDs(t, "p1's second waits behind its leased first; p2; p3's run", got, it[2].ID, it[5].ID, it[6].ID)
	finish(t, s, store.OutboxResult{ID: it[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(10)})
	wantIDs(t, "p1's due run, not what is not due", claimDests(t, s, at(10), store.DestinationClaim{Destination: "d1", Limit: 10, Runs: true}), it[1].ID)
	wantIDs(t, "later, the rest of p1's run waits for its leased head", claimDests(t, s, later.Add(5*time.Second), store.DestinationClaim{Destination: "d1", Limit: 10, Runs: true}))
	finish(t, s, store.OutboxResult{ID: it[1].ID, State: store.OutboxDelivered, Attempted: true, At: later})
	wantIDs(t, "then all of it", claimDests(t, s, later.Add(5*time.Second), store.DestinationClaim{Destination: "d1", Limit: 10, Runs: true}), it[3].ID, it[4].ID)
}

// A lease still held is renewed; one that ended is not (another worker
// may hold the item now), nor is a finished item.
func testOutboxExtend(t *testing.T, s store.Store) {
	it := plan(t, s, item(0, "p1", "d1", 0), item(1, "p2", "d1", 0), item(2, "p3", "d1", 0))
	wantIDs(t, "claim", claim(t, s, at(1), 5), it[0].ID, it[1].ID, it[2].ID) // leased until at(2)
	finish(t, s, store.OutboxResult{ID: it[2].ID, State: store.OutboxDelivered, Attempted: true, At: at(1)})
	got, err := s.ExtendOutbox(ctx, []int64{it[0].ID, it[1].ID, it[2].ID, 999}, at(1).Add(30*time.Second), at(4))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int64{it[0].ID, it[1].ID}) {
		t.Fatalf("renewed %v, want the two items still leased, %v", got, []int64{it[0].ID, it[1].ID})
	}
	wantIDs(t, "renewed leases hold past the old end", claim(t, s, at(3), 5))
	// At minute 4 the leases end: another worker claims them, and the old
	// holder's renewal (its clock saying minute 4 too) changes nothing.
	wantIDs(t, "after the renewed lease", claim(t, s, at(4), 5), it[0].ID, it[1].ID)
	if got, err := s.ExtendOutbox(ctx, []int64{it[0].ID}, at(5).Add(time.Second), at(9)); err != nil || len(got) != 0 {
		t.Fatalf("renewing an ended lease: %v, %v; want nothing renewed", got, err)
	}
	if got, err := s.ExtendOutbox(ctx, nil, at(5), at(9)); err != nil || len(got) != 0 {
		t.Fatalf("renewing nothing: %v, %v", got, err)
	}
}

func testOutboxBacklog(t *testing.T, s store.Store) {
	if b, err := s.OutboxBacklog(ctx, at(0)); err != nil || len(b) != 0 {
		t.Fatalf("empty outbox: backlog %v, %v", b, err)
	}
	it := plan(t, s, item(0, "p1", "d1", 1), item(1, "p2", "d1", 2), item(2, "p3", "d1", 30), item(3, "p1", "d2", 5), item(4, "p2", "d3", 1))
	finish(t, s, store.OutboxResult{ID: it[4].ID, State: store.OutboxDelivered, Attempted: true, At: at(1)},
		// d2's item failed and retries at minute 20: pending, overdue, not due.
		store.OutboxResult{ID: it[3].ID, State: store.OutboxPending, Attempted: true, NextAt: at(20), At: at(6)})
	got, err := s.OutboxBacklog(ctx, at(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("backlog %+v, want d1 and d2 (d3 has nothing pending)", got)
	}
	slices.SortFunc(got, func(a, b store.Backlog) int { return strings.Compare(a.Destination, b.Destination) })
	d1, d2 := got[0], got[1]
	if d1.Destination != "d1" || d1.Pending != 3 || d1.Due != 2 {
		t.Errorf("d1: %+v, want 3 pending, 2 due", d1)
	}
	wantTime(t, "d1 oldest due", d1.OldestDue, at(1))
	if d2.Destination != "d2" || d2.Pending != 1 || d2.Due != 0 {
		t.Errorf("d2: %+v, want 1 pending, none due", d2)
	}
	wantTime(t, "d2 oldest due (waiting for its retry)", d2.OldestDue, at(5))
}
