package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

func ev(src, msg, anchor string, at time.Time) kiln.Event {
	return kiln.Event{MessageID: msg, SourceID: src, Type: kiln.Track, Name: "x", Anchor: anchor, UserID: anchor[len("user_id:"):], Timestamp: at, ReceivedAt: at}
}

func appendN(t *testing.T, db *DB, evs ...kiln.Event) int {
	t.Helper()
	n, err := db.Append(context.Background(), store.Batch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Retries are recognised across reopening and across two handles on the
// same file (two processes), within the window; past it an id is new again.
func TestDedupWindowAcrossHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := OpenWith(path, Options{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenWith(path, Options{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n := appendN(t, a, ev("s", "m1", "user_id:u", t0), ev("s", "m1", "user_id:u", t0)); n != 1 {
		t.Fatalf("duplicate within one batch stored: %d new", n)
	}
	if n := appendN(t, b, ev("s", "m1", "user_id:u", t0)); n != 0 {
		t.Fatal("the other handle stored a retry")
	}
	if n := appendN(t, b, ev("other-source", "m1", "user_id:u", t0)); n != 1 {
		t.Fatal("the same id from another source is a different message")
	}
	a.Close()
	b.Close()
	c, err := OpenWith(path, Options{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := appendN(t, c, ev("s", "m1", "user_id:u", t0.Add(30*time.Minute))); n != 0 {
		t.Fatal("a retry after reopening was stored")
	}
	// Two hours later the window has moved past m1.
	appendN(t, c, ev("s", "m2", "user_id:u", t0.Add(2*time.Hour)))
	if n := appendN(t, c, ev("s", "m1", "user_id:u", t0.Add(2*time.Hour))); n != 1 {
		t.Fatal("an id older than the window is still remembered")
	}
}

// Events are found by anchor whether or not the processor has indexed
// them yet, and deleting a profile removes both kinds.
func TestAnchorIndexBuiltOffTheIngestPath(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	appendN(t, db, ev("s", "1", "user_id:ann", t0), ev("s", "2", "user_id:bob", t0), ev("s", "3", "user_id:ann", t0.Add(time.Minute)))
	// Index up to seq 2 only: seq 3 stays in the unindexed tail.
	err = db.ApplyResolution(ctx, store.Resolution{
		Profiles:   []store.ProfileChange{{ID: "p_ann", EventCount: 2, At: t0}},
		Identities: []kiln.Identity{{Identifier: kiln.Identifier{Kind: kiln.UserID, Value: "ann"}, ProfileID: "p_ann"}},
		IndexUpTo:  2,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.EventsByAnchor(ctx, []string{"user_id:ann"}, 0)
	if err != nil || len(got) != 2 || got[0].MessageID != "3" || got[1].MessageID != "1" {
		t.Fatalf("events of ann: %v %+v", err, got)
	}
	var indexed int
	db.r.QueryRow(`SELECT count(*) FROM event_anchors`).Scan(&indexed)
	if indexed != 2 {
		t.Fatalf("%d events indexed, want the 2 up to seq 2", indexed)
	}
	if _, err := db.DeleteProfile(ctx, "p_ann", false, "", t0); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountEvents(ctx); n != 1 {
		t.Fatalf("%d events left, want bob's 1", n)
	}
	db.r.QueryRow(`SELECT count(*) FROM event_anchors`).Scan(&indexed)
	if indexed != 1 {
		t.Fatalf("%d index rows left, want bob's 1", indexed)
	}
}
