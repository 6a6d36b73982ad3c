package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
)

// A replay (a segment definition changed) reads the whole log, so
// ScanLog is built for throughput: three stages run at once, on their own
// goroutines, each on a different chunk: one reads the next chunk's rows,
// one decodes the payloads of the chunk before (split across CPUs), and
// the caller's fn processes the one before that. The chunks' buffers are
// reused, and rows are read through the driver directly, which skips
// database/sql's per-column conversions and a copy of every payload.
//
// Each chunk is its own short query (keyset by seq), not one statement
// held open for the whole scan: a read transaction open for a minute
// would keep the writer's checkpoints from recycling the WAL meanwhile.

const (
	// The ten text columns come as one value, joined by NUL bytes: each
	// column costs the driver several calls and two allocations, and
	// events have ten. A value that itself holds a NUL (possible, never
	// seen in practice) shows as a wrong count of separators, and that row
	// is read again column by column (scanRowQuery).
	scanLogQuery = `
SELECT seq, ts, received_at, payload,
       message_id || char(0) || source_id || char(0) || type || char(0) || name || char(0) ||
       user_id || char(0) || anonymous_id || char(0) || previous_id || char(0) || group_id || char(0) ||
       anchor || char(0) || store
FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3`
	scanRowQuery = `SELECT ` + eventColumns + ` FROM events WHERE seq = ?1`

	// scanChunkSize is the events per chunk: big enough that the per-query
	// and per-stage costs vanish, small enough that the three stages
	// overlap on a short log and the buffers stay in cache-friendly sizes.
	scanChunkSize = 4096
	// scanBuffers is how many chunks are in flight: one per stage.
	scanBuffers = 3
	// scanColumns is the number of columns of scanLogQuery, rowColumns
	// of scanRowQuery (eventColumns) and textColumns the number of text
	// columns joined in scanLogQuery.
	scanColumns = 5
	rowColumns  = 14
	textColumns = 10
)

// scanChunk is one chunk's events and their undecoded payloads.
type scanChunk struct {
	evs []kiln.Event
	raw [][]byte
	err error
}

// ScanLog calls fn with consecutive chunks of events with after < Seq <=
// upTo, in Seq order; see store.Log. fn must not keep the slice (it is
// reused) but may keep the events' maps and strings. An error from fn
// stops the scan and is returned as it is.
func (db *DB) ScanLog(ctx context.Context, after, upTo int64, fn func([]kiln.Event) error) error {
	if upTo <= after {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: scan log after %d: %w", after, err)
	}
	defer conn.Close()

	free := make(chan *scanChunk, scanBuffers)
	for range scanBuffers {
		free <- &scanChunk{evs: make([]kiln.Event, 0, scanChunkSize), raw: make([][]byte, 0, scanChunkSize)}
	}
	// No send below blocks: a channel has room for every chunk and an
	// error.
	scanned := make(chan *scanChunk, scanBuffers+1)
	decoded := make(chan *scanChunk, scanBuffers+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(scanned)
		err := conn.Raw(func(dc any) error { return readChunks(ctx, dc, after, upTo, free, scanned) })
		if err != nil && ctx.Err() == nil {
			scanned <- &scanChunk{err: err}
		}
	})
	wg.Go(func() {
		defer close(decoded)
		decs := make([]*payloadDecoder, runtime.GOMAXPROCS(0))
		for i := range decs {
			decs[i] = newPayloadDecoder()
		}
		for c := range scanned {
			if c.err == nil {
				c.err = decodeChunk(c, decs)
			}
			decoded <- c
		}
	})
	// Stop the stages and wait for them on every return, so that the
	// connection goes back to the pool idle.
	defer wg.Wait()
	defer cancel()
	for c := range decoded {
		if c.err != nil {
			return fmt.Errorf("sqlite: scan log after %d up to %d: %w", after, upTo, c.err)
		}
		if err := ctx.Err(); err != nil {
			return err // chunks read before the cancellation are dropped
		}
		last := c.evs[len(c.evs)-1].Seq // before fn, which may write over the slice
		if err := fn(c.evs); err != nil {
			return err
		}
		after = last
		free <- c
	}
	return ctx.Err()
}

// readChunks fills chunks from free with the rows after after, up to upTo,
// and sends each to out, until the range is read or ctx is done.
func readChunks(ctx context.Context, dc any, after, upTo int64, free <-chan *scanChunk, out chan<- *scanChunk) error {
	r, err := newRowReader(ctx, dc)
	if err != nil {
		return err
	}
	defer r.close()
	for after < upTo {
		var c *scanChunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := r.read(ctx, after, upTo, c); err != nil {
			return fmt.Errorf("reading events after %d: %w", after, err)
		}
		if len(c.evs) == 0 {
			return nil // the rest of the range has no events
		}
		after = c.evs[len(c.evs)-1].Seq
		out <- c
		if len(c.evs) < scanChunkSize {
			return nil
		}
	}
	return nil
}

// rowReader reads events through the driver's own statements.
type rowReader struct {
	prep  driver.ConnPrepareContext
	chunk driver.StmtQueryContext
	one   driver.StmtQueryContext // scanRowQuery, prepared when first needed
	stmts []driver.Stmt
	row   []driver.Value
}

func newRowReader(ctx context.Context, dc any) (*rowReader, error) {
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("the SQLite driver's connection (%T) cannot prepare statements", dc)
	}
	r := &rowReader{prep: pc, row: make([]driver.Value, scanColumns)}
	var err error
	if r.chunk, err = r.prepare(ctx, scanLogQuery); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rowReader) prepare(ctx context.Context, q string) (driver.StmtQueryContext, error) {
	st, err := r.prep.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	r.stmts = append(r.stmts, st)
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		return nil, fmt.Errorf("the SQLite driver's statement (%T) cannot query with a context", st)
	}
	return sq, nil
}

func (r *rowReader) close() {
	for _, st := range r.stmts {
		st.Close()
	}
}

// read reads the events after after, up to upTo, at most a chunk, into c.
func (r *rowReader) read(ctx context.Context, after, upTo int64, c *scanChunk) error {
	rows, err := r.chunk.QueryContext(ctx, []driver.NamedValue{
		{Ordinal: 1, Value: after}, {Ordinal: 2, Value: upTo}, {Ordinal: 3, Value: int64(scanChunkSize)}})
	if err != nil {
		return err
	}
	err = r.readRows(ctx, rows, c)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRows reads every row of rows into c, replacing its events.
func (r *rowReader) readRows(ctx context.Context, rows driver.Rows, c *scanChunk) error {
	c.evs, c.raw, c.err = c.evs[:0], c.raw[:0], nil
	row := r.row
	for {
		if err := rows.Next(row); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		c.evs = append(c.evs, kiln.Event{})
		e := &c.evs[len(c.evs)-1]
		var ok [3]bool
		var v [3]int64
		for i := range v {
			switch x := row[i].(type) {
			case int64:
				v[i], ok[i] = x, true
			case nil:
			default:
				return fmt.Errorf("event after %d: column %d holds a %T", seqBefore(c), i, x)
			}
		}
		e.Seq = v[0]
		if ok[1] {
			e.Timestamp = time.Unix(0, v[1]).UTC()
		}
		if ok[2] {
			e.ReceivedAt = time.Unix(0, v[2]).UTC()
		}
		p, err := payloadBytes(row[3])
		if err != nil {
			return fmt.Errorf("event %d: %w", e.Seq, err)
		}
		text, _ := row[4].(string)
		if !splitText(text, e) {
			// A column holds a NUL (or the row is not what it should be):
			// read it column by column.
			if p, err = r.readOne(ctx, e); err != nil {
				return fmt.Errorf("event %d: %w", e.Seq, err)
			}
		}
		c.raw = append(c.raw, p)
	}
}

// splitText sets e's text fields from the NUL-joined text columns, and
// reports whether it held exactly their number.
func splitText(text string, e *kiln.Event) bool {
	var f [textColumns]string
	for i := range textColumns - 1 {
		j := strings.IndexByte(text, 0)
		if j < 0 {
			return false
		}
		f[i], text = text[:j], text[j+1:]
	}
	if strings.IndexByte(text, 0) >= 0 {
		return false
	}
	f[textColumns-1] = text
	e.MessageID, e.SourceID, e.Type, e.Name = f[0], f[1], eventType(f[2]), f[3]
	e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = f[4], f[5], f[6], f[7]
	e.Anchor, e.Store = f[8], f[9]
	return true
}

// eventType returns the constant for a known type, so that a kept Type
// does not keep its row's text alive.
func eventType(s string) kiln.EventType {
	for _, t := range [...]kiln.EventType{kiln.Track, kiln.Identify, kiln.Page, kiln.Group, kiln.Alias, kiln.Screen} {
		if s == string(t) {
			return t
		}
	}
	return kiln.EventType(s)
}

// readOne reads e's text columns and payload by e.Seq, one column each.
func (r *rowReader) readOne(ctx context.Context, e *kiln.Event) ([]byte, error) {
	if r.one == nil {
		var err error
		if r.one, err = r.prepare(ctx, scanRowQuery); err != nil {
			return nil, err
		}
	}
	rows, err := r.one.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: e.Seq}})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	row := make([]driver.Value, rowColumns)
	if err := rows.Next(row); err != nil {
		return nil, err
	}
	var f [rowColumns]string
	for _, i := range [...]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 12} {
		switch x := row[i].(type) {
		case string:
			f[i] = x
		case nil:
		default:
			return nil, fmt.Errorf("column %d holds a %T", i, x)
		}
	}
	e.MessageID, e.SourceID, e.Type, e.Name = f[1], f[2], eventType(f[3]), f[4]
	e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = f[5], f[6], f[7], f[8]
	e.Anchor, e.Store = f[9], f[12]
	return payloadBytes(row[13])
}

func payloadBytes(v driver.Value) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil // the driver's own copy, never reused
	case string:
		return []byte(x), nil // a JSON row, stored as text
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("payload is a %T", v)
}

// seqBefore names the last event read before the current one, for errors.
func seqBefore(c *scanChunk) int64 {
	if len(c.evs) < 2 {
		return 0
	}
	return c.evs[len(c.evs)-2].Seq
}

// decodeChunk decodes the payloads of c's events, split across decs (one
// decoder per CPU, kept for the whole scan so that their string caches
// stay warm).
func decodeChunk(c *scanChunk, decs []*payloadDecoder) error {
	decode := func(d *payloadDecoder, lo, hi int) error {
		for i := lo; i < hi; i++ {
			if err := d.decodeInto(c.raw[i], &c.evs[i]); err != nil {
				return fmt.Errorf("event %d: payload: %w", c.evs[i].Seq, err)
			}
			c.raw[i] = nil // let the bytes go
		}
		return nil
	}
	workers := min(len(decs), len(c.evs)/encodeParallelMin)
	if workers <= 1 {
		return decode(decs[0], 0, len(c.evs))
	}
	chunk := (len(c.evs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(c.evs))
		wg.Go(func() { errs[w] = decode(decs[w], lo, hi) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
