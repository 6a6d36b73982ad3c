package action

import (
	"context"
	"encoding/json"
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
	// Workers is how many deliveries run at once (default 32).
	Workers int
	// Lease is how long a claimed item is reserved for its worker; after
	// a crash it is delivered again once the lease ends (default 1m; keep
	// it well above Timeout).
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
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	Cap     FrequencyCap
	// TraitValues returns a profile's computed trait values now (the
	// engine's), for recheck conditions; nil: only identified traits.
	TraitValues func(profileID string) map[string]any
	// HTTPClient sends webhooks and connector requests (default: a client
	// keeping connections open).
	HTTPClient *http.Client
	DeliveryOptions
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
	freshMu sync.Mutex
	fresh   []claimed // leased at planning, handed over in memory
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

// offer takes items the planner leased to this process, now durable.
func (d *Dispatcher) offer(items []store.OutboxItem) {
	now := time.Now()
	d.freshMu.Lock()
	for _, it := range items {
		d.fresh = append(d.fresh, claimed{item: it, at: now, fresh: true})
	}
	d.freshMu.Unlock()
	d.Wake()
}

// takeFresh returns up to n offered items.
func (d *Dispatcher) takeFresh(n int) []claimed {
	d.freshMu.Lock()
	defer d.freshMu.Unlock()
	k := min(n, len(d.fresh))
	out := d.fresh[:k:k]
	d.fresh = d.fresh[k:]
	if len(d.fresh) == 0 {
		d.fresh = nil
	}
	return out
}

type destState struct {
	d   *store.Destination
	s   sender
	lim *connector.Limiter
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
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Workers
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	d := &Dispatcher{cfg: cfg, st: cfg.Store, log: cfg.Logger, wake: make(chan struct{}, 1), dests: map[string]*destState{}}
	d.autos.Store(&map[string]store.Automation{})
	return d
}

// Wake tells the dispatcher new items may be due.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Reload reads the automations and forgets the cached destinations.
func (d *Dispatcher) Reload(ctx context.Context) error {
	if err := d.loadAutomations(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	clear(d.dests)
	d.mu.Unlock()
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
// Claims and outcomes are write transactions, so both are batched: the
// loop claims when a quarter of its window of claimed-but-unfinished
// items is free (or all of it: at low rates every new item is claimed at
// once), Workers goroutines deliver, and the finisher records whatever
// outcomes have accumulated in one transaction.
func (d *Dispatcher) Run(ctx context.Context) error {
	window := d.cfg.Workers * 8
	var outstanding atomic.Int64 // claimed, outcome not yet recorded
	results := make(chan store.OutboxResult, window)
	finished := make(chan struct{})
	go d.finisher(results, finished, &outstanding)
	sendCtx, cancelSend := context.WithCancel(context.Background())
	work := make(chan claimed, window)
	var workers sync.WaitGroup
	for range d.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for it := range work {
				if time.Since(it.at) > d.cfg.Lease/2 {
					// Queued too long under load: its lease could end while
					// it is sent, and another claim send it twice. Hand it
					// back to be claimed again, in lane order.
					r := d.released(store.OutboxResult{ID: it.item.ID, At: d.cfg.Now()})
					r.Error = "handed back: waited too long for a worker"
					results <- r
					continue
				}
				if it.fresh {
					// Leased without a claim: it may go only if nothing is
					// ahead of it in its lane, else it is handed back.
					if head, err := d.st.LaneHead(sendCtx, it.item.ID); err != nil || !head {
						r := d.released(store.OutboxResult{ID: it.item.ID, At: d.cfg.Now()})
						r.Error = "handed back: an earlier item of its lane is pending"
						results <- r
						continue
					}
				}
				results <- d.deliver(sendCtx, it.item, it.at)
			}
		}()
	}
	d.running.Store(true)
	defer func() {
		d.running.Store(false)
		cancelSend() // queued items are released without being sent
		// Offered items not started yet give their leases back.
		for _, c := range d.takeFresh(1 << 30) {
			results <- d.released(store.OutboxResult{ID: c.item.ID, At: d.cfg.Now()})
		}
		close(work)
		workers.Wait()
		close(results)
		<-finished
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := 100 * time.Millisecond
	var lastScan time.Time
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := d.cfg.Now()
		out := int(outstanding.Load())
		free := window - out
		if free > 0 {
			fresh := d.takeFresh(free)
			outstanding.Add(int64(len(fresh)))
			for _, c := range fresh {
				work <- c
			}
			out += len(fresh)
			free -= len(fresh)
		}
		if free > 0 && (out == 0 || free >= window/4) {
			items, err := d.st.ClaimOutbox(ctx, now, d.cfg.Lease, free)
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
			outstanding.Add(int64(len(items)))
			for _, it := range items {
				work <- claimed{item: it, at: time.Now()} // never blocks: work holds a whole window
			}
			if len(items) == free {
				continue // more may be due
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

// finishLinger is how long an outcome may wait for others to be recorded with.
const finishLinger = 20 * time.Millisecond

// finisher records outcomes in batches (one transaction for whatever has
// accumulated), then wakes the loop: a finished item frees its lane.
func (d *Dispatcher) finisher(results <-chan store.OutboxResult, done chan<- struct{}, outstanding *atomic.Int64) {
	defer close(done)
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for r := range results {
		// Outcomes wait up to finishLinger for company: the webhook is out
		// already, and fewer, larger transactions keep the database's one
		// writer free for the event log, whose commits acknowledge events.
		batch := []store.OutboxResult{r}
		linger.Reset(finishLinger)
	drain:
		for len(batch) < 1000 {
			select {
			case r, ok := <-results:
				if !ok {
					break drain
				}
				batch = append(batch, r)
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
		for try := 0; ; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := d.st.FinishOutbox(ctx, batch)
			cancel()
			if err == nil {
				break
			}
			if try == 4 {
				// The leases run out and the items are delivered again.
				d.log.Error("recording delivery outcomes failed; the items will be retried when their leases end", "items", len(batch), "err", err)
				break
			}
			time.Sleep(time.Duration(100<<try) * time.Millisecond)
		}
		for _, r := range batch {
			if r.State == store.OutboxPending {
				d.noteDue(r.NextAt)
			}
		}
		outstanding.Add(-int64(len(batch)))
		d.Wake()
	}
}

func (d *Dispatcher) automation(id string) (store.Automation, bool) {
	a, ok := (*d.autos.Load())[id]
	return a, ok
}

// destination returns the destination's sender, building it on first use
// (under the lock, so that concurrent first deliveries share one limiter).
func (d *Dispatcher) destination(ctx context.Context, id string) (*destState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ds := d.dests[id]; ds != nil {
		return ds, nil
	}
	dest, err := d.st.GetDestination(ctx, id)
	if err != nil {
		return nil, err
	}
	secrets := connector.Secrets{}
	if len(dest.Sealed) > 0 {
		if secrets, err = connector.OpenSecrets(d.cfg.Key, dest.Sealed, []byte(dest.ID)); err != nil {
			return nil, fmt.Errorf("destination %s: secrets: %w", dest.Name, err)
		}
	}
	s, rate, err := newSender(dest, secrets, d.cfg.HTTPClient, d.cfg.Timeout, d.cfg.DeliveryOptions)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest.Name, err)
	}
	ds := &destState{d: dest, s: s, lim: connector.NewLimiter(connector.Rate{PerSecond: rate, Burst: max(1, int(rate))})}
	d.dests[id] = ds
	return ds, nil
}

// deliver makes one attempt at an item and says what became of it.
// claimed is an item with the time (this process's clock, monotonic) its
// lease began.
type claimed struct {
	item  store.OutboxItem
	at    time.Time
	fresh bool // leased at planning: check the lane before sending
}

func (d *Dispatcher) deliver(ctx context.Context, it store.OutboxItem, claimedAt time.Time) store.OutboxResult {
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
	// The rate limit may hold an item long; it must not outlive its lease
	// (another claim would send it twice), so past half the lease it goes
	// back to be claimed again, in lane order.
	wctx, cancel := context.WithDeadline(ctx, claimedAt.Add(d.cfg.Lease/2))
	err = ds.lim.Wait(wctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			res.State, res.NextAt, res.Error = store.OutboxPending, d.cfg.Now().Add(d.cfg.MinBackoff/10), "waited for the rate limit past half the lease"
			return res
		}
		return d.released(res)
	}
	dl := &delivery{item: it, payload: p, auto: auto, opts: opts, profile: prof, traits: chooseTraits(prof.Traits, opts.Traits)}
	err = ds.s.send(ctx, dl)
	res.At = d.cfg.Now()
	if err == nil {
		res.State, res.Attempted = store.OutboxDelivered, true
		return res
	}
	if ctx.Err() != nil {
		return d.released(res) // shutting down: not the destination's fault
	}
	res.Attempted = true
	if auto.Hook && connector.StatusOf(err) == http.StatusGone && d.onUnsubscribe != nil {
		if uerr := d.onUnsubscribe(context.Background(), auto.ID); uerr != nil {
			d.log.Error("ending a REST Hooks subscription after 410 Gone", "hook", auto.ID, "err", uerr)
		}
		res.State, res.Error = store.OutboxSkipped, "subscription ended: the target answered 410 Gone"
		return res
	}
	return d.failed(it, res, err)
}

// released puts an item back without counting an attempt.
func (d *Dispatcher) released(res store.OutboxResult) store.OutboxResult {
	res.State, res.NextAt, res.Attempted, res.Error = store.OutboxPending, res.At, false, "released at shutdown"
	return res
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
