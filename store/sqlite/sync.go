package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

var _ store.Sync = (*DB)(nil)

const (
	putSyncAck = `
INSERT INTO sync_acks (destination, segment, profile_id, in_list, traits_hash, acked_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (destination, segment, profile_id) DO UPDATE SET
    in_list = excluded.in_list, traits_hash = excluded.traits_hash, acked_at = excluded.acked_at
WHERE sync_acks.acked_at <= excluded.acked_at`

	syncAcksOf = `
SELECT profile_id, in_list, traits_hash, acked_at FROM sync_acks
WHERE destination = ? AND segment = ? AND profile_id IN (SELECT value FROM json_each(?))`

	scanSyncAcks = `
SELECT profile_id, in_list, traits_hash, acked_at FROM sync_acks
WHERE destination = ? AND segment = ? AND profile_id > ?
ORDER BY profile_id LIMIT ?`

	deleteSyncAcks = `DELETE FROM sync_acks WHERE destination = ?`

	forgetSyncAck = `
DELETE FROM sync_acks WHERE destination = ? AND segment = ? AND profile_id = ? AND acked_at <= ?`
)

// SyncAcks returns acknowledged states; see store.Sync.
func (db *DB) SyncAcks(ctx context.Context, dest, segment string, profiles []string) (map[string]store.SyncAck, error) {
	out := map[string]store.SyncAck{}
	if len(profiles) == 0 {
		return out, nil
	}
	ids, err := json.Marshal(profiles)
	if err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, syncAcksOf, dest, segment, string(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: sync acks of %s: %w", dest, err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanSyncAck(rows, dest, segment)
		if err != nil {
			return nil, fmt.Errorf("sqlite: sync acks of %s: %w", dest, err)
		}
		out[a.ProfileID] = a
	}
	return out, rows.Err()
}

func scanSyncAck(rows *sql.Rows, dest, segment string) (store.SyncAck, error) {
	a := store.SyncAck{Destination: dest, Segment: segment}
	var in int
	var at sql.NullInt64
	err := rows.Scan(&a.ProfileID, &in, &a.TraitsHash, &at)
	a.In, a.At = in != 0, tget(at)
	return a, err
}

// ScanSyncAcks calls fn for each acknowledged state; see store.Sync.
func (db *DB) ScanSyncAcks(ctx context.Context, dest, segment string, fn func(store.SyncAck) error) error {
	return store.ScanSyncAckPages(func(after string) ([]store.SyncAck, error) {
		rows, err := db.r.QueryContext(ctx, scanSyncAcks, dest, segment, after, store.ScanPage)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan sync acks of %s: %w", dest, err)
		}
		defer rows.Close()
		var page []store.SyncAck
		for rows.Next() {
			a, err := scanSyncAck(rows, dest, segment)
			if err != nil {
				return nil, fmt.Errorf("sqlite: scan sync acks of %s: %w", dest, err)
			}
			page = append(page, a)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: scan sync acks of %s: %w", dest, err)
		}
		return page, nil
	}, fn)
}

// PutSyncAcks records acknowledged states; see store.Sync.
func (db *DB) PutSyncAcks(ctx context.Context, acks []store.SyncAck) error {
	if len(acks) == 0 {
		return nil
	}
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) error { return putSyncAcks(ctx, tx, acks) })
	if err != nil {
		return fmt.Errorf("sqlite: put sync acks: %w", err)
	}
	return nil
}

func putSyncAcks(ctx context.Context, tx *sql.Tx, acks []store.SyncAck) error {
	if len(acks) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, putSyncAck)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, a := range acks {
		if a.Destination == "" || a.ProfileID == "" || a.At.IsZero() {
			return kiln.Errorf(kiln.EInvalid, "sync ack needs a destination, a profile and a time, got %q, %q and %v", a.Destination, a.ProfileID, a.At)
		}
		if _, err := stmt.ExecContext(ctx, a.Destination, a.Segment, a.ProfileID, b2i(a.In), a.TraitsHash, tval(a.At)); err != nil {
			return fmt.Errorf("sync ack of %s in %s at %s: %w", a.ProfileID, a.Segment, a.Destination, err)
		}
	}
	return nil
}

// ForgetSyncAcks makes acknowledged states unknown; see store.Sync.
func (db *DB) ForgetSyncAcks(ctx context.Context, keys []store.SyncAck) error {
	if len(keys) == 0 {
		return nil
	}
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, forgetSyncAck)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, k := range keys {
			if _, err := stmt.ExecContext(ctx, k.Destination, k.Segment, k.ProfileID, tval(k.At)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: forget sync acks: %w", err)
	}
	return nil
}

// EnqueueOutbox writes items without transitions; see store.Sync.
func (db *DB) EnqueueOutbox(ctx context.Context, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := db.write(ctx, func(tx *sql.Tx) error { return applyActions(ctx, tx, nil, items) }); err != nil {
		return fmt.Errorf("sqlite: enqueue outbox items: %w", err)
	}
	return nil
}
