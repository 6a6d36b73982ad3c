package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
)

// Claims and outcomes commit relaxed; the writer must be back to FULL
// afterwards, or the event log would lose its durability.
func TestOutboxLeavesTheWriterFullySynchronous(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ClaimOutbox(ctx, time.Now(), time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishOutbox(ctx, []store.OutboxResult{{ID: 1, State: store.OutboxDelivered, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	var level int
	if err := db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != 2 {
		t.Fatalf("writer synchronous = %d after outbox writes, want 2 (FULL)", level)
	}
}

// The claims and the lane check must seek by index, never read every
// pending row: with a backlog of 180k items, a claim that did (the planner
// chose outbox_state and sorted) stalled delivery for minutes.
func TestOutboxQueriesUseTheirIndexes(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"claim", claimOutbox, []any{1, 2, 3}, []string{"USING INDEX outbox_due", "USING COVERING INDEX outbox_lane (profile_id=? AND destination=? AND due<?)"}},
		{"claim one destination", claimDestination, []any{1, 2, 3, "d"}, []string{"USING INDEX outbox_dest (destination=? AND next_at<?)", "outbox_lane (profile_id=? AND destination=? AND due<?)"}},
		{"lane head", laneHead, []any{1}, []string{"outbox_lane (profile_id=? AND destination=? AND due<?)"}},
		{"destination claimable", destinationClaimable, []any{1, "d"}, []string{"USING INDEX outbox_dest (destination=? AND next_at<?)"}},
		{"backlog", outboxBacklog, []any{1}, []string{"COVERING INDEX outbox_dest (destination>?)", "COVERING INDEX outbox_dest (destination=?)"}},
	} {
		plan := explain(t, db, q.query, q.args...)
		for _, w := range q.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan lacks %q:\n%s", q.name, w, plan)
			}
		}
		for _, bad := range []string{"SCAN o", "SCAN p", "SCAN outbox", "TEMP B-TREE", "outbox_state"} {
			if strings.Contains(plan, bad) {
				t.Errorf("%s: plan has %q:\n%s", q.name, bad, plan)
			}
		}
	}
}

func explain(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %d %s\n", id, parent, detail)
	}
	return b.String()
}

// TestClaimWithBacklog measures a claim under a large backlog (go test
// -run ClaimWithBacklog -v ./store/sqlite/): the claim must cost what
// it returns, not what is pending.
func TestClaimWithBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100k items")
	}
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const n = 100_000
	now := time.Now()
	if _, err := db.w.ExecContext(ctx, `
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ?1)
INSERT INTO outbox (transition_id, profile_id, destination, automation, key, payload, state, attempts, due, next_at, created_at)
SELECT i, 'p' || i, CASE WHEN i % 2 = 0 THEN 'hung' ELSE 'ok' END, 'a', 'k' || i, '{}', 'pending', 0, ?2 + i, ?2 + i, ?2
FROM c`, n, now.Add(-time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		claim func(now time.Time) ([]store.OutboxItem, error)
	}{
		{"ClaimOutbox 256", func(now time.Time) ([]store.OutboxItem, error) { return db.ClaimOutbox(ctx, now, time.Minute, 256) }},
		{"ClaimDestinations ok:256", func(now time.Time) ([]store.OutboxItem, error) {
			return db.ClaimDestinations(ctx, now, time.Minute, []store.DestinationClaim{{Destination: "ok", Limit: 256}})
		}},
	} {
		const rounds = 20
		start := time.Now()
		for i := range rounds {
			got, err := q.claim(now.Add(time.Duration(i) * time.Millisecond))
			if err != nil || len(got) != 256 {
				t.Fatalf("%s: %d items, %v", q.name, len(got), err)
			}
		}
		per := time.Since(start) / rounds
		t.Logf("%s with %d pending: %v per claim", q.name, n, per)
		if per > 200*time.Millisecond {
			t.Errorf("%s: %v per claim with %d pending; it should not depend on the backlog", q.name, per, n)
		}
	}
	start := time.Now()
	b, err := db.OutboxBacklog(ctx, now)
	if err != nil || len(b) != 2 {
		t.Fatalf("backlog %v, %v", b, err)
	}
	t.Logf("OutboxBacklog with %d pending: %v (%+v)", n, time.Since(start), b)
}
