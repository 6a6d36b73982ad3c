// Package journal puts group commit in front of the store's event log.
//
// Every ingest request needs its events durable before it is acknowledged,
// and a durable commit costs an fsync. Committing each request on its own
// would cap ingest at the disk's fsync rate, so the journal gathers the
// requests that arrive while a commit is in flight and writes them all in
// the next transaction: one fsync for many requests. Each caller's Write
// returns only after the transaction holding its events has committed.
//
// One request's bad data must not fail the others that share its
// transaction. Ingest rejects what a store cannot hold before it gets here
// (ingest.CheckStorable); should something still get through, a
// transaction the store refuses for its data (code kiln.EInvalid, see
// store.Log.Append) is split in halves and each committed apart, until
// only the request holding the data fails, with kiln.EInvalid: a retry
// would fail the same way. Any other failure fails the whole group with
// kiln.EUnavailable, to be retried.
package journal

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = &kiln.Error{Code: kiln.EUnavailable, Message: "server is shutting down"}

// Appender is the slice of the store the journal writes to.
type Appender interface {
	Append(ctx context.Context, b store.Batch) (int, error)
}

// Journal gathers concurrent writes into shared transactions.
type Journal struct {
	app Appender
	// MaxEvents caps how many events one transaction gathers; a single
	// larger write still goes through whole.
	maxEvents int
	onCommit  func(events []kiln.Event)
	observe   func(int, time.Duration)

	reqs      chan *request
	pending   atomic.Int64 // writes handed in and not yet committed
	mu        sync.RWMutex // guards closed against concurrent Write/Close
	closed    bool
	loopDone  chan struct{}
	closeOnce sync.Once
}

type request struct {
	events  []kiln.Event
	rejects []kiln.Reject
	done    chan result
}

type result struct {
	n   int
	err error
}

// Options tune a Journal.
type Options struct {
	// MaxEvents per transaction (default 20,000).
	MaxEvents int
	// OnCommit, if set, is called after each commit with the events it
	// stored (duplicates left out), in Seq order, so the engine can take
	// them from memory instead of reading them back. The slice is the
	// callee's; the events' maps must not be modified.
	OnCommit func(events []kiln.Event)
	// Observe, if set, is told the size and duration of every commit
	// (for metrics).
	Observe func(events int, took time.Duration)
}

// New starts a journal writing to app. Close it to drain and stop.
func New(app Appender, o Options) *Journal {
	if o.MaxEvents <= 0 {
		o.MaxEvents = 20000
	}
	j := &Journal{
		app:       app,
		maxEvents: o.MaxEvents,
		onCommit:  o.OnCommit,
		observe:   o.Observe,
		reqs:      make(chan *request, 1024),
		loopDone:  make(chan struct{}),
	}
	go j.loop()
	return j
}

// Write makes events and rejects durable and returns how many events were
// new (not retries of stored ones). It sets Seq on the new events. Once a
// write is handed to the journal it completes even if ctx is cancelled,
// because the caller may retry and the store dedupes by message id.
func (j *Journal) Write(ctx context.Context, events []kiln.Event, rejects []kiln.Reject) (int, error) {
	if len(events) == 0 && len(rejects) == 0 {
		return 0, nil
	}
	r := &request{events: events, rejects: rejects, done: make(chan result, 1)}
	j.pending.Add(1)
	defer j.pending.Add(-1)
	j.mu.RLock()
	if j.closed {
		j.mu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		j.mu.RUnlock()
		return 0, ctx.Err()
	}
	j.mu.RUnlock()
	res := <-r.done
	return res.n, res.err
}

// Busy reports whether writes are waiting to be committed. Background
// writers to the same database (the engine) can give way to it, so that
// acknowledging events is not held up behind them.
func (j *Journal) Busy() bool { return j.pending.Load() > 0 }

// Close stops accepting writes, commits everything already accepted and
// waits for it. It is safe to call more than once.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closed = true
		close(j.reqs)
		j.mu.Unlock()
	})
	<-j.loopDone
	return nil
}

func (j *Journal) loop() {
	defer close(j.loopDone)
	var group []*request
	for r := range j.reqs {
		group = append(group[:0], r)
		n := len(r.events)
		// Take whatever else is already waiting, up to the cap.
	gather:
		for n < j.maxEvents {
			select {
			case more, ok := <-j.reqs:
				if !ok {
					break gather
				}
				group = append(group, more)
				n += len(more.events)
			default:
				break gather
			}
		}
		j.commit(group, n)
	}
}

// commit writes a group of requests in one transaction and answers each.
// n is the number of events in the group.
func (j *Journal) commit(group []*request, n int) {
	var b store.Batch
	if len(group) == 1 {
		b = store.Batch{Events: group[0].events, Rejects: group[0].rejects}
	} else {
		b.Events = make([]kiln.Event, 0, n)
		for _, r := range group {
			b.Events = append(b.Events, r.events...)
			b.Rejects = append(b.Rejects, r.rejects...)
		}
	}
	// The store must not see a cancelled context half-way: a commit that
	// started is finished.
	start := time.Now()
	_, err := j.app.Append(context.Background(), b)
	if j.observe != nil {
		j.observe(len(b.Events), time.Since(start))
	}
	if err != nil && len(group) > 1 && kiln.ErrorCode(err) == kiln.EInvalid {
		// Some request's data failed the transaction: commit the halves
		// apart, so that only that request fails. One bad request costs
		// about 2·log2(len(group)) more transactions.
		half := len(group) / 2
		j.commit(group[:half], countEvents(group[:half]))
		j.commit(group[half:], countEvents(group[half:]))
		return
	}
	if err != nil {
		err = writeError(err)
	}
	var stored []kiln.Event
	if err == nil && j.onCommit != nil {
		stored = make([]kiln.Event, 0, len(b.Events))
		for i := range b.Events {
			if b.Events[i].Seq != 0 {
				stored = append(stored, b.Events[i])
			}
		}
	}
	off := 0
	for _, r := range group {
		res := result{err: err}
		if err == nil {
			if len(group) > 1 {
				for i := range r.events {
					r.events[i].Seq = b.Events[off+i].Seq
				}
			}
			for i := range r.events {
				if r.events[i].Seq != 0 {
					res.n++
				}
			}
		}
		off += len(r.events)
		r.done <- res
	}
	if len(stored) > 0 {
		j.onCommit(stored)
	}
}

func countEvents(group []*request) int {
	n := 0
	for _, r := range group {
		n += len(r.events)
	}
	return n
}

// writeError is what a writer whose events were not stored is told.
func writeError(err error) error {
	if kiln.ErrorCode(err) == kiln.EInvalid {
		return errors.Join(kiln.Errorf(kiln.EInvalid, "the events cannot be stored: %s", kiln.ErrorMessage(err)), err)
	}
	return errors.Join(&kiln.Error{Code: kiln.EUnavailable, Message: "could not store events, retry later"}, err)
}
