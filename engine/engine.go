// Package engine is Kiln's running processor. It tails the durable event
// log from its checkpoint, resolves each event's identity with the
// in-memory resolver, and writes profiles, identities, merges and consent
// together with the new checkpoint in one transaction. A crash loses
// nothing: on restart it reloads the identity index (from the last
// snapshot, brought up to the checkpoint, or else from the store) and
// resumes after the last checkpoint, and resolution of the same events is
// repeatable.
//
// Operations that change identity state from outside the log (deleting a
// profile, undoing a merge) go through the engine too, so they are
// serialised with event processing.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/metrics"
	"github.com/kiln-cdp/kiln/store"
)

// Checkpoint is the name of the resolver's checkpoint in the store.
const Checkpoint = "resolver"

// Config wires an Engine.
type Config struct {
	Store   store.Store
	Logger  *slog.Logger
	Metrics *metrics.Metrics // nil: none
	// Blocklist: identifier values never used to link profiles.
	Blocklist []string
	// PhoneCountryCode is assumed for phone numbers written without one.
	PhoneCountryCode string
	// BatchSize is the most events one transaction covers (default
	// 10,000). A batch takes what is waiting, so at low rates each event
	// commits on its own at once and under load writes coalesce: a
	// customer's several events cost one profile write.
	BatchSize int
	// Poll is how often the log is checked when nothing woke the engine,
	// e.g. for events another process imported (default 1s).
	Poll time.Duration
	Now  func() time.Time
	// Location is the workspace's time zone for calendar windows,
	// anniversaries and schedules (default UTC).
	Location *time.Location
	// Currency is the workspace's currency: of amounts in events without
	// properties.currency, and of amounts a definition neither scopes nor
	// converts (default USD). Rates convert amounts for definitions that
	// ask for it (sum(properties.revenue in GBP)).
	Currency string
	Rates    eval.Rates
	// SizeSample is how often segment sizes are stored for the charts
	// when they changed (default 1 minute).
	SizeSample time.Duration
	// OnTransitions, if set, is called with every batch of transitions
	// after it is durable (followers, latency measurement).
	OnTransitions func([]kiln.Transition)
	// Yield, if set, reports that acknowledgements are waiting for the
	// database; the engine then holds its own write back for a moment
	// (at most YieldFor, default 250ms), since ingest latency is what
	// clients wait on and processing catches up when ingest pauses.
	Yield    func() bool
	YieldFor time.Duration
	// RFM names the RFM groups by score ranges (default
	// intel.DefaultRFMConfig: Champions, Loyal, At Risk, ...).
	RFM intel.RFMConfig
	// Refit is how often the customer models are refitted (default 24h;
	// negative: never automatically).
	Refit time.Duration
	// Planner, if set, adds to each Resolution with transitions the actions
	// they trigger, before it is written.
	Planner Planner
	// Loading, if set, is called as the engine starts loading segment
	// state (tests hold start-up there to see what is served meanwhile).
	Loading func()
	// SnapshotEvery is how many processed events make a snapshot of the
	// engine's state due (default 1,000,000; negative: only on request),
	// SnapshotAfter how long after the last one a snapshot is taken if
	// any event was processed since (default 15 minutes). A restart
	// replays only the log after the last snapshot.
	SnapshotEvery int64
	SnapshotAfter time.Duration
	// ProfileID, if set, makes the id of the profile an event creates
	// (default random): for tests that compare runs.
	ProfileID func(e *kiln.Event) string
}

// refitLoop fits the customer models once the engine runs, then every
// cfg.Refit.
func (e *Engine) refitLoop(ctx context.Context) {
	if e.cfg.Refit < 0 {
		return
	}
	every := e.cfg.Refit
	if every == 0 {
		every = 24 * time.Hour
	}
	// The fitted models are stored: a restart refits only when the last
	// fit is due again, as an uninterrupted run would.
	wait := time.Duration(0)
	e.mu.Lock()
	if m := e.models; m != nil && m.report != nil {
		wait = max(0, m.report.FittedAt.Add(every).Sub(e.cfg.Now()))
	}
	e.mu.Unlock()
	for {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		if _, err := e.RefitModels(ctx, ModelOptions{}); err != nil && ctx.Err() == nil {
			e.log.Warn("fitting the customer models", "err", err)
		}
		wait = every
	}
}

// giveWay waits, briefly, while acknowledgements are waiting for the
// database's single writer. Only big batches wait: they mean ingest is
// running ahead (a burst), when acknowledging matters most and processing
// can catch up after; small ones are the normal flow, where waiting would
// only add latency to every transition.
func (e *Engine) giveWay(batch int) {
	if e.cfg.Yield == nil || batch < yieldBatch {
		return
	}
	wait := e.cfg.YieldFor
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	deadline := time.Now().Add(wait)
	for e.cfg.Yield() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// Planner turns transitions into actions written in the same transaction.
type Planner interface {
	Plan(ctx context.Context, res *store.Resolution) error
}

// Engine processes the event log.
type Engine struct {
	cfg Config
	log *slog.Logger
	st  store.Store

	rules     identity.Rules
	x         *identity.Extractor
	loc       *time.Location
	segs      *segments // the segment runtime, guarded by mu
	models    *models   // fitted customer models, guarded by mu
	jobs      jobs
	segsDirty bool
	// What start-up is doing, for readiness (see Status).
	phase          atomic.Pointer[string]
	loaded, toLoad atomic.Int64
	startSnap      atomic.Int64
	// The current snapshot (see Snapshot); 0: none.
	snapGen, snapSeq int64
	snapAt           time.Time
	pre              *decodedSnapshot // states decoded at start, for loadSnapshot
	indexSnapped     bool             // the identity index was loaded from the snapshot
	preloaded        bool             // and the states decoded beside it
	// The last problem of amounts left out (see warnAmounts).
	amounts atomic.Pointer[string]

	mu   sync.Mutex // serialises batches with Ops
	res  *identity.Resolver
	wake chan struct{}

	processed atomic.Int64 // checkpoint: last Seq processed
	head      atomic.Int64 // last Seq known to be in the log
	progress  chan struct{}
	progMu    sync.Mutex
	tailMu    sync.Mutex
	tail      []kiln.Event // events offered by the journal, not yet processed
	suppress  map[kiln.Identifier]bool
}

// New makes an Engine; Run starts it. It fails only on invalid identity
// rules (a blocklist entry that is not an identifier, say).
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The configured blocklist adds to the default placeholders
	// (test@test.com, "null", ...) rather than replacing them.
	rules := identity.Rules{CountryCode: cfg.PhoneCountryCode, BlockedValues: append(slices.Clone(identity.DefaultBlockedValues), cfg.Blocklist...)}
	x, err := identity.NewExtractor(rules)
	if err != nil {
		return nil, fmt.Errorf("identity rules: %w", err)
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 1_000_000
	}
	if cfg.SnapshotAfter <= 0 {
		cfg.SnapshotAfter = 15 * time.Minute
	}
	if cfg.SizeSample <= 0 {
		cfg.SizeSample = time.Minute
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return &Engine{cfg: cfg, log: cfg.Logger, st: cfg.Store, rules: rules, x: x, loc: cfg.Location, wake: make(chan struct{}, 1), progress: make(chan struct{})}, nil
}

// Extractor decides what counts as an identifier and normalises it. Ingest
// and look-ups must use the resolver's, so anchors and look-ups agree.
func (e *Engine) Extractor() *identity.Extractor { return e.x }

// yieldBatch is the batch size from which processing gives way to
// acknowledgements (see giveWay).
const yieldBatch = 2000

// tailLimit bounds the events Offer keeps in memory; beyond it the engine
// reads the log from the store instead (it is falling behind anyway).
const tailLimit = 200000

// Offer hands the engine events just committed to the log by this
// process, in Seq order, so it need not read them back from the store. It
// takes them only while they continue the log without a gap; anything
// else (an import by another process, a backlog) is read from the store.
func (e *Engine) Offer(evs []kiln.Event) {
	e.tailMu.Lock()
	if len(e.tail)+len(evs) > tailLimit {
		e.tail = nil // the store has them all; memory stays bounded
	} else {
		e.tail = append(e.tail, evs...)
	}
	e.tailMu.Unlock()
	if n := len(evs); n > 0 && e.head.Load() < evs[n-1].Seq {
		e.head.Store(evs[n-1].Seq)
	}
	e.Wake()
}

// fromTail returns up to n offered events that directly follow after, or
// nil if the tail does not start there.
func (e *Engine) fromTail(after int64, n int) []kiln.Event {
	e.tailMu.Lock()
	defer e.tailMu.Unlock()
	i := 0
	for i < len(e.tail) && e.tail[i].Seq <= after {
		i++
	}
	e.tail = e.tail[i:]
	if len(e.tail) == 0 || e.tail[0].Seq != after+1 {
		return nil
	}
	k := 1
	for k < len(e.tail) && k < n && e.tail[k].Seq == e.tail[k-1].Seq+1 {
		k++
	}
	out := e.tail[:k:k]
	e.tail = e.tail[k:]
	if len(e.tail) == 0 {
		e.tail = nil // let the backing array go
	}
	return out
}

// Wake tells the engine new events are in the log.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Lag is how many stored events are not processed yet, as last seen.
func (e *Engine) Lag() int64 { return max(0, e.head.Load()-e.processed.Load()) }

// Processed is the Seq of the last event processed.
func (e *Engine) Processed() int64 { return e.processed.Load() }

// WaitFor blocks until every event up to seq is processed, or ctx ends.
func (e *Engine) WaitFor(ctx context.Context, seq int64) error {
	for {
		e.progMu.Lock()
		ch := e.progress
		e.progMu.Unlock()
		if e.processed.Load() >= seq {
			return nil
		}
		e.Wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) advanced(seq int64) {
	e.processed.Store(seq)
	e.progMu.Lock()
	close(e.progress)
	e.progress = make(chan struct{})
	e.progMu.Unlock()
}

// newResolver makes the resolver and loads its index: from snapshot h if
// usable and it holds one, else every stored identity.
func (e *Engine) newResolver(ctx context.Context, h snapshotHeader, usable bool) (*identity.Resolver, error) {
	r, err := identity.New(identity.Config{
		Rules:      e.rules,
		Checkpoint: Checkpoint,
		Suppressed: e.suppressed(ctx),
		NewIDFor:   e.cfg.ProfileID,
	})
	if err != nil {
		return nil, fmt.Errorf("identity rules: %w", err)
	}
	if usable {
		ok, err := e.loadIndexSnapshot(ctx, h, r)
		if err != nil {
			return nil, fmt.Errorf("loading the identity index: %w", err)
		}
		if ok {
			e.indexSnapped = true
			if e.cfg.Metrics != nil {
				e.cfg.Metrics.ProfilesResolved.Set(float64(r.Stats().Identifiers))
			}
			return r, nil
		}
	}
	start := time.Now()
	n := 0
	err = e.st.ScanIdentities(ctx, func(id kiln.Identity) error {
		n++
		return r.Load(id)
	})
	if err != nil {
		return nil, fmt.Errorf("loading the identity index: %w", err)
	}
	e.log.Info("identity index loaded", "identities", n, "took", time.Since(start).Round(time.Millisecond))
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.ProfilesResolved.Set(float64(n))
	}
	return r, nil
}

// suppressed answers from a set loaded at start and kept current by
// DeleteProfile, so the hot path never queries the store.
func (e *Engine) suppressed(ctx context.Context) func(kiln.Identifier) bool {
	set := map[kiln.Identifier]bool{}
	if list, err := e.st.ListSuppressions(ctx); err == nil {
		for _, s := range list {
			set[s.Identifier] = true
		}
	} else {
		e.log.Error("loading the suppression list", "err", err)
	}
	e.suppress = set
	return func(id kiln.Identifier) bool { return e.suppress[id] }
}

// Run processes the log until ctx ends. It signals ready once the identity
// index is loaded (or with the error that stopped it).
func (e *Engine) Run(ctx context.Context, ready chan<- error) error {
	// The model traits are read while the identity index loads: both are
	// one reader each, and the machine has more than one core.
	type loaded struct {
		m        *models
		fromSnap bool // its traits came from the snapshot
		err      error
	}
	// The checkpoint first: what is loaded from a snapshot is brought up
	// to it.
	cp, err := e.st.GetCheckpoint(ctx, Checkpoint)
	e.processed.Store(cp)
	var h snapshotHeader
	if err == nil {
		h, err = e.snapshotHeader(ctx)
	}
	if err != nil {
		if ready != nil {
			ready <- err
		}
		return err
	}
	usable := e.snapshotUsable(h)
	// Three loads at once, none waiting for another: the model traits,
	// the definitions with the snapshot's states, and the identity index.
	modelsc := make(chan loaded, 1)
	go func() {
		m, fromSnap, err := e.loadModels(ctx, h, usable)
		modelsc <- loaded{m, fromSnap, err}
	}()
	type segsLoaded struct {
		s   *segments
		pre *decodedSnapshot
		err error
	}
	segsc := make(chan segsLoaded, 1)
	go func() {
		s, err := e.readSegments(ctx)
		var pre *decodedSnapshot
		if err == nil && usable {
			pre = e.preloadSnapshot(ctx, h, s)
		}
		segsc <- segsLoaded{s, pre, err}
	}()
	r, err := e.newResolver(ctx, h, usable)
	lm := <-modelsc
	if err == nil {
		err = lm.err
	}
	ls := <-segsc
	if err == nil {
		err = ls.err
	}
	if err == nil && (e.indexSnapped || lm.fromSnap) {
		err = e.catchUpSnapshot(ctx, h, r, lm.m, lm.fromSnap)
	}
	if err == nil {
		e.setPhase(PhaseState)
		if e.cfg.Loading != nil {
			e.cfg.Loading()
		}
		e.mu.Lock()
		e.res = r
		e.models = lm.m
		e.segs, e.pre = ls.s, ls.pre
		err = e.rebuild(ctx)
		e.pre = nil
		e.mu.Unlock()
	}
	if err == nil {
		e.setPhase(PhaseReady)
	}
	if ready != nil {
		ready <- err
	}
	if err != nil {
		return err
	}

	// Fit the customer models in the background now, and daily.
	go e.refitLoop(ctx)
	tick := time.NewTicker(e.cfg.Poll)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var sizes map[string]int64
	lastSample := time.Time{}
	backoff := 100 * time.Millisecond
	for {
		if time.Since(lastSample) >= e.cfg.SizeSample {
			sizes = e.sampleSizes(ctx, sizes)
			lastSample = time.Now()
		}
		n, err := e.step(ctx)
		if err == nil && e.snapshotDue() {
			if err := e.Snapshot(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("writing the engine snapshot", "err", err)
			}
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			e.log.Error("processing the event log failed; retrying", "err", err, "after", backoff)
			if e.cfg.Metrics != nil {
				e.cfg.Metrics.ProcessorErrors.Inc()
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		case n > 0:
			backoff = 100 * time.Millisecond
			continue // more may be waiting
		}
		// Caught up with the log: what time did up to now is recorded.
		if err := e.tick(ctx); err != nil {
			e.log.Error("recording expiries failed; retrying", "err", err)
		}
		e.mu.Lock()
		due := e.nextDue()
		e.mu.Unlock()
		wait := time.Hour
		if !due.IsZero() {
			wait = max(0, due.Sub(e.cfg.Now()))
		}
		timer.Reset(wait)
		select {
		case <-e.wake:
		case <-tick.C:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// step processes one batch and returns how many events it covered.
func (e *Engine) step(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.segsDirty {
		if err := e.rebuild(ctx); err != nil {
			return 0, err
		}
	}
	after := e.processed.Load()
	evs := e.fromTail(after, e.cfg.BatchSize)
	if evs == nil {
		var err error
		if evs, err = e.st.ReadEvents(ctx, after, e.cfg.BatchSize); err != nil {
			return 0, fmt.Errorf("reading events after %d: %w", after, err)
		}
		// A full batch read from the store means a backlog this server
		// was not offered (a bulk import by another process, or events
		// stored before a restart): readiness and the lag metric say how
		// long it is.
		if len(evs) == e.cfg.BatchSize {
			if last, err := e.st.LastSeq(ctx); err == nil && last > e.head.Load() {
				e.head.Store(last)
			}
		}
	}
	// Read after the events: every one of them was received before now.
	now := e.evalNow()
	if len(evs) == 0 {
		e.head.Store(after)
		if e.cfg.Metrics != nil {
			e.cfg.Metrics.ProcessorLag.Set(0)
		}
		return 0, nil
	}
	// Each event counts from when it was received, however late it is
	// processed (after a crash, or behind a backlog), so the transitions
	// are those of a run that processed it at once. What time did before
	// the first is recorded first (see catchUp); between events, evalBatch
	// records it with the batch.
	if err := e.catchUp(ctx, eventAt(&evs[0], e.segs.clock, now)); err != nil {
		return 0, err
	}
	var merges, refused int
	pids := make([]string, len(evs))
	var merged map[string]string // absorbed profile -> survivor
	for i := range evs {
		out := e.res.Resolve(&evs[i])
		pids[i] = out.ProfileID
		for _, mg := range out.Merges {
			if merged == nil {
				merged = map[string]string{}
			}
			merged[mg.From] = mg.Into
		}
		merges += len(out.Merges)
		refused += len(out.Refused)
		for _, rf := range out.Refused {
			e.log.Debug("identity link refused", "identifier", rf.Identifier.String(), "profile", rf.ProfileID, "into", rf.Into, "reason", rf.Reason, "seq", evs[i].Seq)
		}
	}
	res := e.res.Pending()
	last := evs[len(evs)-1].Seq
	res.Checkpoint = store.Checkpoint{Name: Checkpoint, Seq: last}
	res.IndexUpTo = last
	res.Derived = true
	// On failure the segment states have moved past what is stored: they
	// are rebuilt from the log before the next batch (rare, and simpler
	// than copying every touched state on the hot path).
	at, err := e.evalBatch(ctx, evs, pids, merged, &res, now)
	if err != nil {
		e.res.Abort()
		e.segsDirty = true
		return 0, err
	}
	res.Checkpoints = clockAt(at)
	e.giveWay(len(evs))
	if err := e.write(ctx, &res); err != nil {
		e.res.Abort()
		e.segsDirty = true
		return 0, fmt.Errorf("writing resolution up to seq %d: %w", last, err)
	}
	e.res.Commit()
	e.moveClock(time.UnixMilli(at))
	if m := e.cfg.Metrics; m != nil && len(res.Transitions) > 0 {
		m.Transitions.WithLabelValues(kiln.ReasonEvent).Add(float64(len(res.Transitions)))
	}
	if e.head.Load() < last {
		e.head.Store(last)
	}
	e.advanced(last)
	if m := e.cfg.Metrics; m != nil {
		m.ProcessedEvents.Add(float64(len(evs)))
		m.Merges.Add(float64(merges))
		m.RefusedLinks.Add(float64(refused))
		m.ProcessorLag.Set(float64(e.Lag()))
		m.ProfilesResolved.Set(float64(e.res.Stats().Identifiers))
	}
	return len(evs), nil
}

// warnAmounts logs amounts the definitions leave out (another currency
// than they read, or one without a rate) and keeps the problem for
// Warnings, so readiness and the UI can say it: a shop that forgot to set
// its currency otherwise sees only empty spend. seq is the event that
// showed it (0: found while replaying at start).
func (e *Engine) warnAmounts(err error, seq int64) {
	msg := "amounts left out of definitions: " + err.Error() + " (set the workspace currency with -currency, say in currency, or convert)"
	e.amounts.Store(&msg)
	if seq > 0 {
		e.log.Warn(msg, "event", seq)
	} else {
		e.log.Warn(msg)
	}
}

// Warnings lists what an operator should know about the engine's
// results: amounts the definitions leave out.
func (e *Engine) Warnings() []string {
	if p := e.amounts.Load(); p != nil {
		return []string{*p}
	}
	return nil
}

// Starting-up phases (Status).
const (
	PhaseIdentities = "loading the identity index"
	PhaseState      = "rebuilding segment state"
	PhaseReady      = "ready"
)

// Status says what the engine is doing while it starts and how far along
// it is: events replayed of those to replay.
type Status struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	// Snapshot is the generation of the snapshot start-up began from (0:
	// the whole log was replayed); Total counts the events after it.
	Snapshot int64 `json:"snapshot,omitempty"`
}

// Status reports the start-up phase; Phase is PhaseReady once the engine
// processes events.
func (e *Engine) Status() Status {
	st := Status{Phase: PhaseIdentities}
	if p := e.phase.Load(); p != nil {
		st.Phase = *p
	}
	st.Done, st.Total = e.loaded.Load(), e.toLoad.Load()
	st.Snapshot = e.startSnap.Load()
	return st
}

func (e *Engine) setPhase(p string) { e.phase.Store(&p) }

// snapshotDue reports whether enough was processed since the last
// snapshot to take another.
func (e *Engine) snapshotDue() bool {
	if e.cfg.SnapshotEvery < 0 {
		return false
	}
	since := e.processed.Load() - e.snapSeq
	if e.snapAt.IsZero() {
		e.snapAt = time.Now()
	}
	return since >= e.cfg.SnapshotEvery || (since > 0 && time.Since(e.snapAt) >= e.cfg.SnapshotAfter)
}

// evalNow is the instant at which what happens now is evaluated and
// recorded: the clock in whole milliseconds (the evaluator's unit), never
// before what the engine already recorded, even if the system clock steps
// back.
func (e *Engine) evalNow() time.Time {
	now := e.cfg.Now().Truncate(time.Millisecond)
	if s := e.segs; s != nil && now.UnixMilli() < s.clock {
		return time.UnixMilli(s.clock)
	}
	return now
}

// eventAt is the instant (Unix ms) at which an event is evaluated: when
// it was received, but never before the clock (time does not go back for
// the engine) nor after now (a receive time from a host whose clock is
// ahead); now when the event does not say.
func eventAt(ev *kiln.Event, clock int64, now time.Time) int64 {
	at := now.UnixMilli()
	if !ev.ReceivedAt.IsZero() {
		at = min(at, ev.ReceivedAt.UnixMilli())
	}
	return max(at, clock)
}

// moveClock notes that a write recorded everything up to now.
func (e *Engine) moveClock(now time.Time) {
	if s := e.segs; s != nil {
		s.clock = max(s.clock, now.UnixMilli())
	}
}

// tick records what time alone did up to now (expiries, scheduled
// publications).
func (e *Engine) tick(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.segsDirty {
		return nil // step rebuilds first
	}
	return e.catchUp(ctx, e.evalNow().UnixMilli())
}

func (e *Engine) ready() (*identity.Resolver, error) {
	if e.res == nil {
		return nil, kiln.Errorf(kiln.EUnavailable, "the engine is still starting")
	}
	return e.res, nil
}

// DeleteProfile deletes a profile with its events, identities and consent,
// optionally suppressing its identifiers so later events do not recreate it.
func (e *Engine) DeleteProfile(ctx context.Context, id string, suppress bool) ([]kiln.Identity, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.ready()
	if err != nil {
		return nil, err
	}
	if err := e.invalidateSnapshot(ctx); err != nil {
		return nil, err
	}
	// Others move up in the populations it leaves: what time did
	// before is recorded first, then their changes at this instant.
	now := e.evalNow()
	if e.segs.pop != nil {
		if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
			return nil, err
		}
	}
	ids, err := e.st.DeleteProfile(ctx, id, suppress, "profile deleted", e.cfg.Now().UTC())
	if err != nil {
		return nil, err
	}
	if err := r.Forget(ids); err != nil {
		return nil, fmt.Errorf("dropping profile %s from the identity index: %w", id, err)
	}
	for _, seg := range e.segs.drop(id) {
		e.segs.sizes[seg]--
	}
	delete(e.segs.static, id)
	if e.segs.pop != nil {
		res := store.Resolution{Checkpoints: clockAt(now.UnixMilli())}
		res.Transitions = e.segs.rerank(id, now, nil)
		if err := e.write(ctx, &res); err != nil {
			e.segsDirty = true
			return nil, fmt.Errorf("recording the rank changes of deleting profile %s: %w", id, err)
		}
		e.moveClock(now)
	}
	e.forgetModels(id)
	if suppress {
		for _, i := range ids {
			e.suppress[i.Identifier] = true
		}
	}
	return ids, nil
}

// Unmerge undoes a merge: the identities it moved go back to a restored
// From profile, and both profiles are recomputed from their own events.
func (e *Engine) Unmerge(ctx context.Context, mergeID int64) (*kiln.Merge, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.ready()
	if err != nil {
		return nil, err
	}
	if err := e.invalidateSnapshot(ctx); err != nil {
		return nil, err
	}
	m, err := e.st.UndoMerge(ctx, mergeID, e.cfg.Now().UTC())
	if errors.Is(err, store.ErrConflict) {
		return nil, kiln.Errorf(kiln.EConflict, "merge %d was already undone", mergeID)
	}
	if err != nil {
		return nil, err
	}
	if err := r.Unmerge(*m); err != nil {
		return nil, fmt.Errorf("moving identities back in the index: %w", err)
	}
	now := e.evalNow()
	if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
		return nil, err
	}
	var res store.Resolution
	res.Checkpoints = clockAt(now.UnixMilli())
	var rescored []string
	for _, pid := range []string{m.Into, m.From} {
		p, err := e.st.GetProfile(ctx, pid)
		if store.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		anchors := make([]string, len(p.Identities))
		for i, id := range p.Identities {
			anchors[i] = id.Identifier.String()
		}
		evs, err := e.st.EventsByAnchor(ctx, anchors, 0)
		if err != nil {
			return nil, err
		}
		pc, cs := identity.Fold(pid, evs)
		pc.At = now.UTC()
		res.Profiles = append(res.Profiles, pc)
		res.Consent = append(res.Consent, cs...)
		if e.recountPurchases(pid, evs, now) {
			rescored = append(rescored, pid)
		}
		before, after := e.rebuildProfile(pid, evs, now)
		res.Transitions = e.segs.diff(pid, before, after, now, kiln.ReasonProfile, always, res.Transitions)
		res.Transitions = e.segs.rerank(pid, now, res.Transitions)
	}
	res.ModelTraits = e.modelTraitChanges(rescored, nil)
	if err := e.write(ctx, &res); err != nil {
		e.segsDirty = true
		return nil, fmt.Errorf("recomputing profiles after unmerge: %w", err)
	}
	e.moveClock(now)
	return m, nil
}
