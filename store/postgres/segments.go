package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

var _ store.Segments = (*DB)(nil)

const (
	definitionColumns = `name, kind, version, text, body, applied_at, deleted_at`

	insertDefinitions = `
INSERT INTO definitions (` + definitionColumns + `)
SELECT name, kind, version, text, body::json, applied_at, deleted_at
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
     AS d(name, kind, version, text, body, applied_at, deleted_at)`

	// The latest version of each name, unless that version is a deletion.
	latestDefinitions = `
SELECT ` + definitionColumns + ` FROM (
    SELECT DISTINCT ON (name) ` + definitionColumns + ` FROM definitions ORDER BY name, version DESC
) d
WHERE deleted_at IS NULL
ORDER BY name`

	definitionVersions = `SELECT ` + definitionColumns + ` FROM definitions WHERE name = $1 ORDER BY version DESC`

	membershipColumns = `segment, profile_id, since, version`

	members = `
SELECT ` + membershipColumns + ` FROM memberships
WHERE segment = $1 AND profile_id > $2
ORDER BY profile_id
LIMIT $3`

	countMembers = `SELECT count(*) FROM memberships WHERE segment = $1`

	membershipsOf = `SELECT ` + membershipColumns + ` FROM memberships WHERE profile_id = $1 ORDER BY segment`

	allMemberships = `SELECT ` + membershipColumns + ` FROM memberships`

	upsertMemberships = `
INSERT INTO memberships (segment, profile_id, since, version)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[])
ON CONFLICT (segment, profile_id) DO UPDATE SET since = excluded.since, version = excluded.version`

	deleteMemberships = `
DELETE FROM memberships m
USING unnest($1::text[], $2::text[]) AS d(segment, profile_id)
WHERE m.segment = d.segment AND m.profile_id = d.profile_id`

	deleteMembershipsOf = `DELETE FROM memberships WHERE profile_id = $1`

	deleteMembershipsOfMany = `DELETE FROM memberships WHERE profile_id = ANY($1::text[])`

	takeTransitionLock = `SELECT pg_advisory_xact_lock($1)`

	// Reserves n IDs ($1) at once and returns the last: under the
	// transition lock nobody else draws from the sequence in between.
	reserveTransitionIDs = `SELECT setval('transition_ids', nextval('transition_ids') + $1 - 1)`

	transitionColumns = `id, segment, profile_id, entered, at, version, reason, event_seq, evidence, act`

	insertTransitions = `
INSERT INTO transitions (` + transitionColumns + `)
SELECT id, segment, profile_id, entered, at, version, reason, event_seq, evidence::json, act
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::timestamptz[], $6::bigint[],
            $7::text[], $8::bigint[], $9::text[], $10::boolean[])
     AS t(id, segment, profile_id, entered, at, version, reason, event_seq, evidence, act)`

	deleteTransitionsOf = `DELETE FROM transitions WHERE profile_id = $1`

	// ON CONFLICT cannot touch a row twice in one statement: of several
	// samples at one instant (as stored, in microseconds) the last wins,
	// as it would written one by one.
	upsertSegmentSizes = `
INSERT INTO segment_sizes (segment, at, size)
SELECT DISTINCT ON (segment, at) segment, at, size
FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) WITH ORDINALITY AS s(segment, at, size, ord)
ORDER BY segment, at, ord DESC
ON CONFLICT (segment, at) DO UPDATE SET size = excluded.size`

	segmentSizes = `SELECT segment, at, size FROM segment_sizes WHERE segment = $1 AND at >= $2 ORDER BY at`

	allSegmentSizes = `SELECT segment, at, size FROM segment_sizes WHERE segment = $1 ORDER BY at`

	addStaticMembers = `
INSERT INTO static_members (segment, profile_id)
SELECT $1, p FROM unnest($2::text[]) AS p
ON CONFLICT DO NOTHING`

	removeStaticMembers = `DELETE FROM static_members WHERE segment = $1 AND profile_id = ANY($2::text[])`

	staticMembers = `SELECT profile_id FROM static_members WHERE segment = $1 ORDER BY profile_id`

	allStaticMembers = `SELECT segment, profile_id FROM static_members`

	deleteStaticMembersOf = `DELETE FROM static_members WHERE profile_id = $1`
)

// transitionQueries are Transitions' four shapes (by segment, by profile,
// both, neither), so that each names the columns its index starts with.
var transitionQueries = [2][2]string{
	{
		`SELECT ` + transitionColumns + ` FROM transitions WHERE id > $1 ORDER BY id LIMIT $2`,
		`SELECT ` + transitionColumns + ` FROM transitions WHERE profile_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
	},
	{
		`SELECT ` + transitionColumns + ` FROM transitions WHERE segment = $1 AND id > $2 ORDER BY id LIMIT $3`,
		`SELECT ` + transitionColumns + ` FROM transitions WHERE segment = $1 AND profile_id = $2 AND id > $3 ORDER BY id LIMIT $4`,
	},
}

// transitionLock is the transaction advisory lock that serialises writers
// of transitions, as appendLock does for events.
var transitionLock = lockID("kiln transitions append")

// copyMin is the number of transitions from which they are written with
// COPY rather than one multi-row INSERT: COPY streams faster but costs
// extra round trips.
const copyMin = 512

// defaultPageLimit is how many rows Members and Transitions return when
// asked for 0.
const defaultPageLimit = 100

// jsonText is raw JSON as a text parameter: NULL when empty, refused when
// invalid (as the SQLite backend refuses it; the error names the row).
func jsonText(raw json.RawMessage, what string) (pgtype.Text, error) {
	if len(raw) == 0 {
		return pgtype.Text{}, nil
	}
	if !json.Valid(raw) {
		return pgtype.Text{}, kiln.Errorf(kiln.EInvalid, "%s is not valid JSON", what)
	}
	return pgtype.Text{String: string(raw), Valid: true}, nil
}

func jsonGet(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// SaveDefinitions stores new definition versions in one statement.
func (db *DB) SaveDefinitions(ctx context.Context, defs []kiln.Definition) error {
	if err := saveDefinitions(ctx, db.pool, defs); err != nil {
		return fmt.Errorf("postgres: save definitions: %w", err)
	}
	return nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func saveDefinitions(ctx context.Context, db execer, defs []kiln.Definition) error {
	if len(defs) == 0 {
		return nil
	}
	n := len(defs)
	names, kinds, texts := make([]string, n), make([]string, n), make([]string, n)
	versions := make([]int64, n)
	bodies := make([]pgtype.Text, n)
	applied, deleted := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	seen := make(map[string]bool, n)
	for i, d := range defs {
		what := fmt.Sprintf("definition %q version %d", d.Name, d.Version)
		if d.Name == "" {
			return kiln.Errorf(kiln.EInvalid, "definition without a name (kind %q, version %d)", d.Kind, d.Version)
		}
		// A duplicate within the batch would be a unique violation too;
		// naming it here says which one.
		key := fmt.Sprintf("%s\x00%d", d.Name, d.Version)
		if seen[key] {
			return fmt.Errorf("%s appears twice: %w", what, store.ErrConflict)
		}
		seen[key] = true
		var err error
		if bodies[i], err = jsonText(d.Body, what+": body"); err != nil {
			return err
		}
		names[i], kinds[i], versions[i], texts[i], applied[i] = d.Name, d.Kind, d.Version, d.Text, tval(d.AppliedAt)
		if d.DeletedAt != nil {
			deleted[i] = tval(*d.DeletedAt)
		}
	}
	if _, err := db.Exec(ctx, insertDefinitions, names, kinds, versions, texts, bodies, applied, deleted); err != nil {
		if isUnique(err) {
			return fmt.Errorf("a version is stored already: %w", store.ErrConflict)
		}
		return err
	}
	return nil
}

func (db *DB) definitions(ctx context.Context, query string, args ...any) ([]kiln.Definition, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Definition
	for rows.Next() {
		var (
			d                kiln.Definition
			body             []byte
			applied, deleted pgtype.Timestamptz
		)
		if err := rows.Scan(&d.Name, &d.Kind, &d.Version, &d.Text, &body, &applied, &deleted); err != nil {
			return nil, err
		}
		d.Body, d.AppliedAt, d.DeletedAt = jsonGet(body), tget(applied), tgetp(deleted)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Definitions returns the latest version of every definition that is not
// deleted, by name.
func (db *DB) Definitions(ctx context.Context) ([]kiln.Definition, error) {
	out, err := db.definitions(ctx, latestDefinitions)
	if err != nil {
		return nil, fmt.Errorf("postgres: definitions: %w", err)
	}
	return out, nil
}

// DefinitionVersions returns every version of one definition, newest first.
func (db *DB) DefinitionVersions(ctx context.Context, name string) ([]kiln.Definition, error) {
	out, err := db.definitions(ctx, definitionVersions, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: definition %q: versions: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("postgres: definition %q: %w", name, store.ErrNotFound)
	}
	return out, nil
}

func scanMembership(sc pgx.Row) (kiln.Membership, error) {
	var (
		m     kiln.Membership
		since pgtype.Timestamptz
	)
	err := sc.Scan(&m.Segment, &m.ProfileID, &since, &m.Version)
	m.Since = tget(since)
	return m, err
}

func (db *DB) memberships(ctx context.Context, query string, args ...any) ([]kiln.Membership, error) {
	rows, err := db.pool.Query(ctx, query, args...)
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
		return nil, fmt.Errorf("postgres: members of segment %q: %w", segment, err)
	}
	return out, nil
}

// CountMembers returns a segment's current size.
func (db *DB) CountMembers(ctx context.Context, segment string) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, countMembers, segment).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count members of segment %q: %w", segment, err)
	}
	return n, nil
}

// MembershipsOf returns the segments a profile is in now, by segment.
func (db *DB) MembershipsOf(ctx context.Context, profileID string) ([]kiln.Membership, error) {
	out, err := db.memberships(ctx, membershipsOf, profileID)
	if err != nil {
		return nil, fmt.Errorf("postgres: memberships of profile %s: %w", profileID, err)
	}
	return out, nil
}

// ScanMemberships calls fn for every current membership, in no particular
// order. An error from fn stops the scan and is returned.
func (db *DB) ScanMemberships(ctx context.Context, fn func(kiln.Membership) error) error {
	rows, err := db.pool.Query(ctx, allMemberships)
	if err != nil {
		return fmt.Errorf("postgres: scan memberships: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return fmt.Errorf("postgres: scan memberships: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: scan memberships: %w", err)
	}
	return nil
}

// applyTransitions appends ts to the transition log, numbering them (the
// IDs are set in ts), and applies them to the current memberships: for
// each (segment, profile) the last transition in ts decides, an entry
// inserting or replacing the membership, an exit deleting it. The caller
// holds the transition lock.
func applyTransitions(ctx context.Context, tx pgx.Tx, ts []kiln.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	n := len(ts)
	evidence := make([]pgtype.Text, n)
	for i := range ts {
		tr := &ts[i]
		if tr.Segment == "" || tr.ProfileID == "" {
			return kiln.Errorf(kiln.EInvalid, "transition %d of %d needs a segment and a profile id, got %q and %q",
				i+1, n, tr.Segment, tr.ProfileID)
		}
		// The message is made only on failure: a burst is 100,000 of these.
		if len(tr.Evidence) > 0 {
			if !json.Valid(tr.Evidence) {
				return kiln.Errorf(kiln.EInvalid, "transition of profile %s in segment %q: evidence is not valid JSON", tr.ProfileID, tr.Segment)
			}
			evidence[i] = pgtype.Text{String: string(tr.Evidence), Valid: true}
		}
	}
	var lastID int64
	if err := tx.QueryRow(ctx, reserveTransitionIDs, n).Scan(&lastID); err != nil {
		return fmt.Errorf("transitions: reserve ids: %w", err)
	}
	first := lastID - int64(n) + 1
	if n >= copyMin {
		src := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			tr := &ts[i]
			var ev any
			if evidence[i].Valid {
				ev = evidence[i].String
			}
			return []any{first + int64(i), tr.Segment, tr.ProfileID, tr.Entered, tval(tr.At), tr.Version,
				tr.Reason, tr.EventSeq, ev, tr.Act}, nil
		})
		cols := []string{"id", "segment", "profile_id", "entered", "at", "version", "reason", "event_seq", "evidence", "act"}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"transitions"}, cols, src); err != nil {
			return fmt.Errorf("transitions: copy: %w", err)
		}
	} else {
		ids, versions, seqs := make([]int64, n), make([]int64, n), make([]int64, n)
		segments, profiles, reasons := make([]string, n), make([]string, n), make([]string, n)
		entered, act := make([]bool, n), make([]bool, n)
		at := make([]pgtype.Timestamptz, n)
		for i, tr := range ts {
			ids[i], segments[i], profiles[i], entered[i], at[i] = first+int64(i), tr.Segment, tr.ProfileID, tr.Entered, tval(tr.At)
			versions[i], reasons[i], seqs[i], act[i] = tr.Version, tr.Reason, tr.EventSeq, tr.Act
		}
		if _, err := tx.Exec(ctx, insertTransitions, ids, segments, profiles, entered, at, versions,
			reasons, seqs, evidence, act); err != nil {
			return fmt.Errorf("transitions: %w", err)
		}
	}
	// One statement for the entries and one for the exits, each with at
	// most one row per (segment, profile), the last transition of each
	// (ON CONFLICT cannot touch a row twice), in key order.
	var inSeg, inProf, outSeg, outProf []string
	var inSince []pgtype.Timestamptz
	var inVersion []int64
	for _, i := range lastPerKey(ts) {
		tr := &ts[i]
		if tr.Entered {
			inSeg, inProf = append(inSeg, tr.Segment), append(inProf, tr.ProfileID)
			inSince, inVersion = append(inSince, tval(tr.At)), append(inVersion, tr.Version)
		} else {
			outSeg, outProf = append(outSeg, tr.Segment), append(outProf, tr.ProfileID)
		}
	}
	if len(inSeg) > 0 {
		if _, err := tx.Exec(ctx, upsertMemberships, inSeg, inProf, inSince, inVersion); err != nil {
			return fmt.Errorf("memberships: %w", err)
		}
	}
	if len(outSeg) > 0 {
		if _, err := tx.Exec(ctx, deleteMemberships, outSeg, outProf); err != nil {
			return fmt.Errorf("memberships: %w", err)
		}
	}
	for i := range ts {
		ts[i].ID = first + int64(i)
	}
	return nil
}

// lastPerKey returns the index of the last transition of each (segment,
// profile) in ts, in key order.
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
func deleteSegmentDataOf(ctx context.Context, tx pgx.Tx, profileID string) error {
	for _, q := range []string{deleteMembershipsOf, deleteTransitionsOf, deleteStaticMembersOf} {
		if _, err := tx.Exec(ctx, q, profileID); err != nil {
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
//
// It first takes the transition lock, so that every writer of memberships
// in ApplyResolution takes its locks in one order: profile rows (merges,
// profile changes), the transition lock, membership rows. Deleting the
// memberships during the merges, before the lock, could deadlock with a
// concurrent resolution holding the lock and writing the same rows.
func applySegments(ctx context.Context, tx pgx.Tx, merges []kiln.Merge, ts []kiln.Transition) error {
	if len(merges) == 0 && len(ts) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, takeTransitionLock, transitionLock); err != nil {
		return fmt.Errorf("transitions: lock: %w", err)
	}
	if len(merges) > 0 {
		from := make([]string, len(merges))
		for i, m := range merges {
			from[i] = m.From
		}
		if _, err := tx.Exec(ctx, deleteMembershipsOfMany, from); err != nil {
			return fmt.Errorf("merges: memberships of the merged profiles: %w", err)
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
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: transitions: %w", err)
	}
	defer rows.Close()
	var out []kiln.Transition
	for rows.Next() {
		var (
			tr       kiln.Transition
			at       pgtype.Timestamptz
			evidence []byte
		)
		if err := rows.Scan(&tr.ID, &tr.Segment, &tr.ProfileID, &tr.Entered, &at, &tr.Version,
			&tr.Reason, &tr.EventSeq, &evidence, &tr.Act); err != nil {
			return nil, fmt.Errorf("postgres: transitions: %w", err)
		}
		tr.At, tr.Evidence = tget(at), jsonGet(evidence)
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: transitions: %w", err)
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
	n := len(sizes)
	segs, ats, ns := make([]string, n), make([]pgtype.Timestamptz, n), make([]int64, n)
	for i, s := range sizes {
		if s.Segment == "" || s.At.IsZero() {
			return fmt.Errorf("postgres: save segment sizes: %w", kiln.Errorf(kiln.EInvalid,
				"segment size needs a segment and a time, got %q and %s", s.Segment, s.At.Format(time.RFC3339)))
		}
		segs[i], ats[i], ns[i] = s.Segment, tval(s.At), s.Size
	}
	if _, err := db.pool.Exec(ctx, upsertSegmentSizes, segs, ats, ns); err != nil {
		return fmt.Errorf("postgres: save segment sizes: %w", err)
	}
	return nil
}

// SegmentSizes returns a segment's samples at or after since, oldest first.
func (db *DB) SegmentSizes(ctx context.Context, segment string, since time.Time) ([]kiln.SegmentSize, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if since.IsZero() {
		rows, err = db.pool.Query(ctx, allSegmentSizes, segment)
	} else {
		rows, err = db.pool.Query(ctx, segmentSizes, segment, tval(since))
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: sizes of segment %q: %w", segment, err)
	}
	defer rows.Close()
	var out []kiln.SegmentSize
	for rows.Next() {
		var (
			s  kiln.SegmentSize
			at pgtype.Timestamptz
		)
		if err := rows.Scan(&s.Segment, &at, &s.Size); err != nil {
			return nil, fmt.Errorf("postgres: sizes of segment %q: %w", segment, err)
		}
		s.At = tget(at)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: sizes of segment %q: %w", segment, err)
	}
	return out, nil
}

// SetStaticMembers adds and removes profiles on a static segment's list,
// in one transaction; a profile both added and removed ends up removed.
func (db *DB) SetStaticMembers(ctx context.Context, segment string, add, remove []string) error {
	if segment == "" {
		return fmt.Errorf("postgres: set static members: %w", kiln.Errorf(kiln.EInvalid, "no segment name"))
	}
	for _, id := range slices.Concat(add, remove) {
		if id == "" {
			return fmt.Errorf("postgres: set static members of segment %q: %w", segment, kiln.Errorf(kiln.EInvalid, "empty profile id"))
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx pgx.Tx) error {
		if len(add) > 0 {
			if _, err := tx.Exec(ctx, addStaticMembers, segment, add); err != nil {
				return err
			}
		}
		if len(remove) > 0 {
			if _, err := tx.Exec(ctx, removeStaticMembers, segment, remove); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: set static members of segment %q: %w", segment, err)
	}
	return nil
}

// StaticMembers returns a static segment's list, by profile id.
func (db *DB) StaticMembers(ctx context.Context, segment string) ([]string, error) {
	rows, err := db.pool.Query(ctx, staticMembers, segment)
	if err != nil {
		return nil, fmt.Errorf("postgres: static members of segment %q: %w", segment, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: static members of segment %q: %w", segment, err)
	}
	return out, nil
}

// ScanStaticMembers calls fn for every (segment, profile) listed, in no
// particular order. An error from fn stops the scan and is returned.
func (db *DB) ScanStaticMembers(ctx context.Context, fn func(segment, profileID string) error) error {
	rows, err := db.pool.Query(ctx, allStaticMembers)
	if err != nil {
		return fmt.Errorf("postgres: scan static members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seg, id string
		if err := rows.Scan(&seg, &id); err != nil {
			return fmt.Errorf("postgres: scan static members: %w", err)
		}
		if err := fn(seg, id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: scan static members: %w", err)
	}
	return nil
}
