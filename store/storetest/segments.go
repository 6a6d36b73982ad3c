package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// runSegments is the store.Segments group of the suite (Run calls it as
// the subtest "Segments"), each test on a fresh store.
func runSegments(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Definitions", testDefinitions},
		{"DefinitionConflict", testDefinitionConflict},
		{"DefinitionInvalid", testDefinitionInvalid},
		{"Transitions", testTransitions},
		{"TransitionsOnly", testTransitionsOnly},
		{"TransitionsRefused", testTransitionsRefused},
		{"TransitionPaging", testTransitionPaging},
		{"TransitionIDsNeverReused", testTransitionIDsNeverReused},
		{"Memberships", testMemberships},
		{"DeleteProfileSegmentData", testDeleteProfileSegmentData},
		{"MergeDropsMemberships", testMergeDropsMemberships},
		{"SegmentSizes", testSegmentSizes},
		{"StaticMembers", testStaticMembers},
		{"ConcurrentTransitions", testConcurrentTransitions},
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

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil || kiln.ErrorCode(err) != code {
		t.Fatalf("%s: got error %v, want code %s", what, err, code)
	}
}

func def(name, kind string, version int64, applied time.Time) kiln.Definition {
	return kiln.Definition{
		Name: name, Kind: kind, Version: version,
		Text:      fmt.Sprintf("%s v%d: orders_90d >= %d", name, version, version),
		Body:      json.RawMessage(fmt.Sprintf(`{"op":">=","left":{"agg":"count","days":90},"right":%d}`, version)),
		AppliedAt: applied,
	}
}

func checkDefinition(t *testing.T, got, want kiln.Definition) {
	t.Helper()
	if got.Name != want.Name || got.Kind != want.Kind || got.Version != want.Version || got.Text != want.Text ||
		string(got.Body) != string(want.Body) {
		t.Errorf("definition = %+v (body %s), want %+v (body %s)", got, got.Body, want, want.Body)
	}
	wantTime(t, want.Name+" appliedAt", got.AppliedAt, want.AppliedAt)
	switch {
	case (got.DeletedAt == nil) != (want.DeletedAt == nil):
		t.Errorf("%s v%d deletedAt = %v, want %v", want.Name, want.Version, got.DeletedAt, want.DeletedAt)
	case got.DeletedAt != nil:
		wantTime(t, want.Name+" deletedAt", *got.DeletedAt, *want.DeletedAt)
	}
}

func versions(ds []kiln.Definition) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s@%d", d.Name, d.Version)
	}
	return out
}

func testDefinitions(t *testing.T, s store.Store) {
	if ds, err := s.Definitions(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("definitions of an empty store = %v, %v", ds, err)
	}
	_, err := s.DefinitionVersions(ctx, "vip")
	wantErr(t, "versions of an unknown definition", err, store.ErrNotFound)

	vip1, ltv1 := def("vip", "segment", 1, at(0)), def("ltv", "trait", 1, at(0))
	ltv1.Body = nil // a definition without a body keeps none
	if err := s.SaveDefinitions(ctx, []kiln.Definition{vip1, ltv1}); err != nil {
		t.Fatal(err)
	}
	vip2 := def("vip", "segment", 2, at(5))
	if err := s.SaveDefinitions(ctx, []kiln.Definition{vip2}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Definitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(ds); !slices.Equal(got, []string{"ltv@1", "vip@2"}) {
		t.Fatalf("definitions = %v, want the latest of each, by name", got)
	}
	checkDefinition(t, ds[0], ltv1)
	if ds[0].Body != nil {
		t.Errorf("ltv body = %q, want nil", ds[0].Body)
	}
	checkDefinition(t, ds[1], vip2)

	// Deleting records a version; the history keeps every version.
	del := at(9)
	vip3 := kiln.Definition{Name: "vip", Kind: "segment", Version: 3, Text: vip2.Text, Body: vip2.Body, AppliedAt: del, DeletedAt: &del}
	if err := s.SaveDefinitions(ctx, []kiln.Definition{vip3}); err != nil {
		t.Fatal(err)
	}
	if ds, err = s.Definitions(ctx); err != nil {
		t.Fatal(err)
	}
	if got := versions(ds); !slices.Equal(got, []string{"ltv@1"}) {
		t.Errorf("definitions after deleting vip = %v, want [ltv@1]", got)
	}
	hist, err := s.DefinitionVersions(ctx, "vip")
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(hist); !slices.Equal(got, []string{"vip@3", "vip@2", "vip@1"}) {
		t.Fatalf("vip history = %v, want newest first", got)
	}
	checkDefinition(t, hist[0], vip3)
	checkDefinition(t, hist[2], vip1)

	// Defining it again brings it back.
	vip4 := def("vip", "segment", 4, at(12))
	if err := s.SaveDefinitions(ctx, []kiln.Definition{vip4}); err != nil {
		t.Fatal(err)
	}
	if ds, _ = s.Definitions(ctx); !slices.Equal(versions(ds), []string{"ltv@1", "vip@4"}) {
		t.Errorf("definitions after re-creating vip = %v", versions(ds))
	}
}

func testDefinitionConflict(t *testing.T, s store.Store) {
	if err := s.SaveDefinitions(ctx, []kiln.Definition{def("vip", "segment", 1, at(0))}); err != nil {
		t.Fatal(err)
	}
	// The batch is one transaction: the new "churn" must not stay behind.
	err := s.SaveDefinitions(ctx, []kiln.Definition{def("churn", "segment", 1, at(1)), def("vip", "segment", 1, at(1))})
	wantErr(t, "saving vip v1 twice", err, store.ErrConflict)
	if _, err := s.DefinitionVersions(ctx, "churn"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("churn after a failed batch: %v, want not found", err)
	}
	err = s.SaveDefinitions(ctx, []kiln.Definition{def("x", "trait", 1, at(1)), def("x", "trait", 1, at(2))})
	wantErr(t, "one version twice in a batch", err, store.ErrConflict)
	hist, err := s.DefinitionVersions(ctx, "vip")
	if err != nil || len(hist) != 1 {
		t.Fatalf("vip history = %v, %v", versions(hist), err)
	}
	wantTime(t, "vip v1 appliedAt", hist[0].AppliedAt, at(0)) // the first save stands
}

func testDefinitionInvalid(t *testing.T, s store.Store) {
	bad := def("vip", "segment", 1, at(0))
	bad.Body = json.RawMessage(`{"op":`)
	wantCode(t, "body that is not JSON", s.SaveDefinitions(ctx, []kiln.Definition{bad}), kiln.EInvalid)
	wantCode(t, "definition without a name", s.SaveDefinitions(ctx, []kiln.Definition{def("", "segment", 1, at(0))}), kiln.EInvalid)
	if ds, _ := s.Definitions(ctx); len(ds) != 0 {
		t.Errorf("refused definitions were stored: %v", versions(ds))
	}
}

// tr is a transition with its evidence; the ID is left for the store.
func tr(segment, profile string, entered bool, minute int, version int64, reason string) kiln.Transition {
	return kiln.Transition{
		Segment: segment, ProfileID: profile, Entered: entered, At: at(minute), Version: version,
		Reason: reason, Act: true,
	}
}

func memberKeys(ms []kiln.Membership) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Segment + "/" + m.ProfileID
	}
	return out
}

func transitionIDs(ts []kiln.Transition) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// checkIDs checks that the store numbered ts increasing, after prev.
func checkIDs(t *testing.T, ts []kiln.Transition, prev int64) {
	t.Helper()
	for i, x := range ts {
		if x.ID <= prev {
			t.Fatalf("transition %d of %d has ID %d after %d; IDs = %v", i+1, len(ts), x.ID, prev, transitionIDs(ts))
		}
		prev = x.ID
	}
}

func checkTransition(t *testing.T, got, want kiln.Transition) {
	t.Helper()
	if got.ID != want.ID || got.Segment != want.Segment || got.ProfileID != want.ProfileID || got.Entered != want.Entered ||
		got.Version != want.Version || got.Reason != want.Reason || got.EventSeq != want.EventSeq || got.Act != want.Act ||
		string(got.Evidence) != string(want.Evidence) || (got.Evidence == nil) != (want.Evidence == nil) {
		t.Errorf("transition = %+v (evidence %s), want %+v (evidence %s)", got, got.Evidence, want, want.Evidence)
	}
	wantTime(t, fmt.Sprintf("transition %d at", want.ID), got.At, want.At)
}

func mustTransitions(t *testing.T, s store.Store, q store.TransitionQuery) []kiln.Transition {
	t.Helper()
	ts, err := s.Transitions(ctx, q)
	if err != nil {
		t.Fatalf("transitions %+v: %v", q, err)
	}
	return ts
}

func testTransitions(t *testing.T, s store.Store) {
	ev := json.RawMessage(`{"orders_90d":3,"country":"FR","tags":["a","b"]}`)
	first := []kiln.Transition{
		tr("vip", "p1", true, 1, 1, kiln.ReasonEvent),
		tr("vip", "p2", true, 2, 1, kiln.ReasonEvent),
		tr("big", "p1", true, 2, 7, kiln.ReasonDefinitionChange),
	}
	first[0].EventSeq, first[0].Evidence = 41, ev
	first[2].Act = false
	mustApply(t, s, store.Resolution{
		Profiles:    []store.ProfileChange{{ID: "p1", EventCount: 1, At: at(1)}, {ID: "p2", EventCount: 1, At: at(2)}},
		Transitions: first,
		Checkpoint:  store.Checkpoint{Name: "segments", Seq: 41},
	})
	checkIDs(t, first, 0)
	if cp, _ := s.GetCheckpoint(ctx, "segments"); cp != 41 {
		t.Errorf("checkpoint = %d, want 41", cp)
	}
	all := mustTransitions(t, s, store.TransitionQuery{})
	if len(all) != 3 {
		t.Fatalf("transitions = %+v, want 3", all)
	}
	for i := range first {
		checkTransition(t, all[i], first[i])
	}
	if all[1].Evidence != nil {
		t.Errorf("transition without evidence came back with %q, want nil", all[1].Evidence)
	}

	ms, err := s.MembershipsOf(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got := memberKeys(ms); !slices.Equal(got, []string{"big/p1", "vip/p1"}) {
		t.Fatalf("memberships of p1 = %v, want by segment", got)
	}
	if ms[0].Version != 7 {
		t.Errorf("big/p1 version %d, want 7", ms[0].Version)
	}
	wantTime(t, "vip/p1 since", ms[1].Since, at(1))

	// p1 exits vip; p2 re-enters under version 2 (replacing its
	// membership); p3 enters and exits within the batch; p4 exits and
	// enters within the batch.
	second := []kiln.Transition{
		tr("vip", "p1", false, 10, 1, kiln.ReasonExpiry),
		tr("vip", "p2", true, 11, 2, kiln.ReasonDefinitionChange),
		tr("vip", "p3", true, 12, 2, kiln.ReasonEvent),
		tr("vip", "p4", false, 12, 2, kiln.ReasonProfile),
		tr("vip", "p3", false, 13, 2, kiln.ReasonEvent),
		tr("vip", "p4", true, 14, 2, kiln.ReasonProfile),
	}
	mustApply(t, s, store.Resolution{Transitions: second, Checkpoint: store.Checkpoint{Name: "segments", Seq: 50}})
	checkIDs(t, second, first[2].ID)
	vip, err := s.Members(ctx, "vip", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := memberKeys(vip); !slices.Equal(got, []string{"vip/p2", "vip/p4"}) {
		t.Fatalf("vip members = %v, want p2 and p4", got)
	}
	wantTime(t, "re-entered vip/p2 since", vip[0].Since, at(11))
	if vip[0].Version != 2 {
		t.Errorf("re-entered vip/p2 version %d, want 2", vip[0].Version)
	}
	wantTime(t, "vip/p4 since", vip[1].Since, at(14))
	if ms, _ := s.MembershipsOf(ctx, "p1"); !slices.Equal(memberKeys(ms), []string{"big/p1"}) {
		t.Errorf("memberships of p1 after its exit = %v", memberKeys(ms))
	}
	if n, err := s.CountMembers(ctx, "vip"); err != nil || n != 2 {
		t.Errorf("CountMembers(vip) = %d, %v, want 2", n, err)
	}

	// Queries by segment, by profile, both.
	bySeg := mustTransitions(t, s, store.TransitionQuery{Segment: "big"})
	if len(bySeg) != 1 {
		t.Fatalf("transitions of big = %+v", bySeg)
	}
	checkTransition(t, bySeg[0], first[2])
	byProf := mustTransitions(t, s, store.TransitionQuery{ProfileID: "p1"})
	if got := transitionIDs(byProf); !slices.Equal(got, []int64{first[0].ID, first[2].ID, second[0].ID}) {
		t.Errorf("transitions of p1 = %v", got)
	}
	both := mustTransitions(t, s, store.TransitionQuery{Segment: "vip", ProfileID: "p3"})
	if got := transitionIDs(both); !slices.Equal(got, []int64{second[2].ID, second[4].ID}) {
		t.Errorf("transitions of p3 in vip = %v", got)
	}
	for i, x := range mustTransitions(t, s, store.TransitionQuery{Segment: "vip", After: first[2].ID}) {
		checkTransition(t, x, second[i])
	}
	if got := mustTransitions(t, s, store.TransitionQuery{Segment: "nope"}); len(got) != 0 {
		t.Errorf("transitions of an unknown segment = %+v", got)
	}
}

func testTransitionsOnly(t *testing.T, s store.Store) {
	if err := s.SetCheckpoint(ctx, store.Checkpoint{Name: "segments", Seq: 7}); err != nil {
		t.Fatal(err)
	}
	// A timer-driven expiry: nothing but transitions, no checkpoint.
	ts := []kiln.Transition{tr("active", "p1", true, 0, 1, kiln.ReasonEvent)}
	mustApply(t, s, store.Resolution{Transitions: ts})
	exp := []kiln.Transition{tr("active", "p1", false, 30, 1, kiln.ReasonExpiry)}
	exp[0].Evidence = json.RawMessage(`{"last_order_days":30.5}`)
	mustApply(t, s, store.Resolution{Transitions: exp})
	checkIDs(t, exp, ts[0].ID)
	if cp, _ := s.GetCheckpoint(ctx, "segments"); cp != 7 {
		t.Errorf("checkpoint = %d after transitions-only resolutions, want 7 unchanged", cp)
	}
	if cp, _ := s.GetCheckpoint(ctx, ""); cp != 0 {
		t.Errorf("checkpoint %q = %d, want none set", "", cp)
	}
	if n, _ := s.CountMembers(ctx, "active"); n != 0 {
		t.Errorf("active has %d members after the expiry, want 0", n)
	}
	got := mustTransitions(t, s, store.TransitionQuery{ProfileID: "p1"})
	if len(got) != 2 {
		t.Fatalf("transitions of p1 = %+v", got)
	}
	checkTransition(t, got[1], exp[0])
	// An empty resolution is fine too.
	mustApply(t, s, store.Resolution{})
}

func testTransitionsRefused(t *testing.T, s store.Store) {
	ok := tr("vip", "p1", true, 0, 1, kiln.ReasonEvent)
	for _, c := range []struct {
		what string
		bad  kiln.Transition
	}{
		{"no segment", tr("", "p1", true, 0, 1, kiln.ReasonEvent)},
		{"no profile", tr("vip", "", true, 0, 1, kiln.ReasonEvent)},
		{"evidence that is not JSON", func() kiln.Transition {
			x := tr("vip", "p2", true, 0, 1, kiln.ReasonEvent)
			x.Evidence = json.RawMessage(`{"a":`)
			return x
		}()},
	} {
		ts := []kiln.Transition{ok, c.bad}
		err := s.ApplyResolution(ctx, store.Resolution{
			Profiles:    []store.ProfileChange{{ID: "p1", EventCount: 1, At: at(0)}},
			Transitions: ts,
			Checkpoint:  store.Checkpoint{Name: "segments", Seq: 9},
		})
		wantCode(t, c.what, err, kiln.EInvalid)
		if ts[0].ID != 0 {
			t.Errorf("%s: refused resolution set ID %d", c.what, ts[0].ID)
		}
	}
	// Nothing of the refused resolutions was written.
	if got := mustTransitions(t, s, store.TransitionQuery{}); len(got) != 0 {
		t.Errorf("refused transitions were stored: %+v", got)
	}
	if n, _ := s.CountMembers(ctx, "vip"); n != 0 {
		t.Errorf("refused entry made %d members", n)
	}
	if n, _ := s.CountProfiles(ctx); n != 0 {
		t.Errorf("refused resolution stored %d profiles", n)
	}
	if cp, _ := s.GetCheckpoint(ctx, "segments"); cp != 0 {
		t.Errorf("refused resolution set the checkpoint to %d", cp)
	}
}

func testTransitionPaging(t *testing.T, s store.Store) {
	// 715 transitions over 3 segments and 23 profiles, in a small and a
	// big resolution (backends may write bursts differently), each
	// (segment, profile) entering and exiting many times over.
	var want []kiln.Transition
	n := 0
	for _, size := range []int{115, 600} {
		var ts []kiln.Transition
		for range size {
			x := tr(fmt.Sprintf("s%d", n%3), fmt.Sprintf("p%02d", n%23), n%2 == 0, n, int64(n), kiln.ReasonRecompute)
			x.EventSeq = int64(n)
			if n%5 == 0 {
				x.Evidence = json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"\u00e9\"x"}`, n))
			}
			ts = append(ts, x)
			n++
		}
		mustApply(t, s, store.Resolution{Transitions: ts})
		want = append(want, ts...)
	}
	checkIDs(t, want, 0)
	// The memberships are what the last transition of each pair says.
	final := map[string]kiln.Transition{}
	for _, x := range want {
		final[x.Segment+"/"+x.ProfileID] = x
	}
	var wantMembers, gotMembers []string
	for k, x := range final {
		if x.Entered {
			wantMembers = append(wantMembers, fmt.Sprintf("%s v%d", k, x.Version))
		}
	}
	if err := s.ScanMemberships(ctx, func(m kiln.Membership) error {
		gotMembers = append(gotMembers, fmt.Sprintf("%s/%s v%d", m.Segment, m.ProfileID, m.Version))
		if x := final[m.Segment+"/"+m.ProfileID]; !m.Since.Equal(x.At) {
			t.Errorf("%s/%s since %s, want %s", m.Segment, m.ProfileID, m.Since, x.At)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(wantMembers)
	sort.Strings(gotMembers)
	if !slices.Equal(gotMembers, wantMembers) {
		t.Errorf("memberships after the bursts = %v, want %v", gotMembers, wantMembers)
	}
	for i, x := range mustTransitions(t, s, store.TransitionQuery{After: want[650].ID, Limit: 10}) {
		checkTransition(t, x, want[651+i])
	}
	for _, q := range []store.TransitionQuery{{}, {Segment: "s1"}, {ProfileID: "p07"}, {Segment: "s2", ProfileID: "p05"}} {
		var exp []int64
		for _, x := range want {
			if (q.Segment == "" || x.Segment == q.Segment) && (q.ProfileID == "" || x.ProfileID == q.ProfileID) {
				exp = append(exp, x.ID)
			}
		}
		for _, limit := range []int{0, 7} {
			q := q
			q.Limit = limit
			var got []int64
			for {
				page := mustTransitions(t, s, q)
				pageMax := limit
				if limit == 0 {
					pageMax = 100
				}
				if len(page) > pageMax {
					t.Fatalf("%+v: page of %d, want at most %d", q, len(page), pageMax)
				}
				if len(page) == 0 {
					break
				}
				got = append(got, transitionIDs(page)...)
				q.After = page[len(page)-1].ID
			}
			if !slices.Equal(got, exp) {
				t.Errorf("paging %+v: got %d IDs, want %d", q, len(got), len(exp))
			}
		}
	}
	// The default page is 100.
	if got := mustTransitions(t, s, store.TransitionQuery{}); len(got) != 100 {
		t.Errorf("default page has %d transitions, want 100", len(got))
	}
}

func testTransitionIDsNeverReused(t *testing.T, s store.Store) {
	mustApply(t, s, store.Resolution{
		Profiles:    []store.ProfileChange{{ID: "p1", EventCount: 1, At: at(0)}, {ID: "p2", EventCount: 1, At: at(0)}},
		Transitions: []kiln.Transition{tr("vip", "p1", true, 0, 1, kiln.ReasonEvent), tr("vip", "p2", true, 0, 1, kiln.ReasonEvent)},
	})
	last := mustTransitions(t, s, store.TransitionQuery{})[1].ID
	// Deleting p2 deletes the newest transition; a consumer that read up
	// to it must not miss the next one.
	if _, err := s.DeleteProfile(ctx, "p2", false, "", at(1)); err != nil {
		t.Fatal(err)
	}
	next := []kiln.Transition{tr("vip", "p1", false, 2, 1, kiln.ReasonEvent)}
	mustApply(t, s, store.Resolution{Transitions: next})
	if next[0].ID <= last {
		t.Errorf("transition after a deletion got ID %d, not above %d, the highest given out", next[0].ID, last)
	}
	if got := mustTransitions(t, s, store.TransitionQuery{After: last}); len(got) != 1 || got[0].ID != next[0].ID {
		t.Errorf("transitions after %d = %+v", last, got)
	}
}

func testMemberships(t *testing.T, s store.Store) {
	if ms, err := s.Members(ctx, "all", "", 0); err != nil || len(ms) != 0 {
		t.Fatalf("members of an empty segment = %v, %v", ms, err)
	}
	if n, err := s.CountMembers(ctx, "all"); err != nil || n != 0 {
		t.Fatalf("CountMembers of an empty segment = %d, %v", n, err)
	}
	// 250 profiles in "all", the even ones in "even" too; written in one
	// resolution in an order that is not by profile id.
	var ts []kiln.Transition
	want := map[string]kiln.Membership{}
	for i := 249; i >= 0; i-- {
		id := fmt.Sprintf("p%03d", i)
		ts = append(ts, tr("all", id, true, i, 3, kiln.ReasonRecompute))
		want["all/"+id] = kiln.Membership{Segment: "all", ProfileID: id, Since: at(i), Version: 3}
		if i%2 == 0 {
			ts = append(ts, tr("even", id, true, 1000+i, 1, kiln.ReasonRecompute))
			want["even/"+id] = kiln.Membership{Segment: "even", ProfileID: id, Since: at(1000 + i), Version: 1}
		}
	}
	mustApply(t, s, store.Resolution{Transitions: ts})

	for _, seg := range []struct {
		name string
		n    int
	}{{"all", 250}, {"even", 125}} {
		if n, err := s.CountMembers(ctx, seg.name); err != nil || n != int64(seg.n) {
			t.Errorf("CountMembers(%s) = %d, %v, want %d", seg.name, n, err, seg.n)
		}
		for _, limit := range []int{0, 30} {
			var got []kiln.Membership
			after := ""
			for {
				page, err := s.Members(ctx, seg.name, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				if (limit == 0 && len(page) > 100) || (limit > 0 && len(page) > limit) {
					t.Fatalf("members page of %d with limit %d", len(page), limit)
				}
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				after = page[len(page)-1].ProfileID
			}
			if len(got) != seg.n {
				t.Fatalf("paged %d members of %s with limit %d, want %d", len(got), seg.name, limit, seg.n)
			}
			for i, m := range got {
				if i > 0 && m.ProfileID <= got[i-1].ProfileID {
					t.Fatalf("members of %s out of order: %s after %s", seg.name, m.ProfileID, got[i-1].ProfileID)
				}
				w := want[m.Segment+"/"+m.ProfileID]
				if m.Segment != seg.name || m.Version != w.Version {
					t.Errorf("member %+v, want %+v", m, w)
				}
				wantTime(t, "since of "+m.Segment+"/"+m.ProfileID, m.Since, w.Since)
			}
		}
	}
	if page, _ := s.Members(ctx, "even", "p100", 2); !slices.Equal(memberKeys(page), []string{"even/p102", "even/p104"}) {
		t.Errorf("members of even after p100 = %v", memberKeys(page))
	}
	if ms, _ := s.MembershipsOf(ctx, "p010"); !slices.Equal(memberKeys(ms), []string{"all/p010", "even/p010"}) {
		t.Errorf("memberships of p010 = %v", memberKeys(ms))
	}
	if ms, err := s.MembershipsOf(ctx, "nobody"); err != nil || len(ms) != 0 {
		t.Errorf("memberships of an unknown profile = %v, %v", ms, err)
	}

	var scanned []string
	err := s.ScanMemberships(ctx, func(m kiln.Membership) error {
		w, ok := want[m.Segment+"/"+m.ProfileID]
		if !ok || w.Version != m.Version || !w.Since.Equal(m.Since) {
			t.Errorf("scanned membership %+v, want %+v", m, w)
		}
		scanned = append(scanned, m.Segment+"/"+m.ProfileID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(scanned)
	if n, distinct := len(scanned), len(slices.Compact(slices.Clone(scanned))); n != len(want) || distinct != n {
		t.Errorf("scanned %d memberships (%d distinct), want %d", n, distinct, len(want))
	}
	stop := errors.New("stop")
	n := 0
	err = s.ScanMemberships(ctx, func(kiln.Membership) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("scan stopped by fn: %v after %d calls, want stop after 3", err, n)
	}
}

func testDeleteProfileSegmentData(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{Transitions: []kiln.Transition{
		tr("vip", "p_a", true, 1, 1, kiln.ReasonEvent),
		tr("vip", "p_b", true, 1, 1, kiln.ReasonEvent),
		tr("big", "p_b", true, 2, 1, kiln.ReasonEvent),
	}})
	if err := s.SetStaticMembers(ctx, "vip-list", []string{"p_a", "p_b"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStaticMembers(ctx, "press", []string{"p_b"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteProfile(ctx, "p_b", true, "gdpr", at(5)); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MembershipsOf(ctx, "p_b"); len(ms) != 0 {
		t.Errorf("memberships of a deleted profile: %v", memberKeys(ms))
	}
	if got := mustTransitions(t, s, store.TransitionQuery{ProfileID: "p_b"}); len(got) != 0 {
		t.Errorf("transitions of a deleted profile: %+v", got)
	}
	if got, _ := s.StaticMembers(ctx, "vip-list"); !slices.Equal(got, []string{"p_a"}) {
		t.Errorf("vip-list after deleting p_b = %v, want [p_a]", got)
	}
	if got, _ := s.StaticMembers(ctx, "press"); len(got) != 0 {
		t.Errorf("press after deleting p_b = %v, want empty", got)
	}
	// The other profile keeps everything.
	if ms, _ := s.MembershipsOf(ctx, "p_a"); !slices.Equal(memberKeys(ms), []string{"vip/p_a"}) {
		t.Errorf("memberships of p_a = %v", memberKeys(ms))
	}
	if got := mustTransitions(t, s, store.TransitionQuery{}); len(got) != 1 || got[0].ProfileID != "p_a" {
		t.Errorf("transitions left = %+v, want p_a's one", got)
	}
}

func testMergeDropsMemberships(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	mustApply(t, s, store.Resolution{
		Profiles: []store.ProfileChange{{ID: "p_c", EventCount: 1, At: at(1)}},
		Transitions: []kiln.Transition{
			tr("vip", "p_a", true, 1, 1, kiln.ReasonEvent),
			tr("vip", "p_b", true, 1, 1, kiln.ReasonEvent),
			tr("big", "p_b", true, 2, 1, kiln.ReasonEvent),
			tr("big", "p_c", true, 2, 1, kiln.ReasonEvent),
		},
	})
	// p_b folds into p_a; the engine records p_b's exit from one segment
	// only: the store drops the other membership itself. p_c is renamed
	// (p_new does not exist) and loses its memberships as well; the engine
	// records the renamed profile's entry.
	mustApply(t, s, store.Resolution{
		Merges: []kiln.Merge{
			{Into: "p_a", From: "p_b", At: at(30)},
			{Into: "p_new", From: "p_c", At: at(30)},
		},
		Transitions: []kiln.Transition{
			tr("vip", "p_b", false, 30, 1, kiln.ReasonProfile),
			tr("big", "p_a", true, 30, 1, kiln.ReasonProfile),
			tr("big", "p_new", true, 30, 1, kiln.ReasonProfile),
		},
	})
	for _, id := range []string{"p_b", "p_c"} {
		if ms, _ := s.MembershipsOf(ctx, id); len(ms) != 0 {
			t.Errorf("memberships of merged-away %s: %v", id, memberKeys(ms))
		}
	}
	if ms, _ := s.MembershipsOf(ctx, "p_a"); !slices.Equal(memberKeys(ms), []string{"big/p_a", "vip/p_a"}) {
		t.Errorf("memberships of p_a = %v", memberKeys(ms))
	}
	if ms, _ := s.MembershipsOf(ctx, "p_new"); !slices.Equal(memberKeys(ms), []string{"big/p_new"}) {
		t.Errorf("memberships of p_new = %v", memberKeys(ms))
	}
	if n, _ := s.CountMembers(ctx, "big"); n != 2 {
		t.Errorf("big has %d members, want 2", n)
	}
	// The log keeps the merged-away profile's history.
	if got := mustTransitions(t, s, store.TransitionQuery{ProfileID: "p_b"}); len(got) != 3 {
		t.Errorf("transitions of p_b = %+v, want its 3", got)
	}
}

func testSegmentSizes(t *testing.T, s store.Store) {
	if got, err := s.SegmentSizes(ctx, "vip", time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("sizes of an empty store = %v, %v", got, err)
	}
	err := s.SaveSegmentSizes(ctx, []kiln.SegmentSize{
		{Segment: "vip", At: at(60), Size: 12},
		{Segment: "vip", At: at(0), Size: 10},
		{Segment: "big", At: at(30), Size: 500},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SaveSegmentSizes(ctx, []kiln.SegmentSize{{Segment: "vip", At: at(120), Size: 9}, {Segment: "vip", At: at(30), Size: 11}})
	if err != nil {
		t.Fatal(err)
	}
	sizes := func(since time.Time) []string {
		t.Helper()
		got, err := s.SegmentSizes(ctx, "vip", since)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range got {
			if x.Segment != "vip" || x.At.Location() != time.UTC {
				t.Errorf("sample %+v", x)
			}
			out = append(out, fmt.Sprintf("%d@%d", x.Size, int(x.At.Sub(t0)/time.Minute)))
		}
		return out
	}
	if got := sizes(time.Time{}); !slices.Equal(got, []string{"10@0", "11@30", "12@60", "9@120"}) {
		t.Errorf("vip sizes = %v, want all, oldest first", got)
	}
	if got := sizes(at(30)); !slices.Equal(got, []string{"11@30", "12@60", "9@120"}) {
		t.Errorf("vip sizes since minute 30 = %v, want from 30 on (inclusive)", got)
	}
	if got := sizes(at(121)); len(got) != 0 {
		t.Errorf("vip sizes after the last = %v", got)
	}
	// A sample at a stored instant replaces it; of two in one call the
	// last wins.
	if err := s.SaveSegmentSizes(ctx, []kiln.SegmentSize{{Segment: "vip", At: at(60), Size: 14}, {Segment: "vip", At: at(60), Size: 13}}); err != nil {
		t.Fatal(err)
	}
	if got := sizes(at(60)); !slices.Equal(got, []string{"13@60", "9@120"}) {
		t.Errorf("vip sizes after resampling minute 60 = %v", got)
	}
	wantCode(t, "sample without a time", s.SaveSegmentSizes(ctx, []kiln.SegmentSize{{Segment: "vip", Size: 1}}), kiln.EInvalid)
	wantCode(t, "sample without a segment", s.SaveSegmentSizes(ctx, []kiln.SegmentSize{{At: at(1), Size: 1}}), kiln.EInvalid)
}

func testStaticMembers(t *testing.T, s store.Store) {
	if got, err := s.StaticMembers(ctx, "press"); err != nil || len(got) != 0 {
		t.Fatalf("static members of an empty list = %v, %v", got, err)
	}
	if err := s.SetStaticMembers(ctx, "press", []string{"p3", "p1", "p2", "p1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStaticMembers(ctx, "beta", []string{"p2"}, nil); err != nil {
		t.Fatal(err)
	}
	// Adding a listed profile again is fine; a profile both added and
	// removed in one call ends up removed.
	if err := s.SetStaticMembers(ctx, "press", []string{"p1", "p4", "p5"}, []string{"p2", "p5", "p9"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.StaticMembers(ctx, "press"); err != nil || !slices.Equal(got, []string{"p1", "p3", "p4"}) {
		t.Errorf("press = %v, %v, want [p1 p3 p4]", got, err)
	}
	if got, _ := s.StaticMembers(ctx, "beta"); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("beta = %v, want [p2]: removing from press leaves beta alone", got)
	}
	var all []string
	if err := s.ScanStaticMembers(ctx, func(seg, id string) error {
		all = append(all, seg+"/"+id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	if !slices.Equal(all, []string{"beta/p2", "press/p1", "press/p3", "press/p4"}) {
		t.Errorf("scanned static members = %v", all)
	}
	stop := errors.New("stop")
	if err := s.ScanStaticMembers(ctx, func(string, string) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("scan stopped by fn returned %v, want stop", err)
	}
	wantCode(t, "static list without a name", s.SetStaticMembers(ctx, "", []string{"p1"}, nil), kiln.EInvalid)
	wantCode(t, "empty profile id", s.SetStaticMembers(ctx, "press", []string{"p7", ""}, nil), kiln.EInvalid)
	if got, _ := s.StaticMembers(ctx, "press"); slices.Contains(got, "p7") {
		t.Errorf("refused call added p7: %v", got)
	}
}

// testConcurrentTransitions runs resolutions with transitions, merges and
// timer-style transitions-only resolutions from several goroutines while
// a consumer tails the log by ID: every transition gets its own ID, and
// the consumer, which never rereads behind its cursor, still sees every
// one (IDs become visible in increasing order). Merges race with
// transitions of the profiles they fold away, so that a backend taking
// its locks in different orders deadlocks.
func testConcurrentTransitions(t *testing.T, s store.Store) {
	const workers, rounds = 4, 12
	var setup []kiln.Transition
	var profiles []store.ProfileChange
	for w := range workers {
		for r := range rounds {
			id := fmt.Sprintf("x%d_%d", w, r)
			profiles = append(profiles, store.ProfileChange{ID: id, EventCount: 1, At: at(0)})
			setup = append(setup, tr("seg", id, true, 0, 1, kiln.ReasonEvent), tr("other", id, true, 0, 1, kiln.ReasonEvent))
		}
	}
	mustApply(t, s, store.Resolution{Profiles: profiles, Transitions: setup})
	start := setup[len(setup)-1].ID

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = map[int64]string{}
		errs []error
		done = make(chan struct{})
	)
	apply := func(w, r int, what string, res store.Resolution) {
		err := s.ApplyResolution(ctx, res)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d round %d, %s: %w", w, r, what, err))
			return
		}
		for i, x := range res.Transitions {
			if prev, dup := ids[x.ID]; dup || x.ID <= start {
				errs = append(errs, fmt.Errorf("ID %d given to worker %d round %d %s #%d (before: %q, setup up to %d)", x.ID, w, r, what, i, prev, start))
			}
			ids[x.ID] = fmt.Sprintf("w%d r%d %s #%d", w, r, what, i)
		}
	}
	written := 0
	for w := range workers {
		written += rounds * 5
		wg.Go(func() {
			for r := range rounds {
				// Worker w merges x{w} into x{w+1}, while worker w+2
				// writes an expiry of x{w} without touching its profile.
				from := fmt.Sprintf("x%d_%d", w, r)
				into := fmt.Sprintf("x%d_%d", (w+1)%workers, r)
				far := fmt.Sprintf("x%d_%d", (w+2)%workers, r)
				apply(w, r, "expiry", store.Resolution{Transitions: []kiln.Transition{
					tr("other", far, false, r+1, 1, kiln.ReasonExpiry),
					tr("other", far, true, r+1, 2, kiln.ReasonExpiry),
				}})
				apply(w, r, "merge", store.Resolution{
					Merges: []kiln.Merge{{Into: into, From: from, At: at(r + 1)}},
					Transitions: []kiln.Transition{
						tr("seg", from, false, r+1, 1, kiln.ReasonProfile),
						tr("other", from, false, r+1, 1, kiln.ReasonProfile),
						tr("other", into, r%2 == 0, r+1, 1, kiln.ReasonProfile),
					},
					Checkpoint: store.Checkpoint{Name: fmt.Sprintf("w%d", w), Seq: int64(r + 1)},
				})
			}
		})
	}
	// The consumer.
	var tailed []int64
	var tailErr error
	tail := func() bool {
		after := start
		if len(tailed) > 0 {
			after = tailed[len(tailed)-1]
		}
		page, err := s.Transitions(ctx, store.TransitionQuery{After: after, Limit: 7})
		if err != nil {
			tailErr = err
			return false
		}
		tailed = append(tailed, transitionIDs(page)...)
		return len(page) > 0
	}
	consumer := make(chan struct{})
	go func() {
		defer close(consumer)
		for {
			select {
			case <-done:
				return
			default:
				if !tail() && tailErr != nil {
					return
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	<-consumer
	for tailErr == nil && tail() {
	}
	for _, err := range errs {
		t.Error(err)
	}
	if tailErr != nil {
		t.Fatalf("tailing transitions: %v", tailErr)
	}
	if len(ids) != written {
		t.Errorf("%d transitions got IDs, want %d", len(ids), written)
	}
	if len(tailed) != len(ids) {
		t.Errorf("the consumer saw %d transitions, %d were written: it skipped some that became visible behind its cursor", len(tailed), len(ids))
	}
	for _, id := range tailed {
		if _, ok := ids[id]; !ok {
			t.Errorf("the consumer saw ID %d, which no writer got", id)
		}
	}
}

// Transitions makes n segment entries for benchmarks: one per profile,
// profile ids random-looking (derived from prefix and position, so index
// inserts land at random places, as real ids do), each with a small
// evidence object, as a definition change applied to a large base makes.
func Transitions(segment, prefix string, n int, ts time.Time) []kiln.Transition {
	out := make([]kiln.Transition, n)
	for i := range out {
		out[i] = kiln.Transition{
			Segment:   segment,
			ProfileID: "p_" + uuidFor(prefix, i),
			Entered:   true,
			At:        ts,
			Version:   2,
			Reason:    kiln.ReasonDefinitionChange,
			Evidence:  json.RawMessage(`{"orders_90d":` + strconv.Itoa(3+i%7) + `,"country":"FR"}`),
			Act:       false,
		}
	}
	return out
}
