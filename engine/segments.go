package engine

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

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
}

func newSegments() *segments {
	return &segments{defs: map[string]kiln.Definition{}, versions: map[string]int64{}, backfill: map[string]string{},
		states: map[string]*pstate{}, sizes: map[string]int64{}, static: map[string][]string{}}
}

// compileDefs checks and compiles stored definitions as one set.
func compileDefs(defs []kiln.Definition, loc *time.Location) (*eval.Program, error) {
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
	return eval.Compile(set, eval.Options{Location: loc})
}

func (s *segments) state(pid string) *pstate {
	ps := s.states[pid]
	if ps == nil {
		ps = &pstate{st: s.prog.NewState()}
		ps.prof.Static = s.static[pid]
		s.states[pid] = ps
	}
	return ps
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

// applyTraits folds an event's profile traits into ps, as resolution
// records them on the stored profile (context.traits, then identify traits).
func applyTraits(ps *pstate, e *kiln.Event) bool {
	changed := false
	set := func(m map[string]any) {
		for k, v := range m {
			if ps.prof.Traits == nil {
				ps.prof.Traits = map[string]any{}
			}
			if v == nil {
				delete(ps.prof.Traits, k)
			} else {
				ps.prof.Traits[k] = v
			}
			changed = true
		}
	}
	if ct, ok := e.Context["traits"].(map[string]any); ok {
		set(ct)
	}
	if e.Type == kiln.Identify {
		set(e.Traits)
	}
	return changed
}

// transitions turns a Result's changes into transition records.
func (s *segments) transitions(pid string, r eval.Result, at time.Time, reason string, seq int64, out []kiln.Transition) []kiln.Transition {
	for _, c := range r.Changed {
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

// memberships lists what pid is in under the current program.
func (s *segments) memberships(pid string) []string {
	ps := s.states[pid]
	if ps == nil || s.prog == nil {
		return nil
	}
	return s.prog.Memberships(ps.st)
}

// diff records the transitions between two membership lists of a profile.
func (s *segments) diff(pid string, before, after []string, at time.Time, reason string, act func(segment string, entered bool) bool, out []kiln.Transition) []kiln.Transition {
	for _, seg := range before {
		if !slices.Contains(after, seg) {
			out = append(out, kiln.Transition{Segment: seg, ProfileID: pid, Entered: false, At: at.UTC(), Version: s.versions[seg], Reason: reason, Act: act(seg, false)})
			s.sizes[seg]--
		}
	}
	for _, seg := range after {
		if !slices.Contains(before, seg) {
			ev := s.evidence(pid, seg, at)
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

// rebuildProfile recomputes one profile's state from its events (after a
// merge or an unmerge) and returns its memberships before and after.
func (s *segments) rebuildProfile(pid string, evs []kiln.Event, now time.Time) (before, after []string) {
	before = s.memberships(pid)
	if s.prog == nil {
		return before, nil
	}
	ps := &pstate{st: s.prog.NewState()}
	ps.prof.Static = s.static[pid]
	slices.SortFunc(evs, func(a, b kiln.Event) int { return int(a.Seq - b.Seq) })
	var r eval.Result
	for i := range evs {
		applyTraits(ps, &evs[i])
		r = s.prog.Apply(ps.st, &ps.prof, &evs[i], now)
	}
	if len(evs) == 0 {
		r = s.prog.ApplyProfile(ps.st, &ps.prof, now)
	}
	s.states[pid] = ps
	s.schedule(pid, ps, r.NextDue)
	return before, s.prog.Memberships(ps.st)
}

// drop forgets a profile (merged away or deleted) and returns what it was in.
func (s *segments) drop(pid string) []string {
	m := s.memberships(pid)
	delete(s.states, pid)
	return m
}

// --- engine integration ----------------------------------------------------

// loadSegments reads definitions and static lists and compiles them.
func (e *Engine) loadSegments(ctx context.Context) error {
	s := newSegments()
	defs, err := e.st.Definitions(ctx)
	if err != nil {
		return fmt.Errorf("loading definitions: %w", err)
	}
	for _, d := range defs {
		s.defs[d.Name] = d
		s.versions[d.Name] = d.Version
	}
	if len(defs) > 0 {
		if s.prog, err = compileDefs(defs, e.loc); err != nil {
			return fmt.Errorf("compiling the stored definitions: %w", err)
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
		return fmt.Errorf("loading static segments: %w", err)
	}
	if s.clock, err = e.st.GetCheckpoint(ctx, ClockCheckpoint); err != nil {
		return err
	}
	e.segs = s
	return nil
}

// evalBatch evaluates a resolved batch: each event updates its profile's
// state; profiles merged in the batch are rebuilt from their events. The
// transitions are appended to res so they commit with the checkpoint.
func (e *Engine) evalBatch(ctx context.Context, evs []kiln.Event, pids []string, merged map[string]string, res *store.Resolution, now time.Time) error {
	s := e.segs
	if s.prog == nil {
		return nil
	}
	for i := range evs {
		pid := pids[i]
		if pid == "" || merged[pid] != "" {
			continue
		}
		if _, gone := merged[pid]; gone {
			continue // rebuilt below
		}
		ps := s.state(pid)
		applyTraits(ps, &evs[i])
		r := s.prog.Apply(ps.st, &ps.prof, &evs[i], now)
		res.Transitions = s.transitions(pid, r, now, kiln.ReasonEvent, evs[i].Seq, res.Transitions)
		s.schedule(pid, ps, r.NextDue)
	}
	// Merges: the absorbed profile leaves everything; the survivor is
	// recomputed from all its events (those of this batch included: the
	// log holds them already).
	last := evs[len(evs)-1].Seq
	for from, into := range merged {
		if into == "" {
			continue
		}
		res.Transitions = s.diff(from, s.drop(from), nil, now, kiln.ReasonProfile, always, res.Transitions)
		evs, err := e.profileEvents(ctx, into, last)
		if err != nil {
			return err
		}
		before, after := s.rebuildProfile(into, evs, now)
		res.Transitions = s.diff(into, before, after, now, kiln.ReasonProfile, always, res.Transitions)
	}
	return nil
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

// nextDue is the earliest scheduled instant, or zero.
func (e *Engine) nextDue() time.Time {
	s := e.segs
	for s != nil && len(s.due) > 0 {
		top := s.due[0]
		if ps := s.states[top.pid]; ps == nil || ps.due != top.at {
			heap.Pop(&s.due) // stale: rescheduled or dropped since
			continue
		}
		return time.UnixMilli(top.at)
	}
	return time.Time{}
}

// expire advances every profile whose due instant has passed, each at its
// exact instant, and writes the transitions. It returns how many profiles
// it advanced.
func (e *Engine) expire(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil {
		return 0, nil
	}
	now := e.cfg.Now().UnixMilli()
	var res store.Resolution
	n := 0
	for len(s.due) > 0 && s.due[0].at <= now && n < 10000 {
		it := heap.Pop(&s.due).(dueItem)
		ps := s.states[it.pid]
		if ps == nil || ps.due != it.at {
			continue
		}
		n++
		// Advance due by due, so each transition carries its own instant.
		for ps.due != 0 && ps.due <= now {
			at := time.UnixMilli(ps.due)
			r := s.prog.Advance(ps.st, &ps.prof, at)
			res.Transitions = s.transitions(it.pid, r, at, kiln.ReasonExpiry, 0, res.Transitions)
			next := r.NextDue.UnixMilli()
			if r.NextDue.IsZero() || next <= ps.due {
				ps.due = 0
				if !r.NextDue.IsZero() {
					s.schedule(it.pid, ps, r.NextDue)
				}
				break
			}
			ps.due = next
		}
		if ps.due != 0 {
			heap.Push(&s.due, dueItem{at: ps.due, pid: it.pid})
		}
	}
	if len(res.Transitions) == 0 {
		return n, nil
	}
	if err := e.st.ApplyResolution(ctx, res); err != nil {
		return n, fmt.Errorf("recording %d expiries: %w", len(res.Transitions), err)
	}
	if m := e.cfg.Metrics; m != nil {
		wrote := e.cfg.Now()
		for _, t := range res.Transitions {
			m.ExpiryLag.Observe(wrote.Sub(t.At).Seconds())
		}
		m.Transitions.WithLabelValues(kiln.ReasonExpiry).Add(float64(len(res.Transitions)))
	}
	e.notifyTransitions(res.Transitions)
	return n, nil
}

func (e *Engine) notifyTransitions(ts []kiln.Transition) {
	if e.cfg.OnTransitions != nil && len(ts) > 0 {
		e.cfg.OnTransitions(ts)
	}
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

// tickSchedules is where scheduled (non-real-time) freshness will run.
func (e *Engine) tickSchedules(ctx context.Context) {}
