package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/internal/payloadjson"
)

const (
	// An acknowledged append must survive a crash, whatever the server's
	// default for synchronous_commit.
	durableCommit = `SET LOCAL synchronous_commit TO on`

	takeAppendLock = `SELECT pg_advisory_xact_lock($1)`

	// One statement for the whole batch. Rows are inserted in batch order
	// (ORDER BY ord), so Seqs increase in that order; a retry, within the
	// batch or of a stored event, conflicts and is skipped (its Seq number
	// is used up, leaving a gap).
	insertEvents = `
INSERT INTO events (message_id, source_id, type, name, user_id, anonymous_id, previous_id,
                    group_id, anchor, ts, received_at, store, payload)
SELECT message_id, source_id, type, name, user_id, anonymous_id, previous_id,
       group_id, anchor, ts, received_at, store, payload::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[], $13::text[])
     WITH ORDINALITY AS t(message_id, source_id, type, name, user_id, anonymous_id, previous_id,
                          group_id, anchor, ts, received_at, store, payload, ord)
ORDER BY ord
ON CONFLICT (source_id, message_id) DO NOTHING
RETURNING seq, source_id, message_id`

	insertRejects = `
INSERT INTO rejects (source_id, received_at, origin, idx, field, reason, payload)
SELECT source_id, received_at, origin, idx, field, reason, payload
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bytea[])
     WITH ORDINALITY AS t(source_id, received_at, origin, idx, field, reason, payload, ord)
ORDER BY ord`

	eventColumns = `seq, message_id, source_id, type, name, user_id, anonymous_id, previous_id,
       group_id, anchor, ts, received_at, store, payload`

	readEvents = `SELECT ` + eventColumns + ` FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`

	// LIMIT NULL is no limit. NULLS LAST: as SQLite orders them.
	eventsByAnchor = `
SELECT ` + eventColumns + ` FROM events
WHERE anchor = ANY($1::text[])
ORDER BY ts DESC NULLS LAST, seq DESC
LIMIT $2`

	lastSeq     = `SELECT coalesce(max(seq), 0) FROM events`
	countEvents = `SELECT count(*) FROM events`

	listRejects = `
SELECT id, source_id, received_at, origin, idx, field, reason, payload FROM rejects
WHERE id > $1 AND ($2 = '' OR source_id = $2)
ORDER BY id
LIMIT $3`
)

// defaultReadLimit is how many events ReadEvents returns when asked for 0.
const defaultReadLimit = 1000

// payload is the JSON form of an event's free-form maps, one column.
type payload struct {
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
}

// eventColumns holds a batch column by column, as insertEvents takes it.
type eventCols struct {
	messageID, sourceID, typ, name, userID, anonymousID, previousID, groupID, anchor, store []string
	ts, received                                                                            []pgtype.Timestamptz
	payload                                                                                 []pgtype.Text
}

// encodeParallelMin is the batch size from which payload encoding is split
// across CPUs; below it the goroutines cost more than they save.
const encodeParallelMin = 256

func encodeEvents(evs []kiln.Event) (*eventCols, error) {
	n := len(evs)
	c := &eventCols{
		messageID: make([]string, n), sourceID: make([]string, n), typ: make([]string, n),
		name: make([]string, n), userID: make([]string, n), anonymousID: make([]string, n),
		previousID: make([]string, n), groupID: make([]string, n), anchor: make([]string, n),
		store: make([]string, n), ts: make([]pgtype.Timestamptz, n), received: make([]pgtype.Timestamptz, n),
		payload: make([]pgtype.Text, n),
	}
	for i := range evs {
		e := &evs[i]
		c.messageID[i], c.sourceID[i], c.typ[i], c.name[i] = e.MessageID, e.SourceID, string(e.Type), e.Name
		c.userID[i], c.anonymousID[i], c.previousID[i], c.groupID[i] = e.UserID, e.AnonymousID, e.PreviousID, e.GroupID
		c.anchor[i], c.store[i] = e.Anchor, e.Store
		c.ts[i], c.received[i] = tval(e.Timestamp), tval(e.ReceivedAt)
	}
	workers := min(runtime.GOMAXPROCS(0), n/encodeParallelMin)
	if workers <= 1 {
		return c, encodePayloads(evs, c.payload)
	}
	chunk := (n + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		wg.Go(func() { errs[w] = encodePayloads(evs[lo:hi], c.payload[lo:hi]) })
	}
	wg.Wait()
	return c, errors.Join(errs...)
}

func encodePayloads(evs []kiln.Event, out []pgtype.Text) error {
	var buf []byte
	for i := range evs {
		e := &evs[i]
		if len(e.Properties) == 0 && len(e.Traits) == 0 && len(e.Context) == 0 {
			continue
		}
		buf = buf[:0]
		var err error
		if buf, err = payloadjson.Append(buf, e); err != nil {
			return kiln.Errorf(kiln.EInvalid, "event %q from source %q: payload cannot be stored as JSON: %v", e.MessageID, e.SourceID, err)
		}
		out[i] = pgtype.Text{String: string(buf), Valid: true}
	}
	return nil
}

type eventKey struct{ source, message string }

// Append writes b in one transaction; see store.Log.
func (db *DB) Append(ctx context.Context, b store.Batch) (int, error) {
	if len(b.Events) == 0 && len(b.Rejects) == 0 {
		return 0, nil
	}
	cols, err := encodeEvents(b.Events)
	if err != nil {
		return 0, fmt.Errorf("postgres: append: %w", err)
	}
	for i := range b.Events {
		b.Events[i].Seq = 0
	}
	added := 0
	err = db.write(ctx, func(tx pgx.Tx) error {
		added = 0
		if _, err := tx.Exec(ctx, durableCommit); err != nil {
			return err
		}
		if len(b.Events) > 0 {
			if _, err := tx.Exec(ctx, takeAppendLock, appendLock); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, insertEvents, cols.messageID, cols.sourceID, cols.typ, cols.name,
				cols.userID, cols.anonymousID, cols.previousID, cols.groupID, cols.anchor,
				cols.ts, cols.received, cols.store, cols.payload)
			if err != nil {
				return err
			}
			seqs := make(map[eventKey]int64, len(b.Events))
			for rows.Next() {
				var (
					seq int64
					k   eventKey
				)
				if err := rows.Scan(&seq, &k.source, &k.message); err != nil {
					rows.Close()
					return err
				}
				seqs[k] = seq
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			// The first event with a key is the one stored; later ones in
			// the batch are retries of it.
			for i := range b.Events {
				e := &b.Events[i]
				k := eventKey{e.SourceID, e.MessageID}
				if seq, ok := seqs[k]; ok {
					e.Seq = seq
					delete(seqs, k)
					added++
				}
			}
		}
		if len(b.Rejects) > 0 {
			if err := insertRejectRows(ctx, tx, b.Rejects); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i := range b.Events {
			b.Events[i].Seq = 0
		}
		return 0, fmt.Errorf("postgres: append %d events, %d rejects: %w", len(b.Events), len(b.Rejects), dataError(err))
	}
	return added, nil
}

// rejectText makes a reject's text storable in a text column, which holds
// neither NUL nor invalid UTF-8. The text describes a bad message (a file
// name, a field path) and may quote its bad bytes; failing the append over
// it would lose the message's neighbours. The payload is kept as bytes.
func rejectText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\\u0000")
}

func insertRejectRows(ctx context.Context, tx pgx.Tx, rs []kiln.Reject) error {
	n := len(rs)
	src, origin, field, reason := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	received := make([]pgtype.Timestamptz, n)
	idx := make([]int32, n)
	payloads := make([][]byte, n)
	for i, r := range rs {
		src[i], origin[i], field[i], reason[i] = r.SourceID, rejectText(r.Origin), rejectText(r.Field), rejectText(r.Reason)
		received[i], idx[i], payloads[i] = tval(r.ReceivedAt), int32(r.Index), r.Payload
	}
	_, err := tx.Exec(ctx, insertRejects, src, received, origin, idx, field, reason, payloads)
	return err
}

// ReadEvents returns up to limit events after Seq after; see store.Log.
// A limit of 0 or less reads up to 1000.
func (db *DB) ReadEvents(ctx context.Context, after int64, limit int) ([]kiln.Event, error) {
	if limit <= 0 {
		limit = defaultReadLimit
	}
	rows, err := db.pool.Query(ctx, readEvents, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read events after %d: %w", after, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: read events after %d: %w", after, err)
	}
	return evs, nil
}

// LastSeq returns the highest Seq, 0 when the log is empty.
func (db *DB) LastSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, lastSeq).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: last seq: %w", err)
	}
	return n, nil
}

// CountEvents returns how many events the log holds.
func (db *DB) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, countEvents).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count events: %w", err)
	}
	return n, nil
}

// EventsByAnchor returns the events of the given anchors, newest first.
func (db *DB) EventsByAnchor(ctx context.Context, anchors []string, limit int) ([]kiln.Event, error) {
	if len(anchors) == 0 {
		return nil, nil
	}
	lim := pgtype.Int8{Int64: int64(limit), Valid: limit > 0}
	rows, err := db.pool.Query(ctx, eventsByAnchor, anchors, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: events by anchor: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events by anchor: %w", err)
	}
	return evs, nil
}

func scanEvents(rows pgx.Rows) ([]kiln.Event, error) {
	defer rows.Close()
	var evs []kiln.Event
	for rows.Next() {
		var (
			e            kiln.Event
			typ          string
			ts, received pgtype.Timestamptz
			p            []byte
		)
		if err := rows.Scan(&e.Seq, &e.MessageID, &e.SourceID, &typ, &e.Name, &e.UserID, &e.AnonymousID,
			&e.PreviousID, &e.GroupID, &e.Anchor, &ts, &received, &e.Store, &p); err != nil {
			return nil, err
		}
		e.Type = kiln.EventType(typ)
		e.Timestamp, e.ReceivedAt = tget(ts), tget(received)
		if len(p) > 0 {
			var pl payload
			if err := json.Unmarshal(p, &pl); err != nil {
				return nil, fmt.Errorf("event %d: payload: %w", e.Seq, err)
			}
			e.Properties, e.Traits, e.Context = pl.Properties, pl.Traits, pl.Context
		}
		evs = append(evs, e)
	}
	return evs, rows.Err()
}

// ListRejects returns rejects after f.After, oldest first.
func (db *DB) ListRejects(ctx context.Context, f store.RejectFilter) ([]kiln.Reject, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.pool.Query(ctx, listRejects, f.After, f.SourceID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list rejects: %w", err)
	}
	defer rows.Close()
	var out []kiln.Reject
	for rows.Next() {
		var (
			r        kiln.Reject
			received pgtype.Timestamptz
			idx      int32
		)
		if err := rows.Scan(&r.ID, &r.SourceID, &received, &r.Origin, &idx, &r.Field, &r.Reason, &r.Payload); err != nil {
			return nil, fmt.Errorf("postgres: list rejects: %w", err)
		}
		r.ReceivedAt, r.Index = tget(received), int(idx)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list rejects: %w", err)
	}
	return out, nil
}
