package action

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// Batching (issue 12, item 1).
//
// A vendor connector takes many changes in one Deliver call, up to its
// vendor's largest batch (connector.Connector.MaxBatch). A worker of a
// connector destination takes up to that many items from its queue at
// once (waiting up to batchLinger for more after the first) and sends the
// ones still to be sent in one call, with one result per item: those the
// vendor accepted are delivered, the others are retried or dead-lettered
// each on its own.
//
// Lane order: a batch may hold several items of one lane (profile,
// destination). They go together only when they are all the lane has up
// to the last of them (store.Outbox.LaneAhead); an item with anything
// else ahead of it is handed back, and so is the rest of its lane in the
// batch once one of its items is not sent now (postponed or failed before
// sending). Within one call a profile's changes cannot overtake each
// other, because only the last one for a (profile, segment) is sent:
//
// Coalescing: of the items of one profile for one segment in a batch
// (for upserts: of one profile's upserts), only the last is sent. The
// earlier ones are recorded as delivered, not attempted, with the reason
// "superseded by item N", whatever becomes of item N: N carries the
// state the vendor must end in, and it is retried or dead-lettered on
// its own. An enter then an exit in one batch sends the exit (a remove),
// even though the vendor may never have seen the member: Kiln does not
// yet keep what each destination acknowledged, and removing a non-member
// succeeds at every vendor, so sending the last change is always right
// and costs one member in a batch call that is made anyway.
//
// Webhooks and emails are not batched: each transition is its own message
// with its own id.

// batchLinger is how long a batching worker waits for more items after
// the first, when the queue has fewer than a full batch: claims route
// many items at once, and items planned in quick succession (a flapping
// profile) may then be coalesced.
const batchLinger = 5 * time.Millisecond

// batchOf is how many items one call to the destination may carry: the
// connector's largest batch, 1 for webhooks, email and destinations that
// cannot be loaded (their items fail one by one, as before).
func (d *Dispatcher) batchOf(ctx context.Context, dest string) int {
	ds, err := d.destination(ctx, dest)
	if err != nil {
		return 1
	}
	if g, ok := ds.s.(guarded); ok {
		return g.maxBatch()
	}
	if b, ok := ds.s.(batchSender); ok {
		return b.maxBatch()
	}
	return 1
}

// collect takes up to n items from the queue: the first as it comes, then
// whatever arrives within batchLinger. Only one worker of a queue
// collects at a time, so batches fill. It reports false when the queue
// is closed.
func (q *destQueue) collect(n int) ([]*held, bool) {
	q.collectMu.Lock()
	defer q.collectMu.Unlock()
	h, ok := <-q.ch
	if !ok {
		return nil, false
	}
	hs := []*held{h}
	t := time.NewTimer(batchLinger)
	defer t.Stop()
	for len(hs) < n {
		select {
		case h, ok := <-q.ch:
			if !ok {
				return hs, false
			}
			hs = append(hs, h)
		case <-t.C:
			return hs, true
		}
	}
	return hs, true
}

// pause holds a destination's calls until the time its vendor named in a
// Retry-After (or rate-limit reset) header.
type pause struct {
	mu    sync.Mutex
	until time.Time // local clock
}

func (p *pause) get() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until
}

func (p *pause) extend(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.After(p.until) {
		p.until = t
	}
}

// workBatch delivers held items of one connector destination in one call
// and says what became of each.
func (d *Dispatcher) workBatch(ctx context.Context, hs []*held) []outcome {
	out := make([]outcome, 0, len(hs))
	st := hs[0].q.st
	done := func(h *held, res store.OutboxResult) {
		if res.Error != releasedAtShutdown {
			d.record(st, res)
		}
		out = append(out, outcome{h: h, res: res})
	}
	newRes := func(h *held) store.OutboxResult { return store.OutboxResult{ID: h.item.ID, At: d.cfg.Now()} }
	var live []*held
	for _, h := range hs {
		switch {
		case ctx.Err() != nil:
			done(h, d.released(newRes(h)))
		case h.lost.Load():
			out = append(out, outcome{h: h, forget: true})
		default:
			live = append(live, h)
		}
	}
	// Lanes, in lane order.
	lanes := map[string][]*held{}
	var order []string
	for _, h := range live {
		if _, ok := lanes[h.item.ProfileID]; !ok {
			order = append(order, h.item.ProfileID)
		}
		lanes[h.item.ProfileID] = append(lanes[h.item.ProfileID], h)
	}
	type ready struct {
		h  *held
		dl *delivery
	}
	var send []ready
	var ds *destState
	for _, pid := range order {
		lane := lanes[pid]
		slices.SortFunc(lane, func(a, b *held) int {
			if c := a.item.Due.Compare(b.item.Due); c != 0 {
				return c
			}
			return cmp.Compare(a.item.ID, b.item.ID)
		})
		ok := d.lanePrefix(ctx, lane)
		for i, h := range lane {
			if i >= ok {
				done(h, d.handBack(newRes(h), "handed back unsent: an earlier item of its lane is pending", 0))
				continue
			}
			dl, hds, res, go_ := d.prepare(ctx, h)
			if !go_ {
				done(h, res)
				if res.State == store.OutboxPending {
					// Postponed or to be retried: what follows it in its
					// lane must wait for it.
					for _, rest := range lane[i+1:] {
						done(rest, d.handBack(newRes(rest), "handed back unsent: an earlier item of its lane is pending", 0))
					}
					break
				}
				continue
			}
			ds = hds
			send = append(send, ready{h, dl})
		}
	}
	if len(send) == 0 {
		return out
	}
	// Coalesce: the last change for a (profile, segment) stands for the
	// earlier ones.
	type key struct{ profile, segment string }
	keyOf := func(r ready) key {
		k := key{r.h.item.ProfileID, r.dl.payload.Segment}
		if r.dl.opts.Op == connector.OpUpsert {
			k.segment = "\x00upsert"
		}
		return k
	}
	last := map[key]int{}
	for i, r := range send {
		last[keyOf(r)] = i
	}
	kept := send[:0:0]
	for i, r := range send {
		if j := last[keyOf(r)]; j != i {
			res := newRes(r.h)
			res.State = store.OutboxDelivered
			res.Error = fmt.Sprintf("superseded by item %d (a later change for the same profile and segment in the same batch): not sent", send[j].h.item.ID)
			done(r.h, res)
			continue
		}
		kept = append(kept, r)
	}
	send = kept
	// The call must end before the earliest lease in the batch does.
	sendBy := send[0].h.leaseEnd()
	for _, r := range send[1:] {
		sendBy = earliest(sendBy, r.h.leaseEnd())
	}
	sendBy = sendBy.Add(-d.cfg.Lease / 10)
	waitBy := sendBy.Add(-ds.timeout)
	backAll := func(why string, wait time.Duration) []outcome {
		for _, r := range send {
			done(r.h, d.handBack(newRes(r.h), why, wait))
		}
		return out
	}
	if time.Until(waitBy) <= 0 {
		return backAll(fmt.Sprintf("handed back unsent: %s of its lease is left, less than a call may take (%s); are lease renewals failing?",
			max(0, time.Until(sendBy)).Round(time.Millisecond), ds.timeout), 0)
	}
	// The vendor asked to wait (Retry-After): the whole destination waits.
	if until := ds.pause.get(); time.Now().Before(until) {
		if until.After(waitBy) {
			return backAll(fmt.Sprintf("handed back unsent: the vendor asked to wait until %s (Retry-After), past its lease", until.UTC().Format(time.RFC3339)), time.Until(until))
		}
		t := time.NewTimer(time.Until(until))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, r := range send {
				done(r.h, d.released(newRes(r.h)))
			}
			return out
		}
	}
	// A batch is one call: one slot of the destination's rate.
	wctx, cancel := context.WithDeadline(ctx, waitBy)
	err := ds.lim.Wait(wctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			for _, r := range send {
				done(r.h, d.released(newRes(r.h)))
			}
			return out
		}
		wait, _ := connector.SlotWait(err)
		return backAll(fmt.Sprintf("handed back unsent: the destination's rate limit has no slot before its lease ends (next in %s)", wait.Round(time.Millisecond)), wait)
	}
	dls := make([]*delivery, len(send))
	for i, r := range send {
		dls[i] = r.dl
	}
	if err := d.forgetAcks(ctx, dls); err != nil {
		if ctx.Err() != nil {
			for _, r := range send {
				done(r.h, d.released(newRes(r.h)))
			}
			return out
		}
		return backAll("handed back unsent: the acknowledged states it changes could not be made unknown first: "+clip(err.Error()), 0)
	}
	callCtx, cancelCall := context.WithDeadline(ctx, earliest(time.Now().Add(ds.timeout), sendBy))
	defer cancelCall()
	calls := send[:0:0]
	for _, r := range send {
		if !r.h.setCall(cancelCall) {
			out = append(out, outcome{h: r.h, forget: true}) // lost meanwhile
			continue
		}
		calls = append(calls, r)
	}
	send = calls
	if len(send) == 0 {
		return out
	}
	dls = dls[:0]
	for _, r := range send {
		dls = append(dls, r.dl)
	}
	d.callStarted(st, len(send))
	start := time.Now()
	errs := ds.s.(batchSender).sendBatch(callCtx, dls)
	took := time.Since(start)
	for _, r := range send {
		r.h.setCall(nil)
	}
	timedOut := ctx.Err() == nil && errors.Is(callCtx.Err(), context.DeadlineExceeded)
	result := "ok"
	for _, e := range errs {
		if e != nil {
			result = "error"
			if timedOut && !errors.Is(e, connector.ErrPastDeadline) {
				result = "timeout"
			}
			break
		}
	}
	d.callEnded(st, took, result)
	at := d.cfg.Now()
	for i, r := range send {
		it, err := r.h.item, errs[i]
		res := store.OutboxResult{ID: it.ID, At: at}
		if r.h.lost.Load() {
			d.log.Warn("the lease of a delivery ended before it could be renewed; leaving the item to its new holder", "item", it.ID, "destination", it.Destination)
			out = append(out, outcome{h: r.h, forget: true})
			continue
		}
		if err == nil {
			res.State, res.Attempted, res.Ack = store.OutboxDelivered, true, stamp(r.dl.ack, at)
			done(r.h, res)
			continue
		}
		if ctx.Err() != nil {
			done(r.h, d.released(res))
			continue
		}
		if wait, ok := connector.SlotWait(err); ok {
			done(r.h, d.handBack(res, fmt.Sprintf("handed back: the vendor's rate limit has no slot before the call's deadline (next in %s)", wait.Round(time.Millisecond)), wait))
			continue
		}
		if timedOut && connector.Retryable(err) {
			err = &connector.Error{Vendor: ds.d.Kind, Code: kiln.EUnavailable, Retryable: true,
				Message: fmt.Sprintf("no answer within %s: the call timed out", took.Round(time.Millisecond)), Err: err}
		}
		if ra := connector.RetryAfter(err); ra > 0 {
			ds.pause.extend(start.Add(took).Add(ra))
		}
		res.Attempted = true
		done(r.h, d.failed(it, res, err))
	}
	return out
}

// lanePrefix returns how many of a lane's held items (sorted in lane
// order) may go now: the longest run from the first that is all the lane
// has up to its last item. Every lane is checked, even a lone claimed
// item: claims of runs may cut a run short of its head.
func (d *Dispatcher) lanePrefix(ctx context.Context, lane []*held) int {
	if n, err := d.st.LaneAhead(ctx, lane[len(lane)-1].item.ID); err == nil && n == len(lane)-1 {
		return len(lane)
	}
	for i, h := range lane {
		if n, err := d.st.LaneAhead(ctx, h.item.ID); err != nil || n != i {
			return i
		}
	}
	return len(lane)
}
