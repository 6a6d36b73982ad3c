package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

var _ store.Outbox = (*DB)(nil)

const (
	outboxColumns = `id, transition_id, profile_id, destination, automation, key, payload, state, attempts, due, next_at, created_at, finished_at, last_error, capped`

	insertOutbox = `
INSERT INTO outbox (transition_id, profile_id, destination, automation, key, payload, state, attempts, due, next_at, created_at, capped, claimed_until)
VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)`

	laneHead = `
SELECT count(*) FROM outbox o
WHERE o.id = ? AND o.state = 'pending' AND NOT EXISTS (` + olderInLane + `)`

	laneAhead = `
SELECT CASE WHEN o.state = 'pending' THEN (
          SELECT count(*) FROM outbox p INDEXED BY outbox_lane
          WHERE p.state = 'pending' AND p.profile_id = o.profile_id AND p.destination = o.destination
            AND (p.due, p.id) < (o.due, o.id)) ELSE -1 END
FROM outbox o WHERE o.id = ?`

	// A lane's head is its pending item with the lowest (due, id); only
	// heads are claimed, and only when due and not leased. The literal
	// 'pending' lets SQLite use the partial indexes, and INDEXED BY pins
	// the plan: the claim walks the due index in order and stops at its
	// LIMIT, and each candidate's lane is one seek in outbox_lane (the row
	// value is a range on that index). Left to itself, SQLite once chose
	// outbox_state: every pending row read and sorted on every claim, so
	// a backlog of 180k items stalled delivery.
	claimOutbox = `
UPDATE outbox SET claimed_until = ?1
WHERE id IN (
    SELECT o.id FROM outbox o INDEXED BY outbox_due
    WHERE o.state = 'pending' AND o.next_at <= ?2
      AND (o.claimed_until IS NULL OR o.claimed_until <= ?2)
      AND NOT EXISTS (` + olderInLane + `)
    ORDER BY o.next_at, o.id
    LIMIT ?3)
RETURNING ` + outboxColumns

	// claimDestination is claimOutbox for one destination (?4), by
	// outbox_dest: one seek to the destination's due items.
	claimDestination = `
UPDATE outbox SET claimed_until = ?1
WHERE id IN (
    SELECT o.id FROM outbox o INDEXED BY outbox_dest
    WHERE o.state = 'pending' AND o.destination = ?4 AND o.next_at <= ?2
      AND (o.claimed_until IS NULL OR o.claimed_until <= ?2)
      AND NOT EXISTS (` + olderInLane + `)
    ORDER BY o.next_at, o.due, o.id
    LIMIT ?3)
RETURNING ` + outboxColumns

	// claimDestinationRuns is claimDestination taking whole runs of a
	// lane: an item goes unless an item ahead of it is not due or leased.
	claimDestinationRuns = `
UPDATE outbox SET claimed_until = ?1
WHERE id IN (
    SELECT o.id FROM outbox o INDEXED BY outbox_dest
    WHERE o.state = 'pending' AND o.destination = ?4 AND o.next_at <= ?2
      AND (o.claimed_until IS NULL OR o.claimed_until <= ?2)
      AND NOT EXISTS (` + olderInLane + `
            AND (p.next_at > ?2 OR p.claimed_until > ?2))
    ORDER BY o.next_at, o.due, o.id
    LIMIT ?3)
RETURNING ` + outboxColumns

	olderInLane = `
          SELECT 1 FROM outbox p INDEXED BY outbox_lane
          WHERE p.state = 'pending' AND p.profile_id = o.profile_id AND p.destination = o.destination
            AND (p.due, p.id) < (o.due, o.id)`

	// extendOutbox renews leases that have not ended (?3 is now): an
	// ended lease may have been claimed by another worker since.
	extendOutbox = `
UPDATE outbox SET claimed_until = ?1
WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'pending' AND claimed_until > ?3
RETURNING id`

	// outboxBacklog visits each destination with pending items by a skip
	// scan of outbox_dest (one seek per destination, however many items),
	// then reads its counts from the index alone.
	outboxBacklog = `
WITH RECURSIVE d(dest) AS (
    SELECT (SELECT min(destination) FROM outbox INDEXED BY outbox_dest WHERE state = 'pending')
    UNION ALL
    SELECT (SELECT min(destination) FROM outbox INDEXED BY outbox_dest WHERE state = 'pending' AND destination > d.dest)
    FROM d WHERE d.dest IS NOT NULL)
SELECT d.dest,
    (SELECT count(*) FROM outbox INDEXED BY outbox_dest WHERE state = 'pending' AND destination = d.dest),
    (SELECT count(*) FROM outbox INDEXED BY outbox_dest WHERE state = 'pending' AND destination = d.dest AND next_at <= ?1),
    (SELECT min(due) FROM outbox INDEXED BY outbox_dest WHERE state = 'pending' AND destination = d.dest AND due <= ?1)
FROM d WHERE d.dest IS NOT NULL`

	finishOutbox = `
UPDATE outbox SET state = ?, attempts = attempts + ?, next_at = coalesce(?, next_at), finished_at = ?,
    last_error = ?, claimed_until = NULL
WHERE id = ?`

	// anyClaimable looks, on the read pool, for an item ClaimOutbox could
	// take (ignoring lanes), so that a worker woken for nothing does not
	// queue for the write lock behind the event log.
	anyClaimable = `
SELECT 1 FROM outbox
WHERE state = 'pending' AND next_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1)
LIMIT 1`

	// destinationClaimable is anyClaimable for one destination (?2).
	destinationClaimable = `
SELECT 1 FROM outbox INDEXED BY outbox_dest
WHERE state = 'pending' AND destination = ?2 AND next_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1)
LIMIT 1`

	nextOutboxDue = `SELECT min(next_at) FROM outbox WHERE state = 'pending' AND next_at > ?`

	listOutbox = `SELECT ` + outboxColumns + ` FROM outbox WHERE id > ? ORDER BY id LIMIT ?`

	listOutboxState = `SELECT ` + outboxColumns + ` FROM outbox WHERE state = ? AND id > ? ORDER BY state, id LIMIT ?`

	replayOutbox = `
UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, finished_at = NULL, claimed_until = NULL, last_error = ''
WHERE state = 'dead' AND id = ?`

	replayAllOutbox = `
UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, finished_at = NULL, claimed_until = NULL, last_error = ''
WHERE state = 'dead'`

	countDelivered = `
SELECT count(*) FROM outbox
WHERE state = 'delivered' AND capped = 1 AND attempts > 0 AND profile_id = ? AND finished_at >= ?`

	destinationColumns = `id, name, kind, config, sealed, rate_limit, created_at`

	insertDestination = `INSERT INTO destinations (` + destinationColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`

	getDestination = `SELECT ` + destinationColumns + ` FROM destinations WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1`

	listDestinations = `SELECT ` + destinationColumns + ` FROM destinations ORDER BY name`

	deleteDestination = `DELETE FROM destinations WHERE id = ?`

	automationColumns = `id, name, segment, on_event, delay, recheck, destination, options, enabled, hook, created_at, updated_at`

	putAutomation = `
INSERT INTO automations (` + automationColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, segment = excluded.segment, on_event = excluded.on_event,
    delay = excluded.delay, recheck = excluded.recheck, destination = excluded.destination, options = excluded.options,
    enabled = excluded.enabled, hook = excluded.hook, updated_at = excluded.updated_at`

	getAutomation = `SELECT ` + automationColumns + ` FROM automations WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1`

	listAutomations = `SELECT ` + automationColumns + ` FROM automations ORDER BY name`

	deleteAutomation = `DELETE FROM automations WHERE id = ?`
)

// writeRelaxed is write for what can be lost to a power cut and done
// again: it commits without waiting for the disk (synchronous=NORMAL for
// this transaction). The transaction is still atomic, and the next fully
// synchronous commit on the log (the WAL is written in order) makes it
// durable too. Two writers use it:
//   - the outbox's bookkeeping (claims and outcomes): a lost claim or
//     outcome means an item is delivered again, which at-least-once
//     delivery allows;
//   - what the engine derives from the log (store.Resolution.Derived):
//     lost with its checkpoint, it is derived again, with the same
//     transition instants and action keys.
//
// It saves an fsync per commit that would otherwise hold every waiting
// acknowledgement (appends share SQLite's one writer).
func (db *DB) writeRelaxed(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return err
	}
	defer func() {
		// The writer must never stay relaxed: if restoring fails, the
		// connection is discarded and a new one opens with FULL.
		if _, err := conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL"); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// applyActions is ApplyResolution's outbox step, after the transitions
// (which it takes its transition IDs from).
func applyActions(ctx context.Context, tx *sql.Tx, ts []kiln.Transition, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, insertOutbox)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range items {
		it := &items[i]
		if ts != nil && (it.Transition < 0 || it.Transition >= len(ts)) {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d refers to transition %d of %d", i+1, len(items), it.Transition, len(ts))
		}
		if it.ProfileID == "" || it.Destination == "" || it.Key == "" {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d needs a profile, a destination and a key, got %q, %q and %q", i+1, len(items), it.ProfileID, it.Destination, it.Key)
		}
		payload, err := jsonText(it.Payload, "outbox item payload")
		if err != nil {
			return err
		}
		due, err := nanos(it.Due, "outbox item due time")
		if err != nil {
			return err
		}
		if due == nil {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d has no due time", i+1, len(items))
		}
		it.TransitionID = 0 // EnqueueOutbox: no transition
		if ts != nil {
			it.TransitionID = ts[it.Transition].ID
		}
		res, err := stmt.ExecContext(ctx, it.TransitionID, it.ProfileID, it.Destination, it.Automation, it.Key, payload, due, due, tval(it.CreatedAt), b2i(it.Capped), tval(it.ClaimedUntil))
		if err != nil {
			return fmt.Errorf("outbox item for transition %d: %w", it.TransitionID, err)
		}
		if it.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		it.State = store.OutboxPending
		it.NextAt = it.Due
	}
	return nil
}

func scanOutbox(rows *sql.Rows) ([]store.OutboxItem, error) {
	defer rows.Close()
	var out []store.OutboxItem
	for rows.Next() {
		var (
			it                         store.OutboxItem
			payload                    sql.NullString
			due, next, created, finish sql.NullInt64
			capped                     int
		)
		if err := rows.Scan(&it.ID, &it.TransitionID, &it.ProfileID, &it.Destination, &it.Automation, &it.Key, &payload, &it.State,
			&it.Attempts, &due, &next, &created, &finish, &it.LastError, &capped); err != nil {
			return nil, err
		}
		it.Payload = jsonGet(payload)
		it.Due, it.NextAt, it.CreatedAt, it.FinishedAt = tget(due), tget(next), tget(created), tget(finish)
		it.Capped = capped != 0
		out = append(out, it)
	}
	return out, rows.Err()
}

// ClaimOutbox leases due lane heads; see store.Outbox.
func (db *DB) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	var one int
	switch err := db.r.QueryRowContext(ctx, anyClaimable, now.UnixNano()).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("sqlite: claim outbox items: %w", err)
	}
	var out []store.OutboxItem
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claimOutbox, now.Add(lease).UnixNano(), now.UnixNano(), limit)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox items: %w", err)
	}
	sortOutbox(out)
	return out, nil
}

// ClaimDestinations leases due lane heads per destination; see store.Outbox.
func (db *DB) ClaimDestinations(ctx context.Context, now time.Time, lease time.Duration, want []store.DestinationClaim) ([]store.OutboxItem, error) {
	// Destinations with nothing to claim are left out on the read pool
	// first, so a dispatcher woken for nothing does not queue for the
	// write lock behind the event log.
	st, err := db.hot(ctx, destinationClaimable)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox items: %w", err)
	}
	var claimable []store.DestinationClaim
	for _, w := range want {
		var one int
		switch err := st.QueryRowContext(ctx, now.UnixNano(), w.Destination).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("sqlite: claim outbox items: destination %s: %w", w.Destination, err)
		case w.Limit > 0:
			claimable = append(claimable, w)
		}
	}
	if len(claimable) == 0 {
		return nil, nil
	}
	want = claimable
	var out []store.OutboxItem
	err = db.writeRelaxed(ctx, func(tx *sql.Tx) error {
		out = nil // a retried transaction starts over
		stmt, err := tx.PrepareContext(ctx, claimDestination)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var runs *sql.Stmt
		for _, w := range want {
			if w.Limit <= 0 {
				continue
			}
			st := stmt
			if w.Runs {
				if runs == nil {
					if runs, err = tx.PrepareContext(ctx, claimDestinationRuns); err != nil {
						return err
					}
					defer runs.Close()
				}
				st = runs
			}
			rows, err := st.QueryContext(ctx, now.Add(lease).UnixNano(), now.UnixNano(), w.Limit, w.Destination)
			if err != nil {
				return fmt.Errorf("destination %s: %w", w.Destination, err)
			}
			got, err := scanOutbox(rows)
			if err != nil {
				return fmt.Errorf("destination %s: %w", w.Destination, err)
			}
			out = append(out, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox items: %w", err)
	}
	sortOutbox(out)
	return out, nil
}

func sortOutbox(out []store.OutboxItem) {
	slices.SortFunc(out, func(a, b store.OutboxItem) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// ExtendOutbox renews leases still held; see store.Outbox.
func (db *DB) ExtendOutbox(ctx context.Context, ids []int64, now, until time.Time) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var out []int64
	err = db.writeRelaxed(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, extendOutbox, until.UnixNano(), string(list), now.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out = append(out, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: renew the leases of %d outbox items: %w", len(ids), err)
	}
	return out, nil
}

// OutboxBacklog sums up pending items per destination; see store.Outbox.
func (db *DB) OutboxBacklog(ctx context.Context, now time.Time) ([]store.Backlog, error) {
	rows, err := db.r.QueryContext(ctx, outboxBacklog, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox backlog: %w", err)
	}
	defer rows.Close()
	var out []store.Backlog
	for rows.Next() {
		var b store.Backlog
		var oldest sql.NullInt64
		if err := rows.Scan(&b.Destination, &b.Pending, &b.Due, &oldest); err != nil {
			return nil, fmt.Errorf("sqlite: outbox backlog: %w", err)
		}
		b.OldestDue = tget(oldest)
		out = append(out, b)
	}
	return out, rows.Err()
}

// FinishOutbox records outcomes; see store.Outbox.
func (db *DB) FinishOutbox(ctx context.Context, results []store.OutboxResult) error {
	if len(results) == 0 {
		return nil
	}
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) error {
		var acks []store.SyncAck
		stmt, err := tx.PrepareContext(ctx, finishOutbox)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range results {
			var next, finished any
			switch r.State {
			case store.OutboxPending:
				if next = tval(r.NextAt); next == nil {
					return kiln.Errorf(kiln.EInvalid, "outbox item %d: a retry needs the time of the next attempt", r.ID)
				}
			case store.OutboxDelivered, store.OutboxDead, store.OutboxSkipped:
				finished = tval(r.At)
			default:
				return kiln.Errorf(kiln.EInvalid, "outbox item %d: unknown state %q", r.ID, r.State)
			}
			if _, err := stmt.ExecContext(ctx, r.State, b2i(r.Attempted), next, finished, r.Error, r.ID); err != nil {
				return fmt.Errorf("outbox item %d: %w", r.ID, err)
			}
			if r.Ack != nil && r.State == store.OutboxDelivered {
				acks = append(acks, *r.Ack)
			}
		}
		return putSyncAcks(ctx, tx, acks)
	})
	if err != nil {
		return fmt.Errorf("sqlite: finish outbox items: %w", err)
	}
	return nil
}

// NextOutboxDue returns the earliest future attempt; see store.Outbox.
func (db *DB) NextOutboxDue(ctx context.Context, after time.Time) (time.Time, error) {
	var n sql.NullInt64
	if err := db.r.QueryRowContext(ctx, nextOutboxDue, after.UnixNano()).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("sqlite: next outbox due: %w", err)
	}
	return tget(n), nil
}

// ListOutbox returns outbox items by ID.
func (db *DB) ListOutbox(ctx context.Context, q store.OutboxQuery) ([]store.OutboxItem, error) {
	if q.Limit <= 0 {
		q.Limit = defaultPageLimit
	}
	var rows *sql.Rows
	var err error
	if q.State == "" {
		rows, err = db.r.QueryContext(ctx, listOutbox, q.After, q.Limit)
	} else {
		rows, err = db.r.QueryContext(ctx, listOutboxState, q.State, q.After, q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list outbox: %w", err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list outbox: %w", err)
	}
	return out, nil
}

// ReplayOutbox makes dead items pending again; see store.Outbox.
func (db *DB) ReplayOutbox(ctx context.Context, ids []int64, now time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		if len(ids) == 0 {
			res, err := tx.ExecContext(ctx, replayAllOutbox, now.UnixNano())
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, replayOutbox, now.UnixNano(), id)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: replay dead letters: %w", err)
	}
	return int(n), nil
}

// hotStmts are the read statements run for every delivery, prepared once
// per database (parsing them costs more than running them). Kept beside
// DB, by pointer, to leave its struct alone; Close does not need them
// closed (closing the pool closes them).
var hotStmts sync.Map // *DB -> map[string]*sql.Stmt, filled under hotMu

var hotMu sync.Mutex

func (db *DB) hot(ctx context.Context, query string) (*sql.Stmt, error) {
	if m, ok := hotStmts.Load(db); ok {
		if st := m.(map[string]*sql.Stmt)[query]; st != nil {
			return st, nil
		}
	}
	hotMu.Lock()
	defer hotMu.Unlock()
	old, _ := hotStmts.Load(db)
	m := map[string]*sql.Stmt{}
	if old != nil {
		for k, v := range old.(map[string]*sql.Stmt) {
			m[k] = v
		}
	}
	if st := m[query]; st != nil {
		return st, nil
	}
	st, err := db.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	m[query] = st
	hotStmts.Store(db, m)
	return st, nil
}

// LaneHead reports whether the item heads its lane; see store.Outbox.
func (db *DB) LaneHead(ctx context.Context, id int64) (bool, error) {
	var n int
	st, err := db.hot(ctx, laneHead)
	if err == nil {
		err = st.QueryRowContext(ctx, id).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: outbox item %d: lane head: %w", id, err)
	}
	return n == 1, nil
}

// LaneAhead counts the pending items ahead of an item; see store.Outbox.
func (db *DB) LaneAhead(ctx context.Context, id int64) (int, error) {
	n := -1
	st, err := db.hot(ctx, laneAhead)
	if err == nil {
		err = st.QueryRowContext(ctx, id).Scan(&n)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: outbox item %d: lane position: %w", id, err)
	}
	return n, nil
}

// CountDelivered counts capped deliveries to a profile since a time.
func (db *DB) CountDelivered(ctx context.Context, profileID string, since time.Time) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, countDelivered, profileID, since.UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count deliveries to %s: %w", profileID, err)
	}
	return n, nil
}

// CreateDestination stores a new destination.
func (db *DB) CreateDestination(ctx context.Context, d store.Destination) error {
	if d.ID == "" || d.Name == "" || d.Kind == "" {
		return kiln.Errorf(kiln.EInvalid, "destination needs an id, a name and a kind, got %q, %q and %q", d.ID, d.Name, d.Kind)
	}
	cfg, err := jsonText(d.Config, "destination "+d.Name+": config")
	if err != nil {
		return err
	}
	_, err = db.w.ExecContext(ctx, insertDestination, d.ID, d.Name, d.Kind, cfg, d.Sealed, d.RateLimit, tval(d.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("destination %q: %w", d.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create destination %s: %w", d.Name, err)
	}
	return nil
}

func scanDestination(sc interface{ Scan(...any) error }) (*store.Destination, error) {
	var (
		d       store.Destination
		cfg     sql.NullString
		created sql.NullInt64
	)
	if err := sc.Scan(&d.ID, &d.Name, &d.Kind, &cfg, &d.Sealed, &d.RateLimit, &created); err != nil {
		return nil, err
	}
	d.Config, d.CreatedAt = jsonGet(cfg), tget(created)
	return &d, nil
}

// GetDestination returns a destination by ID or name.
func (db *DB) GetDestination(ctx context.Context, idOrName string) (*store.Destination, error) {
	d, err := scanDestination(db.r.QueryRowContext(ctx, getDestination, idOrName, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("destination %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: destination %s: %w", idOrName, err)
	}
	return d, nil
}

// ListDestinations returns every destination by name.
func (db *DB) ListDestinations(ctx context.Context) ([]store.Destination, error) {
	rows, err := db.r.QueryContext(ctx, listDestinations)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list destinations: %w", err)
	}
	defer rows.Close()
	var out []store.Destination
	for rows.Next() {
		d, err := scanDestination(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list destinations: %w", err)
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

// DeleteDestination removes a destination.
func (db *DB) DeleteDestination(ctx context.Context, id string) error {
	if err := db.deleteByID(ctx, deleteDestination, "destination", id); err != nil {
		return err
	}
	if _, err := db.w.ExecContext(ctx, deleteSyncAcks, id); err != nil {
		return fmt.Errorf("sqlite: delete the sync acks of destination %s: %w", id, err)
	}
	return nil
}

func (db *DB) deleteByID(ctx context.Context, query, what, id string) error {
	res, err := db.w.ExecContext(ctx, query, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %s: %w", what, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// PutAutomation creates or replaces an automation.
func (db *DB) PutAutomation(ctx context.Context, a store.Automation) error {
	if a.ID == "" || a.Name == "" || a.Segment == "" || a.Destination == "" {
		return kiln.Errorf(kiln.EInvalid, "automation needs an id, a name, a segment and a destination, got %q, %q, %q and %q", a.ID, a.Name, a.Segment, a.Destination)
	}
	opts, err := jsonText(a.Options, "automation "+a.Name+": options")
	if err != nil {
		return err
	}
	_, err = db.w.ExecContext(ctx, putAutomation, a.ID, a.Name, a.Segment, a.On, int64(a.Delay), a.Recheck, a.Destination, opts,
		b2i(a.Enabled), b2i(a.Hook), tval(a.CreatedAt), tval(a.UpdatedAt))
	if isUnique(err) || err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed: automations.name") {
		return fmt.Errorf("automation %q: %w", a.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put automation %s: %w", a.Name, err)
	}
	return nil
}

func scanAutomation(sc interface{ Scan(...any) error }) (*store.Automation, error) {
	var (
		a                store.Automation
		opts             sql.NullString
		delay            int64
		enabled, hook    int
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &a.Name, &a.Segment, &a.On, &delay, &a.Recheck, &a.Destination, &opts, &enabled, &hook, &created, &updated); err != nil {
		return nil, err
	}
	a.Delay, a.Options, a.Enabled, a.Hook = time.Duration(delay), jsonGet(opts), enabled != 0, hook != 0
	a.CreatedAt, a.UpdatedAt = tget(created), tget(updated)
	return &a, nil
}

// GetAutomation returns an automation by ID or name.
func (db *DB) GetAutomation(ctx context.Context, idOrName string) (*store.Automation, error) {
	a, err := scanAutomation(db.r.QueryRowContext(ctx, getAutomation, idOrName, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("automation %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: automation %s: %w", idOrName, err)
	}
	return a, nil
}

// ListAutomations returns every automation by name.
func (db *DB) ListAutomations(ctx context.Context) ([]store.Automation, error) {
	rows, err := db.r.QueryContext(ctx, listAutomations)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list automations: %w", err)
	}
	defer rows.Close()
	var out []store.Automation
	for rows.Next() {
		a, err := scanAutomation(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list automations: %w", err)
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// DeleteAutomation removes an automation.
func (db *DB) DeleteAutomation(ctx context.Context, id string) error {
	return db.deleteByID(ctx, deleteAutomation, "automation", id)
}
