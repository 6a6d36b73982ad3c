package sqlite

import (
	"context"
	"database/sql"
	"hash/fnv"
	"time"
)

// DefaultDedupWindow is how long a message id is remembered to recognise
// retries. Segment's own service keeps "at least 24 hours" of message ids;
// clients retry within minutes.
const DefaultDedupWindow = 24 * time.Hour

// dedup remembers the (source, message id) pairs appended within the
// window, as 128-bit hashes (a false match needs ~2^64 ids). It replaces a
// unique index whose random insert order made every append rewrite a page
// per event. It is exact across processes writing the same file: before
// each append it reads whatever another process appended since.
//
// Memory: about 60 bytes per message id in the window.
type dedup struct {
	window  time.Duration
	seen    map[[16]byte]int64 // hash -> the ReceivedAt (unix ns) it was stored with
	order   []dedupEntry       // in append order, for eviction
	head    int
	newest  int64 // newest ReceivedAt seen (unix ns): the window ends here
	lastSeq int64 // the log as far as this process has seen it
}

type dedupEntry struct {
	key [16]byte
	at  int64
}

func dedupKey(source, message string) [16]byte {
	h := fnv.New128a()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(message))
	var k [16]byte
	h.Sum(k[:0])
	return k
}

func newDedup(window time.Duration) *dedup {
	if window <= 0 {
		window = DefaultDedupWindow
	}
	return &dedup{window: window, seen: map[[16]byte]int64{}}
}

func (d *dedup) add(k [16]byte, at int64) {
	d.seen[k] = at
	d.order = append(d.order, dedupEntry{k, at})
	if at > d.newest {
		d.newest = at
	}
}

// evict forgets ids older than the window.
func (d *dedup) evict() {
	cut := d.newest - int64(d.window)
	for d.head < len(d.order) && d.order[d.head].at < cut {
		e := d.order[d.head]
		if d.seen[e.key] == e.at {
			delete(d.seen, e.key)
		}
		d.head++
	}
	if d.head > 4096 && d.head > len(d.order)/2 {
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
}

// catchUp loads the ids of events appended after d.lastSeq (by another
// process, or before this one started), newest first until the window is
// passed, then in append order.
func (d *dedup) catchUp(ctx context.Context, q querier, upTo int64) error {
	if upTo <= d.lastSeq {
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT source_id, message_id, coalesce(received_at, 0) FROM events WHERE seq > ? AND seq <= ? ORDER BY seq DESC`, d.lastSeq, upTo)
	if err != nil {
		return err
	}
	defer rows.Close()
	var got []dedupEntry
	var newest int64
	for rows.Next() {
		var src, msg string
		var at int64
		if err := rows.Scan(&src, &msg, &at); err != nil {
			return err
		}
		if newest == 0 {
			newest = at
		}
		if at < newest-int64(d.window) && at < d.newest-int64(d.window) {
			break // older than the window: the rest is older still
		}
		got = append(got, dedupEntry{dedupKey(src, msg), at})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := len(got) - 1; i >= 0; i-- {
		d.add(got[i].key, got[i].at)
	}
	d.lastSeq = upTo
	d.evict()
	return nil
}

var _ querier = (*sql.Tx)(nil)
