package postgres

import (
	"context"
	"fmt"

	"github.com/kiln-cdp/kiln"
)

// scanLogChunk is how many events ScanLog reads per query: big enough that
// the round trips do not count, small enough that no query holds a
// snapshot (and so vacuum) back for long.
const scanLogChunk = 5000

const scanLog = `SELECT ` + eventColumns + ` FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`

// ScanLog calls fn with consecutive chunks of events with after < Seq <=
// upTo, in Seq order; see store.Log. Each chunk is its own query, by seq
// (keyset paging on the primary key). An error from fn stops the scan and
// is returned as it is.
func (db *DB) ScanLog(ctx context.Context, after, upTo int64, fn func([]kiln.Event) error) error {
	for after < upTo {
		rows, err := db.pool.Query(ctx, scanLog, after, upTo, scanLogChunk)
		if err != nil {
			return fmt.Errorf("postgres: scan log after %d up to %d: %w", after, upTo, err)
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return fmt.Errorf("postgres: scan log after %d up to %d: %w", after, upTo, err)
		}
		if len(evs) == 0 {
			return nil
		}
		// Before fn, which may write over the slice.
		n, last := len(evs), evs[len(evs)-1].Seq
		if err := fn(evs); err != nil {
			return err
		}
		if n < scanLogChunk {
			return nil
		}
		after = last
	}
	return nil
}
