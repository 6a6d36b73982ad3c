package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
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
		p, err := partBytes(h, p)
		if err != nil {
			t.Fatal(err)
		}
		err = readRecords(p, func(kind byte, pid string, body []byte) error {
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
		if err := b.st.PutSnapshotPart(ctx, h.Gen, int64(i), s2.Encode(nil, p)); err != nil {
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

// A snapshot of many parts, encoded on every CPU, loads back into the same
// states: the same members, the same traits, the same window deadlines.
func TestSnapshotOfManyParts(t *testing.T) {
	ctx := context.Background()
	b := setup(t, true)
	now := b.now()
	defs := `trait spend_30d = sum(properties.revenue) of "Order Completed" in last 30 days
segment buyers { spend_30d >= 100 }
segment named { traits.note exists }`
	if _, err := b.e.ApplyDefinitions(ctx, defs, false); err != nil {
		t.Fatal(err)
	}
	note := strings.Repeat("a long note about this customer ", 100) // about 3 KB a profile
	const n = 3000
	var evs []kiln.Event
	for i := range n {
		evs = append(evs, order(now.Add(-time.Duration(i)*time.Minute), float64(50+i%100)))
		if i%3 == 0 {
			evs = append(evs, kiln.Event{Type: kiln.Identify, Timestamp: now, Traits: map[string]any{"note": fmt.Sprint(i, note)}})
		}
	}
	for i := range evs {
		e := &evs[i]
		e.MessageID, e.SourceID, e.ReceivedAt = fmt.Sprintf("m%d", i), "test", now
		if e.Type == "" {
			e.Type = kiln.Track
		}
		e.UserID = fmt.Sprintf("u%d", i*2/3) // near enough: every profile has an order or two
		e.Anchor = identity.Anchor(identity.Extract(e))
	}
	if _, err := b.st.Append(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	last, _ := b.st.LastSeq(ctx)
	if err := b.e.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	type summary struct {
		due    int64
		member []string
		note   any
	}
	sum := func() map[string]summary {
		b.e.mu.Lock()
		defer b.e.mu.Unlock()
		out := map[string]summary{}
		for pid, ps := range b.e.segs.states {
			out[pid] = summary{ps.due, b.e.segs.memberships(pid), ps.prof.Traits["note"]}
		}
		return out
	}
	want := sum()
	defer func(n int) { snapshotPart = n }(snapshotPart)
	snapshotPart = 256 << 10
	if err := b.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := b.e.snapshotHeader(ctx)
	if err != nil || h.Parts < 8 {
		t.Fatalf("snapshot %+v (%v): want several parts", h, err)
	}
	var logs strings.Builder
	b.e.log = slog.New(slog.NewTextHandler(&logs, nil))
	b.stop()
	b.start(t)
	if !b.e.preloaded || !strings.Contains(logs.String(), `"from snapshot"=true`) || strings.Contains(logs.String(), "cannot be read") {
		t.Errorf("the restart did not load the snapshot's states:\n%s", logs.String())
	}
	check := func(when string) {
		got := sum()
		if len(got) != len(want) || len(got) < n/2 {
			t.Fatalf("%s: %d profiles, %d before", when, len(got), len(want))
		}
		for pid, w := range want {
			if g := got[pid]; g.due != w.due || !slices.Equal(g.member, w.member) || g.note != w.note {
				t.Fatalf("profile %s: %+v %s, %+v before", pid, g, when, w)
			}
		}
	}
	check("after the restart")

	// A snapshot an older version wrote (format 3, parts not compressed)
	// is read too: an upgrade does not replay the whole log.
	if err := b.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err = b.e.snapshotHeader(ctx); err != nil {
		t.Fatal(err)
	}
	var parts [][]byte
	if err := b.st.ScanSnapshot(ctx, h.Gen, func(p []byte) error {
		raw, err := partBytes(h, p)
		parts = append(parts, raw)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		if err := b.st.PutSnapshotPart(ctx, h.Gen, int64(i), p); err != nil {
			t.Fatal(err)
		}
	}
	h.Format = 3
	raw, _ := json.Marshal(h)
	if err := b.st.ApplyResolution(ctx, store.Resolution{Blobs: []store.Blob{{Name: snapshotBlob, Data: raw}}}); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	b.stop()
	b.start(t)
	if !b.e.preloaded || !b.e.indexSnapped || !strings.Contains(logs.String(), `"from snapshot"=true`) || strings.Contains(logs.String(), "cannot be read") {
		t.Errorf("the restart did not load the format 3 snapshot:\n%s", logs.String())
	}
	check("after a restart from a format 3 snapshot")
}
