package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

const (
	profileColumns = `id, created_at, updated_at, first_seen, last_seen, event_count, traits`

	getProfileRow = `SELECT ` + profileColumns + ` FROM profiles WHERE id = ?`

	putProfileRow = `
INSERT INTO profiles (id, created_at, updated_at, first_seen, last_seen, event_count, traits)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    event_count = excluded.event_count, traits = excluded.traits`

	deleteProfileRow = `DELETE FROM profiles WHERE id = ?`

	// addProfileDelta applies a ProfileChange without reading the row:
	// counts add, seen times widen, traits are replaced key by key (the
	// first patch removes every key being set or deleted, the second sets
	// the new values, so an object-valued trait is replaced, not merged).
	addProfileDelta = `
INSERT INTO profiles (id, created_at, updated_at, first_seen, last_seen, event_count, traits)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, NULLIF(json_patch('{}', ?7), '{}'))
ON CONFLICT (id) DO UPDATE SET
    updated_at  = coalesce(?2, updated_at),
    first_seen  = CASE WHEN ?3 IS NULL THEN first_seen WHEN first_seen IS NULL OR ?3 < first_seen THEN ?3 ELSE first_seen END,
    last_seen   = CASE WHEN ?4 IS NULL THEN last_seen WHEN last_seen IS NULL OR ?4 > last_seen THEN ?4 ELSE last_seen END,
    event_count = event_count + ?5,
    traits      = CASE WHEN ?6 IS NULL THEN traits
                       ELSE NULLIF(json_patch(json_patch(coalesce(traits, '{}'), ?6), ?7), '{}') END`

	renameProfile = `
UPDATE profiles SET id = ?1,
    updated_at = CASE WHEN ?2 IS NOT NULL AND (updated_at IS NULL OR ?2 > updated_at) THEN ?2 ELSE updated_at END
WHERE id = ?3`

	countProfiles = `SELECT count(*) FROM profiles`

	// Search matches an exact profile id or a lower-cased identifier value
	// in [?3, ?4), the range of values starting with the prefix.
	listProfiles = `
SELECT ` + profileColumns + ` FROM profiles
WHERE id > ?1
  AND (?2 = '' OR id = ?2 OR id IN (
        SELECT profile_id FROM identities WHERE lower(value) >= ?3 AND lower(value) < ?4))
ORDER BY id
LIMIT ?5`

	identityColumns = `kind, value, profile_id, source_id, first_seen`

	identitiesOf = `SELECT ` + identityColumns + ` FROM identities WHERE profile_id = ? ORDER BY kind, value`

	identitiesOfMany = `
SELECT ` + identityColumns + ` FROM identities
WHERE profile_id IN (SELECT value FROM json_each(?))
ORDER BY profile_id, kind, value`

	allIdentities = `SELECT ` + identityColumns + ` FROM identities`

	profileFor = `SELECT profile_id FROM identities WHERE kind = ? AND value = ?`

	// Moving an identity keeps where and when it was first seen.
	upsertIdentity = `
INSERT INTO identities (kind, value, profile_id, source_id, first_seen) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (kind, value) DO UPDATE SET
    profile_id = excluded.profile_id,
    source_id  = CASE WHEN identities.source_id = '' THEN excluded.source_id ELSE identities.source_id END,
    first_seen = CASE WHEN identities.first_seen IS NULL
                        OR (excluded.first_seen IS NOT NULL AND excluded.first_seen < identities.first_seen)
                      THEN excluded.first_seen ELSE identities.first_seen END`

	moveIdentity = `UPDATE identities SET profile_id = ? WHERE kind = ? AND value = ?`

	moveAllIdentities = `UPDATE identities SET profile_id = ? WHERE profile_id = ?`

	deleteIdentitiesOf = `DELETE FROM identities WHERE profile_id = ?`

	consentOf = `SELECT channel, granted, source, at FROM consent WHERE profile_id = ? ORDER BY channel`

	// Newest wins; on a tie the later write wins. A consent without a time
	// never replaces one with a time.
	upsertConsent = `
INSERT INTO consent (profile_id, channel, granted, source, at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (profile_id, channel) DO UPDATE SET
    granted = excluded.granted, source = excluded.source, at = excluded.at
WHERE consent.at IS NULL OR excluded.at >= consent.at`

	deleteConsentOf = `DELETE FROM consent WHERE profile_id = ?`

	insertMerge = `
INSERT INTO merges (into_id, from_id, identities, event_seq, rule, at, snapshot)
VALUES (?, ?, ?, ?, ?, ?, ?)`

	mergeColumns = `id, into_id, from_id, identities, event_seq, rule, at, undone_at`

	mergesOf = `SELECT ` + mergeColumns + ` FROM merges WHERE into_id = ?1 OR from_id = ?1 ORDER BY at DESC, id DESC`

	mergesAfter = `SELECT ` + mergeColumns + ` FROM merges WHERE id > ?1 ORDER BY id`

	getMerge = `SELECT ` + mergeColumns + `, snapshot FROM merges WHERE id = ?`

	markMergeUndone = `UPDATE merges SET undone_at = ? WHERE id = ?`

	deleteMergesOf = `DELETE FROM merges WHERE into_id = ?1 OR from_id = ?1`

	deleteEventsByAnchor = `
DELETE FROM events
WHERE seq IN (SELECT seq FROM event_anchors WHERE anchor = ?1)
   OR (seq > (SELECT indexed_seq FROM index_state WHERE id = 1) AND anchor = ?1)`
	deleteAnchorsOf = `DELETE FROM event_anchors WHERE anchor = ?1`

	insertSuppression = `
INSERT INTO suppressions (kind, value, reason, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, value) DO NOTHING`

	isSuppressed = `SELECT 1 FROM suppressions WHERE kind = ? AND value = ?`

	listSuppressions = `SELECT kind, value, reason, created_at FROM suppressions ORDER BY created_at, kind, value`
)

// ApplyResolution writes r atomically, in the order documented on
// store.Resolution.
func (db *DB) ApplyResolution(ctx context.Context, r store.Resolution) error {
	write := db.write
	if r.Derived {
		write = db.writeRelaxed
	}
	err := write(ctx, func(tx *sql.Tx) error {
		for _, m := range r.Merges {
			if err := applyMerge(ctx, tx, m); err != nil {
				return fmt.Errorf("merge %s into %s: %w", m.From, m.Into, err)
			}
		}
		var delta *sql.Stmt
		for _, pc := range r.Profiles {
			if pc.Replace {
				if err := applyProfileChange(ctx, tx, pc); err != nil {
					return fmt.Errorf("profile %s: %w", pc.ID, err)
				}
				continue
			}
			if delta == nil {
				var err error
				if delta, err = tx.PrepareContext(ctx, addProfileDelta); err != nil {
					return err
				}
				defer delta.Close()
			}
			if err := applyProfileDelta(ctx, delta, pc); err != nil {
				return fmt.Errorf("profile %s: %w", pc.ID, err)
			}
		}
		if len(r.Identities) > 0 {
			stmt, err := tx.PrepareContext(ctx, upsertIdentity)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, id := range r.Identities {
				if id.ProfileID == "" {
					return kiln.Errorf(kiln.EInvalid, "identity %s has no profile id", id.Identifier)
				}
				if _, err := stmt.ExecContext(ctx, string(id.Kind), id.Value, id.ProfileID, id.SourceID, tval(id.FirstSeen)); err != nil {
					return fmt.Errorf("identity %s: %w", id.Identifier, err)
				}
			}
		}
		for _, c := range r.Consent {
			if err := putConsent(ctx, tx, c.ProfileID, c.Consent); err != nil {
				return fmt.Errorf("consent %s of %s: %w", c.Channel, c.ProfileID, err)
			}
		}
		if err := applySegments(ctx, tx, r.Merges, r.Transitions); err != nil {
			return err
		}
		if err := applyActions(ctx, tx, r.Transitions, r.Actions); err != nil {
			return err
		}
		if r.IndexUpTo > 0 {
			if _, err := tx.ExecContext(ctx, indexAnchors, r.IndexUpTo); err != nil {
				return fmt.Errorf("indexing events up to seq %d: %w", r.IndexUpTo, err)
			}
			if _, err := tx.ExecContext(ctx, setIndexed, r.IndexUpTo); err != nil {
				return err
			}
		}
		if r.Checkpoint.Name != "" {
			if _, err := tx.ExecContext(ctx, setCheckpoint, r.Checkpoint.Name, r.Checkpoint.Seq); err != nil {
				return fmt.Errorf("checkpoint %q: %w", r.Checkpoint.Name, err)
			}
		}
		return applyState(ctx, tx, &r)
	})
	if err != nil {
		return fmt.Errorf("sqlite: apply resolution: %w", err)
	}
	return nil
}

// snapshot is From as it was when it was merged away, for UndoMerge.
type snapshot struct {
	Profile kiln.Profile   `json:"profile"`
	Consent []kiln.Consent `json:"consent,omitempty"`
}

func applyMerge(ctx context.Context, tx *sql.Tx, m kiln.Merge) error {
	if m.Into == "" || m.From == "" || m.Into == m.From {
		return kiln.Errorf(kiln.EInvalid, "merge needs two different profile ids, got into %q from %q", m.Into, m.From)
	}
	from, err := getProfile(ctx, tx, m.From)
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
	into, err := getProfile(ctx, tx, m.Into)
	intoExists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	switch {
	case fromExists && intoExists:
		store.FoldProfile(into, from, m.At)
		if err := putProfile(ctx, tx, into); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deleteProfileRow, m.From); err != nil {
			return err
		}
		for _, c := range snap.Consent {
			if err := putConsent(ctx, tx, m.Into, c); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, deleteConsentOf, m.From); err != nil {
			return err
		}
	case fromExists:
		if _, err := tx.ExecContext(ctx, renameProfile, m.Into, tval(m.At), m.From); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent SET profile_id = ? WHERE profile_id = ?`, m.Into, m.From); err != nil {
			return err
		}
	}
	moved, err := identityList(ctx, tx, m.From)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, moveAllIdentities, m.Into, m.From); err != nil {
		return err
	}
	ids := m.Identities
	if len(ids) == 0 {
		ids = moved
	}
	idsJSON, err := json.Marshal(nonNil(ids))
	if err != nil {
		return err
	}
	snapJSON, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, insertMerge, m.Into, m.From, string(idsJSON), m.EventSeq, m.Rule, tval(m.At), string(snapJSON))
	return err
}

func nonNil(ids []kiln.Identifier) []kiln.Identifier {
	if ids == nil {
		return []kiln.Identifier{}
	}
	return ids
}

func applyProfileChange(ctx context.Context, tx *sql.Tx, pc store.ProfileChange) error {
	if pc.ID == "" {
		return kiln.Errorf(kiln.EInvalid, "profile change without a profile id")
	}
	p, err := getProfile(ctx, tx, pc.ID)
	if errors.Is(err, store.ErrNotFound) {
		p, err = &kiln.Profile{ID: pc.ID, CreatedAt: pc.At}, nil
	}
	if err != nil {
		return err
	}
	pc.Change(p)
	return putProfile(ctx, tx, p)
}

// applyProfileDelta runs addProfileDelta for pc (not a Replace).
func applyProfileDelta(ctx context.Context, stmt *sql.Stmt, pc store.ProfileChange) error {
	if pc.ID == "" {
		return kiln.Errorf(kiln.EInvalid, "profile change without a profile id")
	}
	var clear, set any
	if len(pc.Traits) > 0 {
		nulls := make(map[string]any, len(pc.Traits))
		vals := make(map[string]any, len(pc.Traits))
		for k, v := range pc.Traits {
			nulls[k] = nil
			if v != nil {
				vals[k] = v
			}
		}
		c, err := json.Marshal(nulls)
		if err != nil {
			return err
		}
		v, err := json.Marshal(vals)
		if err != nil {
			return fmt.Errorf("traits: %w", err)
		}
		clear, set = string(c), string(v)
	} else {
		set = "{}"
	}
	_, err := stmt.ExecContext(ctx, pc.ID, tval(pc.At), tval(pc.FirstSeen), tval(pc.LastSeen), pc.EventCount, clear, set)
	return err
}

func scanProfile(sc interface{ Scan(...any) error }) (*kiln.Profile, error) {
	var (
		p                                     kiln.Profile
		created, updated, firstSeen, lastSeen sql.NullInt64
		traits                                sql.NullString
	)
	if err := sc.Scan(&p.ID, &created, &updated, &firstSeen, &lastSeen, &p.EventCount, &traits); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = tget(created), tget(updated)
	p.FirstSeen, p.LastSeen = tget(firstSeen), tget(lastSeen)
	if traits.Valid && traits.String != "" {
		if err := json.Unmarshal([]byte(traits.String), &p.Traits); err != nil {
			return nil, fmt.Errorf("profile %s: traits: %w", p.ID, err)
		}
	}
	return &p, nil
}

// getProfile reads a profile row (no identities or consent).
func getProfile(ctx context.Context, q querier, id string) (*kiln.Profile, error) {
	p, err := scanProfile(q.QueryRowContext(ctx, getProfileRow, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile %s: %w", id, store.ErrNotFound)
	}
	return p, err
}

func putProfile(ctx context.Context, q querier, p *kiln.Profile) error {
	var traits any
	if len(p.Traits) > 0 {
		b, err := json.Marshal(p.Traits)
		if err != nil {
			return fmt.Errorf("profile %s: traits: %w", p.ID, err)
		}
		traits = string(b)
	}
	_, err := q.ExecContext(ctx, putProfileRow, p.ID, tval(p.CreatedAt), tval(p.UpdatedAt),
		tval(p.FirstSeen), tval(p.LastSeen), p.EventCount, traits)
	return err
}

func getConsent(ctx context.Context, q querier, profileID string) ([]kiln.Consent, error) {
	rows, err := q.QueryContext(ctx, consentOf, profileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kiln.Consent
	for rows.Next() {
		var (
			c       kiln.Consent
			channel string
			at      sql.NullInt64
		)
		if err := rows.Scan(&channel, &c.Granted, &c.Source, &at); err != nil {
			return nil, err
		}
		c.Channel, c.At = kiln.Channel(channel), tget(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

func putConsent(ctx context.Context, q querier, profileID string, c kiln.Consent) error {
	if profileID == "" || c.Channel == "" {
		return kiln.Errorf(kiln.EInvalid, "consent needs a profile id and a channel, got %q and %q", profileID, c.Channel)
	}
	_, err := q.ExecContext(ctx, upsertConsent, profileID, string(c.Channel), c.Granted, c.Source, tval(c.At))
	return err
}

func scanIdentity(sc interface{ Scan(...any) error }) (kiln.Identity, error) {
	var (
		id        kiln.Identity
		kind      string
		firstSeen sql.NullInt64
	)
	err := sc.Scan(&kind, &id.Value, &id.ProfileID, &id.SourceID, &firstSeen)
	id.Kind, id.FirstSeen = kiln.IdentifierKind(kind), tget(firstSeen)
	return id, err
}

func getIdentities(ctx context.Context, q querier, query string, arg any) ([]kiln.Identity, error) {
	rows, err := q.QueryContext(ctx, query, arg)
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

func identityList(ctx context.Context, q querier, profileID string) ([]kiln.Identifier, error) {
	ids, err := getIdentities(ctx, q, identitiesOf, profileID)
	if err != nil {
		return nil, err
	}
	out := make([]kiln.Identifier, len(ids))
	for i, id := range ids {
		out[i] = id.Identifier
	}
	return out, nil
}

// ScanIdentities calls fn for every identity.
func (db *DB) ScanIdentities(ctx context.Context, fn func(kiln.Identity) error) error {
	rows, err := db.r.QueryContext(ctx, allIdentities)
	if err != nil {
		return fmt.Errorf("sqlite: scan identities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return fmt.Errorf("sqlite: scan identities: %w", err)
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: scan identities: %w", err)
	}
	return nil
}

// GetProfile returns a profile with its identities and consent. It reads
// in one transaction so that the three parts agree.
func (db *DB) GetProfile(ctx context.Context, id string) (*kiln.Profile, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: get profile %s: %w", id, err)
	}
	defer tx.Rollback()
	p, err := getProfile(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %w", err)
	}
	if p.Identities, err = getIdentities(ctx, tx, identitiesOf, id); err != nil {
		return nil, fmt.Errorf("sqlite: get profile %s: identities: %w", id, err)
	}
	if p.Consent, err = getConsent(ctx, tx, id); err != nil {
		return nil, fmt.Errorf("sqlite: get profile %s: consent: %w", id, err)
	}
	return p, nil
}

// ProfileFor returns the id of the profile holding the identifier.
func (db *DB) ProfileFor(ctx context.Context, id kiln.Identifier) (string, error) {
	var pid string
	err := db.r.QueryRowContext(ctx, profileFor, string(id.Kind), id.Value).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: profile for %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: profile for %s: %w", id, err)
	}
	return pid, nil
}

// ListProfiles returns a page of profiles by id, with identities.
func (db *DB) ListProfiles(ctx context.Context, q store.ProfileQuery) ([]kiln.Profile, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	lo, hi := searchRange(q.Search)
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list profiles: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, listProfiles, q.After, q.Search, lo, hi, q.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list profiles: %w", err)
	}
	var out []kiln.Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("sqlite: list profiles: %w", err)
		}
		out = append(out, *p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list profiles: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = out[len(out)-1].ID
	}
	if len(out) == 0 {
		return out, "", nil
	}
	idx := make(map[string]int, len(out))
	ids := make([]string, len(out))
	for i, p := range out {
		idx[p.ID], ids[i] = i, p.ID
	}
	list, _ := json.Marshal(ids)
	identities, err := getIdentities(ctx, tx, identitiesOfMany, string(list))
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list profiles: identities: %w", err)
	}
	for _, id := range identities {
		p := &out[idx[id.ProfileID]]
		p.Identities = append(p.Identities, id)
	}
	return out, next, nil
}

// CountProfiles returns how many profiles there are.
func (db *DB) CountProfiles(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, countProfiles).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count profiles: %w", err)
	}
	return n, nil
}

// DeleteProfile removes the profile and everything that is its; see
// store.Profiles.
func (db *DB) DeleteProfile(ctx context.Context, id string, suppress bool, reason string, at time.Time) ([]kiln.Identity, error) {
	var removed []kiln.Identity
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := getProfile(ctx, tx, id); err != nil {
			return err
		}
		var err error
		if removed, err = getIdentities(ctx, tx, identitiesOf, id); err != nil {
			return err
		}
		del, err := tx.PrepareContext(ctx, deleteEventsByAnchor)
		if err != nil {
			return err
		}
		defer del.Close()
		for _, ident := range removed {
			if _, err := del.ExecContext(ctx, ident.Identifier.String()); err != nil {
				return fmt.Errorf("events of %s: %w", ident.Identifier, err)
			}
			if _, err := tx.ExecContext(ctx, deleteAnchorsOf, ident.Identifier.String()); err != nil {
				return fmt.Errorf("event index of %s: %w", ident.Identifier, err)
			}
			if suppress {
				if _, err := tx.ExecContext(ctx, insertSuppression, string(ident.Kind), ident.Value, reason, tval(at)); err != nil {
					return fmt.Errorf("suppress %s: %w", ident.Identifier, err)
				}
			}
		}
		for _, q := range []string{deleteIdentitiesOf, deleteConsentOf, deleteMergesOf, deleteModelTrait, deleteProfileRow} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return deleteSegmentDataOf(ctx, tx, id)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: delete profile %s: %w", id, err)
	}
	return removed, nil
}

// SetConsent sets one channel's consent unless the stored one is newer.
func (db *DB) SetConsent(ctx context.Context, c store.ConsentChange) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := getProfile(ctx, tx, c.ProfileID); err != nil {
			return err
		}
		return putConsent(ctx, tx, c.ProfileID, c.Consent)
	})
	if err != nil {
		return fmt.Errorf("sqlite: set consent %s: %w", c.Channel, err)
	}
	return nil
}

func scanMerge(sc interface{ Scan(...any) error }, extra ...any) (*kiln.Merge, error) {
	var (
		m          kiln.Merge
		identities string
		at, undone sql.NullInt64
	)
	dest := append([]any{&m.ID, &m.Into, &m.From, &identities, &m.EventSeq, &m.Rule, &at, &undone}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	m.At, m.UndoneAt = tget(at), tgetp(undone)
	if err := json.Unmarshal([]byte(identities), &m.Identities); err != nil {
		return nil, fmt.Errorf("merge %d: identities: %w", m.ID, err)
	}
	return &m, nil
}

// Merges returns the merges into or from the profile, newest first.
func (db *DB) Merges(ctx context.Context, profileID string) ([]kiln.Merge, error) {
	out, err := db.merges(ctx, mergesOf, profileID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: merges of %s: %w", profileID, err)
	}
	return out, nil
}

// MergesAfter returns the merges with ID > after, by ID.
func (db *DB) MergesAfter(ctx context.Context, after int64) ([]kiln.Merge, error) {
	out, err := db.merges(ctx, mergesAfter, after)
	if err != nil {
		return nil, fmt.Errorf("sqlite: merges after %d: %w", after, err)
	}
	return out, nil
}

func (db *DB) merges(ctx context.Context, query string, arg any) ([]kiln.Merge, error) {
	rows, err := db.r.QueryContext(ctx, query, arg)
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

func getMergeSnap(ctx context.Context, q querier, id int64) (*kiln.Merge, *snapshot, error) {
	var snapJSON string
	m, err := scanMerge(q.QueryRowContext(ctx, getMerge, id), &snapJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("merge %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("merge %d: %w", id, err)
	}
	var snap snapshot
	if err := json.Unmarshal([]byte(snapJSON), &snap); err != nil {
		return nil, nil, fmt.Errorf("merge %d: snapshot: %w", id, err)
	}
	return m, &snap, nil
}

// GetMerge returns one merge.
func (db *DB) GetMerge(ctx context.Context, id int64) (*kiln.Merge, error) {
	m, _, err := getMergeSnap(ctx, db.r, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %w", err)
	}
	return m, nil
}

// UndoMerge recreates the merge's From profile from its snapshot, moves
// the merge's identities back to it and marks the merge undone.
func (db *DB) UndoMerge(ctx context.Context, id int64, at time.Time) (*kiln.Merge, error) {
	var m *kiln.Merge
	err := db.write(ctx, func(tx *sql.Tx) error {
		var (
			snap *snapshot
			err  error
		)
		if m, snap, err = getMergeSnap(ctx, tx, id); err != nil {
			return err
		}
		if m.UndoneAt != nil {
			return fmt.Errorf("merge %d was undone at %s: %w", id, m.UndoneAt.Format(time.RFC3339), store.ErrConflict)
		}
		snap.Profile.ID = m.From
		if err := putProfile(ctx, tx, &snap.Profile); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deleteConsentOf, m.From); err != nil {
			return err
		}
		for _, c := range snap.Consent {
			if err := putConsent(ctx, tx, m.From, c); err != nil {
				return err
			}
		}
		for _, ident := range m.Identities {
			if _, err := tx.ExecContext(ctx, moveIdentity, m.From, string(ident.Kind), ident.Value); err != nil {
				return fmt.Errorf("identity %s: %w", ident, err)
			}
		}
		if _, err := tx.ExecContext(ctx, markMergeUndone, tval(at), id); err != nil {
			return err
		}
		u := at
		m.UndoneAt = &u
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: undo merge %d: %w", id, err)
	}
	return m, nil
}

// Suppressed returns which of ids are on the suppression list, in the
// order given.
func (db *DB) Suppressed(ctx context.Context, ids []kiln.Identifier) ([]kiln.Identifier, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	stmt, err := db.r.PrepareContext(ctx, isSuppressed)
	if err != nil {
		return nil, fmt.Errorf("sqlite: suppressed: %w", err)
	}
	defer stmt.Close()
	var out []kiln.Identifier
	for _, id := range ids {
		var one int
		err := stmt.QueryRowContext(ctx, string(id.Kind), id.Value).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: suppressed %s: %w", id, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// ListSuppressions returns the whole suppression list, oldest first.
func (db *DB) ListSuppressions(ctx context.Context) ([]kiln.Suppression, error) {
	rows, err := db.r.QueryContext(ctx, listSuppressions)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
	}
	defer rows.Close()
	var out []kiln.Suppression
	for rows.Next() {
		var (
			s    kiln.Suppression
			kind string
			at   sql.NullInt64
		)
		if err := rows.Scan(&kind, &s.Value, &s.Reason, &at); err != nil {
			return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
		}
		s.Kind, s.CreatedAt = kiln.IdentifierKind(kind), tget(at)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list suppressions: %w", err)
	}
	return out, nil
}

// AddSuppressions adds identifiers to the suppression list, keeping
// existing entries as they are.
func (db *DB) AddSuppressions(ctx context.Context, s []kiln.Suppression) error {
	if len(s) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, x := range s {
			if _, err := tx.ExecContext(ctx, insertSuppression, string(x.Kind), x.Value, x.Reason, tval(x.CreatedAt)); err != nil {
				return fmt.Errorf("%s: %w", x.Identifier, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: add suppressions: %w", err)
	}
	return nil
}

// searchRange gives the range [lo, hi) of lower-cased identifier values
// that start with the lower-cased search. Only ASCII is folded, as SQL's
// lower() does here.
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
