package storetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kiln-cdp/kiln/store"
)

func syncAcks(t *testing.T, s store.Store, dest, seg string, profiles ...string) map[string]store.SyncAck {
	t.Helper()
	got, err := s.SyncAcks(ctx, dest, seg, profiles)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Acknowledged states are put, replaced, read by profile and scanned by
// (destination, segment), and dropped with their destination.
func testSyncAcks(t *testing.T, s store.Store) {
	if err := s.CreateDestination(ctx, store.Destination{ID: "d1", Name: "kl", Kind: "klaviyo", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	put := func(acks ...store.SyncAck) {
		t.Helper()
		if err := s.PutSyncAcks(ctx, acks); err != nil {
			t.Fatal(err)
		}
	}
	put(store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p1", In: true, TraitsHash: "h1", At: at(1)},
		store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p2", In: false, At: at(1)},
		store.SyncAck{Destination: "d1", Segment: "lapsed", ProfileID: "p1", In: true, At: at(1)},
		store.SyncAck{Destination: "d2", Segment: "vip", ProfileID: "p3", In: true, At: at(1)})
	got := syncAcks(t, s, "d1", "vip", "p1", "p2", "p3")
	if len(got) != 2 || !got["p1"].In || got["p1"].TraitsHash != "h1" || got["p2"].In || got["p1"].Segment != "vip" || got["p1"].Destination != "d1" {
		t.Fatalf("acks %+v", got)
	}
	wantTime(t, "acked", got["p1"].At, at(1))
	put(store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p1", In: false, At: at(2)})
	if got := syncAcks(t, s, "d1", "vip", "p1"); got["p1"].In || got["p1"].TraitsHash != "" {
		t.Fatalf("replaced ack %+v", got["p1"])
	}
	// An older ack (a reconciliation's snapshot) does not replace a newer one.
	put(store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p1", In: true, At: at(1)})
	if got := syncAcks(t, s, "d1", "vip", "p1"); got["p1"].In {
		t.Fatalf("an older ack replaced a newer one: %+v", got["p1"])
	}
	// Forgetting makes a state unknown, unless it is newer than the forget.
	if err := s.ForgetSyncAcks(ctx, []store.SyncAck{{Destination: "d1", Segment: "vip", ProfileID: "p2", At: at(0)},
		{Destination: "d1", Segment: "lapsed", ProfileID: "p1", At: at(5)}, {Destination: "d1", Segment: "vip", ProfileID: "nobody", At: at(5)}}); err != nil {
		t.Fatal(err)
	}
	if got := syncAcks(t, s, "d1", "vip", "p2"); len(got) != 1 {
		t.Fatalf("a newer ack was forgotten: %+v", got)
	}
	if got := syncAcks(t, s, "d1", "lapsed", "p1"); len(got) != 0 {
		t.Fatalf("an ack was not forgotten: %+v", got)
	}
	if err := s.PutSyncAcks(ctx, []store.SyncAck{{Segment: "vip", ProfileID: "p1", At: at(1)}}); err == nil {
		t.Error("an ack without a destination was accepted")
	}
	// A scan pages through more than one page, in profile order.
	var many []store.SyncAck
	for i := range 1500 {
		many = append(many, store.SyncAck{Destination: "d1", Segment: "big", ProfileID: fmt.Sprintf("p%05d", i), In: i%2 == 0, At: at(3)})
	}
	put(many...)
	var n int
	last := ""
	err := s.ScanSyncAcks(ctx, "d1", "big", func(a store.SyncAck) error {
		if a.ProfileID <= last || a.In != (n%2 == 0) {
			return fmt.Errorf("ack %d: %+v after %q", n, a, last)
		}
		last = a.ProfileID
		n++
		return nil
	})
	if err != nil || n != 1500 {
		t.Fatalf("scanned %d acks, err %v; want 1500", n, err)
	}
	if err := s.DeleteDestination(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if got := syncAcks(t, s, "d1", "vip", "p1", "p2"); len(got) != 0 {
		t.Fatalf("acks of a deleted destination: %+v", got)
	}
	if got := syncAcks(t, s, "d2", "vip", "p3"); len(got) != 1 {
		t.Fatalf("another destination's acks went: %+v", got)
	}
}

// FinishOutbox records the ack of a delivered item in the same
// transaction, and only of a delivered one.
func testSyncAckOnFinish(t *testing.T, s store.Store) {
	items := plan(t, s, item(0, "p1", "d1", 0), item(1, "p2", "d1", 0))
	claim(t, s, at(0), 10)
	finish(t, s,
		store.OutboxResult{ID: items[0].ID, State: store.OutboxDelivered, Attempted: true, At: at(1),
			Ack: &store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p1", In: true, TraitsHash: "h", At: at(1)}},
		store.OutboxResult{ID: items[1].ID, State: store.OutboxPending, Attempted: true, At: at(1), NextAt: at(2),
			Ack: &store.SyncAck{Destination: "d1", Segment: "vip", ProfileID: "p2", In: true, At: at(1)}})
	got := syncAcks(t, s, "d1", "vip", "p1", "p2")
	if len(got) != 1 || !got["p1"].In || got["p1"].TraitsHash != "h" {
		t.Fatalf("acks after finishing %+v", got)
	}
	// A bad ack fails the whole finish.
	if err := s.FinishOutbox(ctx, []store.OutboxResult{{ID: items[1].ID, State: store.OutboxDelivered, At: at(3),
		Ack: &store.SyncAck{Destination: "d1", Segment: "vip", At: at(3)}}}); err == nil {
		t.Fatal("a finish with an ack without a profile was accepted")
	}
	list, err := s.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxPending})
	if err != nil || len(list) != 1 || list[0].ID != items[1].ID {
		t.Fatalf("pending after a refused finish: %+v, %v", list, err)
	}
}

// EnqueueOutbox writes items without a transition, claimed like others
// and in lane order after the lane's earlier items.
func testEnqueueOutbox(t *testing.T, s store.Store) {
	first := plan(t, s, item(0, "p1", "d1", 0))
	rec := []store.OutboxItem{
		{ProfileID: "p1", Destination: "d1", Automation: "a_d1", Key: "rec_1", Payload: json.RawMessage(`{"n":2}`), Due: at(1), CreatedAt: at(1)},
		{ProfileID: "p2", Destination: "d1", Automation: "a_d1", Key: "rec_2", Payload: json.RawMessage(`{"n":3}`), Due: at(1), CreatedAt: at(1)},
	}
	if err := s.EnqueueOutbox(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if rec[0].ID == 0 || rec[1].ID == 0 || rec[0].TransitionID != 0 {
		t.Fatalf("enqueued %+v", rec)
	}
	wantIDs(t, "claim", claim(t, s, at(2), 10), first[0].ID, rec[1].ID)
	if err := s.EnqueueOutbox(ctx, []store.OutboxItem{{ProfileID: "p1", Destination: "d1", Key: "k", Due: at(1)}, {Destination: "d1", Key: "k", Due: at(1)}}); err == nil {
		t.Fatal("an item without a profile was enqueued")
	}
	if list, _ := s.ListOutbox(ctx, store.OutboxQuery{}); len(list) != 3 {
		t.Fatalf("a refused enqueue wrote items: %d listed, want 3", len(list))
	}
}
