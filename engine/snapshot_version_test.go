package engine

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/eval"
)

// A snapshot whose states use an older encoding (eval's state version
// changed, as it did for exact decimals) is not used: the start replays
// the whole log and ends in the same place.
func TestOldStateEncodingReplaysTheLog(t *testing.T) {
	ctx := context.Background()
	b := setup(t, true)
	now := b.now()
	defs := `trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days
segment high_value { spend_365d >= 500 }`
	if _, err := b.e.ApplyDefinitions(ctx, defs, false); err != nil {
		t.Fatal(err)
	}
	b.send(t, "ann", order(now.Add(-time.Hour), 386.93), order(now.Add(-time.Minute), 113.07))
	if !b.member(t, "high_value", "ann") {
		t.Fatal("386.93 + 113.07 is not >= 500")
	}
	if err := b.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	// As it is, the snapshot is used.
	var logs strings.Builder
	b.e.log = slog.New(slog.NewTextHandler(&logs, nil))
	b.stop()
	b.start(t)
	if !strings.Contains(logs.String(), `"from snapshot"=true`) {
		t.Fatalf("a restart did not begin from the snapshot:\n%s", logs.String())
	}
	if err := b.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()
	b.stop = func() {}

	h, err := b.e.snapshotHeader(ctx)
	if err != nil || h.Gen == 0 {
		t.Fatalf("no snapshot: %+v %v", h, err)
	}
	var parts [][]byte
	if err := b.st.ScanSnapshot(ctx, h.Gen, func(p []byte) error { parts = append(parts, append([]byte(nil), p...)); return nil }); err != nil {
		t.Fatal(err)
	}
	states := 0
	for i, p := range parts {
		err := readRecords(p, func(kind byte, pid string, body []byte) error {
			if kind != recState {
				return nil
			}
			_, n := binary.Varint(body)
			st, _, err := readBytes(body[n:])
			if err != nil {
				return err
			}
			st[0] = 2 // the encoding before exact decimals
			states++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.st.PutSnapshotPart(ctx, h.Gen, int64(i), p); err != nil {
			t.Fatal(err)
		}
	}
	if states == 0 {
		t.Fatal("the snapshot holds no states")
	}
	before := len(b.transitions())
	logs.Reset()
	b.start(t)
	if !strings.Contains(logs.String(), "the engine snapshot cannot be read; replaying the whole log") || !strings.Contains(logs.String(), "unknown state encoding version") {
		t.Fatalf("a snapshot of the old encoding was used:\n%s", logs.String())
	}
	if got := len(b.transitions()); got != before {
		t.Fatalf("restart recorded %d reconciliation transitions, want none", got-before)
	}
	traits, segs := b.e.ProfileSegments(mustProfile(t, b, "ann"))
	if len(segs) != 1 || segs[0] != "high_value" || traits["spend_365d"] != (eval.Number{Text: "500.00", Currency: "USD"}) {
		t.Fatalf("after the restart: %v %v", traits, segs)
	}
}
