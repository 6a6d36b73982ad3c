package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln/store"
)

const (
	getBlob = `SELECT data FROM engine_blobs WHERE name = $1`
	putBlob = `
INSERT INTO engine_blobs (name, data) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET data = excluded.data`

	scanModelTraits = `SELECT profile_id, traits FROM model_traits`
	modelTraitsOf   = `SELECT profile_id, traits FROM model_traits WHERE profile_id = ANY($1::text[])`
	putModelTraits  = `
INSERT INTO model_traits (profile_id, traits) SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (profile_id) DO UPDATE SET traits = excluded.traits`
	deleteModelTraits = `DELETE FROM model_traits WHERE profile_id = ANY($1::text[])`
	deleteModelTrait  = `DELETE FROM model_traits WHERE profile_id = $1`

	putSnapshotPart = `
INSERT INTO snapshot_parts (generation, part, data) VALUES ($1, $2, $3)
ON CONFLICT (generation, part) DO UPDATE SET data = excluded.data`
	scanSnapshot  = `SELECT data FROM snapshot_parts WHERE generation = $1 ORDER BY part`
	dropSnapshots = `DELETE FROM snapshot_parts WHERE generation <> $1`
)

// GetBlob returns the named blob, nil if none.
func (db *DB) GetBlob(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := db.pool.QueryRow(ctx, getBlob, name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: blob %q: %w", name, err)
	}
	return data, nil
}

// ScanModelTraits calls fn with every profile's model traits.
func (db *DB) ScanModelTraits(ctx context.Context, fn func(string, map[string]any) error) error {
	rows, err := db.pool.Query(ctx, scanModelTraits)
	if err != nil {
		return fmt.Errorf("postgres: model traits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid, raw string
		if err := rows.Scan(&pid, &raw); err != nil {
			return fmt.Errorf("postgres: model traits: %w", err)
		}
		var t map[string]any
		if err := json.Unmarshal([]byte(raw), &t); err != nil {
			return fmt.Errorf("postgres: model traits of %s: %w", pid, err)
		}
		if err := fn(pid, t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ModelTraitsOf reads the model traits of the given profiles in one query.
func (db *DB) ModelTraitsOf(ctx context.Context, pids []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	if len(pids) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, modelTraitsOf, pids)
	if err != nil {
		return nil, fmt.Errorf("postgres: model traits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid, raw string
		if err := rows.Scan(&pid, &raw); err != nil {
			return nil, fmt.Errorf("postgres: model traits: %w", err)
		}
		var t map[string]any
		if err := json.Unmarshal([]byte(raw), &t); err != nil {
			return nil, fmt.Errorf("postgres: model traits of %s: %w", pid, err)
		}
		out[pid] = t
	}
	return out, rows.Err()
}

// PutSnapshotPart stores one part of a snapshot generation.
func (db *DB) PutSnapshotPart(ctx context.Context, gen, part int64, data []byte) error {
	if _, err := db.pool.Exec(ctx, putSnapshotPart, gen, part, data); err != nil {
		return fmt.Errorf("postgres: snapshot %d part %d: %w", gen, part, err)
	}
	return nil
}

// ScanSnapshot calls fn with every part of generation gen in order.
func (db *DB) ScanSnapshot(ctx context.Context, gen int64, fn func([]byte) error) error {
	rows, err := db.pool.Query(ctx, scanSnapshot, gen)
	if err != nil {
		return fmt.Errorf("postgres: snapshot %d: %w", gen, err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return fmt.Errorf("postgres: snapshot %d: %w", gen, err)
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DropSnapshots deletes the parts of every generation but keep.
func (db *DB) DropSnapshots(ctx context.Context, keep int64) error {
	if _, err := db.pool.Exec(ctx, dropSnapshots, keep); err != nil {
		return fmt.Errorf("postgres: dropping old snapshots: %w", err)
	}
	return nil
}

// applyState writes the engine state parts of a Resolution.
func applyState(ctx context.Context, tx pgx.Tx, r *store.Resolution) error {
	if err := saveDefinitions(ctx, tx, r.Definitions); err != nil {
		return err
	}
	if len(r.Merges) > 0 { // the survivor is rescored; From is gone
		from := make([]string, len(r.Merges))
		for i, m := range r.Merges {
			from[i] = m.From
		}
		if _, err := tx.Exec(ctx, deleteModelTraits, from); err != nil {
			return fmt.Errorf("model traits of merged profiles: %w", err)
		}
	}
	for _, b := range r.Blobs {
		if _, err := tx.Exec(ctx, putBlob, b.Name, b.Data); err != nil {
			return fmt.Errorf("blob %q: %w", b.Name, err)
		}
	}
	var put, puts, drop []string
	for _, mt := range r.ModelTraits {
		if mt.Traits == nil {
			drop = append(drop, mt.ProfileID)
			continue
		}
		raw, err := json.Marshal(mt.Traits)
		if err != nil {
			return fmt.Errorf("model traits of %s: %w", mt.ProfileID, err)
		}
		put, puts = append(put, mt.ProfileID), append(puts, string(raw))
	}
	if len(drop) > 0 {
		if _, err := tx.Exec(ctx, deleteModelTraits, drop); err != nil {
			return fmt.Errorf("model traits: %w", err)
		}
	}
	if len(put) > 0 {
		if _, err := tx.Exec(ctx, putModelTraits, put, puts); err != nil {
			return fmt.Errorf("model traits: %w", err)
		}
	}
	for _, c := range r.Checkpoints {
		if _, err := tx.Exec(ctx, setCheckpoint, c.Name, c.Seq); err != nil {
			return fmt.Errorf("checkpoint %q: %w", c.Name, err)
		}
	}
	return nil
}
