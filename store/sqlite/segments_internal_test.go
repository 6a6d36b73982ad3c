package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestSegmentQueryPlans checks that the segment queries that page through
// large tables search an index instead of scanning: a scan would pass the
// conformance suite and only show at a million profiles.
func TestSegmentQueryPlans(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	for _, c := range []struct {
		query string
		args  []any
		want  string // in the plan
	}{
		{members, []any{"vip", "", 100}, "SEARCH memberships USING PRIMARY KEY (segment=? AND profile_id>?)"},
		{countMembers, []any{"vip"}, "SEARCH memberships USING PRIMARY KEY (segment=?)"},
		{membershipsOf, []any{"p1"}, "SEARCH memberships USING INDEX memberships_profile (profile_id=?)"},
		{transitionQueries[0][0], []any{0, 100}, "SEARCH transitions USING INTEGER PRIMARY KEY (rowid>?)"},
		{transitionQueries[0][1], []any{"p1", 0, 100}, "SEARCH transitions USING INDEX transitions_profile (profile_id=? AND id>?)"},
		{transitionQueries[1][0], []any{"vip", 0, 100}, "SEARCH transitions USING INDEX transitions_segment (segment=? AND id>?)"},
		{transitionQueries[1][1], []any{"vip", "p1", 0, 100}, "SEARCH transitions USING INDEX transitions_profile (profile_id=? AND id>?)"},
		{deleteTransitionsOf, []any{"p1"}, "SEARCH transitions USING INDEX transitions_profile (profile_id=?)"},
		{deleteStaticMembersOf, []any{"p1"}, "SEARCH static_members USING COVERING INDEX static_members_profile (profile_id=?)"},
		{segmentSizes, []any{"vip", 0}, "SEARCH segment_sizes USING PRIMARY KEY (segment=? AND at>?)"},
		{staticMembers, []any{"vip"}, "SEARCH static_members USING PRIMARY KEY (segment=?)"},
	} {
		rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("explain %s: %v", c.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, c.want) {
			t.Errorf("plan of %s\n  = %s\n  want %s", strings.Join(strings.Fields(c.query), " "), got, c.want)
		}
		if strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("plan of %s sorts: %s", strings.Join(strings.Fields(c.query), " "), got)
		}
	}
}
