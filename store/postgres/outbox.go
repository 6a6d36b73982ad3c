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

var _ store.Outbox = (*DB)(nil)

const (
	outboxColumns = `id, transition_id, profile_id, destination, automation, key, payload::text, state, attempts, due, next_at, created_at, finished_at, last_error, capped`

	insertOutbox = `
INSERT INTO outbox (transition_id, profile_id, destination, automation, key, payload, state, attempts, due, next_at, created_at, capped, claimed_until)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending', 0, $7, $7, $8, $9, $10)
RETURNING id`

	laneHead = `
SELECT count(*) FROM outbox o
WHERE o.id = $1 AND o.state = 'pending' AND NOT EXISTS (` + olderInLane + `)`

	laneAhead = `
SELECT CASE WHEN o.state = 'pending' THEN (
          SELECT count(*) FROM outbox p
          WHERE p.state = 'pending' AND p.profile_id = o.profile_id AND p.destination = o.destination
            AND (p.due, p.id) < (o.due, o.id)) ELSE -1 END
FROM outbox o WHERE o.id = $1`

	// A lane's head is its pending item with the lowest (due, id); only
	// heads are claimed, and only when due and not leased. SKIP LOCKED lets
	// several workers claim at once without taking the same item. The
	// claim walks outbox_due in order and stops at its LIMIT; each
	// candidate's lane is one range seek in outbox_lane.
	claimOutbox = `
UPDATE outbox SET claimed_until = $1
WHERE id IN (
    SELECT o.id FROM outbox o
    WHERE o.state = 'pending' AND o.next_at <= $2
      AND (o.claimed_until IS NULL OR o.claimed_until <= $2)
      AND NOT EXISTS (` + olderInLane + `)
    ORDER BY o.next_at, o.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING ` + outboxColumns

	// claimDestination is claimOutbox for one destination ($4), by
	// outbox_dest: one seek to the destination's due items.
	claimDestination = `
UPDATE outbox SET claimed_until = $1
WHERE id IN (
    SELECT o.id FROM outbox o
    WHERE o.state = 'pending' AND o.destination = $4 AND o.next_at <= $2
      AND (o.claimed_until IS NULL OR o.claimed_until <= $2)
      AND NOT EXISTS (` + olderInLane + `)
    ORDER BY o.next_at, o.due, o.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING ` + outboxColumns

	// claimDestinationRuns is claimDestination taking whole runs of a
	// lane: an item goes unless an item ahead of it is not due or leased.
	claimDestinationRuns = `
UPDATE outbox SET claimed_until = $1
WHERE id IN (
    SELECT o.id FROM outbox o
    WHERE o.state = 'pending' AND o.destination = $4 AND o.next_at <= $2
      AND (o.claimed_until IS NULL OR o.claimed_until <= $2)
      AND NOT EXISTS (` + olderInLane + `
            AND (p.next_at > $2 OR p.claimed_until > $2))
    ORDER BY o.next_at, o.due, o.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING ` + outboxColumns

	olderInLane = `
          SELECT 1 FROM outbox p
          WHERE p.state = 'pending' AND p.profile_id = o.profile_id AND p.destination = o.destination
            AND (p.due, p.id) < (o.due, o.id)`

	// extendOutbox renews leases that have not ended ($3 is now): an
	// ended lease may have been claimed by another worker since.
	extendOutbox = `
UPDATE outbox SET claimed_until = $1
WHERE id = ANY($2) AND state = 'pending' AND claimed_until > $3
RETURNING id`

	// outboxBacklog visits each destination with pending items by a skip
	// scan of outbox_dest (one seek per destination, however many items),
	// then reads its counts from the index.
	outboxBacklog = `
WITH RECURSIVE d(dest) AS (
    SELECT (SELECT min(destination) FROM outbox WHERE state = 'pending')
    UNION ALL
    SELECT (SELECT min(destination) FROM outbox WHERE state = 'pending' AND destination > d.dest)
    FROM d WHERE d.dest IS NOT NULL)
SELECT d.dest,
    (SELECT count(*) FROM outbox WHERE state = 'pending' AND destination = d.dest),
    (SELECT count(*) FROM outbox WHERE state = 'pending' AND destination = d.dest AND next_at <= $1),
    (SELECT min(due) FROM outbox WHERE state = 'pending' AND destination = d.dest AND due <= $1)
FROM d WHERE d.dest IS NOT NULL`

	finishOutbox = `
UPDATE outbox SET state = $1, attempts = attempts + $2, next_at = coalesce($3, next_at), finished_at = $4,
    last_error = $5, claimed_until = NULL
WHERE id = $6`

	nextOutboxDue = `SELECT min(next_at) FROM outbox WHERE state = 'pending' AND next_at > $1`

	listOutbox = `SELECT ` + outboxColumns + ` FROM outbox WHERE id > $1 ORDER BY id LIMIT $2`

	listOutboxState = `SELECT ` + outboxColumns + ` FROM outbox WHERE state = $1 AND id > $2 ORDER BY state, id LIMIT $3`

	replayOutbox = `
UPDATE outbox SET state = 'pending', attempts = 0, next_at = $1, finished_at = NULL, claimed_until = NULL, last_error = ''
WHERE state = 'dead' AND id = ANY($2)`

	replayAllOutbox = `
UPDATE outbox SET state = 'pending', attempts = 0, next_at = $1, finished_at = NULL, claimed_until = NULL, last_error = ''
WHERE state = 'dead'`

	countDelivered = `
SELECT count(*) FROM outbox
WHERE state = 'delivered' AND capped AND attempts > 0 AND profile_id = $1 AND finished_at >= $2`

	destinationColumns = `id, name, kind, config::text, sealed, rate_limit, created_at`

	insertDestination = `INSERT INTO destinations (id, name, kind, config, sealed, rate_limit, created_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)`

	getDestination = `SELECT ` + destinationColumns + ` FROM destinations WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1`

	listDestinations = `SELECT ` + destinationColumns + ` FROM destinations ORDER BY name`

	deleteDestination = `DELETE FROM destinations WHERE id = $1`

	automationColumns = `id, name, segment, on_event, delay, recheck, destination, options::text, enabled, hook, created_at, updated_at`

	putAutomation = `
INSERT INTO automations (id, name, segment, on_event, delay, recheck, destination, options, enabled, hook, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, segment = excluded.segment, on_event = excluded.on_event,
    delay = excluded.delay, recheck = excluded.recheck, destination = excluded.destination, options = excluded.options,
    enabled = excluded.enabled, hook = excluded.hook, updated_at = excluded.updated_at`

	getAutomation = `SELECT ` + automationColumns + ` FROM automations WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1`

	listAutomations = `SELECT ` + automationColumns + ` FROM automations ORDER BY name`

	deleteAutomation = `DELETE FROM automations WHERE id = $1`
)

// applyActions is ApplyResolution's outbox step, after the transitions
// (which it takes its transition IDs from). One batch: one round trip.
func applyActions(ctx context.Context, tx pgx.Tx, ts []kiln.Transition, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i := range items {
		it := &items[i]
		if ts != nil && (it.Transition < 0 || it.Transition >= len(ts)) {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d refers to transition %d of %d", i+1, len(items), it.Transition, len(ts))
		}
		if it.ProfileID == "" || it.Destination == "" || it.Key == "" {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d needs a profile, a destination and a key, got %q, %q and %q", i+1, len(items), it.ProfileID, it.Destination, it.Key)
		}
		if it.Due.IsZero() {
			return kiln.Errorf(kiln.EInvalid, "outbox item %d of %d has no due time", i+1, len(items))
		}
		payload, err := jsonText(it.Payload, "outbox item payload")
		if err != nil {
			return err
		}
		it.TransitionID = 0 // EnqueueOutbox: no transition
		if ts != nil {
			it.TransitionID = ts[it.Transition].ID
		}
		b.Queue(insertOutbox, it.TransitionID, it.ProfileID, it.Destination, it.Automation, it.Key, payload, tval(it.Due), tval(it.CreatedAt), it.Capped, tval(it.ClaimedUntil))
	}
	br := tx.SendBatch(ctx, b)
	for i := range items {
		if err := br.QueryRow().Scan(&items[i].ID); err != nil {
			br.Close()
			return fmt.Errorf("outbox item for transition %d: %w", items[i].TransitionID, err)
		}
		items[i].State = store.OutboxPending
		items[i].NextAt = items[i].Due
	}
	return br.Close()
}

func scanOutbox(rows pgx.Rows) ([]store.OutboxItem, error) {
	defer rows.Close()
	var out []store.OutboxItem
	for rows.Next() {
		var (
			it                         store.OutboxItem
			payload                    pgtype.Text
			due, next, created, finish pgtype.Timestamptz
		)
		if err := rows.Scan(&it.ID, &it.TransitionID, &it.ProfileID, &it.Destination, &it.Automation, &it.Key, &payload, &it.State,
			&it.Attempts, &due, &next, &created, &finish, &it.LastError, &it.Capped); err != nil {
			return nil, err
		}
		if payload.Valid {
			it.Payload = []byte(payload.String)
		}
		it.Due, it.NextAt, it.CreatedAt, it.FinishedAt = tget(due), tget(next), tget(created), tget(finish)
		out = append(out, it)
	}
	return out, rows.Err()
}

// ClaimOutbox leases due lane heads; see store.Outbox.
func (db *DB) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, claimOutbox, now.Add(lease), now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox items: %w", err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox items: %w", err)
	}
	sortOutbox(out)
	return out, nil
}

func sortOutbox(out []store.OutboxItem) {
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].NextAt.Before(out[j-1].NextAt) || out[j].NextAt.Equal(out[j-1].NextAt) && out[j].ID < out[j-1].ID); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

// ClaimDestinations leases due lane heads per destination; see store.Outbox.
func (db *DB) ClaimDestinations(ctx context.Context, now time.Time, lease time.Duration, want []store.DestinationClaim) ([]store.OutboxItem, error) {
	b := &pgx.Batch{}
	n := 0
	for _, w := range want {
		if w.Limit > 0 {
			q := claimDestination
			if w.Runs {
				q = claimDestinationRuns
			}
			b.Queue(q, now.Add(lease), now, w.Limit, w.Destination)
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	var out []store.OutboxItem
	err := db.write(ctx, func(tx pgx.Tx) error {
		out = nil
		br := tx.SendBatch(ctx, b)
		for range n {
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return err
			}
			got, err := scanOutbox(rows)
			if err != nil {
				br.Close()
				return err
			}
			out = append(out, got...)
		}
		return br.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox items: %w", err)
	}
	sortOutbox(out)
	return out, nil
}

// ExtendOutbox renews leases still held; see store.Outbox.
func (db *DB) ExtendOutbox(ctx context.Context, ids []int64, now, until time.Time) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, extendOutbox, until, ids, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: renew the leases of %d outbox items: %w", len(ids), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: renew the leases of %d outbox items: %w", len(ids), err)
	}
	return out, nil
}

// OutboxBacklog sums up pending items per destination; see store.Outbox.
//
// The counts cost a pass over each destination's pending items; with a
// large backlog the planner's cost estimate switches JIT compilation on,
// which took 360 ms of a 390 ms query for 100k items, so it is off here.
func (db *DB) OutboxBacklog(ctx context.Context, now time.Time) ([]store.Backlog, error) {
	var out []store.Backlog
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, outboxBacklog, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b store.Backlog
			var oldest pgtype.Timestamptz
			if err := rows.Scan(&b.Destination, &b.Pending, &b.Due, &oldest); err != nil {
				return err
			}
			b.OldestDue = tget(oldest)
			out = append(out, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox backlog: %w", err)
	}
	return out, nil
}

// FinishOutbox records outcomes; see store.Outbox.
func (db *DB) FinishOutbox(ctx context.Context, results []store.OutboxResult) error {
	if len(results) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	var acks []store.SyncAck
	for _, r := range results {
		var next, finished pgtype.Timestamptz
		switch r.State {
		case store.OutboxPending:
			if next = tval(r.NextAt); !next.Valid {
				return kiln.Errorf(kiln.EInvalid, "outbox item %d: a retry needs the time of the next attempt", r.ID)
			}
		case store.OutboxDelivered, store.OutboxDead, store.OutboxSkipped:
			finished = tval(r.At)
		default:
			return kiln.Errorf(kiln.EInvalid, "outbox item %d: unknown state %q", r.ID, r.State)
		}
		b.Queue(finishOutbox, r.State, b2i(r.Attempted), next, finished, r.Error, r.ID)
		if r.Ack != nil && r.State == store.OutboxDelivered {
			acks = append(acks, *r.Ack)
		}
	}
	if err := queueSyncAcks(b, acks); err != nil {
		return err
	}
	err := db.write(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("postgres: finish outbox items: %w", err)
	}
	return nil
}

// NextOutboxDue returns the earliest future attempt; see store.Outbox.
func (db *DB) NextOutboxDue(ctx context.Context, after time.Time) (time.Time, error) {
	var t pgtype.Timestamptz
	if err := db.pool.QueryRow(ctx, nextOutboxDue, after).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("postgres: next outbox due: %w", err)
	}
	return tget(t), nil
}

// ListOutbox returns outbox items by ID.
func (db *DB) ListOutbox(ctx context.Context, q store.OutboxQuery) ([]store.OutboxItem, error) {
	if q.Limit <= 0 {
		q.Limit = defaultPageLimit
	}
	var rows pgx.Rows
	var err error
	if q.State == "" {
		rows, err = db.pool.Query(ctx, listOutbox, q.After, q.Limit)
	} else {
		rows, err = db.pool.Query(ctx, listOutboxState, q.State, q.After, q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list outbox: %w", err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: list outbox: %w", err)
	}
	return out, nil
}

// ReplayOutbox makes dead items pending again; see store.Outbox.
func (db *DB) ReplayOutbox(ctx context.Context, ids []int64, now time.Time) (int, error) {
	var err error
	var n int64
	if len(ids) == 0 {
		tag, e := db.pool.Exec(ctx, replayAllOutbox, now)
		n, err = tag.RowsAffected(), e
	} else {
		tag, e := db.pool.Exec(ctx, replayOutbox, now, ids)
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: replay dead letters: %w", err)
	}
	return int(n), nil
}

// LaneHead reports whether the item heads its lane; see store.Outbox.
func (db *DB) LaneHead(ctx context.Context, id int64) (bool, error) {
	var n int
	if err := db.pool.QueryRow(ctx, laneHead, id).Scan(&n); err != nil {
		return false, fmt.Errorf("postgres: outbox item %d: lane head: %w", id, err)
	}
	return n == 1, nil
}

// LaneAhead counts the pending items ahead of an item; see store.Outbox.
func (db *DB) LaneAhead(ctx context.Context, id int64) (int, error) {
	var n int64
	err := db.pool.QueryRow(ctx, laneAhead, id).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: outbox item %d: lane position: %w", id, err)
	}
	return int(n), nil
}

// CountDelivered counts capped deliveries to a profile since a time.
func (db *DB) CountDelivered(ctx context.Context, profileID string, since time.Time) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, countDelivered, profileID, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count deliveries to %s: %w", profileID, err)
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
	_, err = db.pool.Exec(ctx, insertDestination, d.ID, d.Name, d.Kind, cfg, d.Sealed, d.RateLimit, tval(d.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("destination %q: %w", d.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create destination %s: %w", d.Name, err)
	}
	return nil
}

func scanDestination(row pgx.Row) (*store.Destination, error) {
	var (
		d       store.Destination
		cfg     pgtype.Text
		created pgtype.Timestamptz
	)
	if err := row.Scan(&d.ID, &d.Name, &d.Kind, &cfg, &d.Sealed, &d.RateLimit, &created); err != nil {
		return nil, err
	}
	if cfg.Valid {
		d.Config = []byte(cfg.String)
	}
	d.CreatedAt = tget(created)
	return &d, nil
}

// GetDestination returns a destination by ID or name.
func (db *DB) GetDestination(ctx context.Context, idOrName string) (*store.Destination, error) {
	d, err := scanDestination(db.pool.QueryRow(ctx, getDestination, idOrName))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("destination %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: destination %s: %w", idOrName, err)
	}
	return d, nil
}

// ListDestinations returns every destination by name.
func (db *DB) ListDestinations(ctx context.Context) ([]store.Destination, error) {
	rows, err := db.pool.Query(ctx, listDestinations)
	if err != nil {
		return nil, fmt.Errorf("postgres: list destinations: %w", err)
	}
	defer rows.Close()
	var out []store.Destination
	for rows.Next() {
		d, err := scanDestination(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list destinations: %w", err)
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
	if _, err := db.pool.Exec(ctx, deleteSyncAcks, id); err != nil {
		return fmt.Errorf("postgres: delete the sync acks of destination %s: %w", id, err)
	}
	return nil
}

func (db *DB) deleteByID(ctx context.Context, query, what, id string) error {
	tag, err := db.pool.Exec(ctx, query, id)
	if err != nil {
		return fmt.Errorf("postgres: delete %s %s: %w", what, id, err)
	}
	if tag.RowsAffected() == 0 {
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
	_, err = db.pool.Exec(ctx, putAutomation, a.ID, a.Name, a.Segment, a.On, int64(a.Delay), a.Recheck, a.Destination, opts,
		a.Enabled, a.Hook, tval(a.CreatedAt), tval(a.UpdatedAt))
	if isUnique(err) {
		return fmt.Errorf("automation %q: %w", a.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: put automation %s: %w", a.Name, err)
	}
	return nil
}

func scanAutomation(row pgx.Row) (*store.Automation, error) {
	var (
		a                store.Automation
		opts             pgtype.Text
		delay            int64
		created, updated pgtype.Timestamptz
	)
	if err := row.Scan(&a.ID, &a.Name, &a.Segment, &a.On, &delay, &a.Recheck, &a.Destination, &opts, &a.Enabled, &a.Hook, &created, &updated); err != nil {
		return nil, err
	}
	if opts.Valid {
		a.Options = []byte(opts.String)
	}
	a.Delay, a.CreatedAt, a.UpdatedAt = time.Duration(delay), tget(created), tget(updated)
	return &a, nil
}

// GetAutomation returns an automation by ID or name.
func (db *DB) GetAutomation(ctx context.Context, idOrName string) (*store.Automation, error) {
	a, err := scanAutomation(db.pool.QueryRow(ctx, getAutomation, idOrName))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("automation %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: automation %s: %w", idOrName, err)
	}
	return a, nil
}

// ListAutomations returns every automation by name.
func (db *DB) ListAutomations(ctx context.Context) ([]store.Automation, error) {
	rows, err := db.pool.Query(ctx, listAutomations)
	if err != nil {
		return nil, fmt.Errorf("postgres: list automations: %w", err)
	}
	defer rows.Close()
	var out []store.Automation
	for rows.Next() {
		a, err := scanAutomation(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list automations: %w", err)
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// DeleteAutomation removes an automation.
func (db *DB) DeleteAutomation(ctx context.Context, id string) error {
	return db.deleteByID(ctx, deleteAutomation, "automation", id)
}
