package engine

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// The segment runtime keeps, per profile, the compact evaluation state of
// the compiled definition set, and a min-heap of the instants at which time
// alone changes something (a window's oldest event leaving it). Events
// update only their profile; the timer loop advances profiles exactly at
// their due instants, so an expiry is recorded at the instant it happens.
//
// State is rebuilt on start by replaying the event log (see rebuild); the
// documented cost is about the time to read the log once.

// ClockCheckpoint names the checkpoint holding the engine's evaluation
// time (Unix ms) as of the resolver checkpoint, so a restart can replay the
// log as of that instant and then catch up on expiries with their exact
// times.
const ClockCheckpoint = "engine-clock"

// pstate is one profile's evaluation state.
type pstate struct {
	st   *eval.State
	prof eval.Profile
	due  int64 // Unix ms of the scheduled Advance, 0 if none
}

type dueItem struct {
	at  int64
	pid string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// segments is the runtime; the engine's mutex guards it.
type segments struct {
	prog     *eval.Program
	defs     map[string]kiln.Definition // stored definitions by name
	versions map[string]int64
	backfill map[string]string
	states   map[string]*pstate
	due      dueHeap
	sizes    map[string]int64
	static   map[string][]string // profile -> static segments listing it
	clock    int64               // evaluation time of the last batch, Unix ms

	// Segments whose freshness is not real time publish their membership
	// only when their schedule fires (or on a manual recompute). pub holds
	// what was last published for each; the evaluator keeps computing in
	// between, so publishing is a diff, not a recompute.
	sched map[string]*schedule
	pub   map[string]map[string]bool

	// pop ranks profiles for population-relative conditions (nil when
	// the program has none): kept current after every evaluation of a
	// profile (see rerank), rebuilt from the states when they are
	// installed.
	pop *eval.Population

	// lazyEvidence makes diff leave entries' evidence for fillEvidence.
	lazyEvidence bool
	// curCheck sees events that arrive after the definitions were
	// applied: amounts they leave out (another currency than the
	// workspace's, no rate) are logged, since applying checked only the
	// events received before.
	curCheck *eval.CurrencyCheck
}

// schedule is when a non-real-time segment publishes next.
type schedule struct {
	mode  string        // every, cron or manual
	every time.Duration // for every
	cron  cron.Schedule // for cron
	loc   *time.Location
	next  time.Time // zero for manual
}

// advance sets the first publication after now. "every N" publishes on
// fixed multiples of N (every hour on the hour), so the instants do not
// depend on when the server started.
func (sc *schedule) advance(now time.Time) {
	switch sc.mode {
	case rule.FreshEvery:
		sc.next = now.Truncate(sc.every).Add(sc.every)
	case rule.FreshCron:
		sc.next = sc.cron.Next(now.In(sc.loc))
	default:
		sc.next = time.Time{}
	}
}

// deferred reports whether seg publishes on a schedule.
func (s *segments) deferred(seg string) bool { return s.sched[seg] != nil }

// setSchedules reads the freshness of every segment of the program.
func (s *segments) setSchedules(loc *time.Location, now time.Time) error {
	s.sched = map[string]*schedule{}
	if s.pub == nil {
		s.pub = map[string]map[string]bool{}
	}
	if s.prog == nil {
		return nil
	}
	for _, d := range s.prog.Definitions().Defs {
		if d.Kind != rule.KindSegment || d.Freshness == nil || d.Freshness.Mode == rule.FreshRealtime || d.Freshness.Mode == "" {
			continue
		}
		sc := &schedule{mode: d.Freshness.Mode, loc: loc}
		switch d.Freshness.Mode {
		case rule.FreshEvery:
			sc.every = spanDuration(d.Freshness.Every)
		case rule.FreshCron:
			if d.Freshness.TZ != "" {
				l, err := time.LoadLocation(d.Freshness.TZ)
				if err != nil {
					return fmt.Errorf("segment %s: time zone %q: %w", d.Name, d.Freshness.TZ, err)
				}
				sc.loc = l
			}
			cs, err := cron.ParseStandard(d.Freshness.Cron)
			if err != nil {
				return fmt.Errorf("segment %s: cron %q: %w", d.Name, d.Freshness.Cron, err)
			}
			sc.cron = cs
		}
		sc.advance(now)
		s.sched[d.Name] = sc
		if s.pub[d.Name] == nil {
			s.pub[d.Name] = map[string]bool{}
		}
	}
	return nil
}

func spanDuration(sp *rule.Span) time.Duration {
	if sp == nil {
		return time.Hour
	}
	unit := time.Minute
	switch sp.Unit {
	case "hours":
		unit = time.Hour
	case "days":
		unit = 24 * time.Hour
	}
	return time.Duration(sp.N) * unit
}

func newSegments() *segments {
	return &segments{defs: map[string]kiln.Definition{}, versions: map[string]int64{}, backfill: map[string]string{},
		states: map[string]*pstate{}, sizes: map[string]int64{}, static: map[string][]string{}}
}

// evalOptions are the workspace's settings the evaluator needs.
func (e *Engine) evalOptions() eval.Options {
	return eval.Options{Location: e.loc, Currency: e.cfg.Currency, Rates: e.cfg.Rates}
}

// compileDefs checks and compiles stored definitions as one set.
func compileDefs(defs []kiln.Definition, opts eval.Options) (*eval.Program, error) {
	set := &rule.Set{}
	for _, d := range defs {
		var rd rule.Def
		if err := json.Unmarshal(d.Body, &rd); err != nil {
			return nil, fmt.Errorf("definition %s version %d: %w", d.Name, d.Version, err)
		}
		rd.Version = d.Version
		set.Defs = append(set.Defs, &rd)
	}
	if _, err := rule.Check(set, nil); err != nil {
		return nil, err
	}
	return eval.Compile(set, opts)
}

func (s *segments) state(pid string) *pstate {
	ps := s.states[pid]
	if ps == nil {
		ps = &pstate{st: s.prog.NewState()}
		ps.prof.Static = s.static[pid]
		ps.prof.Rank = s.pop.View(pid)
		s.states[pid] = ps
	}
	return ps
}

// rerank records pid's current values in the populations of ranked
// conditions (or, when its state is gone, takes it out) and re-evaluates,
// at the same instant, the profiles whose standing may have crossed a
// threshold; their transitions have reason rank.
func (s *segments) rerank(pid string, now time.Time, out []kiln.Transition) []kiln.Transition {
	if s.pop == nil {
		return out
	}
	var others []string
	if ps := s.states[pid]; ps != nil {
		others = s.pop.Update(pid, ps.st)
	} else {
		others = s.pop.Remove(pid)
	}
	// Reranking moves a profile's clock to now: a window boundary of its
	// own at this very instant may move its values too, and others' in
	// turn (each boundary is done once, so this ends).
	for len(others) > 0 {
		o := others[0]
		others = others[1:]
		ops := s.states[o]
		if ops == nil {
			continue
		}
		// At the profile's own instant: its values are current up to
		// now (anything due at now is done by its own Advance, see
		// dueRanked), and a ranking does not depend on the time.
		r := s.prog.Rerank(ops.st, &ops.prof, time.Time{})
		out = s.transitions(o, r, now, kiln.ReasonRank, 0, out)
		s.schedule(o, ops, r.NextDue)
		others = append(others, s.pop.Update(o, ops.st)...)
	}
	return out
}

// rankStates builds the populations of prog's ranked conditions from
// states and re-evaluates every profile's rankings against them (states
// replayed or restored were evaluated without the population). It
// returns the population (nil when prog ranks nothing) and the profiles
// whose memberships the rankings changed.
func rankStates(prog *eval.Program, states map[string]*pstate) (*eval.Population, map[string]bool) {
	pop := prog.NewPopulation()
	if pop == nil {
		return nil, nil
	}
	pids := slices.Sorted(maps.Keys(states))
	for _, pid := range pids {
		ps := states[pid]
		ps.prof.Rank = pop.View(pid)
		pop.Load(pid, ps.st)
	}
	pop.Seal()
	moved := map[string]bool{}
	for _, pid := range pids {
		ps := states[pid]
		// At the state's own instant: every state of a replay is
		// settled at the same one.
		if r := prog.Rerank(ps.st, &ps.prof, time.Time{}); len(r.Changed) > 0 {
			moved[pid] = true
		}
	}
	return pop, moved
}

func (s *segments) schedule(pid string, ps *pstate, next time.Time) {
	if next.IsZero() {
		ps.due = 0
		return
	}
	at := next.UnixMilli()
	if ps.due == at {
		return
	}
	ps.due = at
	heap.Push(&s.due, dueItem{at: at, pid: pid}) // older entries for pid are skipped when popped
}

// applyTraits folds an event's profile traits into ps (eval.Profile.Absorb).
func applyTraits(ps *pstate, e *kiln.Event) bool { return ps.prof.Absorb(e) }

// transitions turns a Result's changes into transition records. Changes
// of scheduled segments wait for their schedule.
func (s *segments) transitions(pid string, r eval.Result, at time.Time, reason string, seq int64, out []kiln.Transition) []kiln.Transition {
	for _, c := range r.Changed {
		if s.deferred(c.Segment) {
			continue
		}
		ev, _ := json.Marshal(c.Evidence)
		out = append(out, kiln.Transition{
			Segment: c.Segment, ProfileID: pid, Entered: c.Entered, At: at.UTC(),
			Version: s.versions[c.Segment], Reason: reason, EventSeq: seq, Evidence: ev, Act: true,
		})
		if c.Entered {
			s.sizes[c.Segment]++
		} else {
			s.sizes[c.Segment]--
		}
	}
	return out
}

// memberships lists what pid is in as published: the live membership of
// real-time segments and the last published one of scheduled segments.
func (s *segments) memberships(pid string) []string {
	var out []string
	if ps := s.states[pid]; ps != nil && s.prog != nil {
		for _, seg := range s.prog.Memberships(ps.st) {
			if !s.deferred(seg) {
				out = append(out, seg)
			}
		}
	}
	for seg := range s.sched {
		if s.pub[seg][pid] {
			out = append(out, seg)
		}
	}
	return out
}

// computed lists what pid is in as evaluated now, scheduled or not.
func (s *segments) computed(pid string) []string {
	if ps := s.states[pid]; ps != nil && s.prog != nil {
		return s.prog.Memberships(ps.st)
	}
	return nil
}

// diff records the transitions between two membership lists of a profile.
func (s *segments) diff(pid string, before, after []string, at time.Time, reason string, act func(segment string, entered bool) bool, out []kiln.Transition) []kiln.Transition {
	for _, seg := range before {
		if !slices.Contains(after, seg) {
			out = append(out, kiln.Transition{Segment: seg, ProfileID: pid, Entered: false, At: at.UTC(), Version: s.versions[seg], Reason: reason, Act: act(seg, false)})
			s.sizes[seg]--
			if s.deferred(seg) {
				delete(s.pub[seg], pid)
			}
		}
	}
	for _, seg := range after {
		if s.deferred(seg) {
			s.pub[seg][pid] = true
		}
		if !slices.Contains(before, seg) {
			var ev json.RawMessage
			if !s.lazyEvidence {
				ev = s.evidence(pid, seg, at)
			}
			out = append(out, kiln.Transition{Segment: seg, ProfileID: pid, Entered: true, At: at.UTC(), Version: s.versions[seg], Reason: reason, Evidence: ev, Act: act(seg, true)})
			s.sizes[seg]++
		}
	}
	return out
}

// evidence explains a membership as the leaf values that hold.
func (s *segments) evidence(pid, seg string, at time.Time) json.RawMessage {
	ps := s.states[pid]
	if ps == nil {
		return nil
	}
	n, err := s.prog.Explain(ps.st, &ps.prof, seg, at)
	if err != nil {
		return nil
	}
	b, _ := json.Marshal(n)
	return b
}

func always(string, bool) bool { return true }

// fillEvidence computes the evidence of the entries in ts that lack it, on
// every CPU: a backfill can enter hundreds of thousands of profiles, and
// explaining each is independent (Explain works on a copy of the state).
func (s *segments) fillEvidence(ts []kiln.Transition, at time.Time) {
	var idx []int
	for i := range ts {
		if ts[i].Entered && ts[i].Evidence == nil {
			idx = append(idx, i)
		}
	}
	n := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for k := w; k < len(idx); k += n {
				t := &ts[idx[k]]
				t.Evidence = s.evidence(t.ProfileID, t.Segment, at)
			}
		})
	}
	wg.Wait()
}

// rebuildProfile recomputes one profile's state from its events (after a
// merge or an unmerge) and returns its memberships before and after.
func (e *Engine) rebuildProfile(pid string, evs []kiln.Event, now time.Time) (before, after []string) {
	s := e.segs
	before = s.memberships(pid)
	if s.prog == nil {
		return before, nil
	}
	ps := &pstate{st: s.prog.NewState()}
	ps.prof.Static = s.static[pid]
	ps.prof.Rank = s.pop.View(pid)
	slices.SortFunc(evs, func(a, b kiln.Event) int { return int(a.Seq - b.Seq) })
	for i := range evs {
		applyTraits(ps, &evs[i])
		s.prog.Apply(ps.st, &ps.prof, &evs[i], now)
	}
	r := e.settle(s.prog, pid, ps, now)
	s.states[pid] = ps
	s.schedule(pid, ps, r.NextDue)
	return before, s.memberships(pid)
}

// settle sets a profile's model traits on a state built from its events
// and evaluates it at now: model traits are state of their own, not
// derived from the events (see RefitModels).
func (e *Engine) settle(prog *eval.Program, pid string, ps *pstate, now time.Time) eval.Result {
	if m := e.models; m != nil {
		// Replace, not add to: a trait the models no longer set for this
		// profile (one kept in a snapshot, say) must not linger.
		t := m.traits[pid]
		for k := range m.keys {
			if _, ok := t[k]; !ok {
				delete(ps.prof.Traits, k)
			}
		}
		if t != nil {
			setTraits(ps, t)
		}
	}
	return prog.ApplyProfile(ps.st, &ps.prof, now)
}

// drop forgets a profile (merged away or deleted) and returns what it was
// in, as published.
func (s *segments) drop(pid string) []string {
	m := s.memberships(pid)
	delete(s.states, pid)
	for seg := range s.sched {
		delete(s.pub[seg], pid)
	}
	return m
}

// --- engine integration ----------------------------------------------------

// readSegments reads the stored definitions and static lists and
// compiles them, for a start.
func (e *Engine) readSegments(ctx context.Context) (*segments, error) {
	s := newSegments()
	defs, err := e.st.Definitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading definitions: %w", err)
	}
	for _, d := range defs {
		s.defs[d.Name] = d
		s.versions[d.Name] = d.Version
	}
	if len(defs) > 0 {
		if s.prog, err = compileDefs(defs, e.evalOptions()); err != nil {
			return nil, fmt.Errorf("compiling the stored definitions: %w", err)
		}
		for _, d := range s.prog.Definitions().Defs {
			s.backfill[d.Name] = d.Backfill
		}
	}
	err = e.st.ScanStaticMembers(ctx, func(seg, pid string) error {
		s.static[pid] = append(s.static[pid], seg)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading static segments: %w", err)
	}
	if s.clock, err = e.st.GetCheckpoint(ctx, ClockCheckpoint); err != nil {
		return nil, err
	}
	// Publications since the clock are due at once (see catchUp).
	from := e.cfg.Now()
	if s.clock > 0 {
		from = time.UnixMilli(s.clock)
	}
	if err := s.setSchedules(e.loc, from); err != nil {
		return nil, err
	}
	return s, nil
}

// evalBatch evaluates a resolved batch: each event updates its profile's
// state at the instant it was received (eventAt), after what time did
// before that instant; profiles merged in the batch are rebuilt from their
// events. The transitions are appended to res so they commit with the
// checkpoint; it returns the instant of the last event, the batch's clock.
func (e *Engine) evalBatch(ctx context.Context, evs []kiln.Event, pids []string, merged map[string]string, res *store.Resolution, wall time.Time) (int64, error) {
	s := e.segs
	var rescored []string // profiles whose model traits moved, in order
	at := s.clock
	mark := len(res.Transitions)
	var now time.Time
	// Purchases of profiles merged in the batch go to the survivor.
	e.notePurchases(evs, pids, merged, false)
	for i := range evs {
		at = eventAt(&evs[i], at, wall)
		now = time.UnixMilli(at)
		if s.prog != nil {
			s.collectDue(at, math.MaxInt, res) // what time did before this event
		}
		pid := pids[i]
		if pid == "" || merged[pid] != "" {
			continue
		}
		if _, gone := merged[pid]; gone {
			continue // rebuilt below
		}
		if s.prog == nil {
			// No definitions: the model traits still move with purchases.
			if e.rescore(pid, &pstate{}, &evs[i], now) != nil {
				rescored = append(rescored, pid)
			}
			continue
		}
		ps := s.state(pid)
		// Traits a track event carries in its context (Shopify, email
		// tools) change the profile as an identify does.
		traitsMoved := applyTraits(ps, &evs[i]) && evs[i].Type != kiln.Identify
		moved := e.rescore(pid, ps, &evs[i], now) != nil // model traits move with the purchase
		r := s.prog.Apply(ps.st, &ps.prof, &evs[i], now)
		res.Transitions = s.transitions(pid, r, now, kiln.ReasonEvent, evs[i].Seq, res.Transitions)
		if s.curCheck == nil {
			s.curCheck = s.prog.NewCurrencyCheck()
		}
		if s.curCheck.Note(&evs[i]) {
			e.warnAmounts(s.curCheck.Err(), evs[i].Seq)
		}
		if moved {
			rescored = append(rescored, pid)
		}
		if moved || traitsMoved {
			// Conditions on profile traits re-read them only when told.
			r = s.prog.ApplyProfile(ps.st, &ps.prof, now)
			res.Transitions = s.transitions(pid, r, now, kiln.ReasonEvent, evs[i].Seq, res.Transitions)
		}
		s.schedule(pid, ps, r.NextDue)
		res.Transitions = s.rerank(pid, now, res.Transitions)
	}
	// Merges: the absorbed profile leaves everything; the survivor is
	// recomputed from all its events (those of this batch included: the
	// log holds them already).
	last := evs[len(evs)-1].Seq
	for _, from := range slices.Sorted(maps.Keys(merged)) {
		into := merged[from]
		if into == "" {
			continue
		}
		e.forgetModels(from)
		if m := e.models; m != nil && m.bg != nil && m.cust[into] != nil {
			m.rescoreProfile(into, now)
			rescored = append(rescored, into)
		}
		if s.prog == nil {
			continue
		}
		res.Transitions = s.diff(from, s.drop(from), nil, now, kiln.ReasonProfile, always, res.Transitions)
		res.Transitions = s.rerank(from, now, res.Transitions)
		evs, err := e.profileEvents(ctx, into, last)
		if err != nil {
			return 0, err
		}
		before, after := e.rebuildProfile(into, evs, now)
		res.Transitions = s.diff(into, before, after, now, kiln.ReasonProfile, always, res.Transitions)
		res.Transitions = s.rerank(into, now, res.Transitions)
	}
	res.ModelTraits = e.modelTraitChanges(rescored, res.ModelTraits)
	res.Transitions = s.netRanked(res.Transitions, mark)
	return at, nil
}

// netRanked nets, in ts[mark:], the transitions of segments that depend
// on ranks per profile, segment and instant: events at one instant move
// other profiles' ranks back and forth in log order, and merges are
// applied at the batch's end, so a batch split differently (by a crash)
// would record different pairs; the net change of each instant is the
// same however the batch was cut. Sizes were counted per transition and
// need no change: dropped ones cancel out.
func (s *segments) netRanked(ts []kiln.Transition, mark int) []kiln.Transition {
	if s.pop == nil {
		return ts
	}
	type key struct {
		pid, seg string
		at       int64
	}
	first, last := map[key]int{}, map[key]int{}
	for i := mark; i < len(ts); i++ {
		if !s.prog.RankDependent(ts[i].Segment) {
			continue
		}
		k := key{ts[i].ProfileID, ts[i].Segment, ts[i].At.UnixMilli()}
		if _, ok := first[k]; !ok {
			first[k] = i
		}
		last[k] = i
	}
	if len(first) == 0 {
		return ts
	}
	// Decided before filtering in place overwrites the earlier ones.
	back := map[key]bool{}
	for k, i := range last {
		back[k] = ts[first[k]].Entered != ts[i].Entered
	}
	out := ts[:mark]
	for i := mark; i < len(ts); i++ {
		if s.prog.RankDependent(ts[i].Segment) {
			k := key{ts[i].ProfileID, ts[i].Segment, ts[i].At.UnixMilli()}
			if last[k] != i || back[k] {
				continue // an earlier flip of the instant, or one that came back
			}
		}
		out = append(out, ts[i])
	}
	return out
}

// profileEvents reads a profile's stored events up to seq, by the
// resolver's current identities.
func (e *Engine) profileEvents(ctx context.Context, pid string, upTo int64) ([]kiln.Event, error) {
	ids := e.res.Identities(pid)
	anchors := make([]string, len(ids))
	for i, id := range ids {
		anchors[i] = id.String()
	}
	evs, err := e.st.EventsByAnchor(ctx, anchors, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the events of profile %s: %w", pid, err)
	}
	if upTo > 0 {
		evs = slices.DeleteFunc(evs, func(ev kiln.Event) bool { return ev.Seq > upTo })
	}
	return evs, nil
}

// nextDue is the earliest instant the engine must wake for: a profile's
// window boundary or a scheduled segment's publication; zero if none.
func (e *Engine) nextDue() time.Time {
	s := e.segs
	if s == nil {
		return time.Time{}
	}
	t := s.nextProfileDue()
	if st, _ := s.nextSchedule(); st != 0 && (t == 0 || st < t) {
		t = st
	}
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMilli(t)
}

// nextProfileDue is the earliest profile due instant (Unix ms), 0 if
// none; stale heap entries are dropped on the way.
func (s *segments) nextProfileDue() int64 {
	for len(s.due) > 0 {
		top := s.due[0]
		if ps := s.states[top.pid]; ps == nil || ps.due != top.at {
			heap.Pop(&s.due) // stale: rescheduled or dropped since
			continue
		}
		return top.at
	}
	return 0
}

// dueChunk bounds the transitions one catch-up write carries, so a
// restart after a long stop records its expiries in bounded transactions.
const dueChunk = 10000

// catchUp records everything that time alone does up to until (Unix ms):
// window expiries of every profile and publications of scheduled
// segments, in time order, each at its exact instant. Every write moves
// the durable clock to the instant up to which all of it is recorded, so
// a restart replays the log as of that instant and finds the stored
// memberships exactly (see rebuild). The caller holds e.mu.
func (e *Engine) catchUp(ctx context.Context, until int64) error {
	s := e.segs
	if s == nil || s.prog == nil {
		return nil
	}
	for {
		var res store.Resolution
		w, more := s.collectDue(until, dueChunk, &res)
		if len(res.Transitions) > 0 {
			res.Checkpoints = clockAt(w)
			res.Derived = true
			if err := e.write(ctx, &res); err != nil {
				e.segsDirty = true // states moved past what is stored
				return fmt.Errorf("recording %d expiries and publications up to %s: %w", len(res.Transitions), time.UnixMilli(w).UTC().Format(time.RFC3339Nano), err)
			}
			s.clock = max(s.clock, w)
			e.observeDue(res.Transitions)
		}
		if !more {
			return nil
		}
	}
}

func (e *Engine) observeDue(ts []kiln.Transition) {
	m := e.cfg.Metrics
	if m == nil {
		return
	}
	wrote := e.cfg.Now()
	for _, t := range ts {
		m.ExpiryLag.Observe(wrote.Sub(t.At).Seconds())
		m.Transitions.WithLabelValues(t.Reason).Inc()
	}
}

// clockAt is the engine clock checkpoint at ms.
func clockAt(ms int64) []store.Checkpoint {
	return []store.Checkpoint{{Name: ClockCheckpoint, Seq: ms}}
}

// collectDue advances profiles and publishes scheduled segments in the
// order of their due instants up to until, adding the transitions to res.
// After limit transitions it stops at the next instant boundary. It
// returns the instant w up to which everything due is done, and whether
// more is due before until.
func (s *segments) collectDue(until int64, limit int, res *store.Resolution) (w int64, more bool) {
	for {
		pt := s.nextProfileDue()
		st, seg := s.nextSchedule()
		t := pt
		if t == 0 || (st != 0 && st < t) {
			t = st
		}
		if t == 0 || t > until {
			return until, false
		}
		if len(res.Transitions) >= limit && t > w {
			return w, true
		}
		w = t
		// At one instant, profiles move first, so a publication sees them.
		if pt == t {
			if s.pop != nil {
				s.dueRanked(t, res)
				continue
			}
			it := heap.Pop(&s.due).(dueItem)
			ps := s.states[it.pid]
			at := time.UnixMilli(t)
			r := s.prog.Advance(ps.st, &ps.prof, at)
			res.Transitions = s.transitions(it.pid, r, at, kiln.ReasonExpiry, 0, res.Transitions)
			ps.due = 0
			if next := dueMs(r.NextDue); next > t {
				s.schedule(it.pid, ps, r.NextDue)
			}
			continue
		}
		sc := s.sched[seg]
		res.Transitions = s.publish(seg, time.UnixMilli(t), res.Transitions)
		sc.advance(time.UnixMilli(t))
	}
}

// dueRanked advances every profile due at instant t when the program
// ranks profiles among others. Profiles due at one instant move in no
// particular order (the heap's): each is advanced and its values
// recorded (reranking those it moved), and then a profile's transitions
// of the instant are netted (an entry and an exit at the same instant are
// none: they only reflected the order), so what is recorded does not
// depend on the order. A net transition has reason expiry when the profile's own
// values or rank-free memberships moved at the instant, rank otherwise.
func (s *segments) dueRanked(t int64, res *store.Resolution) {
	at := time.UnixMilli(t)
	mark := len(res.Transitions)
	own := map[string]bool{}
	for s.nextProfileDue() == t {
		it := heap.Pop(&s.due).(dueItem)
		ps := s.states[it.pid]
		r := s.prog.Advance(ps.st, &ps.prof, at)
		res.Transitions = s.transitions(it.pid, r, at, kiln.ReasonExpiry, 0, res.Transitions)
		ps.due = 0
		if next := dueMs(r.NextDue); next > t {
			s.schedule(it.pid, ps, r.NextDue)
		}
		moved := len(r.Traits) > 0
		for _, c := range r.Changed {
			moved = moved || !s.prog.RankDependent(c.Segment)
		}
		if moved {
			own[it.pid] = true
		}
		// Its own rankings were decided against the others as recorded
		// (those due before it in this instant included); recording it
		// names those it moved, later ones in this instant included.
		res.Transitions = s.rerank(it.pid, at, res.Transitions)
	}
	res.Transitions = netInstant(res.Transitions, mark, own)
}

// netInstant nets the transitions from mark on (one instant's) per
// profile and segment: none when the membership ends where it began, one
// (the last, with reason expiry for a profile in own, rank otherwise)
// when it changed; in profile and segment order. Sizes were counted per
// transition and need no change: dropped ones cancel out.
func netInstant(ts []kiln.Transition, mark int, own map[string]bool) []kiln.Transition {
	type key struct{ pid, seg string }
	first := map[key]int{}
	last := map[key]int{}
	for i := mark; i < len(ts); i++ {
		k := key{ts[i].ProfileID, ts[i].Segment}
		if _, ok := first[k]; !ok {
			first[k] = i
		}
		last[k] = i
	}
	var kept []kiln.Transition
	for k, i := range last {
		if ts[first[k]].Entered != ts[i].Entered {
			continue // flipped and back: an entry and an exit, or an exit and an entry
		}
		tr := ts[i]
		tr.Reason = kiln.ReasonRank
		if own[k.pid] {
			tr.Reason = kiln.ReasonExpiry
		}
		kept = append(kept, tr)
	}
	slices.SortFunc(kept, func(a, b kiln.Transition) int {
		if c := strings.Compare(a.ProfileID, b.ProfileID); c != 0 {
			return c
		}
		return strings.Compare(a.Segment, b.Segment)
	})
	return append(ts[:mark], kept...)
}

// write is the one way the engine commits: the planner (if any) adds the
// actions the transitions trigger to the same Resolution, so an action is
// durable exactly when the transition that caused it is (a transactional
// outbox); then followers are told.
func (e *Engine) write(ctx context.Context, res *store.Resolution) error {
	if e.cfg.Planner != nil && len(res.Transitions) > 0 {
		if err := e.cfg.Planner.Plan(ctx, res); err != nil {
			return fmt.Errorf("planning actions for %d transitions: %w", len(res.Transitions), err)
		}
	}
	if err := e.st.ApplyResolution(ctx, *res); err != nil {
		return err
	}
	if e.cfg.OnTransitions != nil && len(res.Transitions) > 0 {
		e.cfg.OnTransitions(res.Transitions)
	}
	return nil
}

// sizes returns the in-memory segment sizes.
func (e *Engine) sizesNow() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.segs == nil {
		return nil
	}
	return maps.Clone(e.segs.sizes)
}

func heapInit(h *dueHeap) { heap.Init(h) }

// publish records the difference between seg's evaluated and published
// membership, and makes the evaluated one published.
func (s *segments) publish(seg string, now time.Time, out []kiln.Transition) []kiln.Transition {
	pub := s.pub[seg]
	for _, pid := range unionKeys(pub, s.states) {
		was := pub[pid]
		is := slices.Contains(s.computed(pid), seg)
		if was == is {
			continue
		}
		var before, after []string
		if was {
			before = []string{seg}
		}
		if is {
			after = []string{seg}
		}
		out = s.diff(pid, before, after, now, kiln.ReasonRecompute, always, out)
	}
	return out
}

// nextSchedule is the earliest scheduled publication (Unix ms) and its
// segment, or zero. Ties go to the first segment by name, so the order
// is the same in every run.
func (s *segments) nextSchedule() (int64, string) {
	var t int64
	var seg string
	for name, sc := range s.sched {
		if sc.next.IsZero() {
			continue
		}
		at := sc.next.UnixMilli()
		if t == 0 || at < t || (at == t && name < seg) {
			t, seg = at, name
		}
	}
	return t, seg
}
