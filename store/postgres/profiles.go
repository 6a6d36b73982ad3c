package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

const (
	profileColumns = `id, created_at, updated_at, first_seen, last_seen, event_count, traits`

	getProfileRow = `SELECT ` + profileColumns + ` FROM profiles WHERE id = $1`

	lockProfileRow = getProfileRow + ` FOR UPDATE`

	lockProfileRows = `SELECT ` + profileColumns + ` FROM profiles WHERE id = ANY($1::text[]) FOR UPDATE`

	putProfileRows = `
INSERT INTO profiles (id, created_at, updated_at, first_seen, last_seen, event_count, traits)
SELECT id, created_at, updated_at, first_seen, last_seen, event_count, traits::json
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
            $6::bigint[], $7::text[])
     AS t(id, created_at, updated_at, first_seen, last_seen, event_count, traits)
ON CONFLICT (id) DO UPDATE SET
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    event_count = excluded.event_count, traits = excluded.traits`

	deleteProfileRow = `DELETE FROM profiles WHERE id = $1`

	renameProfile = `UPDATE profiles SET id = $1, updated_at = greatest(updated_at, $2) WHERE id = $3`

	renameConsent = `UPDATE consent SET profile_id = $1 WHERE profile_id = $2`

	countProfiles = `SELECT count(*) FROM profiles`

	// Search matches an exact profile id or a lower-cased identifier value
	// in [$3, $4), the range of values starting with the prefix.
	listProfiles = `
SELECT ` + profileColumns + ` FROM profiles
WHERE id > $1
  AND ($2 = '' OR id = $2 OR id IN (
        SELECT profile_id FROM identities WHERE lower(value) >= $3 AND lower(value) < $4))
ORDER BY id
LIMIT $5`

	identityColumns = `kind, value, profile_id, source_id, first_seen`

	identitiesOf = `SELECT ` + identityColumns + ` FROM identities WHERE profile_id = $1 ORDER BY kind, value`

	identitiesOfMany = `
SELECT ` + identityColumns + ` FROM identities
WHERE profile_id = ANY($1::text[])
ORDER BY profile_id, kind, value`

	allIdentities = `SELECT ` + identityColumns + ` FROM identities`

	profileFor = `SELECT profile_id FROM identities WHERE kind = $1 AND value = $2`

	// Moving an identity keeps where and when it was first seen.
	upsertIdentities = `
INSERT INTO identities (kind, value, profile_id, source_id, first_seen)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (kind, value) DO UPDATE SET
    profile_id = excluded.profile_id,
    source_id  = CASE WHEN identities.source_id = '' THEN excluded.source_id ELSE identities.source_id END,
    first_seen = CASE WHEN identities.first_seen IS NULL
                        OR (excluded.first_seen IS NOT NULL AND excluded.first_seen < identities.first_seen)
                      THEN excluded.first_seen ELSE identities.first_seen END`

	moveIdentities = `
UPDATE identities SET profile_id = $1
FROM unnest($2::text[], $3::text[]) AS m(kind, value)
WHERE identities.kind = m.kind AND identities.value = m.value`

	moveAllIdentities = `UPDATE identities SET profile_id = $1 WHERE profile_id = $2`

	deleteIdentitiesOf = `DELETE FROM identities WHERE profile_id = $1`

	consentOf = `SELECT channel, granted, source, at FROM consent WHERE profile_id = $1 ORDER BY channel`

	// Newest wins; on a tie the later write wins. A consent without a time
	// never replaces one with a time.
	upsertConsent = `
INSERT INTO consent (profile_id, channel, granted, source, at)
SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::timestamptz[])
ON CONFLICT (profile_id, channel) DO UPDATE SET
    granted = excluded.granted, source = excluded.source, at = excluded.at
WHERE consent.at IS NULL OR excluded.at >= consent.at`

	deleteConsentOf = `DELETE FROM consent WHERE profile_id = $1`

	insertMerge = `
INSERT INTO merges (into_id, from_id, identities, event_seq, rule, at, snapshot)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

	mergeColumns = `id, into_id, from_id, identities, event_seq, rule, at, undone_at`

	mergesOf = `SELECT ` + mergeColumns + ` FROM merges WHERE into_id = $1 OR from_id = $1 ORDER BY at DESC NULLS LAST, id DESC`

	mergesAfter = `SELECT ` + mergeColumns + ` FROM merges WHERE id > $1 ORDER BY id`

	getMerge = `SELECT ` + mergeColumns + `, snapshot FROM merges WHERE id = $1`

	lockMerge = getMerge + ` FOR UPDATE`

	markMergeUndone = `UPDATE merges SET undone_at = $1 WHERE id = $2`

	deleteMergesOf = `DELETE FROM merges WHERE into_id = $1 OR from_id = $1`

	deleteEventsByAnchor = `DELETE FROM events WHERE anchor = ANY($1::text[])`

	insertSuppressions = `
INSERT INTO suppressions (kind, value, reason, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (kind, value) DO NOTHING`

	suppressedOf = `
SELECT s.kind, s.value FROM suppressions s
JOIN unnest($1::text[], $2::text[]) AS q(kind, value) ON s.kind = q.kind AND s.value = q.value`

	listSuppressions = `SELECT kind, value, reason, created_at FROM suppressions ORDER BY created_at NULLS FIRST, kind, value`
)

var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// ApplyResolution writes r atomically, in the order documented on
// store.Resolution.
func (db *DB) ApplyResolution(ctx context.Context, r store.Resolution) error {
	err := db.write(ctx, func(tx pgx.Tx) error {
		if r.Derived {
			// Derived from the log, derived again after a crash (see
			// store.Resolution): the commit need not wait for the WAL
			// flush. PostgreSQL keeps the order, so an acknowledged
			// append that commits later flushes this too.
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
		}
		for _, m := range r.Merges {
			if err := applyMerge(ctx, tx, m); err != nil {
				return fmt.Errorf("merge %s into %s: %w", m.From, m.Into, err)
			}
		}
		if err := applyProfileChanges(ctx, tx, r.Profiles); err != nil {
			return err
		}
		if err := putIdentities(ctx, tx, r.Identities); err != nil {
			return err
		}
		if err := putConsent(ctx, tx, r.Consent); err != nil {
			return err
		}
		if err := applySegments(ctx, tx, r.Merges, r.Transitions); err != nil {
			return err
		}
		if err := applyActions(ctx, tx, r.Transitions, r.Actions); err != nil {
			return err
		}
		if r.Checkpoint.Name != "" {
			if _, err := tx.Exec(ctx, setCheckpoint, r.Checkpoint.Name, r.Checkpoint.Seq); err != nil {
				return fmt.Errorf("checkpoint %q: %w", r.Checkpoint.Name, err)
			}
		}
		return applyState(ctx, tx, &r)
	})
	if err != nil {
		return fmt.Errorf("postgres: apply resolution: %w", err)
	}
	return nil
}

// snapshot is From as it was when it was merged away, for UndoMerge.
type snapshot struct {
	Profile kiln.Profile   `json:"profile"`
	Consent []kiln.Consent `json:"consent,omitempty"`
}

func applyMerge(ctx context.Context, tx pgx.Tx, m kiln.Merge) error {
	if m.Into == "" || m.From == "" || m.Into == m.From {
		return kiln.Errorf(kiln.EInvalid, "merge needs two different profile ids, got into %q from %q", m.Into, m.From)
	}
	from, err := getProfile(ctx, tx, lockProfileRow, m.From)
	fromExists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	snap := snapshot{Profile: kiln.Profile{ID: m.From}}
	if fromExists {
		snap.Profile = *from
		if snap.Consent, err = getConsent(ctx, tx, m.From); err != nil {
			return err
		}
	}
	into, err := getProfile(ctx, tx, lockProfileRow, m.Into)
	intoExists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	switch {
	case fromExists && intoExists:
		store.FoldProfile(into, from, m.At)
		if err := putProfiles(ctx, tx, []*kiln.Profile{into}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, deleteProfileRow, m.From); err != nil {
			return err
		}
		changes := make([]store.ConsentChange, len(snap.Consent))
		for i, c := range snap.Consent {
			changes[i] = store.ConsentChange{ProfileID: m.Into, Consent: c}
		}
		if err := putConsent(ctx, tx, changes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, deleteConsentOf, m.From); err != nil {
			return err
		}
	case fromExists:
		if _, err := tx.Exec(ctx, renameProfile, m.Into, tval(m.At), m.From); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, renameConsent, m.Into, m.From); err != nil {
			return err
		}
	}
	moved, err := getIdentities(ctx, tx, identitiesOf, m.From)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, moveAllIdentities, m.Into, m.From); err != nil {
		return err
	}
	ids := m.Identities
	if len(ids) == 0 {
		ids = make([]kiln.Identifier, len(moved))
		for i, id := range moved {
			ids[i] = id.Identifier
		}
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	snapJSON, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insertMerge, m.Into, m.From, string(idsJSON), m.EventSeq, m.Rule, tval(m.At), string(snapJSON))
	return err
}

// applyProfileChanges reads every profile the changes touch in one query,
// applies the changes in order and writes the results in one statement.
func applyProfileChanges(ctx context.Context, tx pgx.Tx, changes []store.ProfileChange) error {
	if len(changes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(changes))
	for _, pc := range changes {
		if pc.ID == "" {
			return kiln.Errorf(kiln.EInvalid, "profile change without a profile id")
		}
		ids = append(ids, pc.ID)
	}
	rows, err := tx.Query(ctx, lockProfileRows, ids)
	if err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	byID := map[string]*kiln.Profile{}
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("profiles: %w", err)
		}
		byID[p.ID] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	var touched []*kiln.Profile
	seen := map[string]bool{}
	for _, pc := range changes {
		p := byID[pc.ID]
		if p == nil {
			p = &kiln.Profile{ID: pc.ID, CreatedAt: pc.At}
			byID[pc.ID] = p
		}
		pc.Change(p)
		if !seen[pc.ID] {
			seen[pc.ID] = true
			touched = append(touched, p)
		}
	}
	if err := putProfiles(ctx, tx, touched); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	return nil
}

func scanProfile(sc pgx.Row) (*kiln.Profile, error) {
	var (
		p                                     kiln.Profile
		created, updated, firstSeen, lastSeen pgtype.Timestamptz
		traits                                []byte
	)
	if err := sc.Scan(&p.ID, &created, &updated, &firstSeen, &lastSeen, &p.EventCount, &traits); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = tget(created), tget(updated)
	p.FirstSeen, p.LastSeen = tget(firstSeen), tget(lastSeen)
	if len(traits) > 0 {
		if err := json.Unmarshal(traits, &p.Traits); err != nil {
			return nil, fmt.Errorf("profile %s: traits: %w", p.ID, err)
		}
	}
	return &p, nil
}

// getProfile reads a profile row (no identities or consent).
// query is getProfileRow or lockProfileRow.
func getProfile(ctx context.Context, q querier, query, id string) (*kiln.Profile, error) {
	p, err := scanProfile(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("profile %s: %w", id, store.ErrNotFound)
	}
	return p, err
}

// putProfiles upserts whole profile rows.
func putProfiles(ctx context.Context, q querier, ps []*kiln.Profile) error {
	n := len(ps)
	ids := make([]string, n)
	created, updated, first, last := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	counts := make([]int64, n)
	traits := make([]pgtype.Text, n)
	for i, p := range ps {
		ids[i], counts[i] = p.ID, p.EventCount
		created[i], updated[i], first[i], last[i] = tval(p.CreatedAt), tval(p.UpdatedAt), tval(p.FirstSeen), tval(p.LastSeen)
		if len(p.Traits) > 0 {
			b, err := json.Marshal(p.Traits)
			if err != nil {
				return fmt.Errorf("profile %s: traits: %w", p.ID, err)
			}
			traits[i] = pgtype.Text{String: string(b), Valid: true}
		}
	}
	_, err := q.Exec(ctx, putProfileRows, ids, created, updated, first, last, counts, traits)
	return err
}

// putIdentities upserts identities; of several for one identifier the
// last one's profile wins.
func putIdentities(ctx context.Context, q querier, ids []kiln.Identity) error {
	if len(ids) == 0 {
		return nil
	}
	idx := map[kiln.Identifier]int{}
	var merged []kiln.Identity
	for _, id := range ids {
		if id.ProfileID == "" {
			return kiln.Errorf(kiln.EInvalid, "identity %s has no profile id", id.Identifier)
		}
		i, ok := idx[id.Identifier]
		if !ok {
			idx[id.Identifier] = len(merged)
			merged = append(merged, id)
			continue
		}
		m := &merged[i]
		m.ProfileID = id.ProfileID
		if m.SourceID == "" {
			m.SourceID = id.SourceID
		}
		m.FirstSeen = store.MinTime(m.FirstSeen, id.FirstSeen)
	}
	n := len(merged)
	kinds, values, profiles, sources := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	first := make([]pgtype.Timestamptz, n)
	for i, id := range merged {
		kinds[i], values[i], profiles[i], sources[i], first[i] = string(id.Kind), id.Value, id.ProfileID, id.SourceID, tval(id.FirstSeen)
	}
	if _, err := q.Exec(ctx, upsertIdentities, kinds, values, profiles, sources, first); err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	return nil
}

// putConsent upserts consent, newest wins; of several for one channel in
// the list the newest (on a tie, the last) is written.
func putConsent(ctx context.Context, q querier, cs []store.ConsentChange) error {
	if len(cs) == 0 {
		return nil
	}
	type key struct {
		profile string
		channel kiln.Channel
	}
	idx := map[key]int{}
	var merged []store.ConsentChange
	for _, c := range cs {
		if c.ProfileID == "" || c.Channel == "" {
			return kiln.Errorf(kiln.EInvalid, "consent needs a profile id and a channel, got %q and %q", c.ProfileID, c.Channel)
		}
		k := key{c.ProfileID, c.Channel}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(merged)
			merged = append(merged, c)
			continue
		}
		if !c.At.Before(merged[i].At) {
			merged[i] = c
		}
	}
	n := len(merged)
	profiles, channels, sources := make([]string, n), make([]string, n), make([]string, n)
	granted := make([]bool, n)
	at := make([]pgtype.Timestamptz, n)
	for i, c := range merged {
		profiles[i], channels[i], granted[i], sources[i], at[i] = c.ProfileID, string(c.Channel), c.Granted, c.Source, tval(c.At)
	}
	if _, err := q.Exec(ctx, upsertConsent, profiles, channels, granted, sources, at); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	return nil
}

func getConsent(ctx context.Context, q querier, profileID string) ([]kiln.Consent, error) {
	rows, err := q.Query(ctx, consentOf, profileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Consent
	for rows.Next() {
		var (
			c       kiln.Consent
			channel string
			at      pgtype.Timestamptz
		)
		if err := rows.Scan(&channel, &c.Granted, &c.Source, &at); err != nil {
			return nil, err
		}
		c.Channel, c.At = kiln.Channel(channel), tget(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

func scanIdentity(sc pgx.Row) (kiln.Identity, error) {
	var (
		id        kiln.Identity
		kind      string
		firstSeen pgtype.Timestamptz
	)
	err := sc.Scan(&kind, &id.Value, &id.ProfileID, &id.SourceID, &firstSeen)
	id.Kind, id.FirstSeen = kiln.IdentifierKind(kind), tget(firstSeen)
	return id, err
}

func getIdentities(ctx context.Context, q querier, query string, arg any) ([]kiln.Identity, error) {
	rows, err := q.Query(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Identity
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ScanIdentities calls fn for every identity.
func (db *DB) ScanIdentities(ctx context.Context, fn func(kiln.Identity) error) error {
	rows, err := db.pool.Query(ctx, allIdentities)
	if err != nil {
		return fmt.Errorf("postgres: scan identities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return fmt.Errorf("postgres: scan identities: %w", err)
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: scan identities: %w", err)
	}
	return nil
}

// GetProfile returns a profile with its identities and consent, read in
// one snapshot.
func (db *DB) GetProfile(ctx context.Context, id string) (*kiln.Profile, error) {
	var p *kiln.Profile
	err := pgx.BeginTxFunc(ctx, db.pool, readOnly, func(tx pgx.Tx) error {
		var err error
		if p, err = getProfile(ctx, tx, getProfileRow, id); err != nil {
			return err
		}
		if p.Identities, err = getIdentities(ctx, tx, identitiesOf, id); err != nil {
			return fmt.Errorf("profile %s: identities: %w", id, err)
		}
		if p.Consent, err = getConsent(ctx, tx, id); err != nil {
			return fmt.Errorf("profile %s: consent: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: get %w", err)
	}
	return p, nil
}

// ProfileFor returns the id of the profile holding the identifier.
func (db *DB) ProfileFor(ctx context.Context, id kiln.Identifier) (string, error) {
	var pid string
	err := db.pool.QueryRow(ctx, profileFor, string(id.Kind), id.Value).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: profile for %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: profile for %s: %w", id, err)
	}
	return pid, nil
}

// ListProfiles returns a page of profiles by id, with identities.
func (db *DB) ListProfiles(ctx context.Context, q store.ProfileQuery) ([]kiln.Profile, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	lo, hi := searchRange(q.Search)
	var (
		out  []kiln.Profile
		next string
	)
	err := pgx.BeginTxFunc(ctx, db.pool, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, listProfiles, q.After, q.Search, lo, hi, q.Limit+1)
		if err != nil {
			return err
		}
		for rows.Next() {
			p, err := scanProfile(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, *p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) > q.Limit {
			out = out[:q.Limit]
			next = out[len(out)-1].ID
		}
		if len(out) == 0 {
			return nil
		}
		idx := make(map[string]int, len(out))
		ids := make([]string, len(out))
		for i, p := range out {
			idx[p.ID], ids[i] = i, p.ID
		}
		identities, err := getIdentities(ctx, tx, identitiesOfMany, ids)
		if err != nil {
			return fmt.Errorf("identities: %w", err)
		}
		for _, id := range identities {
			p := &out[idx[id.ProfileID]]
			p.Identities = append(p.Identities, id)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list profiles: %w", err)
	}
	return out, next, nil
}

// searchRange gives the range [lo, hi) of lower-cased identifier values
// that start with the lower-cased search. Only ASCII is folded, as lower()
// does under the "C" collation.
func searchRange(search string) (lo, hi string) {
	b := []byte(search)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	// U+10FFFF is the greatest code point: every value with the prefix
	// sorts below prefix+U+10FFFF (unless it continues with that very
	// character, which no identifier does).
	return string(b), string(b) + "\U0010FFFF"
}

// CountProfiles returns how many profiles there are.
func (db *DB) CountProfiles(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, countProfiles).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count profiles: %w", err)
	}
	return n, nil
}

// DeleteProfile removes the profile and everything that is its; see
// store.Profiles.
func (db *DB) DeleteProfile(ctx context.Context, id string, suppress bool, reason string, at time.Time) ([]kiln.Identity, error) {
	var removed []kiln.Identity
	err := db.write(ctx, func(tx pgx.Tx) error {
		if _, err := getProfile(ctx, tx, lockProfileRow, id); err != nil {
			return err
		}
		var err error
		if removed, err = getIdentities(ctx, tx, identitiesOf, id); err != nil {
			return err
		}
		anchors := make([]string, len(removed))
		sups := make([]kiln.Suppression, len(removed))
		for i, ident := range removed {
			anchors[i] = ident.Identifier.String()
			sups[i] = kiln.Suppression{Identifier: ident.Identifier, Reason: reason, CreatedAt: at}
		}
		if _, err := tx.Exec(ctx, deleteEventsByAnchor, anchors); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if suppress {
			if err := addSuppressions(ctx, tx, sups); err != nil {
				return err
			}
		}
		for _, q := range []string{deleteIdentitiesOf, deleteConsentOf, deleteMergesOf, deleteModelTrait, deleteProfileRow} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return deleteSegmentDataOf(ctx, tx, id)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: delete profile %s: %w", id, err)
	}
	return removed, nil
}

// SetConsent sets one channel's consent unless the stored one is newer.
func (db *DB) SetConsent(ctx context.Context, c store.ConsentChange) error {
	err := db.write(ctx, func(tx pgx.Tx) error {
		// FOR SHARE: the profile cannot be deleted under the new consent.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM profiles WHERE id = $1 FOR SHARE`, c.ProfileID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("profile %s: %w", c.ProfileID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return putConsent(ctx, tx, []store.ConsentChange{c})
	})
	if err != nil {
		return fmt.Errorf("postgres: set consent %s: %w", c.Channel, err)
	}
	return nil
}

func scanMerge(sc pgx.Row, extra ...any) (*kiln.Merge, error) {
	var (
		m          kiln.Merge
		identities []byte
		at, undone pgtype.Timestamptz
	)
	dest := append([]any{&m.ID, &m.Into, &m.From, &identities, &m.EventSeq, &m.Rule, &at, &undone}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	m.At, m.UndoneAt = tget(at), tgetp(undone)
	if err := json.Unmarshal(identities, &m.Identities); err != nil {
		return nil, fmt.Errorf("merge %d: identities: %w", m.ID, err)
	}
	return &m, nil
}

// Merges returns the merges into or from the profile, newest first.
func (db *DB) Merges(ctx context.Context, profileID string) ([]kiln.Merge, error) {
	out, err := db.merges(ctx, mergesOf, profileID)
	if err != nil {
		return nil, fmt.Errorf("postgres: merges of %s: %w", profileID, err)
	}
	return out, nil
}

// MergesAfter returns the merges with ID > after, by ID.
func (db *DB) MergesAfter(ctx context.Context, after int64) ([]kiln.Merge, error) {
	out, err := db.merges(ctx, mergesAfter, after)
	if err != nil {
		return nil, fmt.Errorf("postgres: merges after %d: %w", after, err)
	}
	return out, nil
}

func (db *DB) merges(ctx context.Context, query string, arg any) ([]kiln.Merge, error) {
	rows, err := db.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Merge
	for rows.Next() {
		m, err := scanMerge(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, rows.Err()
}

func getMergeSnap(ctx context.Context, q querier, query string, id int64) (*kiln.Merge, *snapshot, error) {
	var snapJSON []byte
	m, err := scanMerge(q.QueryRow(ctx, query, id), &snapJSON)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("merge %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("merge %d: %w", id, err)
	}
	var snap snapshot
	if err := json.Unmarshal(snapJSON, &snap); err != nil {
		return nil, nil, fmt.Errorf("merge %d: snapshot: %w", id, err)
	}
	return m, &snap, nil
}

// GetMerge returns one merge.
func (db *DB) GetMerge(ctx context.Context, id int64) (*kiln.Merge, error) {
	m, _, err := getMergeSnap(ctx, db.pool, getMerge, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: get %w", err)
	}
	return m, nil
}

// UndoMerge recreates the merge's From profile from its snapshot, moves
// the merge's identities back to it and marks the merge undone.
func (db *DB) UndoMerge(ctx context.Context, id int64, at time.Time) (*kiln.Merge, error) {
	var m *kiln.Merge
	err := db.write(ctx, func(tx pgx.Tx) error {
		var (
			snap *snapshot
			err  error
		)
		if m, snap, err = getMergeSnap(ctx, tx, lockMerge, id); err != nil {
			return err
		}
		if m.UndoneAt != nil {
			return fmt.Errorf("merge %d was undone at %s: %w", id, m.UndoneAt.Format(time.RFC3339), store.ErrConflict)
		}
		snap.Profile.ID = m.From
		if err := putProfiles(ctx, tx, []*kiln.Profile{&snap.Profile}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, deleteConsentOf, m.From); err != nil {
			return err
		}
		changes := make([]store.ConsentChange, len(snap.Consent))
		for i, c := range snap.Consent {
			changes[i] = store.ConsentChange{ProfileID: m.From, Consent: c}
		}
		if err := putConsent(ctx, tx, changes); err != nil {
			return err
		}
		kinds, values := make([]string, len(m.Identities)), make([]string, len(m.Identities))
		for i, ident := range m.Identities {
			kinds[i], values[i] = string(ident.Kind), ident.Value
		}
		if _, err := tx.Exec(ctx, moveIdentities, m.From, kinds, values); err != nil {
			return fmt.Errorf("identities: %w", err)
		}
		if _, err := tx.Exec(ctx, markMergeUndone, tval(at), id); err != nil {
			return err
		}
		u := at
		m.UndoneAt = &u
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: undo merge %d: %w", id, err)
	}
	return m, nil
}

// Suppressed returns which of ids are on the suppression list, in the
// order given.
func (db *DB) Suppressed(ctx context.Context, ids []kiln.Identifier) ([]kiln.Identifier, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	kinds, values := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		kinds[i], values[i] = string(id.Kind), id.Value
	}
	rows, err := db.pool.Query(ctx, suppressedOf, kinds, values)
	if err != nil {
		return nil, fmt.Errorf("postgres: suppressed: %w", err)
	}
	defer rows.Close()
	found := map[kiln.Identifier]bool{}
	for rows.Next() {
		var kind, value string
		if err := rows.Scan(&kind, &value); err != nil {
			return nil, fmt.Errorf("postgres: suppressed: %w", err)
		}
		found[kiln.Identifier{Kind: kiln.IdentifierKind(kind), Value: value}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: suppressed: %w", err)
	}
	var out []kiln.Identifier
	for _, id := range ids {
		if found[id] {
			out = append(out, id)
			delete(found, id)
		}
	}
	return out, nil
}

// ListSuppressions returns the whole suppression list, oldest first.
func (db *DB) ListSuppressions(ctx context.Context) ([]kiln.Suppression, error) {
	rows, err := db.pool.Query(ctx, listSuppressions)
	if err != nil {
		return nil, fmt.Errorf("postgres: list suppressions: %w", err)
	}
	defer rows.Close()
	var out []kiln.Suppression
	for rows.Next() {
		var (
			s    kiln.Suppression
			kind string
			at   pgtype.Timestamptz
		)
		if err := rows.Scan(&kind, &s.Value, &s.Reason, &at); err != nil {
			return nil, fmt.Errorf("postgres: list suppressions: %w", err)
		}
		s.Kind, s.CreatedAt = kiln.IdentifierKind(kind), tget(at)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list suppressions: %w", err)
	}
	return out, nil
}

// AddSuppressions adds identifiers to the suppression list, keeping
// existing entries as they are.
func (db *DB) AddSuppressions(ctx context.Context, s []kiln.Suppression) error {
	if len(s) == 0 {
		return nil
	}
	if err := addSuppressions(ctx, db.pool, s); err != nil {
		return fmt.Errorf("postgres: add suppressions: %w", err)
	}
	return nil
}

func addSuppressions(ctx context.Context, q querier, s []kiln.Suppression) error {
	n := len(s)
	kinds, values, reasons := make([]string, n), make([]string, n), make([]string, n)
	at := make([]pgtype.Timestamptz, n)
	for i, x := range s {
		kinds[i], values[i], reasons[i], at[i] = string(x.Kind), x.Value, x.Reason, tval(x.CreatedAt)
	}
	if _, err := q.Exec(ctx, insertSuppressions, kinds, values, reasons, at); err != nil {
		return fmt.Errorf("suppressions: %w", err)
	}
	return nil
}
