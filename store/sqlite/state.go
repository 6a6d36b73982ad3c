package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kiln-cdp/kiln/store"
)

const (
	getBlob = `SELECT data FROM engine_blobs WHERE name = ?`
	putBlob = `
INSERT INTO engine_blobs (name, data) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET data = excluded.data`

	scanModelTraits  = `SELECT profile_id, traits FROM model_traits`
	modelTraitsOf    = `SELECT traits FROM model_traits WHERE profile_id = ?`
	putModelTraits   = `INSERT INTO model_traits (profile_id, traits) VALUES (?, ?) ON CONFLICT (profile_id) DO UPDATE SET traits = excluded.traits`
	deleteModelTrait = `DELETE FROM model_traits WHERE profile_id = ?`

	putSnapshotPart = `INSERT OR REPLACE INTO snapshot_parts (generation, part, data) VALUES (?, ?, ?)`
	scanSnapshot    = `SELECT data FROM snapshot_parts WHERE generation = ? ORDER BY part`
	dropSnapshots   = `DELETE FROM snapshot_parts WHERE generation <> ?`
)

// GetBlob returns the named blob, nil if none.
func (db *DB) GetBlob(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := db.r.QueryRowContext(ctx, getBlob, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: blob %q: %w", name, err)
	}
	return data, nil
}

// ScanModelTraits calls fn with every profile's model traits.
func (db *DB) ScanModelTraits(ctx context.Context, fn func(string, map[string]any) error) error {
	rows, err := db.r.QueryContext(ctx, scanModelTraits)
	if err != nil {
		return fmt.Errorf("sqlite: model traits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid string
		var raw []byte
		if err := rows.Scan(&pid, &raw); err != nil {
			return fmt.Errorf("sqlite: model traits: %w", err)
		}
		var t map[string]any
		if err := json.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("sqlite: model traits of %s: %w", pid, err)
		}
		if err := fn(pid, t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ModelTraitsOf reads the model traits of a few profiles, one indexed
// look-up each (SQLite answers those in microseconds, in process).
func (db *DB) ModelTraitsOf(ctx context.Context, pids []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	if len(pids) == 0 {
		return out, nil
	}
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: model traits: %w", err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, modelTraitsOf)
	if err != nil {
		return nil, fmt.Errorf("sqlite: model traits: %w", err)
	}
	defer stmt.Close()
	for _, pid := range pids {
		var raw []byte
		switch err := stmt.QueryRowContext(ctx, pid).Scan(&raw); {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, fmt.Errorf("sqlite: model traits of %s: %w", pid, err)
		}
		var t map[string]any
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("sqlite: model traits of %s: %w", pid, err)
		}
		out[pid] = t
	}
	return out, nil
}

// Snapshot parts are files beside the database (DB.path + ".snapshots/GEN/
// PART"): a restart reads them at the speed of the disk, where reading
// megabytes of blobs through SQLite's overflow pages is ten times slower.
// A part is synced before PutSnapshotPart returns, so it is durable before
// the header naming its generation commits. An in-memory database keeps
// them in its snapshot_parts table.

func (db *DB) snapshotDir(gen int64) string {
	return filepath.Join(db.path+".snapshots", strconv.FormatInt(gen, 10))
}

func (db *DB) inMemory() bool {
	return db.path == ":memory:" || strings.HasPrefix(db.path, "file:")
}

// PutSnapshotPart stores one part of a snapshot generation.
func (db *DB) PutSnapshotPart(ctx context.Context, gen, part int64, data []byte) error {
	if db.inMemory() {
		_, err := db.w.ExecContext(ctx, putSnapshotPart, gen, part, data)
		if err != nil {
			return fmt.Errorf("sqlite: snapshot %d part %d: %w", gen, part, err)
		}
		return nil
	}
	dir := db.snapshotDir(gen)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sqlite: snapshot %d: %w", gen, err)
	}
	name := filepath.Join(dir, fmt.Sprintf("%08d", part))
	if err := writeSynced(name, data); err != nil {
		return fmt.Errorf("sqlite: snapshot %d part %d: %w", gen, part, err)
	}
	return nil
}

// writeSynced writes data to name through a temporary file, so a part is
// whole or absent, and syncs the file and its directory.
func writeSynced(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ScanSnapshot calls fn with every part of generation gen in order.
func (db *DB) ScanSnapshot(ctx context.Context, gen int64, fn func([]byte) error) error {
	if db.inMemory() {
		return db.scanSnapshotTable(ctx, gen, fn)
	}
	dir := db.snapshotDir(gen)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: snapshot %d: %w", gen, err)
	}
	for _, e := range ents { // ReadDir sorts by name: parts in order
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("sqlite: snapshot %d: %w", gen, err)
		}
		if err := fn(data); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) scanSnapshotTable(ctx context.Context, gen int64, fn func([]byte) error) error {
	rows, err := db.r.QueryContext(ctx, scanSnapshot, gen)
	if err != nil {
		return fmt.Errorf("sqlite: snapshot %d: %w", gen, err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return fmt.Errorf("sqlite: snapshot %d: %w", gen, err)
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DropSnapshots deletes the parts of every generation but keep.
func (db *DB) DropSnapshots(ctx context.Context, keep int64) error {
	if db.inMemory() {
		if _, err := db.w.ExecContext(ctx, dropSnapshots, keep); err != nil {
			return fmt.Errorf("sqlite: dropping old snapshots: %w", err)
		}
		return nil
	}
	root := db.path + ".snapshots"
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: dropping old snapshots: %w", err)
	}
	for _, e := range ents {
		if e.Name() == strconv.FormatInt(keep, 10) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("sqlite: dropping old snapshots: %w", err)
		}
	}
	return nil
}

// applyState writes the engine state parts of a Resolution.
func applyState(ctx context.Context, tx *sql.Tx, r *store.Resolution) error {
	if err := saveDefinitions(ctx, tx, r.Definitions); err != nil {
		return err
	}
	for _, m := range r.Merges { // the survivor is rescored; From is gone
		if _, err := tx.ExecContext(ctx, deleteModelTrait, m.From); err != nil {
			return fmt.Errorf("model traits of %s: %w", m.From, err)
		}
	}
	for _, b := range r.Blobs {
		if _, err := tx.ExecContext(ctx, putBlob, b.Name, b.Data); err != nil {
			return fmt.Errorf("blob %q: %w", b.Name, err)
		}
	}
	if len(r.ModelTraits) > 0 {
		put, err := tx.PrepareContext(ctx, putModelTraits)
		if err != nil {
			return err
		}
		defer put.Close()
		for _, mt := range r.ModelTraits {
			if mt.Traits == nil {
				_, err = tx.ExecContext(ctx, deleteModelTrait, mt.ProfileID)
			} else {
				var raw []byte
				if raw, err = json.Marshal(mt.Traits); err == nil {
					_, err = put.ExecContext(ctx, mt.ProfileID, raw)
				}
			}
			if err != nil {
				return fmt.Errorf("model traits of %s: %w", mt.ProfileID, err)
			}
		}
	}
	for _, c := range r.Checkpoints {
		if _, err := tx.ExecContext(ctx, setCheckpoint, c.Name, c.Seq); err != nil {
			return fmt.Errorf("checkpoint %q: %w", c.Name, err)
		}
	}
	return nil
}
