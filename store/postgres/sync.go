package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

var _ store.Sync = (*DB)(nil)

const (
	putSyncAck = `
INSERT INTO sync_acks (destination, segment, profile_id, in_list, traits_hash, acked_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (destination, segment, profile_id) DO UPDATE SET
    in_list = excluded.in_list, traits_hash = excluded.traits_hash, acked_at = excluded.acked_at
WHERE sync_acks.acked_at <= excluded.acked_at`

	syncAcksOf = `
SELECT profile_id, in_list, traits_hash, acked_at FROM sync_acks
WHERE destination = $1 AND segment = $2 AND profile_id = ANY($3)`

	scanSyncAcks = `
SELECT profile_id, in_list, traits_hash, acked_at FROM sync_acks
WHERE destination = $1 AND segment = $2 AND profile_id > $3
ORDER BY profile_id LIMIT $4`

	deleteSyncAcks = `DELETE FROM sync_acks WHERE destination = $1`

	forgetSyncAck = `
DELETE FROM sync_acks WHERE destination = $1 AND segment = $2 AND profile_id = $3 AND acked_at <= $4`
)

// SyncAcks returns acknowledged states; see store.Sync.
func (db *DB) SyncAcks(ctx context.Context, dest, segment string, profiles []string) (map[string]store.SyncAck, error) {
	out := map[string]store.SyncAck{}
	if len(profiles) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, syncAcksOf, dest, segment, profiles)
	if err != nil {
		return nil, fmt.Errorf("postgres: sync acks of %s: %w", dest, err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanSyncAck(rows, dest, segment)
		if err != nil {
			return nil, fmt.Errorf("postgres: sync acks of %s: %w", dest, err)
		}
		out[a.ProfileID] = a
	}
	return out, rows.Err()
}

func scanSyncAck(rows pgx.Rows, dest, segment string) (store.SyncAck, error) {
	a := store.SyncAck{Destination: dest, Segment: segment}
	var at pgtype.Timestamptz
	err := rows.Scan(&a.ProfileID, &a.In, &a.TraitsHash, &at)
	a.At = tget(at)
	return a, err
}

// ScanSyncAcks calls fn for each acknowledged state; see store.Sync.
func (db *DB) ScanSyncAcks(ctx context.Context, dest, segment string, fn func(store.SyncAck) error) error {
	return store.ScanSyncAckPages(func(after string) ([]store.SyncAck, error) {
		rows, err := db.pool.Query(ctx, scanSyncAcks, dest, segment, after, store.ScanPage)
		if err != nil {
			return nil, fmt.Errorf("postgres: scan sync acks of %s: %w", dest, err)
		}
		defer rows.Close()
		var page []store.SyncAck
		for rows.Next() {
			a, err := scanSyncAck(rows, dest, segment)
			if err != nil {
				return nil, fmt.Errorf("postgres: scan sync acks of %s: %w", dest, err)
			}
			page = append(page, a)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: scan sync acks of %s: %w", dest, err)
		}
		return page, nil
	}, fn)
}

// PutSyncAcks records acknowledged states; see store.Sync.
func (db *DB) PutSyncAcks(ctx context.Context, acks []store.SyncAck) error {
	if len(acks) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if err := queueSyncAcks(b, acks); err != nil {
		return err
	}
	if err := db.write(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
		return fmt.Errorf("postgres: put sync acks: %w", err)
	}
	return nil
}

func queueSyncAcks(b *pgx.Batch, acks []store.SyncAck) error {
	for _, a := range acks {
		if a.Destination == "" || a.ProfileID == "" || a.At.IsZero() {
			return kiln.Errorf(kiln.EInvalid, "sync ack needs a destination, a profile and a time, got %q, %q and %v", a.Destination, a.ProfileID, a.At)
		}
		b.Queue(putSyncAck, a.Destination, a.Segment, a.ProfileID, a.In, a.TraitsHash, tval(a.At))
	}
	return nil
}

// ForgetSyncAcks makes acknowledged states unknown; see store.Sync.
func (db *DB) ForgetSyncAcks(ctx context.Context, keys []store.SyncAck) error {
	if len(keys) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(forgetSyncAck, k.Destination, k.Segment, k.ProfileID, tval(k.At))
	}
	if err := db.write(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
		return fmt.Errorf("postgres: forget sync acks: %w", err)
	}
	return nil
}

// EnqueueOutbox writes items without transitions; see store.Sync.
func (db *DB) EnqueueOutbox(ctx context.Context, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := db.write(ctx, func(tx pgx.Tx) error { return applyActions(ctx, tx, nil, items) }); err != nil {
		return fmt.Errorf("postgres: enqueue outbox items: %w", err)
	}
	return nil
}
