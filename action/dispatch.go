package action

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/metrics"
	"github.com/kiln-cdp/kiln/store"
)

// FrequencyCap limits how many automation actions one profile receives in
// a sliding window, across all automations (REST Hooks subscriptions do
// not count: they feed other systems, not the customer).
type FrequencyCap struct {
	Max int           // 0: no cap
	Per time.Duration // the window
}

// Config wires a Dispatcher.
type Config struct {
	Store  store.Store
	Key    *connector.Key // opens destination secrets; nil: destinations with secrets fail
	Logger *slog.Logger
	Now    func() time.Time
	// Location is the store's time zone, for quiet hours (default UTC).
	Location *time.Location
	// Workers is how many deliveries run at once to one destination
	// (default 32). Each destination has its own workers and its own
	// queue, so a slow or hung destination delays only itself.
	Workers int
	// Queue is how many items one destination may hold in this process,
	// waiting for a worker or in flight, their leases renewed (default 64
	// × Workers). Items leased at planning go to the queue in memory with
	// no write; beyond it they are claimed from the store, a write that
	// competes with the event log for SQLite's one writer, so the queue
	// holds a few seconds of a busy destination's deliveries.
	Queue int
	// Lease is how long a claimed item is reserved for its worker. It is
	// renewed every quarter lease while the item is held, waiting or in
	// flight, so it bounds how soon the items of a process that died are
	// delivered by another (default 1m).
	Lease time.Duration
	// Poll is how often the outbox is checked when nothing woke the
	// dispatcher, e.g. for items another process wrote (default 1s).
	Poll time.Duration
	// MaxAttempts is how many failed attempts make a dead letter (default
	// 20: with the default backoff, about four hours of trying, so a
	// destination down for an hour loses nothing).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff (defaults
	// 1s and 1h). The wait before attempt n+1 is uniform in [0,
	// min(MaxBackoff, MinBackoff·2^(n-1))] ("full jitter"), at least what
	// a Retry-After header asked.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt, every kind of destination (default 10s).
	// It is at most a third of the lease: a call always ends well within
	// the lease it started under, even when a renewal is missed.
	Timeout time.Duration
	Cap     FrequencyCap
	// TraitValues returns a profile's computed trait values now (the
	// engine's), for recheck conditions; nil: only identified traits.
	TraitValues func(profileID string) map[string]any
	// HTTPClient sends webhooks and connector requests (default: a client
	// keeping connections open).
	HTTPClient *http.Client
	DeliveryOptions
	// Metrics receives the delivery metrics by destination; nil: none.
	Metrics *metrics.Delivery
	// BehindAfter is how long the oldest due item of a destination may
	// wait before the destination is reported behind (default 5m).
	BehindAfter time.Duration
	// ReconcileEvery is how often Service.Run reconciles every connector
	// destination in full (reconcile.go); 0: only on demand.
	ReconcileEvery time.Duration
}

// Dispatcher delivers the outbox. It is safe for concurrent use; Run
// runs its loop.
type Dispatcher struct {
	cfg  Config
	st   store.Store
	log  *slog.Logger
	wake chan struct{}

	autos atomic.Pointer[map[string]store.Automation] // by ID

	mu    sync.Mutex
	dests map[string]*destState // by destination ID

	// onUnsubscribe ends a REST Hooks subscription whose target answered 410.
	onUnsubscribe func(ctx context.Context, automationID string) error

	running atomic.Bool  // Run is delivering: the planner may lease items to it
	nextDue atomic.Int64 // Unix ns of the earliest future attempt known, 0 if none
	// dirty says the store may hold items to claim now (an attempt came
	// due, the planner wrote items it could not lease): the loop claims
	// then, and otherwise once per Poll. Claiming on every wake would
	// walk each destination's leased items in the index many times a
	// second, and take SQLite's one writer from the event log.
	dirty atomic.Bool
	runMu sync.RWMutex
	rs    *runState // while Run delivers: offer routes into it

	qmu    sync.Mutex
	queues map[string]*destQueue // by destination ID, while Run runs
	known  map[string]bool       // destinations to claim for

	heldMu sync.Mutex
	held   map[int64]*held // every item this process holds a lease on

	statsMu sync.Mutex
	dstats  map[string]*destStats // by destination ID

	backlog atomic.Pointer[map[string]store.Backlog]
}

// runState is one Run's machinery, shared by its queues' workers.
type runState struct {
	sendCtx context.Context
	results chan outcome
	workers sync.WaitGroup
}

// noteDue records that an attempt is due at t, so the loop wakes then
// without asking the store.
func (d *Dispatcher) noteDue(t time.Time) {
	if t.IsZero() {
		return
	}
	n := t.UnixNano()
	for {
		cur := d.nextDue.Load()
		if cur != 0 && cur <= n || d.nextDue.CompareAndSwap(cur, n) {
			return
		}
	}
}

// offer takes items the planner leased to this process, now durable, and
// gives them to their destinations' queues at once: the loop may be
// waiting for the write lock to claim, and fresh items need no write on
// their way out.
func (d *Dispatcher) offer(items []store.OutboxItem) {
	d.runMu.RLock()
	defer d.runMu.RUnlock()
	if d.rs == nil {
		// Not delivering (starting or stopping): their leases end and
		// whichever process runs then claims them.
		return
	}
	for _, it := range items {
		d.route(d.rs, d.newHeld(it, true))
	}
}

// room is how many items the planner may lease for dest to this process:
// none unless Run is delivering, else what the destination's queue has
// room for (a destination that does not keep up gets the rest through
// claims, in lane order, when it has room again).
func (d *Dispatcher) room(dest string) int {
	if !d.running.Load() {
		return 0
	}
	d.qmu.Lock()
	defer d.qmu.Unlock()
	n := int64(0)
	if q := d.queues[dest]; q != nil {
		n = q.n.Load()
	}
	return max(0, d.queueCap()-int(n))
}

type destState struct {
	d       *store.Destination
	s       sender
	lim     *connector.Limiter
	timeout time.Duration // of one call
	pause   pause         // until the vendor's Retry-After
	stale   bool          // Reload ran: check the stored destination before use
}

// NewDispatcher returns a dispatcher; call Reload, then Run.
func NewDispatcher(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64 * cfg.Workers
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Timeout > cfg.Lease/3 {
		cfg.Logger.Warn("the delivery timeout is cut to a third of the lease, so a call always ends within its lease", "timeout", cfg.Timeout, "lease", cfg.Lease)
		cfg.Timeout = cfg.Lease / 3
	}
	if cfg.BehindAfter <= 0 {
		cfg.BehindAfter = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Workers
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	d := &Dispatcher{cfg: cfg, st: cfg.Store, log: cfg.Logger, wake: make(chan struct{}, 1), dests: map[string]*destState{},
		queues: map[string]*destQueue{}, known: map[string]bool{}, held: map[int64]*held{}, dstats: map[string]*destStats{}}
	d.autos.Store(&map[string]store.Automation{})
	d.backlog.Store(&map[string]store.Backlog{})
	return d
}

// Wake tells the dispatcher new items may be due.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Reload reads the automations and the destinations. A destination whose
// stored form did not change keeps its sender, with its rate limiter and
// the tags and lists its connector created (so they are not looked up,
// or created, again).
func (d *Dispatcher) Reload(ctx context.Context) error {
	if err := d.loadAutomations(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	for _, ds := range d.dests {
		ds.stale = true
	}
	d.mu.Unlock()
	if err := d.refresh(ctx); err != nil {
		return fmt.Errorf("loading destinations: %w", err)
	}
	return nil
}

func (d *Dispatcher) loadAutomations(ctx context.Context) error {
	list, err := d.st.ListAutomations(ctx)
	if err != nil {
		return fmt.Errorf("loading automations: %w", err)
	}
	m := make(map[string]store.Automation, len(list))
	for _, a := range list {
		m[a.ID] = a
	}
	d.autos.Store(&m)
	return nil
}

// Run delivers due items until ctx ends. Items in flight when it ends are
// released to be delivered again (at least once).
//
// The loop claims for each destination with room in its queue (a quarter
// of it, or any room when it holds nothing: at low rates every new item
// is claimed at once), in one transaction; each destination's workers
// deliver; the finisher records whatever outcomes have accumulated in one
// transaction; the heartbeat renews the leases of everything held.
func (d *Dispatcher) Run(ctx context.Context) error {
	sendCtx, cancelSend := context.WithCancel(context.Background())
	rs := &runState{sendCtx: sendCtx, results: make(chan outcome, 1024)}
	finished := make(chan struct{})
	go d.finisher(rs.results, finished)
	bg, stopBG := context.WithCancel(context.Background())
	var bgDone sync.WaitGroup
	bgDone.Add(2)
	go func() { defer bgDone.Done(); d.heartbeat(bg) }()
	go func() { defer bgDone.Done(); d.monitor(bg) }()
	d.runMu.Lock()
	d.rs = rs
	d.runMu.Unlock()
	d.running.Store(true)
	defer func() {
		d.running.Store(false)
		d.runMu.Lock() // no offer routes from here on
		d.rs = nil
		d.runMu.Unlock()
		cancelSend() // queued items are released without being sent
		d.qmu.Lock()
		for id, q := range d.queues {
			close(q.ch)
			delete(d.queues, id)
		}
		d.qmu.Unlock()
		rs.workers.Wait()
		stopBG()
		bgDone.Wait()
		close(rs.results)
		<-finished
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := 100 * time.Millisecond
	var lastScan, lastClaim time.Time
	d.dirty.Store(true)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := d.cfg.Now()
		if want := d.wants(); len(want) > 0 && (d.dirty.Swap(false) || time.Since(lastClaim) >= d.cfg.Poll) {
			lastClaim = time.Now()
			// The local lease starts no later than the store's: a call
			// bounded by it ends before another worker may claim the item.
			localStart := time.Now()
			now = d.cfg.Now()
			items, err := d.st.ClaimDestinations(ctx, now, d.cfg.Lease, want)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.log.Error("claiming outbox items failed; retrying", "err", err, "after", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return ctx.Err()
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			got := map[string]int{}
			runs := map[string]bool{}
			for _, w := range want {
				runs[w.Destination] = w.Runs
			}
			for _, it := range items {
				// An item of a run may have items ahead of it that the
				// claim did not take: it is checked like a fresh one.
				h := &held{item: it, fresh: runs[it.Destination]}
				h.lease.Store(localStart.Add(d.cfg.Lease).UnixNano())
				d.route(rs, h)
				got[it.Destination]++
			}
			more := false
			for _, w := range want {
				if got[w.Destination] == w.Limit {
					more = true // more may be due
				}
			}
			if more {
				d.dirty.Store(true)
				continue
			}
		}
		// The next due time is known from what this process planned and
		// scheduled (noteDue); the store is asked once per Poll for what
		// others wrote, not on every wake.
		if time.Since(lastScan) >= d.cfg.Poll {
			if next, err := d.st.NextOutboxDue(ctx, now); err == nil {
				d.noteDue(next)
			}
			lastScan = time.Now()
		}
		wait := d.cfg.Poll
		if nd := d.nextDue.Load(); nd != 0 {
			if until := time.Unix(0, nd).Sub(now); until <= 0 {
				d.nextDue.CompareAndSwap(nd, 0) // due now: the next claim takes it
				d.dirty.Store(true)
				wait = time.Millisecond
			} else {
				wait = min(wait, until)
			}
		}
		timer.Reset(wait)
		select {
		case <-d.wake:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// newHeld holds an item leased at planning; its lease ends when the
// planner wrote it would.
func (d *Dispatcher) newHeld(it store.OutboxItem, fresh bool) *held {
	h := &held{item: it, fresh: fresh}
	h.lease.Store(time.Now().Add(it.ClaimedUntil.Sub(d.cfg.Now())).UnixNano())
	return h
}

// work delivers one held item, unless the run is ending or its lease was lost.
func (d *Dispatcher) work(ctx context.Context, h *held) outcome {
	res := store.OutboxResult{ID: h.item.ID, At: d.cfg.Now()}
	if ctx.Err() != nil {
		return outcome{h: h, res: d.released(res)}
	}
	if h.lost.Load() {
		return outcome{h: h, forget: true}
	}
	if h.fresh {
		// Leased without a claim: it may go only if nothing is ahead of
		// it in its lane, else it is handed back.
		if head, err := d.st.LaneHead(ctx, h.item.ID); err != nil || !head {
			return outcome{h: h, res: d.handBack(res, "handed back unsent: an earlier item of its lane is pending", 0)}
		}
	}
	res = d.deliver(ctx, h)
	if h.lost.Load() {
		// The lease ended before it could be renewed; whatever happened,
		// the item is another worker's now, and it records the outcome.
		d.log.Warn("the lease of a delivery ended before it could be renewed; leaving the item to its new holder", "item", h.item.ID, "destination", h.item.Destination)
		return outcome{h: h, forget: true}
	}
	if res.Error != releasedAtShutdown {
		d.record(h.q.st, res)
	}
	return outcome{h: h, res: res}
}

// finishLinger is how long an outcome may wait for others to be recorded with.
const finishLinger = 20 * time.Millisecond

// finisher records outcomes in batches (one transaction for whatever has
// accumulated), then wakes the loop: a finished item frees its lane and
// a place in its destination's queue.
func (d *Dispatcher) finisher(results <-chan outcome, done chan<- struct{}) {
	defer close(done)
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for o := range results {
		// Outcomes wait up to finishLinger for company: the webhook is out
		// already, and fewer, larger transactions keep the database's one
		// writer free for the event log, whose commits acknowledge events.
		batch := []outcome{o}
		linger.Reset(finishLinger)
	drain:
		for len(batch) < 1000 {
			select {
			case o, ok := <-results:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			case <-linger.C:
				break drain
			}
		}
		if !linger.Stop() {
			select {
			case <-linger.C:
			default:
			}
		}
		rs := make([]store.OutboxResult, 0, len(batch))
		for _, o := range batch {
			if !o.forget {
				rs = append(rs, o.res)
			}
		}
		for try := 0; len(rs) > 0; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := d.st.FinishOutbox(ctx, rs)
			cancel()
			if err == nil {
				break
			}
			if try == 4 {
				// The leases run out and the items are delivered again.
				d.log.Error("recording delivery outcomes failed; the items will be retried when their leases end", "items", len(rs), "err", err)
				break
			}
			time.Sleep(time.Duration(100<<try) * time.Millisecond)
		}
		for _, r := range rs {
			if r.State == store.OutboxPending {
				d.noteDue(r.NextAt)
			}
		}
		for _, o := range batch {
			d.unhold(o.h)
			if o.h.q != nil {
				o.h.q.n.Add(-1)
			}
		}
		d.Wake()
	}
}

func (d *Dispatcher) automation(id string) (store.Automation, bool) {
	a, ok := (*d.autos.Load())[id]
	return a, ok
}

// destination returns the destination's sender, building it on first use
// (under the lock, so that concurrent first deliveries share one limiter
// and one connector, whose tag and list ids are cached).
func (d *Dispatcher) destination(ctx context.Context, id string) (*destState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.dests[id]
	if old != nil && !old.stale {
		return old, nil
	}
	dest, err := d.st.GetDestination(ctx, id)
	if err != nil {
		return nil, err
	}
	if old != nil && sameDestination(old.d, dest) {
		old.stale = false
		return old, nil
	}
	secrets := connector.Secrets{}
	if len(dest.Sealed) > 0 {
		if secrets, err = connector.OpenSecrets(d.cfg.Key, dest.Sealed, []byte(dest.ID)); err != nil {
			return nil, fmt.Errorf("destination %s: secrets: %w", dest.Name, err)
		}
	}
	s, rate, timeout, err := newSender(dest, secrets, d.cfg.HTTPClient, d.cfg.Timeout, d.cfg.DeliveryOptions)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest.Name, err)
	}
	ds := &destState{d: dest, s: s, timeout: min(timeout, d.cfg.Timeout),
		lim: connector.NewLimiter(connector.Rate{PerSecond: rate, Burst: max(1, int(rate))})}
	d.dests[id] = ds
	st := d.stats(id)
	st.mu.Lock()
	st.name, st.kind = dest.Name, dest.Kind
	st.mu.Unlock()
	return ds, nil
}

func sameDestination(a, b *store.Destination) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.RateLimit == b.RateLimit &&
		bytes.Equal(a.Config, b.Config) && bytes.Equal(a.Sealed, b.Sealed)
}

// deliver makes one attempt at a held item and says what became of it.
func (d *Dispatcher) deliver(ctx context.Context, h *held) store.OutboxResult {
	dl, ds, res, ok := d.prepare(ctx, h)
	if !ok {
		return res
	}
	it, auto := h.item, dl.auto
	// The call must end before the lease does (less a margin for the
	// outcome to be recorded), or another worker could claim the item and
	// send it again while this call still runs: the rate limit's wait and
	// the call's timeout both count against it. The heartbeat keeps the
	// lease ahead, so this binds only when renewals fail.
	sendBy := h.leaseEnd().Add(-d.cfg.Lease / 10)
	waitBy := sendBy.Add(-ds.timeout)
	if time.Until(waitBy) <= 0 {
		return d.handBack(res, fmt.Sprintf("handed back unsent: %s of its lease is left, less than a call may take (%s); are lease renewals failing?",
			max(0, time.Until(sendBy)).Round(time.Millisecond), ds.timeout), 0)
	}
	if !dl.isMessage(ds) {
		// A connector (of one change per call) waits out its vendor's
		// Retry-After like a batching one.
		if until := ds.pause.get(); time.Now().Before(until) {
			if until.After(waitBy) {
				return d.handBack(res, fmt.Sprintf("handed back unsent: the vendor asked to wait until %s (Retry-After), past its lease", until.UTC().Format(time.RFC3339)), time.Until(until))
			}
			t := time.NewTimer(time.Until(until))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return d.released(res)
			}
		}
	}
	wctx, cancel := context.WithDeadline(ctx, waitBy)
	err := ds.lim.Wait(wctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return d.released(res)
		}
		wait, _ := connector.SlotWait(err)
		return d.handBack(res, fmt.Sprintf("handed back unsent: the destination's rate limit has no slot before its lease ends (next in %s)", wait.Round(time.Millisecond)), wait)
	}
	if err := d.forgetAcks(ctx, []*delivery{dl}); err != nil {
		if ctx.Err() != nil {
			return d.released(res)
		}
		return d.handBack(res, "handed back unsent: the acknowledged state it changes could not be made unknown first: "+clip(err.Error()), 0)
	}
	callCtx, cancelCall := context.WithDeadline(ctx, earliest(time.Now().Add(ds.timeout), sendBy))
	defer cancelCall()
	if !h.setCall(cancelCall) {
		return d.released(res) // lost meanwhile: work forgets it
	}
	d.callStarted(h.q.st, 1)
	start := time.Now()
	err = ds.s.send(callCtx, dl)
	took := time.Since(start)
	h.setCall(nil)
	res.At = d.cfg.Now()
	result := "ok"
	switch {
	case err == nil:
	case ctx.Err() == nil && errors.Is(callCtx.Err(), context.DeadlineExceeded) && !errors.Is(err, connector.ErrPastDeadline):
		result = "timeout"
		err = &connector.Error{Vendor: ds.d.Kind, Code: kiln.EUnavailable, Retryable: true,
			Message: fmt.Sprintf("no answer within %s: the call timed out", took.Round(time.Millisecond)), Err: err}
	default:
		result = "error"
	}
	d.callEnded(h.q.st, took, result)
	if err == nil {
		res.State, res.Attempted, res.Ack = store.OutboxDelivered, true, stamp(dl.ack, res.At)
		return res
	}
	if ctx.Err() != nil {
		return d.released(res) // shutting down: not the destination's fault
	}
	if wait, ok := connector.SlotWait(err); ok {
		// The connector's own limiter refused a request past the deadline.
		return d.handBack(res, fmt.Sprintf("handed back: the vendor's rate limit has no slot before the call's deadline (next in %s)", wait.Round(time.Millisecond)), wait)
	}
	res.Attempted = true
	if ra := connector.RetryAfter(err); ra > 0 && !dl.isMessage(ds) {
		ds.pause.extend(time.Now().Add(ra))
	}
	if auto.Hook && connector.StatusOf(err) == http.StatusGone && d.onUnsubscribe != nil {
		if uerr := d.onUnsubscribe(context.Background(), auto.ID); uerr != nil {
			d.log.Error("ending a REST Hooks subscription after 410 Gone", "hook", auto.ID, "err", uerr)
		}
		res.State, res.Error = store.OutboxSkipped, "subscription ended: the target answered 410 Gone"
		return res
	}
	return d.failed(it, res, err)
}

// prepare checks a held item at send time (its automation, the profile,
// recheck, suppression, consent, quiet hours, the frequency cap) and
// returns what to send and where when it is to be sent now (ok), else
// what became of it.
func (d *Dispatcher) prepare(ctx context.Context, h *held) (*delivery, *destState, store.OutboxResult, bool) {
	var (
		dl *delivery
		ds *destState
	)
	res := d.check(ctx, h, &dl, &ds)
	return dl, ds, res, dl != nil
}

// check is prepare's work: it sets *dlp and *dsp when the item is to be sent.
func (d *Dispatcher) check(ctx context.Context, h *held, dlp **delivery, dsp **destState) store.OutboxResult {
	it := h.item
	now := d.cfg.Now()
	res := store.OutboxResult{ID: it.ID, At: now}
	skip := func(format string, args ...any) store.OutboxResult {
		res.State, res.Error = store.OutboxSkipped, fmt.Sprintf(format, args...)
		return res
	}
	// retry is for our own failures before sending (the store, a secret
	// that does not open): they count as attempts so they end as dead
	// letters if they persist.
	retry := func(err error) store.OutboxResult {
		if ctx.Err() != nil {
			return d.released(res) // shutting down
		}
		res.Attempted = true
		return d.failed(it, res, err)
	}
	auto, ok := d.automation(it.Automation)
	if !ok {
		return skip("automation %s was deleted", it.Automation)
	}
	if !auto.Enabled {
		return skip("automation %s is disabled", auto.Name)
	}
	var p Payload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		res.State, res.Error = store.OutboxDead, "payload: "+err.Error()
		return res
	}
	opts, err := ParseOptions(auto.Options)
	if err != nil {
		res.State, res.Error = store.OutboxDead, err.Error()
		return res
	}
	ds, err := d.destination(ctx, it.Destination)
	if store.IsNotFound(err) {
		return skip("destination %s was deleted", it.Destination)
	}
	if err != nil {
		return retry(err)
	}
	if auto.Recheck != "" && !isCondition(auto.Recheck) {
		ms, err := d.st.MembershipsOf(ctx, it.ProfileID)
		if err != nil {
			return retry(err)
		}
		if !slices.ContainsFunc(ms, func(m kiln.Membership) bool { return m.Segment == auto.Recheck }) {
			return skip("recheck: profile is no longer in segment %s", auto.Recheck)
		}
	}
	prof, err := d.st.GetProfile(ctx, it.ProfileID)
	if store.IsNotFound(err) {
		return skip("profile %s was deleted", it.ProfileID)
	}
	if err != nil {
		return retry(err)
	}
	if auto.Recheck != "" && isCondition(auto.Recheck) {
		c, err := parseCondition(auto.Recheck)
		if err != nil {
			res.State, res.Error = store.OutboxDead, err.Error()
			return res
		}
		vals := map[string]any{}
		for k, v := range prof.Traits {
			vals[k] = v
		}
		if d.cfg.TraitValues != nil {
			for k, v := range d.cfg.TraitValues(it.ProfileID) {
				vals[k] = v
			}
		}
		if !c.holds(vals) {
			return skip("recheck: %s no longer holds", auto.Recheck)
		}
	}
	if len(prof.Identities) > 0 {
		ids := make([]kiln.Identifier, len(prof.Identities))
		for i, id := range prof.Identities {
			ids[i] = id.Identifier
		}
		sup, err := d.st.Suppressed(ctx, ids)
		if err != nil {
			return retry(err)
		}
		if len(sup) > 0 {
			return skip("suppressed identifier %s", sup[0])
		}
	}
	channel := opts.Channel
	if ds.d.Kind == KindSMTP {
		channel = kiln.ChannelEmail
	}
	if channel != "" && !consented(prof, channel) {
		return skip("no consent on channel %s", channel)
	}
	if opts.Quiet != "" {
		q, _ := parseQuiet(opts.Quiet) // checked when the automation was saved
		if until := q.until(now.In(d.cfg.Location)); !until.IsZero() {
			res.State, res.NextAt, res.Error = store.OutboxPending, until.UTC(), "quiet hours "+opts.Quiet
			return res
		}
	}
	if !auto.Hook && d.cfg.Cap.Max > 0 {
		n, err := d.st.CountDelivered(ctx, it.ProfileID, now.Add(-d.cfg.Cap.Per))
		if err != nil {
			return retry(err)
		}
		if n >= d.cfg.Cap.Max {
			return skip("frequency cap: %d actions in %s", n, d.cfg.Cap.Per)
		}
	}
	dl := &delivery{item: it, payload: p, auto: auto, opts: opts, profile: prof, traits: chooseTraits(prof.Traits, opts.Traits)}
	ack, note, err := d.syncCheck(ctx, ds, dl)
	if err != nil {
		return retry(err)
	}
	if note != "" {
		res.State, res.Error = store.OutboxDelivered, note
		return res
	}
	dl.ack = ack
	*dlp = dl
	*dsp = ds
	return res
}

// isMessage reports whether the delivery is a message of its own (a
// webhook or an email), not a change to a vendor connector.
func (dl *delivery) isMessage(ds *destState) bool {
	return ds.d.Kind == KindWebhook || ds.d.Kind == KindSMTP
}

const releasedAtShutdown = "released at shutdown"

// released puts an item back without counting an attempt.
func (d *Dispatcher) released(res store.OutboxResult) store.OutboxResult {
	res.State, res.NextAt, res.Attempted, res.Error = store.OutboxPending, res.At, false, releasedAtShutdown
	return res
}

// handBack puts an item back unsent, without counting an attempt, to be
// claimed again after wait (at least a tenth of the minimum backoff, so
// that it does not come straight back), saying why.
func (d *Dispatcher) handBack(res store.OutboxResult, why string, wait time.Duration) store.OutboxResult {
	res.State, res.Attempted, res.Error = store.OutboxPending, false, why
	res.NextAt = d.cfg.Now().Add(max(wait, d.cfg.MinBackoff/10))
	return res
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// failed schedules a retry with backoff, or makes a dead letter.
func (d *Dispatcher) failed(it store.OutboxItem, res store.OutboxResult, err error) store.OutboxResult {
	res.Error = clip(err.Error())
	attempts := it.Attempts + 1
	if !connector.Retryable(err) || attempts >= d.cfg.MaxAttempts {
		res.State = store.OutboxDead
		if connector.Retryable(err) {
			res.Error = fmt.Sprintf("gave up after %d attempts: %s", attempts, res.Error)
		}
		d.log.Warn("dead letter", "item", it.ID, "destination", it.Destination, "profile", it.ProfileID, "err", res.Error)
		return res
	}
	res.State = store.OutboxPending
	res.NextAt = res.At.Add(max(d.backoff(attempts), connector.RetryAfter(err)))
	return res
}

// backoff is the full-jitter wait after the n-th failed attempt.
func (d *Dispatcher) backoff(n int) time.Duration {
	ceil := d.cfg.MaxBackoff
	if n < 40 {
		ceil = min(ceil, d.cfg.MinBackoff<<(n-1))
	}
	// A floor of a tenth of the minimum keeps a zero draw from retrying at once.
	return max(d.cfg.MinBackoff/10, time.Duration(rand.Int64N(int64(ceil)+1)))
}

func clip(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "..."
	}
	return s
}

// consented reports whether the profile's latest consent on ch is granted.
func consented(p *kiln.Profile, ch kiln.Channel) bool {
	var latest *kiln.Consent
	for i := range p.Consent {
		c := &p.Consent[i]
		if c.Channel == ch && (latest == nil || c.At.After(latest.At)) {
			latest = c
		}
	}
	return latest != nil && latest.Granted
}

// chooseTraits picks the named traits; "*" takes them all.
func chooseTraits(all map[string]any, names []string) map[string]any {
	if len(names) == 0 || len(all) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, n := range names {
		if n == "*" {
			for k, v := range all {
				out[k] = v
			}
			continue
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return out
}
