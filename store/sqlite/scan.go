package sqlite

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"runtime"
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
	scanLogQuery = `SELECT ` + eventColumns + ` FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3`

	// scanChunkSize is the events per chunk: big enough that the per-query
	// and per-stage costs vanish, small enough that the three stages
	// overlap on a short log and the buffers stay in cache-friendly sizes.
	scanChunkSize = 4096
	// scanBuffers is how many chunks are in flight: one per stage.
	scanBuffers = 3
	// scanColumns is the number of columns in eventColumns.
	scanColumns = 14
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
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("the SQLite driver's connection (%T) cannot prepare statements", dc)
	}
	st, err := pc.PrepareContext(ctx, scanLogQuery)
	if err != nil {
		return err
	}
	defer st.Close()
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("the SQLite driver's statement (%T) cannot query with a context", st)
	}
	row := make([]driver.Value, scanColumns)
	for after < upTo {
		var c *scanChunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		rows, err := sq.QueryContext(ctx, []driver.NamedValue{
			{Ordinal: 1, Value: after}, {Ordinal: 2, Value: upTo}, {Ordinal: 3, Value: int64(scanChunkSize)}})
		if err != nil {
			return fmt.Errorf("reading events after %d: %w", after, err)
		}
		err = readRows(rows, row, c)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
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

// readRows reads every row of rows into c, replacing its events.
func readRows(rows driver.Rows, row []driver.Value, c *scanChunk) error {
	c.evs, c.raw, c.err = c.evs[:0], c.raw[:0], nil
	for {
		if err := rows.Next(row); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		c.evs = append(c.evs, kiln.Event{})
		e := &c.evs[len(c.evs)-1]
		var bad int // the first column of an unexpected type, +1
		text := func(i int) string {
			switch x := row[i].(type) {
			case string:
				return x
			case nil:
			default:
				bad = cmp.Or(bad, i+1)
			}
			return ""
		}
		integer := func(i int) (int64, bool) {
			switch x := row[i].(type) {
			case int64:
				return x, true
			case nil:
			default:
				bad = cmp.Or(bad, i+1)
			}
			return 0, false
		}
		e.Seq, _ = integer(0)
		e.MessageID, e.SourceID, e.Type, e.Name = text(1), text(2), kiln.EventType(text(3)), text(4)
		e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = text(5), text(6), text(7), text(8)
		e.Anchor, e.Store = text(9), text(12)
		if ts, ok := integer(10); ok {
			e.Timestamp = time.Unix(0, ts).UTC()
		}
		if ts, ok := integer(11); ok {
			e.ReceivedAt = time.Unix(0, ts).UTC()
		}
		var p []byte
		switch v := row[13].(type) {
		case []byte:
			p = v // the driver's own copy, never reused
		case string:
			p = []byte(v) // a JSON row, stored as text
		case nil:
		default:
			bad = cmp.Or(bad, 14)
		}
		if bad != 0 {
			return fmt.Errorf("event %d: column %d holds a %T", e.Seq, bad-1, row[bad-1])
		}
		c.raw = append(c.raw, p)
	}
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
