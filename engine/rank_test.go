package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

const rankDefs = `
trait spend_7d = sum(properties.revenue) of "Order Completed" in last 7 days
segment buyers { spend_7d > 0 }
segment top_half { spend_7d in top 50% among buyers }
segment leader { rank of spend_7d among buyers = 1 }
`

// rankMembers lists the users in seg, from the store.
func (b *bundle) rankMembers(t *testing.T, seg string) []string {
	t.Helper()
	var out []string
	for _, u := range []string{"a", "b", "c", "d"} {
		if _, err := b.st.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.UserID, Value: u}); err != nil {
			continue
		}
		if b.member(t, seg, u) {
			out = append(out, u)
		}
	}
	return out
}

// Ranks move in real time: another customer's order or an expiry moves
// profiles that had no event, at that instant, with reason rank; a
// deletion moves the others up; an unrelated edit and restarts (graceful
// and from a snapshot) move nobody; as of a past instant the ranks are
// those of that instant.
func TestRankedSegmentsInRealTime(t *testing.T) {
	ctx := context.Background()
	b := setup(t, true)
	if _, err := b.e.ApplyDefinitions(ctx, rankDefs, false); err != nil {
		t.Fatal(err)
	}
	t0 := b.now()
	// Each new buyer moves the others: a alone leads, then b, then c.
	b.send(t, "a", order(t0, 100))
	b.send(t, "b", order(t0, 200))
	b.send(t, "c", order(t0, 300))
	if got := b.rankMembers(t, "top_half"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("top half of 100, 200, 300: %v, want b and c (fewer than 1.5 above)", got)
	}
	if got := b.rankMembers(t, "leader"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("leader: %v", got)
	}

	// d overtakes everyone a day later: c leaves leader and b top_half
	// at d's instant, by no event of their own.
	t1 := t0.Add(24 * time.Hour)
	b.clock.Store(t1.UnixMilli())
	b.send(t, "d", order(t1, 500))
	var rankMoves []string
	for _, tr := range b.transitions() {
		if !tr.At.Before(t1) && tr.ProfileID != b.pid(t, "d") {
			if tr.Reason != kiln.ReasonRank {
				t.Errorf("transition %+v: reason %s, want rank", tr, tr.Reason)
			}
			rankMoves = append(rankMoves, fmt.Sprintf("%s %v", tr.Segment, tr.Entered))
		}
	}
	slices.Sort(rankMoves)
	if want := []string{"leader false", "top_half false"}; !slices.Equal(rankMoves, want) {
		t.Errorf("rank transitions %v, want %v", rankMoves, want)
	}
	if got := b.rankMembers(t, "top_half"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("top half after d: %v", got)
	}
	node, in, err := b.e.Explain(ctx, "top_half", b.pid(t, "b"))
	if err != nil || in || !strings.Contains(node.Why, "rank 3 of 4 (1 below, 2 above), percentile 25; it holds now from 300.00 USD to 500.00 USD") {
		t.Errorf("explain b: %v %v %+v", in, err, node)
	}

	// An unrelated definition moves no member; a graceful restart and a
	// restart from a snapshot record nothing.
	before := len(b.transitions())
	if _, err := b.e.ApplyDefinitions(ctx, `segment browsers { count of "Page Viewed" in last 1 days >= 1 }`, false); err != nil {
		t.Fatal(err)
	}
	b.stop()
	b.start(t)
	if err := b.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()
	b.start(t)
	if got := b.transitions()[before:]; len(got) != 0 {
		t.Errorf("an unrelated edit and restarts recorded %v", got)
	}

	// a's and b's and c's orders leave the window at t0+7d: d is alone,
	// in both; c leaves top_half at that instant (the buyers shrink).
	t2 := t0.Add(7 * 24 * time.Hour)
	b.clock.Store(t2.UnixMilli())
	if err := b.e.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.rankMembers(t, "top_half"); !slices.Equal(got, []string{"d"}) {
		t.Errorf("top half after expiry: %v", got)
	}
	if got := b.rankMembers(t, "leader"); !slices.Equal(got, []string{"d"}) {
		t.Errorf("leader after expiry: %v", got)
	}

	// As of past instants, the ranks of then.
	for _, c := range []struct {
		at   time.Time
		seg  string
		want []string
	}{
		{t0, "top_half", []string{"b", "c"}}, {t1, "top_half", []string{"c", "d"}}, {t1, "leader", []string{"d"}}, {t2, "top_half", []string{"d"}},
	} {
		pids, err := b.e.MembersAsOf(ctx, c.seg, c.at)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range []string{"a", "b", "c", "d"} {
			if slices.Contains(pids, b.pid(t, u)) {
				got = append(got, u)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s as of %s: %v, want %v", c.seg, c.at, got, c.want)
		}
	}

	// New orders, then d is deleted: c is the leader again at once.
	b.clock.Store(t2.Add(time.Hour).UnixMilli())
	b.send(t, "c", order(b.now(), 50))
	b.send(t, "a", order(b.now(), 20))
	if _, err := b.e.DeleteProfile(ctx, b.pid(t, "d"), false); err != nil {
		t.Fatal(err)
	}
	if got := b.rankMembers(t, "leader"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("leader after deleting d: %v", got)
	}
	if got := b.rankMembers(t, "top_half"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("top half after deleting d: %v", got)
	}
}

func (b *bundle) pid(t *testing.T, user string) string {
	t.Helper()
	pid, err := b.st.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.UserID, Value: user})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
