// Package storetest is the conformance suite every store.Store backend
// passes. A backend's test calls Run with a function that opens a fresh,
// empty store; each subtest opens its own.
//
// Times in the suite have microsecond precision, the finest PostgreSQL
// keeps, so that every backend must return exactly the times it was given.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// Run runs the whole suite. open returns a new empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"AppendDedup", testAppendDedup},
		{"AppendEmpty", testAppendEmpty},
		{"AppendUnencodable", testAppendUnencodable},
		{"ReadEventsPaging", testReadEventsPaging},
		{"ScanLog", testScanLog},
		{"EventsByAnchor", testEventsByAnchor},
		{"SeqNeverReused", testSeqNeverReused},
		{"Rejects", testRejects},
		{"RejectOddText", testRejectOddText},
		{"Sources", testSources},
		{"SealedSourceSecrets", testSealedSourceSecrets},
		{"Keys", testKeys},
		{"Checkpoints", testCheckpoints},
		{"ProfileChanges", testProfileChanges},
		{"ProfileReplace", testProfileReplace},
		{"IdentitiesMove", testIdentitiesMove},
		{"ConsentNewestWins", testConsentNewestWins},
		{"MergeFold", testMergeFold},
		{"MergeRename", testMergeRename},
		{"MergeChain", testMergeChain},
		{"MergeOfUnstoredProfiles", testMergeOfUnstoredProfiles},
		{"UndoMerge", testUndoMerge},
		{"UndoMergeRename", testUndoMergeRename},
		{"DeleteProfile", testDeleteProfile},
		{"Suppressions", testSuppressions},
		{"ListProfiles", testListProfiles},
		{"ScanIdentities", testScanIdentities},
		{"ResolutionAtomic", testResolutionAtomic},
		{"ConcurrentAppend", testConcurrentAppend},
		{"EngineState", testEngineState},
		{"Snapshots", testSnapshots},
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
	t.Run("Segments", func(t *testing.T) { runSegments(t, open) })
	t.Run("Outbox", func(t *testing.T) { runOutbox(t, open) })
}

var ctx = context.Background()

// t0 has microsecond precision on purpose (see the package comment).
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func ident(kind kiln.IdentifierKind, value string) kiln.Identifier {
	return kiln.Identifier{Kind: kind, Value: value}
}

func event(src, msg, anchor string, ts time.Time) kiln.Event {
	return kiln.Event{
		MessageID:  msg,
		SourceID:   src,
		Type:       kiln.Track,
		Name:       kiln.OrderCompleted,
		UserID:     "42",
		Anchor:     anchor,
		Timestamp:  ts,
		ReceivedAt: ts.Add(1500 * time.Microsecond),
		Store:      "store-1",
		Properties: map[string]any{
			"order_id": msg, "revenue": 99.5, "currency": "EUR",
			"products": []any{map[string]any{"sku": "CUP-1", "quantity": 2.0}},
		},
		Context: map[string]any{"ip": "192.0.2.1"},
	}
}

func mustAppend(t *testing.T, s store.Store, evs ...kiln.Event) []kiln.Event {
	t.Helper()
	b := store.Batch{Events: evs}
	if _, err := s.Append(ctx, b); err != nil {
		t.Fatalf("append: %v", err)
	}
	return b.Events
}

func mustApply(t *testing.T, s store.Store, r store.Resolution) {
	t.Helper()
	if err := s.ApplyResolution(ctx, r); err != nil {
		t.Fatalf("apply resolution: %v", err)
	}
}

func mustProfile(t *testing.T, s store.Store, id string) *kiln.Profile {
	t.Helper()
	p, err := s.GetProfile(ctx, id)
	if err != nil {
		t.Fatalf("get profile %s: %v", id, err)
	}
	return p
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s is in %s, want UTC", what, got.Location())
	}
}

// jsonEqual compares maps as JSON would (numbers are float64 after a round trip).
func jsonEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func checkEvent(t *testing.T, got, want kiln.Event) {
	t.Helper()
	if got.Seq != want.Seq || got.MessageID != want.MessageID || got.SourceID != want.SourceID ||
		got.Type != want.Type || got.Name != want.Name || got.UserID != want.UserID ||
		got.AnonymousID != want.AnonymousID || got.PreviousID != want.PreviousID ||
		got.GroupID != want.GroupID || got.Anchor != want.Anchor || got.Store != want.Store {
		t.Errorf("event fields:\n got %+v\nwant %+v", got, want)
	}
	wantTime(t, "event "+want.MessageID+" timestamp", got.Timestamp, want.Timestamp)
	wantTime(t, "event "+want.MessageID+" receivedAt", got.ReceivedAt, want.ReceivedAt)
	if !jsonEqual(got.Properties, want.Properties) || !jsonEqual(got.Traits, want.Traits) || !jsonEqual(got.Context, want.Context) {
		t.Errorf("event %s payload:\n got %v %v %v\nwant %v %v %v", want.MessageID,
			got.Properties, got.Traits, got.Context, want.Properties, want.Traits, want.Context)
	}
}

func seqs(evs []kiln.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func msgs(evs []kiln.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.MessageID
	}
	return out
}

func testAppendAndRead(t *testing.T, s store.Store) {
	if n, err := s.LastSeq(ctx); err != nil || n != 0 {
		t.Fatalf("LastSeq of empty log = %d, %v; want 0", n, err)
	}
	e1 := event("src_a", "m1", "user_id:42", at(0))
	e2 := event("src_a", "m2", "email:a@example.com", at(1))
	e2.Type, e2.Name, e2.UserID, e2.AnonymousID = kiln.Identify, "", "", "anon-1"
	e2.Properties, e2.Context = nil, nil
	e2.Traits = map[string]any{"email": "a@example.com", "vip": true, "n": 3.0, "odd": "nul \x00 tab \t é \u2028"}
	e3 := event("src_a", "m3", "anonymous_id:anon-1", at(2))
	e3.Type, e3.PreviousID, e3.GroupID = kiln.Alias, "old-id", "g1"
	e3.Properties, e3.Context = nil, nil
	b := store.Batch{Events: []kiln.Event{e1, e2, e3}}
	n, err := s.Append(ctx, b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if n != 3 {
		t.Fatalf("append returned %d new events, want 3", n)
	}
	for i := 1; i < 3; i++ {
		if b.Events[i].Seq <= b.Events[i-1].Seq || b.Events[0].Seq <= 0 {
			t.Fatalf("seqs %v are not positive and increasing", seqs(b.Events))
		}
	}
	got, err := s.ReadEvents(ctx, 0, 10)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i := range got {
		checkEvent(t, got[i], b.Events[i])
	}
	if last, err := s.LastSeq(ctx); err != nil || last != b.Events[2].Seq {
		t.Errorf("LastSeq = %d, %v; want %d", last, err, b.Events[2].Seq)
	}
	if c, err := s.CountEvents(ctx); err != nil || c != 3 {
		t.Errorf("CountEvents = %d, %v; want 3", c, err)
	}
}

func testAppendDedup(t *testing.T, s store.Store) {
	first := store.Batch{Events: []kiln.Event{
		event("src_a", "m1", "user_id:1", at(0)),
		event("src_a", "m2", "user_id:1", at(1)),
		event("src_a", "m1", "user_id:1", at(2)), // same batch retry
		event("src_b", "m1", "user_id:1", at(3)), // other source: not a retry
	}}
	n, err := s.Append(ctx, first)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if n != 3 {
		t.Errorf("append returned %d, want 3", n)
	}
	ev := first.Events
	if ev[0].Seq == 0 || ev[1].Seq <= ev[0].Seq || ev[2].Seq != 0 || ev[3].Seq <= ev[1].Seq {
		t.Errorf("seqs %v: want increasing for new events and 0 for the in-batch retry", seqs(ev))
	}
	retry := store.Batch{Events: []kiln.Event{
		event("src_a", "m2", "user_id:1", at(5)),
		event("src_a", "m3", "user_id:1", at(6)),
		event("src_b", "m1", "user_id:1", at(7)),
	}}
	retry.Events[0].Seq = 99 // stale values are overwritten
	n, err = s.Append(ctx, retry)
	if err != nil {
		t.Fatalf("append retry: %v", err)
	}
	if n != 1 || retry.Events[0].Seq != 0 || retry.Events[2].Seq != 0 || retry.Events[1].Seq <= ev[3].Seq {
		t.Errorf("retry: n=%d seqs %v; want 1 new event after %d", n, seqs(retry.Events), ev[3].Seq)
	}
	all, err := s.ReadEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs(all); !slices.Equal(got, []string{"m1", "m2", "m1", "m3"}) {
		t.Errorf("log holds %v", got)
	}
	// The first copy is kept, not the retry.
	wantTime(t, "kept m1 timestamp", all[0].Timestamp, at(0))
	if c, _ := s.CountEvents(ctx); c != 4 {
		t.Errorf("CountEvents = %d, want 4", c)
	}
}

func testAppendEmpty(t *testing.T, s store.Store) {
	n, err := s.Append(ctx, store.Batch{})
	if err != nil || n != 0 {
		t.Fatalf("empty append = %d, %v", n, err)
	}
	if got, err := s.ReadEvents(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("read empty log = %v, %v", got, err)
	}
	if got, err := s.EventsByAnchor(ctx, nil, 0); err != nil || len(got) != 0 {
		t.Fatalf("EventsByAnchor(nil) = %v, %v", got, err)
	}
}

func testAppendUnencodable(t *testing.T, s store.Store) {
	bad := event("src", "bad", "user_id:1", at(1))
	bad.Properties = map[string]any{"revenue": math.NaN()}
	b := store.Batch{
		Events:  []kiln.Event{event("src", "good", "user_id:1", at(0)), bad},
		Rejects: []kiln.Reject{{SourceID: "src", ReceivedAt: at(0), Reason: "x"}},
	}
	n, err := s.Append(ctx, b)
	if err == nil {
		t.Fatal("append of a NaN property succeeded")
	}
	if kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("append of a NaN property: code %q, want %q (the data's fault: a retry fails too): %v", kiln.ErrorCode(err), kiln.EInvalid, err)
	}
	if n != 0 || b.Events[0].Seq != 0 {
		t.Errorf("failed append returned %d and seq %d, want nothing", n, b.Events[0].Seq)
	}
	if c, _ := s.CountEvents(ctx); c != 0 {
		t.Errorf("failed append stored %d events", c)
	}
	if r, _ := s.ListRejects(ctx, store.RejectFilter{}); len(r) != 0 {
		t.Errorf("failed append stored %d rejects", len(r))
	}
}

func testReadEventsPaging(t *testing.T, s store.Store) {
	var evs []kiln.Event
	for i := range 25 {
		evs = append(evs, event("src", fmt.Sprintf("m%02d", i), "user_id:1", at(i)))
	}
	evs = mustAppend(t, s, evs...)
	var got []kiln.Event
	after := int64(0)
	for pages := 0; ; pages++ {
		page, err := s.ReadEvents(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 10 {
			t.Fatalf("page of %d events, limit 10", len(page))
		}
		if len(page) == 0 {
			if pages != 3 {
				t.Errorf("read in %d pages, want 3", pages)
			}
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(seqs(got), seqs(evs)) {
		t.Fatalf("paged seqs %v, want %v", seqs(got), seqs(evs))
	}
	mid, err := s.ReadEvents(ctx, evs[20].Seq, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(mid), seqs(evs[21:])) {
		t.Errorf("after %d: %v, want %v", evs[20].Seq, seqs(mid), seqs(evs[21:]))
	}
}

func testEventsByAnchor(t *testing.T, s store.Store) {
	evs := mustAppend(t, s,
		event("src", "a1", "user_id:1", at(5)),
		event("src", "a2", "user_id:1", at(1)),
		event("src", "b1", "email:b@example.com", at(3)),
		event("src", "a3", "user_id:1", at(5)), // same time as a1, later seq
		event("src", "c1", "user_id:3", at(9)),
		event("src", "b2", "email:b@example.com", at(-10)),
	)
	_ = evs
	got, err := s.EventsByAnchor(ctx, []string{"user_id:1", "email:b@example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs(got); !slices.Equal(m, []string{"a3", "a1", "b1", "a2", "b2"}) {
		t.Errorf("EventsByAnchor = %v, want newest first (then seq): a3 a1 b1 a2 b2", m)
	}
	got, err = s.EventsByAnchor(ctx, []string{"user_id:1", "email:b@example.com"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs(got); !slices.Equal(m, []string{"a3", "a1"}) {
		t.Errorf("EventsByAnchor limit 2 = %v", m)
	}
	checkEvent(t, got[0], evs[3])
	got, err = s.EventsByAnchor(ctx, []string{"user_id:nobody"}, 0)
	if err != nil || len(got) != 0 {
		t.Errorf("unknown anchor = %v, %v", msgs(got), err)
	}
}

func testSeqNeverReused(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Profiles:   []store.ProfileChange{{ID: "p_1", At: at(0)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.UserID, "1"), ProfileID: "p_1"}},
	})
	evs := mustAppend(t, s, event("src", "x1", "user_id:2", at(0)), event("src", "x2", "user_id:1", at(1)), event("src", "x3", "user_id:1", at(2)))
	if _, err := s.DeleteProfile(ctx, "p_1", false, "", at(3)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastSeq(ctx); last != evs[0].Seq {
		t.Fatalf("after deleting the newest events LastSeq = %d, want %d", last, evs[0].Seq)
	}
	next := mustAppend(t, s, event("src", "x4", "user_id:2", at(4)))
	if next[0].Seq <= evs[2].Seq {
		t.Errorf("new event got seq %d, but %d was used before: consumers checkpointed past it", next[0].Seq, evs[2].Seq)
	}
}

func testRejects(t *testing.T, s store.Store) {
	var rejects []kiln.Reject
	for i := range 7 {
		src := "src_a"
		if i%2 == 1 {
			src = "src_b"
		}
		rejects = append(rejects, kiln.Reject{
			SourceID: src, ReceivedAt: at(i), Origin: "batch", Index: i,
			Field: "timestamp", Reason: fmt.Sprintf("reason %d", i), Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)),
		})
	}
	b := store.Batch{Events: []kiln.Event{event("src_a", "ok", "user_id:1", at(0))}, Rejects: rejects}
	n, err := s.Append(ctx, b)
	if err != nil || n != 1 {
		t.Fatalf("append with rejects = %d, %v", n, err)
	}
	all, err := s.ListRejects(ctx, store.RejectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Fatalf("%d rejects, want 7", len(all))
	}
	for i, r := range all {
		w := rejects[i]
		if r.ID <= 0 || (i > 0 && r.ID <= all[i-1].ID) {
			t.Errorf("reject ids not increasing: %d after %d", r.ID, all[max(i-1, 0)].ID)
		}
		if r.SourceID != w.SourceID || r.Origin != w.Origin || r.Index != w.Index || r.Field != w.Field ||
			r.Reason != w.Reason || string(r.Payload) != string(w.Payload) {
			t.Errorf("reject %d = %+v, want %+v", i, r, w)
		}
		wantTime(t, "reject receivedAt", r.ReceivedAt, w.ReceivedAt)
	}
	onlyB, err := s.ListRejects(ctx, store.RejectFilter{SourceID: "src_b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(onlyB) != 3 {
		t.Errorf("src_b has %d rejects, want 3", len(onlyB))
	}
	for _, r := range onlyB {
		if r.SourceID != "src_b" {
			t.Errorf("filter src_b returned a reject of %s", r.SourceID)
		}
	}
	page, err := s.ListRejects(ctx, store.RejectFilter{After: all[1].ID, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].ID != all[2].ID || page[2].ID != all[4].ID {
		t.Errorf("page after %d limit 3 = %+v", all[1].ID, page)
	}
	page, err = s.ListRejects(ctx, store.RejectFilter{SourceID: "src_a", After: all[2].ID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].ID != all[4].ID {
		t.Errorf("src_a after %d limit 1 = %+v, want reject %d", all[2].ID, page, all[4].ID)
	}
	// Rejects-only batch.
	if n, err := s.Append(ctx, store.Batch{Rejects: rejects[:1]}); err != nil || n != 0 {
		t.Fatalf("rejects-only append = %d, %v", n, err)
	}
	// Default limit is 100.
	var many []kiln.Reject
	for range 120 {
		many = append(many, kiln.Reject{SourceID: "src_c", ReceivedAt: at(0), Reason: "bad"})
	}
	if _, err := s.Append(ctx, store.Batch{Rejects: many}); err != nil {
		t.Fatal(err)
	}
	def, err := s.ListRejects(ctx, store.RejectFilter{SourceID: "src_c"})
	if err != nil || len(def) != 100 {
		t.Errorf("default limit: %d rejects, %v; want 100", len(def), err)
	}
}

// A reject describes a bad message and may quote its bad bytes: a NUL or
// invalid UTF-8 in its text must not fail the append (and the events
// beside it). The payload comes back exactly.
func testRejectOddText(t *testing.T, s store.Store) {
	odd := kiln.Reject{SourceID: "src", ReceivedAt: at(0), Origin: "import:caf\xe9.csv", Field: "user\x00Id",
		Reason: "bad \x00 value \xff", Payload: []byte("{\"userId\":\"a\x00\xff\"}")}
	b := store.Batch{Events: []kiln.Event{event("src", "ok", "user_id:1", at(0))}, Rejects: []kiln.Reject{odd}}
	if n, err := s.Append(ctx, b); err != nil || n != 1 {
		t.Fatalf("append with an odd reject = %d, %v", n, err)
	}
	rs, err := s.ListRejects(ctx, store.RejectFilter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("rejects %+v, %v", rs, err)
	}
	if r := rs[0]; !strings.HasPrefix(r.Reason, "bad ") || !strings.HasPrefix(r.Origin, "import:caf") || string(r.Payload) != string(odd.Payload) {
		t.Errorf("reject read back as %+v", r)
	}
}

func testSources(t *testing.T, s store.Store) {
	src := kiln.Source{ID: "src_1", Name: "webstore", Kind: "segment", Store: "online", Secret: "shh", CreatedAt: at(0)}
	if err := s.CreateSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSource(ctx, kiln.Source{ID: "src_2", Name: "pos", Kind: "import", CreatedAt: at(1)}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "duplicate id", s.CreateSource(ctx, kiln.Source{ID: "src_1", Name: "other", CreatedAt: at(2)}), store.ErrConflict)
	wantErr(t, "duplicate name", s.CreateSource(ctx, kiln.Source{ID: "src_3", Name: "webstore", CreatedAt: at(2)}), store.ErrConflict)
	for _, key := range []string{"src_1", "webstore"} {
		got, err := s.GetSource(ctx, key)
		if err != nil {
			t.Fatalf("get source %q: %v", key, err)
		}
		if got.ID != src.ID || got.Name != src.Name || got.Kind != src.Kind || got.Store != src.Store || got.Secret != src.Secret {
			t.Errorf("get source %q = %+v, want %+v", key, got, src)
		}
		wantTime(t, "source createdAt", got.CreatedAt, src.CreatedAt)
	}
	_, err := s.GetSource(ctx, "nope")
	wantErr(t, "missing source", err, store.ErrNotFound)
	if !store.IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	list, err := s.ListSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("ListSources = %+v, want 2 sources", list)
	}
}

// testSealedSourceSecrets: a sealed secret is kept as given, and
// SealSourceSecrets turns plaintext secrets (rows from before sealing) into
// sealed ones, exactly once, leaving sealed and secretless sources alone.
func testSealedSourceSecrets(t *testing.T, s store.Store) {
	sealed := kiln.Source{ID: "src_s", Name: "shop", Kind: "shopify", SealedSecret: []byte{0, 1, 2, 0xff}, CreatedAt: at(0)}
	legacy := kiln.Source{ID: "src_l", Name: "woo", Kind: "woocommerce", Secret: "woo-secret", CreatedAt: at(1)}
	none := kiln.Source{ID: "src_n", Name: "web", Kind: "segment", CreatedAt: at(2)}
	for _, src := range []kiln.Source{sealed, legacy, none} {
		if err := s.CreateSource(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) *kiln.Source {
		t.Helper()
		got, err := s.GetSource(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := get("shop"); got.Secret != "" || string(got.SealedSecret) != string(sealed.SealedSecret) {
		t.Fatalf("sealed source read back as secret %q, sealed %x", got.Secret, got.SealedSecret)
	}
	if got := get("web"); got.Secret != "" || len(got.SealedSecret) != 0 {
		t.Fatalf("source without a secret read back as secret %q, sealed %x", got.Secret, got.SealedSecret)
	}
	// A failing seal changes nothing.
	if _, err := s.SealSourceSecrets(ctx, func(kiln.Source) ([]byte, error) { return nil, errors.New("no key") }); err == nil {
		t.Fatal("SealSourceSecrets with a failing seal: no error")
	}
	if got := get("woo"); got.Secret != "woo-secret" || len(got.SealedSecret) != 0 {
		t.Fatalf("after a failed seal: secret %q, sealed %x", got.Secret, got.SealedSecret)
	}
	var seen []string
	seal := func(src kiln.Source) ([]byte, error) {
		seen = append(seen, src.ID)
		return []byte("sealed:" + src.ID + ":" + strings.ToUpper(src.Secret)), nil
	}
	n, err := s.SealSourceSecrets(ctx, seal)
	if err != nil || n != 1 || !slices.Equal(seen, []string{"src_l"}) {
		t.Fatalf("SealSourceSecrets = %d, %v, sealing %v; want 1 (src_l only)", n, err, seen)
	}
	if got := get("woo"); got.Secret != "" || string(got.SealedSecret) != "sealed:src_l:WOO-SECRET" {
		t.Fatalf("after sealing: secret %q, sealed %q", got.Secret, got.SealedSecret)
	}
	if got := get("shop"); string(got.SealedSecret) != string(sealed.SealedSecret) {
		t.Fatalf("an already sealed source was changed: %x", got.SealedSecret)
	}
	list, err := s.ListSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range list {
		if src.Secret != "" {
			t.Errorf("source %s still has a plaintext secret in the list", src.Name)
		}
	}
	if n, err := s.SealSourceSecrets(ctx, seal); err != nil || n != 0 {
		t.Fatalf("second SealSourceSecrets = %d, %v; want 0", n, err)
	}
}

func testKeys(t *testing.T, s store.Store) {
	tok1, tok2 := kiln.NewToken(kiln.WriteKey), kiln.NewToken(kiln.AdminKey)
	k1 := kiln.Key{ID: "key_1", Kind: kiln.WriteKey, Name: "web", SourceID: "src_1", Hash: kiln.HashToken(tok1), Prefix: tok1[:12], CreatedAt: at(0)}
	k2 := kiln.Key{ID: "key_2", Kind: kiln.AdminKey, Name: "ops", Hash: kiln.HashToken(tok2), Prefix: tok2[:12], CreatedAt: at(1)}
	for _, k := range []kiln.Key{k1, k2} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "duplicate key id", s.CreateKey(ctx, kiln.Key{ID: "key_1", Kind: kiln.AdminKey, Hash: "other", CreatedAt: at(2)}), store.ErrConflict)
	got, err := s.KeyByHash(ctx, kiln.HashToken(tok1))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k1.ID || got.Kind != k1.Kind || got.Name != k1.Name || got.SourceID != k1.SourceID ||
		got.Hash != k1.Hash || got.Prefix != k1.Prefix || got.RevokedAt != nil {
		t.Errorf("KeyByHash = %+v, want %+v", got, k1)
	}
	wantTime(t, "key createdAt", got.CreatedAt, k1.CreatedAt)
	_, err = s.KeyByHash(ctx, kiln.HashToken("kiln_w_unknown"))
	wantErr(t, "unknown hash", err, store.ErrNotFound)

	if err := s.RevokeKey(ctx, "key_1", at(10)); err != nil {
		t.Fatalf("revoke by id: %v", err)
	}
	if err := s.RevokeKey(ctx, k2.Prefix, at(11)); err != nil {
		t.Fatalf("revoke by prefix: %v", err)
	}
	wantErr(t, "revoke unknown", s.RevokeKey(ctx, "key_nope", at(12)), store.ErrNotFound)
	// Revoked keys are still found, with the revocation time.
	for hash, when := range map[string]time.Time{k1.Hash: at(10), k2.Hash: at(11)} {
		k, err := s.KeyByHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		if k.RevokedAt == nil {
			t.Fatalf("key %s not revoked", k.ID)
		}
		wantTime(t, "key "+k.ID+" revokedAt", *k.RevokedAt, when)
	}
	// Revoking again keeps the first time.
	if err := s.RevokeKey(ctx, "key_1", at(20)); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.KeyByHash(ctx, k1.Hash); k == nil || k.RevokedAt == nil || !k.RevokedAt.Equal(at(10)) {
		t.Errorf("second revoke changed the key to %+v", k)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "key_1" || keys[0].RevokedAt == nil || keys[1].RevokedAt == nil {
		t.Errorf("ListKeys = %+v, want both keys revoked, oldest first", keys)
	}
	// A prefix shared by several keys names none of them.
	for _, id := range []string{"key_3", "key_4"} {
		if err := s.CreateKey(ctx, kiln.Key{ID: id, Kind: kiln.WriteKey, Hash: "hash-" + id, Prefix: "kiln_w_dup", CreatedAt: at(30)}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "revoke by a shared prefix", s.RevokeKey(ctx, "kiln_w_dup", at(31)), store.ErrConflict)
	if k, _ := s.KeyByHash(ctx, "hash-key_3"); k == nil || k.RevokedAt != nil {
		t.Errorf("ambiguous revoke changed %+v", k)
	}
}

func testCheckpoints(t *testing.T, s store.Store) {
	if seq, err := s.GetCheckpoint(ctx, "resolver"); err != nil || seq != 0 {
		t.Fatalf("unset checkpoint = %d, %v; want 0", seq, err)
	}
	for _, v := range []int64{17, 5, 1 << 40} {
		if err := s.SetCheckpoint(ctx, store.Checkpoint{Name: "resolver", Seq: v}); err != nil {
			t.Fatal(err)
		}
		if seq, err := s.GetCheckpoint(ctx, "resolver"); err != nil || seq != v {
			t.Fatalf("checkpoint = %d, %v; want %d", seq, err, v)
		}
	}
	if err := s.SetCheckpoint(ctx, store.Checkpoint{Name: "segments", Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if seq, _ := s.GetCheckpoint(ctx, "resolver"); seq != 1<<40 {
		t.Errorf("other checkpoint changed resolver to %d", seq)
	}
}

func testProfileChanges(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Profiles: []store.ProfileChange{{
			ID: "p_1", FirstSeen: at(10), LastSeen: at(20), EventCount: 2,
			Traits: map[string]any{"name": "Ada", "plan": "free", "gone": nil, "odd": "nul \x00"}, At: at(30),
		}},
		Identities: []kiln.Identity{
			{Identifier: ident(kiln.UserID, "42"), ProfileID: "p_1", SourceID: "src_1", FirstSeen: at(10)},
			{Identifier: ident(kiln.Email, "ada@example.com"), ProfileID: "p_1", SourceID: "src_1", FirstSeen: at(11)},
		},
		Consent:    []store.ConsentChange{{ProfileID: "p_1", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: true, Source: "identify", At: at(12)}}},
		Checkpoint: store.Checkpoint{Name: "resolver", Seq: 7},
	})
	p := mustProfile(t, s, "p_1")
	if p.EventCount != 2 || !jsonEqual(p.Traits, map[string]any{"name": "Ada", "plan": "free", "odd": "nul \x00"}) {
		t.Errorf("new profile = %+v", p)
	}
	wantTime(t, "createdAt", p.CreatedAt, at(30))
	wantTime(t, "updatedAt", p.UpdatedAt, at(30))
	wantTime(t, "firstSeen", p.FirstSeen, at(10))
	wantTime(t, "lastSeen", p.LastSeen, at(20))
	if len(p.Identities) != 2 || len(p.Consent) != 1 || !p.Consent[0].Granted || p.Consent[0].Source != "identify" {
		t.Errorf("identities %+v consent %+v", p.Identities, p.Consent)
	}
	for _, id := range p.Identities {
		if id.ProfileID != "p_1" || id.SourceID != "src_1" || id.FirstSeen.IsZero() {
			t.Errorf("identity %+v", id)
		}
	}
	if seq, _ := s.GetCheckpoint(ctx, "resolver"); seq != 7 {
		t.Errorf("checkpoint = %d, want 7", seq)
	}
	pid, err := s.ProfileFor(ctx, ident(kiln.Email, "ada@example.com"))
	if err != nil || pid != "p_1" {
		t.Errorf("ProfileFor = %q, %v", pid, err)
	}
	_, err = s.ProfileFor(ctx, ident(kiln.Email, "nobody@example.com"))
	wantErr(t, "ProfileFor unknown", err, store.ErrNotFound)
	_, err = s.GetProfile(ctx, "p_nope")
	wantErr(t, "GetProfile unknown", err, store.ErrNotFound)

	// Deltas: seen times widen (zero ignored), counts add, traits key by key.
	mustApply(t, s, store.Resolution{Profiles: []store.ProfileChange{
		{ID: "p_1", FirstSeen: at(5), EventCount: 3, Traits: map[string]any{"plan": "gold", "name": nil, "odd": nil, "ltv": 12.5}, At: at(40)},
		{ID: "p_1", FirstSeen: at(8), LastSeen: at(15), EventCount: 1, At: at(41)},
		{ID: "p_1", LastSeen: at(25), At: at(42)},
	}})
	p = mustProfile(t, s, "p_1")
	if p.EventCount != 6 || !jsonEqual(p.Traits, map[string]any{"plan": "gold", "ltv": 12.5}) {
		t.Errorf("after deltas: count %d traits %v; want 6, plan gold and ltv 12.5", p.EventCount, p.Traits)
	}
	wantTime(t, "createdAt kept", p.CreatedAt, at(30))
	wantTime(t, "updatedAt", p.UpdatedAt, at(42))
	wantTime(t, "firstSeen lowered", p.FirstSeen, at(5))
	wantTime(t, "lastSeen raised", p.LastSeen, at(25))
	if n, err := s.CountProfiles(ctx); err != nil || n != 1 {
		t.Errorf("CountProfiles = %d, %v", n, err)
	}
}

func testProfileReplace(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{Profiles: []store.ProfileChange{{
		ID: "p_1", FirstSeen: at(1), LastSeen: at(50), EventCount: 9, Traits: map[string]any{"a": "1", "b": "2"}, At: at(0),
	}}})
	mustApply(t, s, store.Resolution{Profiles: []store.ProfileChange{{
		ID: "p_1", Replace: true, FirstSeen: at(10), LastSeen: at(20), EventCount: 2, Traits: map[string]any{"b": "3"}, At: at(60),
	}}})
	p := mustProfile(t, s, "p_1")
	if p.EventCount != 2 || !jsonEqual(p.Traits, map[string]any{"b": "3"}) {
		t.Errorf("replaced profile count %d traits %v; want 2 and {b:3}", p.EventCount, p.Traits)
	}
	wantTime(t, "firstSeen replaced", p.FirstSeen, at(10))
	wantTime(t, "lastSeen replaced", p.LastSeen, at(20))
	wantTime(t, "createdAt kept", p.CreatedAt, at(0))
}

func testIdentitiesMove(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Profiles:   []store.ProfileChange{{ID: "p_1", At: at(0)}, {ID: "p_2", At: at(0)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.AnonymousID, "a1"), ProfileID: "p_1", SourceID: "src_1", FirstSeen: at(1)}},
	})
	mustApply(t, s, store.Resolution{
		Identities: []kiln.Identity{{Identifier: ident(kiln.AnonymousID, "a1"), ProfileID: "p_2", SourceID: "src_2", FirstSeen: at(5)}},
	})
	if pid, _ := s.ProfileFor(ctx, ident(kiln.AnonymousID, "a1")); pid != "p_2" {
		t.Errorf("identity is on %q, want moved to p_2", pid)
	}
	p := mustProfile(t, s, "p_2")
	if len(p.Identities) != 1 {
		t.Fatalf("p_2 identities %+v", p.Identities)
	}
	wantTime(t, "moved identity keeps firstSeen", p.Identities[0].FirstSeen, at(1))
	if p1 := mustProfile(t, s, "p_1"); len(p1.Identities) != 0 {
		t.Errorf("p_1 still has %+v", p1.Identities)
	}
}

func testConsentNewestWins(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{Profiles: []store.ProfileChange{{ID: "p_1", At: at(0)}}})
	set := func(granted bool, src string, when time.Time) {
		t.Helper()
		if err := s.SetConsent(ctx, store.ConsentChange{ProfileID: "p_1", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: granted, Source: src, At: when}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(granted bool, src string, when time.Time) {
		t.Helper()
		p := mustProfile(t, s, "p_1")
		if len(p.Consent) != 1 || p.Consent[0].Granted != granted || p.Consent[0].Source != src {
			t.Fatalf("consent = %+v, want granted=%v from %s", p.Consent, granted, src)
		}
		wantTime(t, "consent at", p.Consent[0].At, when)
	}
	set(true, "identify", at(10))
	check(true, "identify", at(10))
	set(false, "sendgrid", at(20))
	check(false, "sendgrid", at(20))
	set(true, "late-import", at(15)) // older: ignored
	check(false, "sendgrid", at(20))
	// Through a resolution, too.
	mustApply(t, s, store.Resolution{Consent: []store.ConsentChange{
		{ProfileID: "p_1", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: true, Source: "old", At: at(1)}},
		{ProfileID: "p_1", Consent: kiln.Consent{Channel: kiln.ChannelSMS, Granted: true, Source: "identify", At: at(1)}},
	}})
	p := mustProfile(t, s, "p_1")
	if len(p.Consent) != 2 {
		t.Fatalf("consent = %+v, want email and sms", p.Consent)
	}
	check2 := map[kiln.Channel]bool{}
	for _, c := range p.Consent {
		check2[c.Channel] = c.Granted
	}
	if check2[kiln.ChannelEmail] || !check2[kiln.ChannelSMS] {
		t.Errorf("consent = %+v, want email denied (newer) and sms granted", p.Consent)
	}
	err := s.SetConsent(ctx, store.ConsentChange{ProfileID: "p_nope", Consent: kiln.Consent{Channel: kiln.ChannelEmail, At: at(1)}})
	wantErr(t, "consent of unknown profile", err, store.ErrNotFound)
}

// twoProfiles makes p_a (user_id:1, older consent) and p_b (email and
// anonymous id, newer email consent) for the merge tests.
func twoProfiles(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Profiles: []store.ProfileChange{
			{ID: "p_a", FirstSeen: at(10), LastSeen: at(20), EventCount: 2, Traits: map[string]any{"name": "Ada", "plan": "free"}, At: at(10)},
			{ID: "p_b", FirstSeen: at(5), LastSeen: at(15), EventCount: 3, Traits: map[string]any{"plan": "gold", "city": "Paris"}, At: at(5)},
		},
		Identities: []kiln.Identity{
			{Identifier: ident(kiln.UserID, "1"), ProfileID: "p_a", FirstSeen: at(10)},
			{Identifier: ident(kiln.Email, "b@example.com"), ProfileID: "p_b", FirstSeen: at(5)},
			{Identifier: ident(kiln.AnonymousID, "anon-b"), ProfileID: "p_b", FirstSeen: at(5)},
		},
		Consent: []store.ConsentChange{
			{ProfileID: "p_a", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: true, Source: "identify", At: at(10)}},
			{ProfileID: "p_b", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: false, Source: "sendgrid", At: at(14)}},
			{ProfileID: "p_b", Consent: kiln.Consent{Channel: kiln.ChannelSMS, Granted: true, Source: "identify", At: at(6)}},
		},
	})
}

func consentMap(p *kiln.Profile) map[kiln.Channel]kiln.Consent {
	m := map[kiln.Channel]kiln.Consent{}
	for _, c := range p.Consent {
		m[c.Channel] = c
	}
	return m
}

func identitySet(p *kiln.Profile) []string {
	var out []string
	for _, id := range p.Identities {
		out = append(out, id.Identifier.String())
	}
	sort.Strings(out)
	return out
}

func testMergeFold(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{Merges: []kiln.Merge{{
		Into: "p_a", From: "p_b", EventSeq: 77, Rule: "shared-event", At: at(30),
		Identities: []kiln.Identifier{ident(kiln.Email, "b@example.com"), ident(kiln.AnonymousID, "anon-b")},
	}}})
	_, err := s.GetProfile(ctx, "p_b")
	wantErr(t, "merged-away profile", err, store.ErrNotFound)
	p := mustProfile(t, s, "p_a")
	if p.EventCount != 5 {
		t.Errorf("merged count %d, want 5", p.EventCount)
	}
	wantTime(t, "merged firstSeen", p.FirstSeen, at(5))
	wantTime(t, "merged lastSeen", p.LastSeen, at(20))
	if !jsonEqual(p.Traits, map[string]any{"name": "Ada", "plan": "free", "city": "Paris"}) {
		t.Errorf("merged traits %v: Into's keys win, From's others are added", p.Traits)
	}
	if got := identitySet(p); !slices.Equal(got, []string{"anonymous_id:anon-b", "email:b@example.com", "user_id:1"}) {
		t.Errorf("merged identities %v", got)
	}
	cm := consentMap(p)
	if c := cm[kiln.ChannelEmail]; c.Granted || c.Source != "sendgrid" {
		t.Errorf("email consent %+v: From's newer denial wins", c)
	}
	if c := cm[kiln.ChannelSMS]; !c.Granted {
		t.Errorf("sms consent %+v: From's consent moves over", c)
	}
	if pid, _ := s.ProfileFor(ctx, ident(kiln.AnonymousID, "anon-b")); pid != "p_a" {
		t.Errorf("anon-b on %q, want p_a", pid)
	}
	if n, _ := s.CountProfiles(ctx); n != 1 {
		t.Errorf("CountProfiles = %d, want 1", n)
	}
	ms, err := s.Merges(ctx, "p_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("merges of p_a = %+v", ms)
	}
	m := ms[0]
	if m.ID <= 0 || m.Into != "p_a" || m.From != "p_b" || m.EventSeq != 77 || m.Rule != "shared-event" || m.UndoneAt != nil || len(m.Identities) != 2 {
		t.Errorf("merge record %+v", m)
	}
	wantTime(t, "merge at", m.At, at(30))
	if fromB, _ := s.Merges(ctx, "p_b"); len(fromB) != 1 || fromB[0].ID != m.ID {
		t.Errorf("merges of p_b = %+v, want the same merge", fromB)
	}
	got, err := s.GetMerge(ctx, m.ID)
	if err != nil || !reflect.DeepEqual(got.Identities, m.Identities) || got.Into != "p_a" {
		t.Errorf("GetMerge = %+v, %v", got, err)
	}
	_, err = s.GetMerge(ctx, m.ID+1000)
	wantErr(t, "unknown merge", err, store.ErrNotFound)
	if after, err := s.MergesAfter(ctx, 0); err != nil || len(after) != 1 || after[0].ID != m.ID {
		t.Errorf("MergesAfter(0) = %+v, %v", after, err)
	}
	if after, err := s.MergesAfter(ctx, m.ID); err != nil || len(after) != 0 {
		t.Errorf("MergesAfter(last id) = %+v, %v", after, err)
	}
}

func testMergeRename(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{
		Merges: []kiln.Merge{{Into: "p_new", From: "p_b", Rule: "alias", At: at(30)}},
		// The new profile's own change applies after the merge, onto the renamed row.
		Profiles: []store.ProfileChange{{ID: "p_new", EventCount: 1, LastSeen: at(31), At: at(31)}},
	})
	_, err := s.GetProfile(ctx, "p_b")
	wantErr(t, "renamed-away profile", err, store.ErrNotFound)
	p := mustProfile(t, s, "p_new")
	if p.EventCount != 4 || !jsonEqual(p.Traits, map[string]any{"plan": "gold", "city": "Paris"}) {
		t.Errorf("renamed profile %+v, want p_b's data plus one event", p)
	}
	wantTime(t, "renamed createdAt", p.CreatedAt, at(5))
	wantTime(t, "renamed firstSeen", p.FirstSeen, at(5))
	wantTime(t, "renamed lastSeen", p.LastSeen, at(31))
	if got := identitySet(p); !slices.Equal(got, []string{"anonymous_id:anon-b", "email:b@example.com"}) {
		t.Errorf("renamed identities %v", got)
	}
	if len(p.Consent) != 2 {
		t.Errorf("renamed consent %+v", p.Consent)
	}
	ms, err := s.Merges(ctx, "p_new")
	if err != nil || len(ms) != 1 || ms[0].From != "p_b" {
		t.Fatalf("merges of p_new = %+v, %v", ms, err)
	}
	// With no identities given, the store records those that moved.
	if len(ms[0].Identities) != 2 {
		t.Errorf("rename merge identities %v, want the 2 moved", ms[0].Identities)
	}
}

func testMergeChain(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{
		Profiles:   []store.ProfileChange{{ID: "p_c", FirstSeen: at(1), LastSeen: at(2), EventCount: 4, Traits: map[string]any{"plan": "trial", "pet": "cat"}, At: at(1)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.Phone, "+33100000000"), ProfileID: "p_c", FirstSeen: at(1)}},
	})
	mustApply(t, s, store.Resolution{
		Merges: []kiln.Merge{
			{Into: "p_b", From: "p_c", Rule: "shared-event", At: at(40)},
			{Into: "p_a", From: "p_b", Rule: "shared-event", At: at(40)},
		},
		Profiles:   []store.ProfileChange{{ID: "p_a", EventCount: 1, LastSeen: at(40), At: at(40)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.Loyalty, "L-9"), ProfileID: "p_a", FirstSeen: at(40)}},
		Checkpoint: store.Checkpoint{Name: "resolver", Seq: 123},
	})
	for _, gone := range []string{"p_b", "p_c"} {
		_, err := s.GetProfile(ctx, gone)
		wantErr(t, gone+" after chain", err, store.ErrNotFound)
	}
	p := mustProfile(t, s, "p_a")
	if p.EventCount != 2+3+4+1 {
		t.Errorf("chain count %d, want 10", p.EventCount)
	}
	wantTime(t, "chain firstSeen", p.FirstSeen, at(1))
	wantTime(t, "chain lastSeen", p.LastSeen, at(40))
	if !jsonEqual(p.Traits, map[string]any{"name": "Ada", "plan": "free", "city": "Paris", "pet": "cat"}) {
		t.Errorf("chain traits %v", p.Traits)
	}
	want := []string{"anonymous_id:anon-b", "email:b@example.com", "loyalty:L-9", "phone:+33100000000", "user_id:1"}
	if got := identitySet(p); !slices.Equal(got, want) {
		t.Errorf("chain identities %v, want %v", got, want)
	}
	ms, err := s.Merges(ctx, "p_b")
	if err != nil || len(ms) != 2 {
		t.Fatalf("merges of p_b = %+v, %v; want both", ms, err)
	}
	if ms[0].ID <= ms[1].ID {
		t.Errorf("merges not newest first: %d then %d", ms[0].ID, ms[1].ID)
	}
	if seq, _ := s.GetCheckpoint(ctx, "resolver"); seq != 123 {
		t.Errorf("checkpoint %d", seq)
	}
}

// A merge may name profiles that have identities but no row yet (both
// created within the run of events being resolved): the identities move
// and the merge is recorded all the same.
func testMergeOfUnstoredProfiles(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Identities: []kiln.Identity{{Identifier: ident(kiln.AnonymousID, "ghost"), ProfileID: "p_ghost", FirstSeen: at(1)}},
	})
	mustApply(t, s, store.Resolution{
		Merges:   []kiln.Merge{{Into: "p_x", From: "p_ghost", Rule: "alias", At: at(2)}},
		Profiles: []store.ProfileChange{{ID: "p_x", EventCount: 2, At: at(2)}},
	})
	p := mustProfile(t, s, "p_x")
	if got := identitySet(p); !slices.Equal(got, []string{"anonymous_id:ghost"}) || p.EventCount != 2 {
		t.Errorf("p_x = %+v, identities %v", p, got)
	}
	ms, err := s.Merges(ctx, "p_x")
	if err != nil || len(ms) != 1 || len(ms[0].Identities) != 1 {
		t.Fatalf("merges = %+v, %v", ms, err)
	}
	err = s.ApplyResolution(ctx, store.Resolution{Merges: []kiln.Merge{{Into: "p_x", From: "p_x", At: at(3)}}})
	if kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("merge of a profile into itself: %v, want an invalid error", err)
	}
}

func testUndoMerge(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{Merges: []kiln.Merge{{
		Into: "p_a", From: "p_b", Rule: "shared-event", At: at(30),
		Identities: []kiln.Identifier{ident(kiln.Email, "b@example.com"), ident(kiln.AnonymousID, "anon-b")},
	}}})
	ms, err := s.Merges(ctx, "p_a")
	if err != nil || len(ms) != 1 {
		t.Fatalf("merges = %+v, %v", ms, err)
	}
	m, err := s.UndoMerge(ctx, ms[0].ID, at(50))
	if err != nil {
		t.Fatalf("undo: %v", err)
	}
	if m.UndoneAt == nil || m.From != "p_b" || m.Into != "p_a" {
		t.Fatalf("undone merge %+v", m)
	}
	wantTime(t, "undoneAt", *m.UndoneAt, at(50))
	b := mustProfile(t, s, "p_b")
	if b.EventCount != 3 || !jsonEqual(b.Traits, map[string]any{"plan": "gold", "city": "Paris"}) {
		t.Errorf("restored p_b %+v", b)
	}
	wantTime(t, "restored firstSeen", b.FirstSeen, at(5))
	wantTime(t, "restored lastSeen", b.LastSeen, at(15))
	wantTime(t, "restored createdAt", b.CreatedAt, at(5))
	if got := identitySet(b); !slices.Equal(got, []string{"anonymous_id:anon-b", "email:b@example.com"}) {
		t.Errorf("restored identities %v", got)
	}
	cm := consentMap(b)
	if len(cm) != 2 || cm[kiln.ChannelEmail].Granted || !cm[kiln.ChannelSMS].Granted {
		t.Errorf("restored consent %+v", b.Consent)
	}
	a := mustProfile(t, s, "p_a")
	if got := identitySet(a); !slices.Equal(got, []string{"user_id:1"}) {
		t.Errorf("p_a keeps %v, want only user_id:1", got)
	}
	got, err := s.GetMerge(ctx, m.ID)
	if err != nil || got.UndoneAt == nil {
		t.Errorf("GetMerge after undo = %+v, %v", got, err)
	}
	_, err = s.UndoMerge(ctx, m.ID, at(60))
	wantErr(t, "second undo", err, store.ErrConflict)
	_, err = s.UndoMerge(ctx, m.ID+1000, at(60))
	wantErr(t, "undo unknown merge", err, store.ErrNotFound)
}

func testUndoMergeRename(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{Merges: []kiln.Merge{{Into: "p_new", From: "p_b", Rule: "alias", At: at(30)}}})
	ms, _ := s.Merges(ctx, "p_b")
	if len(ms) != 1 {
		t.Fatalf("merges of p_b = %+v", ms)
	}
	if _, err := s.UndoMerge(ctx, ms[0].ID, at(31)); err != nil {
		t.Fatal(err)
	}
	b := mustProfile(t, s, "p_b")
	if b.EventCount != 3 || len(b.Identities) != 2 {
		t.Errorf("restored p_b %+v", b)
	}
	if pid, _ := s.ProfileFor(ctx, ident(kiln.Email, "b@example.com")); pid != "p_b" {
		t.Errorf("email on %q after undo, want p_b", pid)
	}
}

func testDeleteProfile(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{
		Profiles:   []store.ProfileChange{{ID: "p_c", At: at(0)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.Phone, "+4400"), ProfileID: "p_c"}},
		Merges:     nil,
	})
	mustApply(t, s, store.Resolution{Merges: []kiln.Merge{{Into: "p_b", From: "p_c", Rule: "manual", At: at(20)}}})
	mustAppend(t, s,
		event("src", "e1", "email:b@example.com", at(1)),
		event("src", "e2", "anonymous_id:anon-b", at(2)),
		event("src", "e3", "user_id:1", at(3)),
		event("src", "e4", "phone:+4400", at(4)),
	)
	removed, err := s.DeleteProfile(ctx, "p_b", true, "gdpr request 7", at(60))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range removed {
		names = append(names, id.Identifier.String())
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"anonymous_id:anon-b", "email:b@example.com", "phone:+4400"}) {
		t.Errorf("removed identities %v", names)
	}
	_, err = s.GetProfile(ctx, "p_b")
	wantErr(t, "deleted profile", err, store.ErrNotFound)
	_, err = s.ProfileFor(ctx, ident(kiln.Email, "b@example.com"))
	wantErr(t, "deleted identity", err, store.ErrNotFound)
	left, err := s.ReadEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs(left); !slices.Equal(got, []string{"e3"}) {
		t.Errorf("events left %v, want only e3 (p_a's)", got)
	}
	if ms, _ := s.Merges(ctx, "p_b"); len(ms) != 0 {
		t.Errorf("merges of deleted profile %+v", ms)
	}
	sup, err := s.Suppressed(ctx, []kiln.Identifier{ident(kiln.Email, "b@example.com"), ident(kiln.UserID, "1"), ident(kiln.Phone, "+4400")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sup) != 2 || sup[0] != ident(kiln.Email, "b@example.com") || sup[1] != ident(kiln.Phone, "+4400") {
		t.Errorf("Suppressed = %v", sup)
	}
	list, err := s.ListSuppressions(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListSuppressions = %+v, %v", list, err)
	}
	for _, x := range list {
		if x.Reason != "gdpr request 7" {
			t.Errorf("suppression %+v", x)
		}
		wantTime(t, "suppression createdAt", x.CreatedAt, at(60))
	}
	// Without suppression; p_a keeps its consent row count at zero after.
	if _, err := s.DeleteProfile(ctx, "p_a", false, "", at(61)); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSuppressions(ctx); len(list) != 3 {
		t.Errorf("delete without suppress added suppressions: %+v", list)
	}
	if n, _ := s.CountEvents(ctx); n != 0 {
		t.Errorf("%d events left", n)
	}
	if n, _ := s.CountProfiles(ctx); n != 0 {
		t.Errorf("%d profiles left", n)
	}
	// A recreated profile of the same id starts without old consent.
	mustApply(t, s, store.Resolution{Profiles: []store.ProfileChange{{ID: "p_a", At: at(70)}}})
	if p := mustProfile(t, s, "p_a"); len(p.Consent) != 0 || len(p.Identities) != 0 {
		t.Errorf("recreated profile kept %+v %+v", p.Consent, p.Identities)
	}
	_, err = s.DeleteProfile(ctx, "p_nope", true, "", at(62))
	wantErr(t, "delete unknown", err, store.ErrNotFound)
}

func testSuppressions(t *testing.T, s store.Store) {
	if got, err := s.Suppressed(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("Suppressed(nil) = %v, %v", got, err)
	}
	add := []kiln.Suppression{
		{Identifier: ident(kiln.Email, "x@example.com"), Reason: "first", CreatedAt: at(1)},
		{Identifier: ident(kiln.Phone, "+1"), Reason: "first", CreatedAt: at(2)},
	}
	if err := s.AddSuppressions(ctx, add); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSuppressions(ctx, []kiln.Suppression{{Identifier: ident(kiln.Email, "x@example.com"), Reason: "second", CreatedAt: at(3)}}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSuppressions(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListSuppressions = %+v, %v", list, err)
	}
	for _, x := range list {
		if x.Reason != "first" {
			t.Errorf("existing suppression changed: %+v", x)
		}
	}
	got, err := s.Suppressed(ctx, []kiln.Identifier{ident(kiln.Phone, "+1"), ident(kiln.Email, "y@example.com"), ident(kiln.UserID, "x@example.com")})
	if err != nil || len(got) != 1 || got[0] != ident(kiln.Phone, "+1") {
		t.Errorf("Suppressed = %v, %v; want only phone:+1 (kinds matter)", got, err)
	}
}

func testListProfiles(t *testing.T, s store.Store) {
	var r store.Resolution
	for i := range 7 {
		id := fmt.Sprintf("p_%02d", i)
		r.Profiles = append(r.Profiles, store.ProfileChange{ID: id, EventCount: int64(i), At: at(i)})
		r.Identities = append(r.Identities, kiln.Identity{Identifier: ident(kiln.UserID, fmt.Sprintf("u%d", i)), ProfileID: id, FirstSeen: at(i)})
	}
	r.Identities = append(r.Identities,
		kiln.Identity{Identifier: ident(kiln.Email, "alice@example.com"), ProfileID: "p_03", FirstSeen: at(3)},
		kiln.Identity{Identifier: ident(kiln.Email, "alicia@example.com"), ProfileID: "p_05", FirstSeen: at(5)},
		kiln.Identity{Identifier: ident(kiln.AnonymousID, "ALI-anon"), ProfileID: "p_05", FirstSeen: at(5)},
		kiln.Identity{Identifier: ident(kiln.Email, "bob@example.com"), ProfileID: "p_01", FirstSeen: at(1)},
	)
	r.Consent = []store.ConsentChange{{ProfileID: "p_00", Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: true, At: at(0)}}}
	mustApply(t, s, r)

	var all []string
	cursor := ""
	for pages := 1; ; pages++ {
		page, next, err := s.ListProfiles(ctx, store.ProfileQuery{After: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			all = append(all, p.ID)
			if len(p.Identities) == 0 {
				t.Errorf("listed profile %s without identities", p.ID)
			}
		}
		if next == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		if next != page[len(page)-1].ID {
			t.Errorf("cursor %q is not the last id on the page", next)
		}
		cursor = next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"p_00", "p_01", "p_02", "p_03", "p_04", "p_05", "p_06"}; !slices.Equal(all, want) {
		t.Errorf("listed %v, want %v", all, want)
	}
	// Exactly one page: no cursor.
	if page, next, err := s.ListProfiles(ctx, store.ProfileQuery{After: "p_03", Limit: 3}); err != nil || len(page) != 3 || next != "" {
		t.Errorf("last full page: %d profiles, cursor %q, %v; want 3 and no cursor", len(page), next, err)
	}
	// Default limit holds all seven.
	if page, next, err := s.ListProfiles(ctx, store.ProfileQuery{}); err != nil || len(page) != 7 || next != "" {
		t.Errorf("default list: %d, %q, %v", len(page), next, err)
	}
	search := func(q string, after string) []string {
		t.Helper()
		page, _, err := s.ListProfiles(ctx, store.ProfileQuery{Search: q, After: after})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range page {
			ids = append(ids, p.ID)
		}
		return ids
	}
	if got := search("ALI", ""); !slices.Equal(got, []string{"p_03", "p_05"}) {
		t.Errorf("search ALI = %v, want p_03 p_05 (case-insensitive prefix, each profile once)", got)
	}
	if got := search("alice@", ""); !slices.Equal(got, []string{"p_03"}) {
		t.Errorf("search alice@ = %v", got)
	}
	if got := search("ali", "p_03"); !slices.Equal(got, []string{"p_05"}) {
		t.Errorf("search ali after p_03 = %v", got)
	}
	if got := search("p_04", ""); !slices.Equal(got, []string{"p_04"}) {
		t.Errorf("search by id = %v", got)
	}
	if got := search("lice", ""); len(got) != 0 {
		t.Errorf("search lice = %v: a prefix, not a substring", got)
	}
	if got := search("%", ""); len(got) != 0 {
		t.Errorf("search %% = %v: no wildcards", got)
	}
	page, _, err := s.ListProfiles(ctx, store.ProfileQuery{Search: "p_05"})
	if err != nil || len(page) != 1 || len(page[0].Identities) != 3 || page[0].EventCount != 5 {
		t.Errorf("p_05 listed as %+v, %v", page, err)
	}
	if n, err := s.CountProfiles(ctx); err != nil || n != 7 {
		t.Errorf("CountProfiles = %d, %v", n, err)
	}
}

func testScanIdentities(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	var got []string
	err := s.ScanIdentities(ctx, func(id kiln.Identity) error {
		got = append(got, id.Identifier.String()+"@"+id.ProfileID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{"anonymous_id:anon-b@p_b", "email:b@example.com@p_b", "user_id:1@p_a"}
	if !slices.Equal(got, want) {
		t.Errorf("scanned %v, want %v", got, want)
	}
	stop := errors.New("stop here")
	calls := 0
	err = s.ScanIdentities(ctx, func(kiln.Identity) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("scan stopped with %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testResolutionAtomic(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	// An identity without a profile id is invalid: nothing of the
	// resolution may stay, not the merge nor the checkpoint.
	err := s.ApplyResolution(ctx, store.Resolution{
		Merges:     []kiln.Merge{{Into: "p_a", From: "p_b", Rule: "shared-event", At: at(30)}},
		Profiles:   []store.ProfileChange{{ID: "p_a", EventCount: 100, At: at(30)}},
		Identities: []kiln.Identity{{Identifier: ident(kiln.Email, "bad@example.com")}},
		Checkpoint: store.Checkpoint{Name: "resolver", Seq: 99},
	})
	if err == nil {
		t.Fatal("resolution with an identity without profile id succeeded")
	}
	if p := mustProfile(t, s, "p_b"); p.EventCount != 3 {
		t.Errorf("p_b after failed resolution %+v", p)
	}
	if p := mustProfile(t, s, "p_a"); p.EventCount != 2 {
		t.Errorf("p_a after failed resolution: count %d, want 2", p.EventCount)
	}
	if seq, _ := s.GetCheckpoint(ctx, "resolver"); seq != 0 {
		t.Errorf("checkpoint %d after failed resolution", seq)
	}
	if ms, _ := s.Merges(ctx, "p_a"); len(ms) != 0 {
		t.Errorf("merge recorded by failed resolution: %+v", ms)
	}
}

func testConcurrentAppend(t *testing.T, s store.Store) {
	const workers, batches, size = 4, 8, 50
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		added int
		seen  = map[int64]string{}
		errs  []error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var evs []kiln.Event
				for i := range size {
					// Half the messages are shared with the next worker, so
					// retries race with the originals.
					owner := w
					if i%2 == 1 {
						owner = (w + 1) % workers
					}
					if i%2 == 0 || b%2 == 0 {
						evs = append(evs, event("src", fmt.Sprintf("w%d-b%d-i%d", owner, b, i), "user_id:1", at(i)))
					}
				}
				batch := store.Batch{Events: evs}
				n, err := s.Append(ctx, batch)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				added += n
				for _, e := range batch.Events {
					if e.Seq == 0 {
						continue
					}
					if other, dup := seen[e.Seq]; dup {
						errs = append(errs, fmt.Errorf("seq %d given to %s and %s", e.Seq, other, e.MessageID))
					}
					seen[e.Seq] = e.MessageID
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	want := map[string]bool{}
	for w := range workers {
		for b := range batches {
			for i := range size {
				if i%2 == 0 || b%2 == 0 {
					want[fmt.Sprintf("w%d-b%d-i%d", w, b, i)] = true
				}
			}
		}
	}
	if added != len(want) || len(seen) != len(want) {
		t.Errorf("appends reported %d new events with %d seqs, want %d", added, len(seen), len(want))
	}
	all, err := s.ReadEvents(ctx, 0, 10*len(want))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for i, e := range all {
		if got[e.MessageID] {
			t.Errorf("%s stored twice", e.MessageID)
		}
		got[e.MessageID] = true
		if seen[e.Seq] != e.MessageID {
			t.Errorf("stored seq %d is %s, Append said %s", e.Seq, e.MessageID, seen[e.Seq])
		}
		if i > 0 && e.Seq <= all[i-1].Seq {
			t.Errorf("ReadEvents out of order at %d", i)
		}
	}
	if len(got) != len(want) {
		t.Errorf("log holds %d distinct events, want %d", len(got), len(want))
	}
	if n, _ := s.CountEvents(ctx); n != int64(len(want)) {
		t.Errorf("CountEvents = %d, want %d", n, len(want))
	}
}
