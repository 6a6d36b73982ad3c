package action

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-cdp/kiln/store"
)

// Each destination has its own queue of held items and its own workers,
// so that a slow or hung destination holds up only itself: its queue
// fills, the dispatcher stops claiming for it (the store claims per
// destination, by index), and every other destination keeps its workers.
//
// The workers of a connector destination take up to the connector's
// largest batch of items at once and send them in one call (batch.go).

// destQueue is one destination's items in this process.
type destQueue struct {
	id string
	ch chan *held   // waiting for a worker
	n  atomic.Int64 // held: routed here, outcome not yet recorded
	st *destStats
	// collectMu lets one worker at a time collect a batch, so batches fill.
	collectMu sync.Mutex
	// batch is the most items a call takes, as the workers last saw it
	// (0: not known yet): above 1, claims take runs of lanes.
	batch atomic.Int64
}

// held is an item this process holds a lease on, from its claim (or its
// planning) until its outcome is recorded. The heartbeat renews the lease
// meanwhile, so an item may wait in its queue or run a long call without
// another worker claiming it.
type held struct {
	item  store.OutboxItem
	fresh bool // leased at planning: check the lane before sending
	q     *destQueue
	// lease is when the lease ends as far as this process knows (local
	// clock, Unix ns): a call must end before it.
	lease atomic.Int64
	// lost says the lease could not be renewed because it had ended: the
	// item may belong to another worker, so it is neither sent nor recorded.
	lost   atomic.Bool
	mu     sync.Mutex
	cancel context.CancelFunc // of the call in flight
}

func (h *held) leaseEnd() time.Time { return time.Unix(0, h.lease.Load()) }

// setCall records the cancel of the call in flight (nil: none). It
// reports false when the lease is lost already: do not call.
func (h *held) setCall(cancel context.CancelFunc) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cancel = cancel
	return !h.lost.Load()
}

// lose marks the lease lost and stops the call in flight.
func (h *held) lose() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lost.Store(true)
	if h.cancel != nil {
		h.cancel()
	}
}

// outcome is what became of a held item.
type outcome struct {
	h      *held
	res    store.OutboxResult
	forget bool // the lease was lost: record nothing, the new holder will
}

// queueCap is how many items one destination may hold.
func (d *Dispatcher) queueCap() int { return d.cfg.Queue }

// queue returns the destination's queue, starting its workers on first use.
func (d *Dispatcher) queue(rs *runState, dest string) *destQueue {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	if q := d.queues[dest]; q != nil {
		return q
	}
	q := &destQueue{id: dest, ch: make(chan *held, d.queueCap()), st: d.stats(dest)}
	d.queues[dest] = q
	for range d.cfg.Workers {
		rs.workers.Add(1)
		go func() {
			defer rs.workers.Done()
			for {
				n := d.batchOf(rs.sendCtx, dest)
				q.batch.Store(int64(n))
				if n > 1 {
					hs, open := q.collect(n)
					if len(hs) > 0 {
						for _, o := range d.workBatch(rs.sendCtx, hs) {
							rs.results <- o
						}
					}
					if !open {
						return
					}
					continue
				}
				h, open := <-q.ch
				if !open {
					return
				}
				rs.results <- d.work(rs.sendCtx, h)
			}
		}()
	}
	return q
}

// route gives a held item to its destination's queue: the loop routes
// what it claims, offer what the planner leased. The count is reserved
// first, so the channel, which holds a whole queue, never blocks.
func (d *Dispatcher) route(rs *runState, h *held) {
	q := d.queue(rs, h.item.Destination)
	h.q = q
	d.hold(h)
	if q.n.Add(1) > int64(d.queueCap()) {
		// Only items leased at planning can overflow (claims ask for what
		// fits): they go back to the outbox, to be claimed when there is room.
		r := d.handBack(store.OutboxResult{ID: h.item.ID, At: d.cfg.Now()}, "handed back unsent: the destination's queue is full", 0)
		d.record(q.st, r)
		rs.results <- outcome{h: h, res: r}
		return
	}
	q.ch <- h // never blocks: the channel holds a whole queue
}

// wants is what to claim: for each destination with room (a quarter of
// its queue, or any room when it holds nothing, so that a trickle is
// claimed at once), that room.
func (d *Dispatcher) wants() []store.DestinationClaim {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	c := int64(d.queueCap())
	var out []store.DestinationClaim
	for id := range d.known {
		var n int64
		var batch int64
		if q := d.queues[id]; q != nil {
			n = q.n.Load()
			batch = q.batch.Load()
		}
		// Runs for batching destinations; before its workers know, a
		// vendor connector is taken to batch (they all do).
		runs := batch > 1 || batch == 0 && d.isConnector(id)
		free := c - n
		// A batching destination claims whole batches: a claim cut at
		// its room would leave the next call part-filled.
		whole := min(batch, c)
		if whole > 1 && free >= whole {
			free -= free % whole
		}
		if free > 0 && (n == 0 || free >= max(c/4, whole)) {
			out = append(out, store.DestinationClaim{Destination: id, Limit: int(free), Runs: runs})
		}
	}
	return out
}

func (d *Dispatcher) hold(h *held) {
	d.heldMu.Lock()
	d.held[h.item.ID] = h
	d.heldMu.Unlock()
}

func (d *Dispatcher) unhold(h *held) {
	d.heldMu.Lock()
	if d.held[h.item.ID] == h {
		delete(d.held, h.item.ID)
	}
	d.heldMu.Unlock()
}

// heartbeat renews the leases of every held item every quarter lease
// until ctx ends. A renewal that fails (the store is unreachable) leaves
// the leases to run down: calls are bounded by what is left of theirs,
// and items with too little left go back unsent. An item whose lease had
// ended is lost: its call is stopped and it is not recorded.
func (d *Dispatcher) heartbeat(ctx context.Context) {
	t := time.NewTicker(d.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.renew(ctx)
	}
}

func (d *Dispatcher) renew(ctx context.Context) {
	d.heldMu.Lock()
	ids := make([]int64, 0, len(d.held))
	for id, h := range d.held {
		if !h.lost.Load() {
			ids = append(ids, id)
		}
	}
	d.heldMu.Unlock()
	if len(ids) == 0 {
		return
	}
	start, now := time.Now(), d.cfg.Now()
	rctx, cancel := context.WithTimeout(ctx, d.cfg.Lease/4)
	got, err := d.st.ExtendOutbox(rctx, ids, now, now.Add(d.cfg.Lease))
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("renewing delivery leases failed; calls are cut to what is left of theirs", "items", len(ids), "err", err)
		}
		return
	}
	renewed := make(map[int64]bool, len(got))
	for _, id := range got {
		renewed[id] = true
	}
	end := start.Add(d.cfg.Lease).UnixNano()
	d.heldMu.Lock()
	defer d.heldMu.Unlock()
	for _, id := range ids {
		h := d.held[id]
		switch {
		case h == nil: // finished meanwhile
		case renewed[id]:
			h.lease.Store(end)
		default:
			// Not renewed: finished in the store meanwhile (harmless), or
			// its lease ended and another worker may hold it now.
			h.lose()
		}
	}
}

// isConnector reports whether the destination is known to be a vendor
// connector (not a webhook or email).
func (d *Dispatcher) isConnector(id string) bool {
	s := d.stats(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kind != "" && s.kind != KindWebhook && s.kind != KindSMTP
}
