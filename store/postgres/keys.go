package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

const (
	insertSource = `INSERT INTO sources (id, name, kind, store, secret, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`

	sourceColumns = `id, name, kind, store, secret, secret_sealed, created_at`

	// Only a row still holding that plaintext is sealed, so a source
	// changed meanwhile is left for the next pass.
	sealSource = `UPDATE sources SET secret = '', secret_sealed = $1 WHERE id = $2 AND secret = $3`

	// An id match wins over a name match.
	getSource = `SELECT ` + sourceColumns + ` FROM sources WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1`

	listSources = `SELECT ` + sourceColumns + ` FROM sources ORDER BY name COLLATE "C"`

	insertKey = `INSERT INTO keys (id, kind, name, source_id, hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`

	keyColumns = `id, kind, name, source_id, hash, prefix, created_at, revoked_at`

	keyByHash = `SELECT ` + keyColumns + ` FROM keys WHERE hash = $1`

	listKeys = `SELECT ` + keyColumns + ` FROM keys ORDER BY created_at NULLS FIRST, id`

	keysByIDOrPrefix = `SELECT id FROM keys WHERE id = $1 OR prefix = $1 FOR UPDATE`

	// Revoking twice keeps the first revocation time.
	revokeKey = `UPDATE keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`

	getCheckpoint = `SELECT seq FROM checkpoints WHERE name = $1`

	setCheckpoint = `
INSERT INTO checkpoints (name, seq) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`
)

// CreateSource stores a new source; ErrConflict if its id or name is taken.
func (db *DB) CreateSource(ctx context.Context, s kiln.Source) error {
	_, err := db.pool.Exec(ctx, insertSource, s.ID, s.Name, s.Kind, s.Store, s.Secret, s.SealedSecret, tval(s.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("postgres: create source %q (%s): %w", s.Name, s.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create source %q (%s): %w", s.Name, s.ID, err)
	}
	return nil
}

func scanSource(sc pgx.Row) (kiln.Source, error) {
	var (
		s  kiln.Source
		at pgtype.Timestamptz
	)
	err := sc.Scan(&s.ID, &s.Name, &s.Kind, &s.Store, &s.Secret, &s.SealedSecret, &at)
	s.CreatedAt = tget(at)
	return s, err
}

// GetSource returns the source with that id, else that name.
func (db *DB) GetSource(ctx context.Context, idOrName string) (*kiln.Source, error) {
	s, err := scanSource(db.pool.QueryRow(ctx, getSource, idOrName))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: source %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: source %q: %w", idOrName, err)
	}
	return &s, nil
}

// ListSources returns every source by name.
func (db *DB) ListSources(ctx context.Context) ([]kiln.Source, error) {
	rows, err := db.pool.Query(ctx, listSources)
	if err != nil {
		return nil, fmt.Errorf("postgres: list sources: %w", err)
	}
	defer rows.Close()
	var out []kiln.Source
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list sources: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list sources: %w", err)
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
			return n, fmt.Errorf("postgres: sealing the secret of source %s: %w", s.Name, err)
		}
		tag, err := db.pool.Exec(ctx, sealSource, sealed, s.ID, s.Secret)
		if err != nil {
			return n, fmt.Errorf("postgres: sealing the secret of source %s: %w", s.Name, err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// CreateKey stores a key; ErrConflict if its id (or hash) exists.
func (db *DB) CreateKey(ctx context.Context, k kiln.Key) error {
	_, err := db.pool.Exec(ctx, insertKey, k.ID, string(k.Kind), k.Name, k.SourceID, k.Hash, k.Prefix, tval(k.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("postgres: create key %s: %w", k.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create key %s: %w", k.ID, err)
	}
	return nil
}

func scanKey(sc pgx.Row) (kiln.Key, error) {
	var (
		k                  kiln.Key
		kind               string
		created, revokedAt pgtype.Timestamptz
	)
	err := sc.Scan(&k.ID, &kind, &k.Name, &k.SourceID, &k.Hash, &k.Prefix, &created, &revokedAt)
	k.Kind = kiln.KeyKind(kind)
	k.CreatedAt, k.RevokedAt = tget(created), tgetp(revokedAt)
	return k, err
}

// KeyByHash returns the key with that token hash, revoked or not.
func (db *DB) KeyByHash(ctx context.Context, hash string) (*kiln.Key, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, keyByHash, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: key by hash: %w", err)
	}
	return &k, nil
}

// ListKeys returns every key, oldest first.
func (db *DB) ListKeys(ctx context.Context) ([]kiln.Key, error) {
	rows, err := db.pool.Query(ctx, listKeys)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	defer rows.Close()
	var out []kiln.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey revokes the key with that id, else the one key with that
// prefix. ErrNotFound if none matches; ErrConflict if the prefix is shared
// by several keys (revoking all of them would surprise).
func (db *DB) RevokeKey(ctx context.Context, idOrPrefix string, at time.Time) error {
	err := db.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, keysByIDOrPrefix, idOrPrefix)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		target, err := pickKey(ids, idOrPrefix)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, revokeKey, tval(at), target)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke key %q: %w", idOrPrefix, err)
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
	err := db.pool.QueryRow(ctx, getCheckpoint, name).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: checkpoint %q: %w", name, err)
	}
	return seq, nil
}

// SetCheckpoint stores the named position.
func (db *DB) SetCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if _, err := db.pool.Exec(ctx, setCheckpoint, c.Name, c.Seq); err != nil {
		return fmt.Errorf("postgres: set checkpoint %q: %w", c.Name, err)
	}
	return nil
}
