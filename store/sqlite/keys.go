package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

const (
	insertSource = `INSERT INTO sources (id, name, kind, store, secret, secret_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`

	sourceColumns = `id, name, kind, store, secret, secret_sealed, created_at`

	// Only a row still holding that plaintext is sealed, so a source
	// changed meanwhile is left for the next pass.
	sealSource = `UPDATE sources SET secret = '', secret_sealed = ? WHERE id = ? AND secret = ?`

	// An id match wins over a name match.
	getSource = `SELECT ` + sourceColumns + ` FROM sources WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1`

	listSources = `SELECT ` + sourceColumns + ` FROM sources ORDER BY name`

	insertKey = `INSERT INTO keys (id, kind, name, source_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`

	keyColumns = `id, kind, name, source_id, hash, prefix, created_at, revoked_at`

	keyByHash = `SELECT ` + keyColumns + ` FROM keys WHERE hash = ?`

	listKeys = `SELECT ` + keyColumns + ` FROM keys ORDER BY created_at, id`

	keysByIDOrPrefix = `SELECT id FROM keys WHERE id = ?1 UNION SELECT id FROM keys WHERE prefix = ?1`

	// Revoking twice keeps the first revocation time.
	revokeKey = `UPDATE keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`

	getCheckpoint = `SELECT seq FROM checkpoints WHERE name = ?`

	setCheckpoint = `
INSERT INTO checkpoints (name, seq) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`
)

// CreateSource stores a new source; ErrConflict if its id or name is taken.
func (db *DB) CreateSource(ctx context.Context, s kiln.Source) error {
	_, err := db.w.ExecContext(ctx, insertSource, s.ID, s.Name, s.Kind, s.Store, s.Secret, s.SealedSecret, tval(s.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: create source %q (%s): %w", s.Name, s.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create source %q (%s): %w", s.Name, s.ID, err)
	}
	return nil
}

func scanSource(sc interface{ Scan(...any) error }) (kiln.Source, error) {
	var (
		s  kiln.Source
		at sql.NullInt64
	)
	err := sc.Scan(&s.ID, &s.Name, &s.Kind, &s.Store, &s.Secret, &s.SealedSecret, &at)
	s.CreatedAt = tget(at)
	return s, err
}

// GetSource returns the source with that id, else that name.
func (db *DB) GetSource(ctx context.Context, idOrName string) (*kiln.Source, error) {
	s, err := scanSource(db.r.QueryRowContext(ctx, getSource, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: source %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: source %q: %w", idOrName, err)
	}
	return &s, nil
}

// ListSources returns every source by name.
func (db *DB) ListSources(ctx context.Context) ([]kiln.Source, error) {
	rows, err := db.r.QueryContext(ctx, listSources)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list sources: %w", err)
	}
	defer rows.Close()
	var out []kiln.Source
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list sources: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list sources: %w", err)
	}
	return out, nil
}

// SealSourceSecrets seals every source secret still stored in plaintext
// (see store.Keys).
func (db *DB) SealSourceSecrets(ctx context.Context, seal func(kiln.Source) ([]byte, error)) (int, error) {
	ss, err := db.ListSources(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range ss {
		if s.Secret == "" {
			continue
		}
		sealed, err := seal(s)
		if err != nil {
			return n, fmt.Errorf("sqlite: sealing the secret of source %s: %w", s.Name, err)
		}
		res, err := db.w.ExecContext(ctx, sealSource, sealed, s.ID, s.Secret)
		if err != nil {
			return n, fmt.Errorf("sqlite: sealing the secret of source %s: %w", s.Name, err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
		}
	}
	return n, nil
}

// CreateKey stores a key; ErrConflict if its id (or hash) exists.
func (db *DB) CreateKey(ctx context.Context, k kiln.Key) error {
	_, err := db.w.ExecContext(ctx, insertKey, k.ID, string(k.Kind), k.Name, k.SourceID, k.Hash, k.Prefix, tval(k.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: create key %s: %w", k.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create key %s: %w", k.ID, err)
	}
	return nil
}

func scanKey(sc interface{ Scan(...any) error }) (kiln.Key, error) {
	var (
		k                  kiln.Key
		kind               string
		created, revokedAt sql.NullInt64
	)
	err := sc.Scan(&k.ID, &kind, &k.Name, &k.SourceID, &k.Hash, &k.Prefix, &created, &revokedAt)
	k.Kind = kiln.KeyKind(kind)
	k.CreatedAt = tget(created)
	k.RevokedAt = tgetp(revokedAt)
	return k, err
}

// KeyByHash returns the key with that token hash, revoked or not.
func (db *DB) KeyByHash(ctx context.Context, hash string) (*kiln.Key, error) {
	k, err := scanKey(db.r.QueryRowContext(ctx, keyByHash, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: key by hash: %w", err)
	}
	return &k, nil
}

// ListKeys returns every key, oldest first.
func (db *DB) ListKeys(ctx context.Context) ([]kiln.Key, error) {
	rows, err := db.r.QueryContext(ctx, listKeys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	defer rows.Close()
	var out []kiln.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey revokes the key with that id, else the one key with that
// prefix. ErrNotFound if none matches; ErrConflict if the prefix is shared
// by several keys (revoking all of them would surprise).
func (db *DB) RevokeKey(ctx context.Context, idOrPrefix string, at time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, keysByIDOrPrefix, idOrPrefix)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		target, err := pickKey(ids, idOrPrefix)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, revokeKey, tval(at), target)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: revoke key %q: %w", idOrPrefix, err)
	}
	return nil
}

// pickKey chooses the key to revoke among those whose id or prefix is s.
func pickKey(ids []string, s string) (string, error) {
	for _, id := range ids {
		if id == s {
			return id, nil
		}
	}
	switch len(ids) {
	case 0:
		return "", store.ErrNotFound
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("prefix matches %d keys, revoke by id: %w", len(ids), store.ErrConflict)
}

// GetCheckpoint returns the named position, 0 if never set.
func (db *DB) GetCheckpoint(ctx context.Context, name string) (int64, error) {
	var seq int64
	err := db.r.QueryRowContext(ctx, getCheckpoint, name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: checkpoint %q: %w", name, err)
	}
	return seq, nil
}

// SetCheckpoint stores the named position.
func (db *DB) SetCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if _, err := db.w.ExecContext(ctx, setCheckpoint, c.Name, c.Seq); err != nil {
		return fmt.Errorf("sqlite: set checkpoint %q: %w", c.Name, err)
	}
	return nil
}
