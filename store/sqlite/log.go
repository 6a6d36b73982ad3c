package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

const (
	// The Seq to continue from: the highest ever given out (the newest
	// events may have been deleted since).
	logLastSeq = `SELECT max(last_seq, (SELECT coalesce(max(seq), 0) FROM events)) FROM log_state WHERE id = 1`

	setLogLastSeq = `UPDATE log_state SET last_seq = ? WHERE id = 1`

	// Retries are filtered out before the insert (see dedup.go).
	insertEvent = `
INSERT INTO events (seq, message_id, source_id, type, name, user_id, anonymous_id, previous_id,
                    group_id, anchor, ts, received_at, store, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	insertReject = `
INSERT INTO rejects (source_id, received_at, origin, idx, field, reason, payload)
VALUES (?, ?, ?, ?, ?, ?, ?)`

	eventColumns = `seq, message_id, source_id, type, name, user_id, anonymous_id, previous_id,
       group_id, anchor, ts, received_at, store, payload`

	readEvents = `SELECT ` + eventColumns + ` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`

	// The indexed part of the log through event_anchors, and the short
	// unindexed tail by scanning it. limit -1 is "no limit" in SQLite.
	eventsByAnchor = `
SELECT ` + eventColumns + ` FROM events
WHERE seq IN (SELECT seq FROM event_anchors WHERE anchor IN (SELECT value FROM json_each(?1)))
   OR (seq > (SELECT indexed_seq FROM index_state WHERE id = 1) AND anchor IN (SELECT value FROM json_each(?1)))
ORDER BY ts DESC, seq DESC
LIMIT ?2`

	// indexAnchors extends the anchor index up to a Seq the processor has
	// reached; see ApplyResolution.
	indexAnchors = `
INSERT OR IGNORE INTO event_anchors (anchor, ts, seq)
SELECT anchor, coalesce(ts, 0), seq FROM events
WHERE seq > (SELECT indexed_seq FROM index_state WHERE id = 1) AND seq <= ?1 AND anchor != ''`
	setIndexed = `UPDATE index_state SET indexed_seq = max(indexed_seq, ?1) WHERE id = 1`

	lastSeq     = `SELECT coalesce(max(seq), 0) FROM events`
	countEvents = `SELECT count(*) FROM events`

	listRejects = `
SELECT id, source_id, received_at, origin, idx, field, reason, payload FROM rejects
WHERE id > ?1 AND (?2 = '' OR source_id = ?2)
ORDER BY id
LIMIT ?3`
)

// defaultReadLimit is how many events ReadEvents returns when asked for 0.
const defaultReadLimit = 1000

// payload is the JSON form of an event's free-form maps, one column.
type payload struct {
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
}

// eventArgs is one event's column values that take work to compute,
// computed before the write transaction starts so that JSON encoding does
// not hold the write lock.
type eventArgs struct {
	ts, received, payload any
}

// encodeParallelMin is the batch size from which encoding is split across
// CPUs; below it the goroutines cost more than they save.
const encodeParallelMin = 256

// encodeEvents computes every event's eventArgs. Events are independent,
// so a big batch is encoded on all CPUs at once.
func encodeEvents(evs []kiln.Event) ([]eventArgs, error) {
	args := make([]eventArgs, len(evs))
	workers := min(runtime.GOMAXPROCS(0), len(evs)/encodeParallelMin)
	if workers <= 1 {
		return args, encodeRange(evs, args)
	}
	chunk := (len(evs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(evs))
		wg.Go(func() { errs[w] = encodeRange(evs[lo:hi], args[lo:hi]) })
	}
	wg.Wait()
	return args, errors.Join(errs...)
}

func encodeRange(evs []kiln.Event, args []eventArgs) error {
	var buf []byte
	for i := range evs {
		e, a := &evs[i], &args[i]
		var err error
		if a.ts, err = eventTime(e.Timestamp, "timestamp", e); err != nil {
			return err
		}
		if a.received, err = eventTime(e.ReceivedAt, "receivedAt", e); err != nil {
			return err
		}
		if len(e.Properties) == 0 && len(e.Traits) == 0 && len(e.Context) == 0 {
			continue
		}
		if cap(buf)-len(buf) < 4096 {
			buf = make([]byte, 0, max(64<<10, 2*cap(buf)))
		}
		start := len(buf)
		if buf, err = appendBinaryPayload(buf, e); err != nil {
			return kiln.Errorf(kiln.EInvalid, "event %q from source %q: payload cannot be stored: %v", e.MessageID, e.SourceID, err)
		}
		// The bytes are never written again (later events append after
		// them, or into a new buffer), so the slice can share them; the
		// driver copies it when binding. A []byte is stored as a BLOB.
		a.payload = buf[start:len(buf):len(buf)]
	}
	return nil
}

// Append writes b in one transaction; see store.Log.
func (db *DB) Append(ctx context.Context, b store.Batch) (int, error) {
	if len(b.Events) == 0 && len(b.Rejects) == 0 {
		return 0, nil
	}
	args, err := encodeEvents(b.Events)
	if err != nil {
		return 0, fmt.Errorf("sqlite: append: %w", err)
	}
	added := 0
	// The dedup window is checked and extended under one lock with the
	// transaction, so two appends never both take the same message id.
	db.amu.Lock()
	defer db.amu.Unlock()
	var fresh []dedupEntry
	err = db.write(ctx, func(tx *sql.Tx) error {
		added = 0
		fresh = fresh[:0]
		if len(b.Events) > 0 {
			// This is the only writer, so it can number the events itself.
			var seq int64
			if err := tx.QueryRowContext(ctx, logLastSeq).Scan(&seq); err != nil {
				return err
			}
			if err := db.dedup.catchUp(ctx, tx, seq); err != nil {
				return fmt.Errorf("reading recent message ids: %w", err)
			}
			stmt, err := tx.PrepareContext(ctx, insertEvent)
			if err != nil {
				return err
			}
			defer stmt.Close()
			inBatch := make(map[[16]byte]struct{}, len(b.Events))
			for i := range b.Events {
				e := &b.Events[i]
				a := &args[i]
				k := dedupKey(e.SourceID, e.MessageID)
				_, again := inBatch[k]
				if _, seen := db.dedup.seen[k]; seen || again {
					e.Seq = 0 // a retry
					continue
				}
				inBatch[k] = struct{}{}
				if _, err := stmt.ExecContext(ctx, seq+1, e.MessageID, e.SourceID, string(e.Type), e.Name, e.UserID,
					e.AnonymousID, e.PreviousID, e.GroupID, e.Anchor, a.ts, a.received, e.Store, a.payload); err != nil {
					return fmt.Errorf("event %q from source %q: %w", e.MessageID, e.SourceID, err)
				}
				seq++
				e.Seq = seq
				added++
				fresh = append(fresh, dedupEntry{k, e.ReceivedAt.UnixNano()})
			}
			if _, err := tx.ExecContext(ctx, setLogLastSeq, seq); err != nil {
				return err
			}
		}
		if len(b.Rejects) > 0 {
			stmt, err := tx.PrepareContext(ctx, insertReject)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, r := range b.Rejects {
				if _, err := stmt.ExecContext(ctx, r.SourceID, tval(r.ReceivedAt), r.Origin, r.Index, r.Field, r.Reason, r.Payload); err != nil {
					return fmt.Errorf("reject from source %q: %w", r.SourceID, err)
				}
			}
		}
		return nil
	})
	if err == nil {
		for _, f := range fresh {
			db.dedup.add(f.key, f.at)
		}
		for i := len(b.Events) - 1; i >= 0; i-- {
			if s := b.Events[i].Seq; s != 0 {
				db.dedup.lastSeq = max(db.dedup.lastSeq, s)
				break
			}
		}
		db.dedup.evict()
	}
	if err != nil {
		// Nothing was stored: no event keeps a Seq.
		for i := range b.Events {
			b.Events[i].Seq = 0
		}
		return 0, fmt.Errorf("sqlite: append %d events, %d rejects: %w", len(b.Events), len(b.Rejects), err)
	}
	return added, nil
}

// ReadEvents returns up to limit events after Seq after; see store.Log.
// A limit of 0 or less reads up to 1000.
func (db *DB) ReadEvents(ctx context.Context, after int64, limit int) ([]kiln.Event, error) {
	if limit <= 0 {
		limit = defaultReadLimit
	}
	rows, err := db.r.QueryContext(ctx, readEvents, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events after %d: %w", after, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events after %d: %w", after, err)
	}
	return evs, nil
}

// LastSeq returns the highest Seq, 0 when the log is empty.
func (db *DB) LastSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, lastSeq).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: last seq: %w", err)
	}
	return n, nil
}

// CountEvents returns how many events the log holds.
func (db *DB) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, countEvents).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count events: %w", err)
	}
	return n, nil
}

// EventsByAnchor returns the events of the given anchors, newest first.
func (db *DB) EventsByAnchor(ctx context.Context, anchors []string, limit int) ([]kiln.Event, error) {
	if len(anchors) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = -1
	}
	list, err := json.Marshal(anchors)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events by anchor: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, eventsByAnchor, string(list), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events by anchor: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events by anchor: %w", err)
	}
	return evs, nil
}

func scanEvents(rows *sql.Rows) ([]kiln.Event, error) {
	defer rows.Close()
	var evs []kiln.Event
	var raw [][]byte // payloads, decoded after the scan on every CPU
	for rows.Next() {
		var (
			e            kiln.Event
			typ          string
			ts, received sql.NullInt64
			p            sql.RawBytes
		)
		if err := rows.Scan(&e.Seq, &e.MessageID, &e.SourceID, &typ, &e.Name, &e.UserID, &e.AnonymousID,
			&e.PreviousID, &e.GroupID, &e.Anchor, &ts, &received, &e.Store, &p); err != nil {
			return nil, err
		}
		e.Type = kiln.EventType(typ)
		e.Timestamp = tget(ts)
		e.ReceivedAt = tget(received)
		evs = append(evs, e)
		raw = append(raw, bytes.Clone(p)) // RawBytes is only valid until Next
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return evs, decodePayloads(evs, raw)
}

// decodePayloads fills each event's maps from its stored payload (binary,
// or JSON in older rows; see payload.go). Decoding is much of the cost of
// reading the log (a recompute reads all of it), so large reads are split
// across CPUs.
func decodePayloads(evs []kiln.Event, raw [][]byte) error {
	decode := func(lo, hi int) error {
		d := newPayloadDecoder()
		for i := lo; i < hi; i++ {
			if err := d.decodeInto(raw[i], &evs[i]); err != nil {
				return fmt.Errorf("event %d: payload: %w", evs[i].Seq, err)
			}
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(evs)/encodeParallelMin)
	if workers <= 1 {
		return decode(0, len(evs))
	}
	chunk := (len(evs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(evs))
		wg.Go(func() { errs[w] = decode(lo, hi) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ListRejects returns rejects after f.After, oldest first.
func (db *DB) ListRejects(ctx context.Context, f store.RejectFilter) ([]kiln.Reject, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.r.QueryContext(ctx, listRejects, f.After, f.SourceID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list rejects: %w", err)
	}
	defer rows.Close()
	var out []kiln.Reject
	for rows.Next() {
		var (
			r        kiln.Reject
			received sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.SourceID, &received, &r.Origin, &r.Index, &r.Field, &r.Reason, &r.Payload); err != nil {
			return nil, fmt.Errorf("sqlite: list rejects: %w", err)
		}
		r.ReceivedAt = tget(received)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list rejects: %w", err)
	}
	return out, nil
}
