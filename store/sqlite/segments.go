package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

var _ store.Segments = (*DB)(nil)

const (
	definitionColumns = `name, kind, version, text, body, applied_at, deleted_at`

	insertDefinition = `INSERT INTO definitions (` + definitionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`

	// The latest version of each name, unless that version is a deletion.
	latestDefinitions = `
SELECT ` + definitionColumns + ` FROM definitions d
WHERE d.version = (SELECT max(version) FROM definitions WHERE name = d.name)
  AND d.deleted_at IS NULL
ORDER BY d.name`

	definitionVersions = `SELECT ` + definitionColumns + ` FROM definitions WHERE name = ? ORDER BY version DESC`

	membershipColumns = `segment, profile_id, since, version`

	members = `
SELECT ` + membershipColumns + ` FROM memberships
WHERE segment = ? AND profile_id > ?
ORDER BY profile_id
LIMIT ?`

	countMembers = `SELECT count(*) FROM memberships WHERE segment = ?`

	membershipsOf = `SELECT ` + membershipColumns + ` FROM memberships WHERE profile_id = ? ORDER BY segment`

	allMemberships = `SELECT ` + membershipColumns + ` FROM memberships`

	upsertMembership = `
INSERT INTO memberships (segment, profile_id, since, version) VALUES (?, ?, ?, ?)
ON CONFLICT (segment, profile_id) DO UPDATE SET since = excluded.since, version = excluded.version`

	deleteMembership = `DELETE FROM memberships WHERE segment = ? AND profile_id = ?`

	deleteMembershipsOf = `DELETE FROM memberships WHERE profile_id = ?`

	// The ID to continue from: the highest ever given out (a profile's
	// newest transitions may have been deleted since).
	transitionLastID = `SELECT max(last_id, (SELECT coalesce(max(id), 0) FROM transitions)) FROM transition_state WHERE id = 1`

	setTransitionLastID = `UPDATE transition_state SET last_id = ? WHERE id = 1`

	transitionColumns = `id, segment, profile_id, entered, at, version, reason, event_seq, evidence, act`

	insertTransition = `INSERT INTO transitions (` + transitionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	deleteTransitionsOf = `DELETE FROM transitions WHERE profile_id = ?`

	upsertSegmentSize = `
INSERT INTO segment_sizes (segment, at, size) VALUES (?, ?, ?)
ON CONFLICT (segment, at) DO UPDATE SET size = excluded.size`

	segmentSizes = `SELECT segment, at, size FROM segment_sizes WHERE segment = ? AND at >= ? ORDER BY at`

	addStaticMember = `INSERT INTO static_members (segment, profile_id) VALUES (?, ?) ON CONFLICT DO NOTHING`

	removeStaticMember = `DELETE FROM static_members WHERE segment = ? AND profile_id = ?`

	staticMembers = `SELECT profile_id FROM static_members WHERE segment = ? ORDER BY profile_id`

	allStaticMembers = `SELECT segment, profile_id FROM static_members`

	deleteStaticMembersOf = `DELETE FROM static_members WHERE profile_id = ?`
)

// transitionQueries are Transitions' four shapes (by segment, by profile,
// both, neither), so that each names the columns its index starts with
// instead of hiding them behind an OR with an empty-string test, which
// SQLite plans as a scan of the whole table.
var transitionQueries = [2][2]string{
	{
		`SELECT ` + transitionColumns + ` FROM transitions WHERE id > ? ORDER BY id LIMIT ?`,
		`SELECT ` + transitionColumns + ` FROM transitions WHERE profile_id = ? AND id > ? ORDER BY id LIMIT ?`,
	},
	{
		`SELECT ` + transitionColumns + ` FROM transitions WHERE segment = ? AND id > ? ORDER BY id LIMIT ?`,
		`SELECT ` + transitionColumns + ` FROM transitions WHERE segment = ? AND profile_id = ? AND id > ? ORDER BY id LIMIT ?`,
	},
}

// defaultPageLimit is how many rows Members and Transitions return when
// asked for 0.
const defaultPageLimit = 100

// nanos is t as stored, NULL for the zero time; like eventTime it refuses
// a time that does not fit in int64 nanoseconds instead of wrapping.
func nanos(t time.Time, what string) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return nil, kiln.Errorf(kiln.EInvalid, "%s: time %s is outside the years 1678-2261", what, t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// jsonText is raw JSON as stored: NULL when empty, refused when invalid
// (SQLite would store anything, PostgreSQL would not; both refuse alike).
func jsonText(raw json.RawMessage, what string) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, kiln.Errorf(kiln.EInvalid, "%s is not valid JSON", what)
	}
	return string(raw), nil
}

func jsonGet(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

// SaveDefinitions stores new definition versions in one transaction.
func (db *DB) SaveDefinitions(ctx context.Context, defs []kiln.Definition) error {
	if len(defs) == 0 {
		return nil
	}
	if err := db.write(ctx, func(tx *sql.Tx) error { return saveDefinitions(ctx, tx, defs) }); err != nil {
		return fmt.Errorf("sqlite: save definitions: %w", err)
	}
	return nil
}

func saveDefinitions(ctx context.Context, tx *sql.Tx, defs []kiln.Definition) error {
	if len(defs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, insertDefinition)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, d := range defs {
		what := fmt.Sprintf("definition %q version %d", d.Name, d.Version)
		if d.Name == "" {
			return kiln.Errorf(kiln.EInvalid, "definition without a name (kind %q, version %d)", d.Kind, d.Version)
		}
		body, err := jsonText(d.Body, what+": body")
		if err != nil {
			return err
		}
		applied, err := nanos(d.AppliedAt, what+": appliedAt")
		if err != nil {
			return err
		}
		var deleted any
		if d.DeletedAt != nil {
			if deleted, err = nanos(*d.DeletedAt, what+": deletedAt"); err != nil {
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx, d.Name, d.Kind, d.Version, d.Text, body, applied, deleted); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%s: %w", what, store.ErrConflict)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

func scanDefinition(sc interface{ Scan(...any) error }) (kiln.Definition, error) {
	var (
		d                kiln.Definition
		body             sql.NullString
		applied, deleted sql.NullInt64
	)
	err := sc.Scan(&d.Name, &d.Kind, &d.Version, &d.Text, &body, &applied, &deleted)
	d.Body, d.AppliedAt, d.DeletedAt = jsonGet(body), tget(applied), tgetp(deleted)
	return d, err
}

func (db *DB) definitions(ctx context.Context, query string, args ...any) ([]kiln.Definition, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Definition
	for rows.Next() {
		d, err := scanDefinition(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Definitions returns the latest version of every definition that is not
// deleted, by name.
func (db *DB) Definitions(ctx context.Context) ([]kiln.Definition, error) {
	out, err := db.definitions(ctx, latestDefinitions)
	if err != nil {
		return nil, fmt.Errorf("sqlite: definitions: %w", err)
	}
	return out, nil
}

// DefinitionVersions returns every version of one definition, newest first.
func (db *DB) DefinitionVersions(ctx context.Context, name string) ([]kiln.Definition, error) {
	out, err := db.definitions(ctx, definitionVersions, name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: definition %q: versions: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sqlite: definition %q: %w", name, store.ErrNotFound)
	}
	return out, nil
}

func scanMembership(sc interface{ Scan(...any) error }) (kiln.Membership, error) {
	var (
		m     kiln.Membership
		since sql.NullInt64
	)
	err := sc.Scan(&m.Segment, &m.ProfileID, &since, &m.Version)
	m.Since = tget(since)
	return m, err
}

func (db *DB) memberships(ctx context.Context, query string, args ...any) ([]kiln.Membership, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Membership
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Members returns a page of a segment's current members, by profile id.
func (db *DB) Members(ctx context.Context, segment, after string, limit int) ([]kiln.Membership, error) {
	if limit <= 0 {
		limit = defaultPageLimit
	}
	out, err := db.memberships(ctx, members, segment, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: members of segment %q: %w", segment, err)
	}
	return out, nil
}

// CountMembers returns a segment's current size.
func (db *DB) CountMembers(ctx context.Context, segment string) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, countMembers, segment).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count members of segment %q: %w", segment, err)
	}
	return n, nil
}

// MembershipsOf returns the segments a profile is in now, by segment.
func (db *DB) MembershipsOf(ctx context.Context, profileID string) ([]kiln.Membership, error) {
	out, err := db.memberships(ctx, membershipsOf, profileID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: memberships of profile %s: %w", profileID, err)
	}
	return out, nil
}

// ScanMemberships calls fn for every current membership, in no particular
// order. An error from fn stops the scan and is returned.
func (db *DB) ScanMemberships(ctx context.Context, fn func(kiln.Membership) error) error {
	rows, err := db.r.QueryContext(ctx, allMemberships)
	if err != nil {
		return fmt.Errorf("sqlite: scan memberships: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return fmt.Errorf("sqlite: scan memberships: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: scan memberships: %w", err)
	}
	return nil
}

// applyTransitions appends ts to the transition log, numbering them (the
// IDs are set in ts), and applies them to the current memberships: for
// each (segment, profile) the last transition in ts decides, an entry
// inserting or replacing the membership, an exit deleting it.
func applyTransitions(ctx context.Context, tx *sql.Tx, ts []kiln.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	// Validate everything before numbering, so that a refused batch
	// leaves no IDs behind in ts.
	type encoded struct{ at, evidence any }
	enc := make([]encoded, len(ts))
	for i := range ts {
		tr := &ts[i]
		if tr.Segment == "" || tr.ProfileID == "" {
			return kiln.Errorf(kiln.EInvalid, "transition %d of %d needs a segment and a profile id, got %q and %q",
				i+1, len(ts), tr.Segment, tr.ProfileID)
		}
		// Messages are made only on failure: a burst is 100,000 of these.
		if !tr.At.IsZero() {
			if y := tr.At.Year(); y < 1678 || y > 2261 {
				return kiln.Errorf(kiln.EInvalid, "transition of profile %s in segment %q: time %s is outside the years 1678-2261",
					tr.ProfileID, tr.Segment, tr.At.Format(time.RFC3339))
			}
			enc[i].at = tr.At.UnixNano()
		}
		if len(tr.Evidence) > 0 {
			if !json.Valid(tr.Evidence) {
				return kiln.Errorf(kiln.EInvalid, "transition of profile %s in segment %q: evidence is not valid JSON", tr.ProfileID, tr.Segment)
			}
			enc[i].evidence = string(tr.Evidence)
		}
	}
	// This is the only writer, so it can number the transitions itself.
	var last int64
	if err := tx.QueryRowContext(ctx, transitionLastID).Scan(&last); err != nil {
		return fmt.Errorf("transitions: last id: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, insertTransition)
	if err != nil {
		return fmt.Errorf("transitions: %w", err)
	}
	defer ins.Close()
	up, err := tx.PrepareContext(ctx, upsertMembership)
	if err != nil {
		return fmt.Errorf("transitions: %w", err)
	}
	defer up.Close()
	del, err := tx.PrepareContext(ctx, deleteMembership)
	if err != nil {
		return fmt.Errorf("transitions: %w", err)
	}
	defer del.Close()
	for i := range ts {
		tr := &ts[i]
		id := last + int64(i) + 1
		if _, err := ins.ExecContext(ctx, id, tr.Segment, tr.ProfileID, tr.Entered, enc[i].at, tr.Version,
			tr.Reason, tr.EventSeq, enc[i].evidence, tr.Act); err != nil {
			return fmt.Errorf("transition of profile %s in segment %q: %w", tr.ProfileID, tr.Segment, err)
		}
	}
	for _, i := range lastPerKey(ts) {
		tr := &ts[i]
		if tr.Entered {
			_, err = up.ExecContext(ctx, tr.Segment, tr.ProfileID, enc[i].at, tr.Version)
		} else {
			_, err = del.ExecContext(ctx, tr.Segment, tr.ProfileID)
		}
		if err != nil {
			return fmt.Errorf("membership of profile %s in segment %q: %w", tr.ProfileID, tr.Segment, err)
		}
	}
	last += int64(len(ts))
	if _, err := tx.ExecContext(ctx, setTransitionLastID, last); err != nil {
		return fmt.Errorf("transitions: last id: %w", err)
	}
	for i := range ts {
		ts[i].ID = last - int64(len(ts)) + int64(i) + 1
	}
	return nil
}

// lastPerKey returns the index of the last transition of each (segment,
// profile) in ts, in key order: the memberships follow that one, and
// writing them in key order walks the memberships index front to back
// once instead of jumping about it (a burst of 100,000 costs less).
func lastPerKey(ts []kiln.Transition) []int {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	cmpKey := func(a, b int) int {
		if c := strings.Compare(ts[a].Segment, ts[b].Segment); c != 0 {
			return c
		}
		return strings.Compare(ts[a].ProfileID, ts[b].ProfileID)
	}
	// Ties by position keep the transitions of one key in slice order,
	// the last last (faster than a stable sort).
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmpKey(a, b); c != 0 {
			return c
		}
		return a - b
	})
	out := idx[:0]
	for k, i := range idx {
		if k+1 < len(idx) && cmpKey(i, idx[k+1]) == 0 {
			continue
		}
		out = append(out, i)
	}
	return out
}

// deleteSegmentDataOf removes a profile's memberships, transitions and
// static segment listings; DeleteProfile calls it inside its transaction.
func deleteSegmentDataOf(ctx context.Context, tx *sql.Tx, profileID string) error {
	for _, q := range []string{deleteMembershipsOf, deleteTransitionsOf, deleteStaticMembersOf} {
		if _, err := tx.ExecContext(ctx, q, profileID); err != nil {
			return fmt.Errorf("segment data of profile %s: %w", profileID, err)
		}
	}
	return nil
}

// applySegments is ApplyResolution's segment step, after the consent and
// before the checkpoint: the profiles merges folded away lose their
// memberships (the engine records their exits among the transitions; no
// membership is read between the merges and this step, so deleting them
// here is the same as at each merge), then the transitions are applied.
func applySegments(ctx context.Context, tx *sql.Tx, merges []kiln.Merge, ts []kiln.Transition) error {
	for _, m := range merges {
		if _, err := tx.ExecContext(ctx, deleteMembershipsOf, m.From); err != nil {
			return fmt.Errorf("merge %s into %s: memberships: %w", m.From, m.Into, err)
		}
	}
	return applyTransitions(ctx, tx, ts)
}

// Transitions returns transitions with ID > q.After, oldest first.
func (db *DB) Transitions(ctx context.Context, q store.TransitionQuery) ([]kiln.Transition, error) {
	if q.Limit <= 0 {
		q.Limit = defaultPageLimit
	}
	var args []any
	if q.Segment != "" {
		args = append(args, q.Segment)
	}
	if q.ProfileID != "" {
		args = append(args, q.ProfileID)
	}
	args = append(args, q.After, q.Limit)
	query := transitionQueries[b2i(q.Segment != "")][b2i(q.ProfileID != "")]
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: transitions: %w", err)
	}
	defer rows.Close()
	var out []kiln.Transition
	for rows.Next() {
		var (
			tr       kiln.Transition
			at       sql.NullInt64
			evidence sql.NullString
		)
		if err := rows.Scan(&tr.ID, &tr.Segment, &tr.ProfileID, &tr.Entered, &at, &tr.Version,
			&tr.Reason, &tr.EventSeq, &evidence, &tr.Act); err != nil {
			return nil, fmt.Errorf("sqlite: transitions: %w", err)
		}
		tr.At, tr.Evidence = tget(at), jsonGet(evidence)
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: transitions: %w", err)
	}
	return out, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SaveSegmentSizes appends size samples; a sample at the same instant as
// a stored one of its segment replaces it.
func (db *DB) SaveSegmentSizes(ctx context.Context, sizes []kiln.SegmentSize) error {
	if len(sizes) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, upsertSegmentSize)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range sizes {
			if s.Segment == "" || s.At.IsZero() {
				return kiln.Errorf(kiln.EInvalid, "segment size needs a segment and a time, got %q and %s",
					s.Segment, s.At.Format(time.RFC3339))
			}
			at, err := nanos(s.At, fmt.Sprintf("size of segment %q", s.Segment))
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, s.Segment, at, s.Size); err != nil {
				return fmt.Errorf("size of segment %q: %w", s.Segment, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: save segment sizes: %w", err)
	}
	return nil
}

// SegmentSizes returns a segment's samples at or after since, oldest first.
func (db *DB) SegmentSizes(ctx context.Context, segment string, since time.Time) ([]kiln.SegmentSize, error) {
	from := int64(math.MinInt64)
	if y := since.Year(); y >= 1678 && y <= 2261 {
		from = since.UnixNano()
	} else if y > 2261 {
		return nil, nil
	}
	rows, err := db.r.QueryContext(ctx, segmentSizes, segment, from)
	if err != nil {
		return nil, fmt.Errorf("sqlite: sizes of segment %q: %w", segment, err)
	}
	defer rows.Close()
	var out []kiln.SegmentSize
	for rows.Next() {
		var (
			s  kiln.SegmentSize
			at sql.NullInt64
		)
		if err := rows.Scan(&s.Segment, &at, &s.Size); err != nil {
			return nil, fmt.Errorf("sqlite: sizes of segment %q: %w", segment, err)
		}
		s.At = tget(at)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: sizes of segment %q: %w", segment, err)
	}
	return out, nil
}

// SetStaticMembers adds and removes profiles on a static segment's list,
// in one transaction; a profile both added and removed ends up removed.
func (db *DB) SetStaticMembers(ctx context.Context, segment string, add, remove []string) error {
	if segment == "" {
		return fmt.Errorf("sqlite: set static members: %w", kiln.Errorf(kiln.EInvalid, "no segment name"))
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, op := range []struct {
			query string
			ids   []string
		}{{addStaticMember, add}, {removeStaticMember, remove}} {
			if len(op.ids) == 0 {
				continue
			}
			stmt, err := tx.PrepareContext(ctx, op.query)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, id := range op.ids {
				if id == "" {
					return kiln.Errorf(kiln.EInvalid, "empty profile id")
				}
				if _, err := stmt.ExecContext(ctx, segment, id); err != nil {
					return fmt.Errorf("profile %s: %w", id, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set static members of segment %q: %w", segment, err)
	}
	return nil
}

// StaticMembers returns a static segment's list, by profile id.
func (db *DB) StaticMembers(ctx context.Context, segment string) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, staticMembers, segment)
	if err != nil {
		return nil, fmt.Errorf("sqlite: static members of segment %q: %w", segment, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: static members of segment %q: %w", segment, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: static members of segment %q: %w", segment, err)
	}
	return out, nil
}

// ScanStaticMembers calls fn for every (segment, profile) listed, in no
// particular order. An error from fn stops the scan and is returned.
func (db *DB) ScanStaticMembers(ctx context.Context, fn func(segment, profileID string) error) error {
	rows, err := db.r.QueryContext(ctx, allStaticMembers)
	if err != nil {
		return fmt.Errorf("sqlite: scan static members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seg, id string
		if err := rows.Scan(&seg, &id); err != nil {
			return fmt.Errorf("sqlite: scan static members: %w", err)
		}
		if err := fn(seg, id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: scan static members: %w", err)
	}
	return nil
}
