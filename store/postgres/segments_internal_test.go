package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/kiln-cdp/kiln/store/storetest"
)

// TestSegmentQueryPlans checks that, on tables of some size with fresh
// statistics, the segment queries that page through large tables use
// their indexes: a sequential scan would pass the conformance suite and
// only show at a million profiles.
func TestSegmentQueryPlans(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.Schema(t, pgtest.DSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ts []kiln.Transition
	for _, seg := range []string{"a", "b", "c", "d"} {
		ts = append(ts, storetest.Transitions(seg, seg, 5000, t0)...)
	}
	if err := db.ApplyResolution(ctx, store.Resolution{Transitions: ts}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ts))
	for i, x := range ts {
		ids[i] = x.ProfileID
	}
	if err := db.SetStaticMembers(ctx, "list", ids, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	p := ts[42].ProfileID
	for _, c := range []struct {
		query string
		args  []any
		index string
	}{
		{members, []any{"a", p, 100}, "memberships_pkey"},
		{membershipsOf, []any{p}, "memberships_profile"},
		{transitionQueries[0][1], []any{p, 0, 100}, "transitions_profile"},
		{transitionQueries[1][0], []any{"b", 0, 100}, "transitions_segment"},
		{transitionQueries[1][1], []any{"a", p, 0, 100}, "transitions_profile"},
		{deleteTransitionsOf, []any{p}, "transitions_profile"},
		{deleteMembershipsOf, []any{p}, "memberships_profile"},
		{deleteStaticMembersOf, []any{p}, "static_members_profile"},
	} {
		rows, err := db.pool.Query(ctx, "EXPLAIN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("explain %s: %v", c.query, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, c.index) || strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") {
			t.Errorf("plan of %s:\n%s\nwant a search of %s, no scan or sort", strings.Join(strings.Fields(c.query), " "), plan, c.index)
		}
	}
}
