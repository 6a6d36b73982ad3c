package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
)

// With a backlog, the claims and the lane check must seek by index, never
// read every pending row: a claim that did stalled delivery for minutes
// with 245k items queued. The test fills the outbox, analyzes it, and
// reads the plans and the time a claim takes. The destination "hung" has
// the oldest 90% of the backlog, as a vendor that stopped answering would.
func TestOutboxQueriesUseTheirIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.Schema(t, pgtest.DSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	now := time.Now()
	if _, err := db.pool.Exec(ctx, `
INSERT INTO outbox (transition_id, profile_id, destination, automation, key, payload, state, attempts, due, next_at, created_at)
SELECT i, 'p' || i, CASE WHEN i <= $1 * 9 / 10 THEN 'hung' ELSE 'ok' END, 'a', 'k' || i, '{}', 'pending', 0,
    $2::timestamptz + i * interval '1 microsecond', $2::timestamptz + i * interval '1 microsecond', $2::timestamptz
FROM generate_series(1, $1) i`, n, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"claim", claimOutbox, []any{now.Add(time.Minute), now, 256}, []string{"outbox_due", "outbox_lane"}},
		{"claim one destination", claimDestination, []any{now.Add(time.Minute), now, 256, "ok"}, []string{"outbox_dest", "outbox_lane"}},
		{"lane head", laneHead, []any{int64(7)}, []string{"outbox_lane"}},
	} {
		plan := pgExplain(t, db, q.query, q.args...)
		for _, w := range q.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan does not use %s:\n%s", q.name, w, plan)
			}
		}
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "outbox_state") {
			t.Errorf("%s: plan scans the table:\n%s", q.name, plan)
		}
	}
	start := time.Now()
	for i := range 10 {
		got, err := db.ClaimDestinations(ctx, now.Add(time.Duration(i)*time.Millisecond), time.Minute, []store.DestinationClaim{{Destination: "ok", Limit: 256}})
		if err != nil || len(got) != 256 {
			t.Fatalf("claim: %d items, %v", len(got), err)
		}
	}
	t.Logf("ClaimDestinations of 256 with %d pending: %v per claim", n, time.Since(start)/10)
	start = time.Now()
	for i := range 10 {
		got, err := db.ClaimOutbox(ctx, now.Add(time.Duration(i)*time.Millisecond), time.Minute, 256)
		if err != nil || len(got) != 256 {
			t.Fatalf("claim: %d items, %v", len(got), err)
		}
	}
	t.Logf("ClaimOutbox of 256 with %d pending: %v per claim", n, time.Since(start)/10)
	start = time.Now()
	if b, err := db.OutboxBacklog(ctx, now); err != nil || len(b) != 2 {
		t.Fatalf("backlog %v, %v", b, err)
	}
	t.Logf("OutboxBacklog with %d pending: %v", n, time.Since(start))
}

func pgExplain(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	tx, err := db.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) // EXPLAIN ANALYZE of an UPDATE changes rows
	rows, err := tx.Query(context.Background(), "EXPLAIN ANALYZE "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
