package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// replay builds fresh states for prog from every event in the log up to
// upTo, evaluated as of now, reporting progress. Events are attributed to
// profiles by the resolver's current index; model traits are set as the
// models hold them (see settle).
func (e *Engine) replay(ctx context.Context, prog *eval.Program, static map[string][]string, upTo int64, now time.Time, progress func(done int64)) (replayed, error) {
	return e.replayLocked(ctx, replayFrom{prog: prog, static: static}, upTo, now, progress, false)
}

// replayFrom is where a replay starts: from nothing (after 0), or from a
// snapshot's states and purchase histories taken after event seq after.
type replayFrom struct {
	prog   *eval.Program
	static map[string][]string
	after  int64
	states map[string]*pstate
	cust   map[string]*purchases
	// purchases: also rebuild the models' purchase histories (at start).
	purchases bool
	// asOf: states as of now, a past instant: events dated after it are
	// left out and model traits (current, not as of then) are not set.
	asOf bool
	// check, if set, is shown every event (definitions being applied).
	check *eval.CurrencyCheck
}

// replayed is what a replay built; touched lists the profiles that had
// events after the starting point.
type replayed struct {
	states  map[string]*pstate
	cust    map[string]*purchases
	touched map[string]bool
	// pop ranks the states (replays from nothing); nil for a program
	// without ranked conditions.
	pop *eval.Population
}

// replayLocked is replay; the caller holds e.mu. With release, e.mu is
// let go while the log is read and evaluated, and held only to attribute
// events to profiles, so a long preview does not stop event processing.
// Only a replay whose states are thrown away (a dry run) may release: the
// log moves on meanwhile. Profiles replayed from nothing are settled at
// now with their model traits; from a snapshot, only those with events.
func (e *Engine) replayLocked(ctx context.Context, from replayFrom, upTo int64, now time.Time, progress func(done int64), release bool) (replayed, error) {
	prog, static := from.prog, from.static
	if prog == nil && !from.purchases {
		return replayed{states: map[string]*pstate{}}, nil
	}
	if release {
		static = maps.Clone(static) // SetStatic may change it while we are unlocked
	}
	unlock, lock := func() {}, func() {}
	if release {
		unlock, lock = e.mu.Unlock, e.mu.Lock
	}
	// Profiles are independent, so evaluation is sharded across CPUs by
	// profile: each shard owns its states and sees its profiles' events in
	// log order. The Program is immutable and safe to share.
	nshard := runtime.GOMAXPROCS(0)
	type shard struct {
		states  map[string]*pstate
		m       *models // its purchase histories
		touched map[string]bool
	}
	shards := make([]shard, nshard)
	for i := range shards {
		shards[i] = shard{states: map[string]*pstate{}, m: &models{cust: map[string]*purchases{}}, touched: map[string]bool{}}
	}
	for pid, ps := range from.states {
		shards[shardOf(pid, nshard)].states[pid] = ps
	}
	for pid, p := range from.cust {
		shards[shardOf(pid, nshard)].m.cust[pid] = p
	}
	type item struct {
		pid string
		ev  *kiln.Event
	}
	work := make([][]item, nshard)
	var done int64
	// ScanLog reads the next chunk while this one is evaluated. With
	// release the lock is held only while events are attributed.
	unlock()
	err := e.st.ScanLog(ctx, from.after, upTo, func(evs []kiln.Event) error {
		for i := range work {
			work[i] = work[i][:0]
		}
		lock()
		for i := range evs {
			ev := &evs[i]
			if from.check != nil {
				from.check.Note(ev)
			}
			pid, ok := e.res.ProfileOf(kiln.ParseIdentifier(ev.Anchor))
			if !ok {
				continue
			}
			k := shardOf(pid, nshard)
			work[k] = append(work[k], item{pid, ev})
		}
		unlock()
		var wg sync.WaitGroup
		for k := range nshard {
			wg.Go(func() {
				sh := shards[k]
				for _, it := range work[k] {
					if from.asOf && it.ev.Timestamp.After(now) {
						continue
					}
					sh.touched[it.pid] = true
					if from.purchases {
						sh.m.record(it.pid, it.ev)
					}
					if prog == nil {
						continue
					}
					ps := sh.states[it.pid]
					if ps == nil {
						ps = &pstate{st: prog.NewState()}
						ps.prof.Static = static[it.pid]
						sh.states[it.pid] = ps
					}
					applyTraits(ps, it.ev)
					prog.Apply(ps.st, &ps.prof, it.ev, now)
				}
			})
		}
		wg.Wait()
		done += int64(len(evs))
		if progress != nil {
			progress(done)
		}
		return ctx.Err()
	})
	lock()
	if err != nil {
		return replayed{}, fmt.Errorf("replaying the log: %w", err)
	}
	out := replayed{states: shards[0].states, cust: shards[0].m.cust, touched: shards[0].touched}
	for k := 1; k < nshard; k++ {
		maps.Copy(out.states, shards[k].states)
		maps.Copy(out.cust, shards[k].m.cust)
		maps.Copy(out.touched, shards[k].touched)
	}
	if prog == nil {
		return out, nil
	}
	if from.states == nil {
		// Profiles only listed in static segments, or only known to the
		// models, have no events.
		for pid, segs := range static {
			if out.states[pid] == nil && len(segs) > 0 {
				out.states[pid] = &pstate{st: prog.NewState(), prof: eval.Profile{Static: segs}}
				out.touched[pid] = true
			}
		}
		if e.models != nil && !from.asOf {
			for pid := range e.models.traits {
				if out.states[pid] == nil {
					out.states[pid] = &pstate{st: prog.NewState(), prof: eval.Profile{Static: static[pid]}}
					out.touched[pid] = true
				}
			}
		}
	}
	if from.asOf {
		// States of the past, thrown away after: evaluated without the
		// engine's lock, so events go on being processed meanwhile.
		unlock()
		settleAll(prog, func(prog *eval.Program, _ string, ps *pstate, now time.Time) eval.Result {
			return prog.ApplyProfile(ps.st, &ps.prof, now)
		}, out.states, out.touched, now)
		out.pop, _ = rankStates(prog, out.states)
		lock()
		return out, nil
	}
	e.settleAll(prog, out.states, out.touched, now)
	if from.states == nil {
		// From a snapshot, rebuild ranks after restoring (see rebuild).
		out.pop, _ = rankStates(prog, out.states)
	}
	return out, nil
}

// settleAll settles the profiles of pids (see settle) at now, on every
// CPU, and notes when each is next due.
func (e *Engine) settleAll(prog *eval.Program, states map[string]*pstate, pids map[string]bool, now time.Time) {
	settleAll(prog, e.settle, states, pids, now)
}

func settleAll(prog *eval.Program, settle func(*eval.Program, string, *pstate, time.Time) eval.Result, states map[string]*pstate, pids map[string]bool, now time.Time) {
	list := slices.Collect(maps.Keys(pids))
	n := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			for i := k; i < len(list); i += n {
				if ps := states[list[i]]; ps != nil {
					ps.due = dueMs(settle(prog, list[i], ps, now).NextDue)
				}
			}
		})
	}
	wg.Wait()
}

// shardOf spreads profile ids over n shards (FNV-1a).
func shardOf(pid string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(pid); i++ {
		h = (h ^ uint32(pid[i])) * 16777619
	}
	return int(h % uint32(n))
}

func dueMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// install makes states the live states, ranked by pop, and rebuilds the
// timer heap and sizes.
func (s *segments) install(states map[string]*pstate, pop *eval.Population) {
	s.states = states
	s.pop = pop
	s.due = s.due[:0]
	s.sizes = map[string]int64{}
	for pid, ps := range states {
		if ps.due != 0 {
			s.due = append(s.due, dueItem{at: ps.due, pid: pid})
		}
		for _, seg := range s.prog.Memberships(ps.st) {
			if !s.deferred(seg) {
				s.sizes[seg]++
			}
		}
	}
	for seg := range s.sched {
		s.sizes[seg] = int64(len(s.pub[seg]))
	}
	heapInit(&s.due)
}

// rebuild replays the log into fresh states at start-up (or after a
// failed write), as of the engine clock: the instant up to which every
// transition is recorded (see catchUp). The states then agree with the
// stored memberships; expiries and publications since the clock are due
// at once and catchUp records them at their exact instants, as an
// uninterrupted run would have. Should the stored memberships still
// differ (the log was edited, or the time zone changed), the difference
// is recorded with reason "recompute" and acted on by no automation: it
// is a correction, not something a customer did.
func (e *Engine) rebuild(ctx context.Context) error {
	start := time.Now()
	s := e.segs
	e.segsDirty = false
	asOf := e.cfg.Now().Truncate(time.Millisecond)
	if s.clock > 0 {
		asOf = time.UnixMilli(s.clock)
	}
	upTo := e.processed.Load()
	h, from, snapped, err := e.loadSnapshot(ctx, s.prog, s.static)
	if err != nil {
		e.segsDirty = true
		return err
	}
	if !snapped {
		from = replayFrom{prog: s.prog, static: s.static}
	}
	from.purchases = e.models != nil
	if s.prog != nil {
		// The workspace currency or rates may have changed since the
		// definitions were applied: say what is left out (of the events
		// replayed: all, or those since the snapshot).
		from.check = s.prog.NewCurrencyCheck()
		s.curCheck = from.check
	}
	e.toLoad.Store(upTo - from.after)
	r, err := e.replayLocked(ctx, from, upTo, asOf, func(done int64) { e.loaded.Store(done) }, false)
	if err == nil && from.check != nil {
		if cerr := from.check.Err(); cerr != nil {
			e.warnAmounts(cerr, 0)
		}
	}
	var moved map[string]bool // from a snapshot: the profiles that changed since
	if err == nil && snapped {
		moved, err = e.restoreSnapshotted(ctx, h, &r, s.prog, s.static, upTo, asOf)
		if err == nil && s.prog != nil {
			// Restored and replayed states are ranked against the
			// population as of the clock: those whose rankings moved
			// since the snapshot are checked against the store too.
			var reranked map[string]bool
			r.pop, reranked = rankStates(s.prog, r.states)
			for pid := range reranked {
				moved[pid] = true
			}
		}
	}
	if err != nil {
		e.segsDirty = true
		return err
	}
	if e.models != nil {
		e.models.cust = r.cust
	}
	if snapped {
		e.snapGen, e.snapSeq = h.Gen, h.Seq
		e.startSnap.Store(h.Gen)
	}
	states := r.states
	if s.prog == nil {
		return nil
	}
	// From a snapshot, only the profiles that changed since can differ
	// from the stored memberships: read theirs alone (and the published
	// members of scheduled segments) instead of every membership, which at
	// a million profiles takes seconds.
	check := states
	stored := map[string][]string{}
	if snapped && len(moved) <= checkOne {
		check = map[string]*pstate{}
		for pid := range moved {
			check[pid] = states[pid]
		}
		err = e.storedOf(ctx, slices.Collect(maps.Keys(moved)), stored)
	} else {
		err = e.st.ScanMemberships(ctx, func(m kiln.Membership) error {
			if !s.deferred(m.Segment) {
				stored[m.ProfileID] = append(stored[m.ProfileID], m.Segment)
			}
			return nil
		})
	}
	if err == nil {
		err = e.loadPublished(ctx)
	}
	if err != nil {
		e.segsDirty = true
		return fmt.Errorf("reading stored memberships: %w", err)
	}
	s.install(states, r.pop)
	// Compare without sorting or copying per profile: at a million
	// profiles that would cost seconds, and normally nothing differs.
	live := func(pid string) []string {
		var now []string
		if ps := states[pid]; ps != nil {
			for _, seg := range s.prog.Memberships(ps.st) {
				if !s.deferred(seg) {
					now = append(now, seg)
				}
			}
		}
		return now
	}
	var differ []string
	for pid, ps := range check {
		if ps != nil && !sameSet(stored[pid], live(pid)) {
			differ = append(differ, pid)
		}
	}
	for pid := range stored {
		if states[pid] == nil {
			differ = append(differ, pid)
		}
	}
	slices.Sort(differ)
	var res store.Resolution
	for _, pid := range differ {
		res.Transitions = s.diffQuiet(pid, stored[pid], live(pid), asOf, kiln.ReasonRecompute, res.Transitions)
	}
	if len(res.Transitions) > 0 {
		e.log.Warn("stored memberships differ from the log replayed as of the engine clock; recording the difference without acting on it",
			"transitions", len(res.Transitions), "clock", asOf.UTC())
		for i := range res.Transitions {
			res.Transitions[i].Act = false
		}
		if err := e.write(ctx, &res); err != nil {
			e.segsDirty = true
			return fmt.Errorf("reconciling memberships: %w", err)
		}
	}
	e.log.Info("segment state rebuilt", "events", upTo, "from snapshot", snapped, "replayed", upTo-from.after, "profiles", len(states),
		"reconciled", len(res.Transitions), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkOne is how many changed profiles start-up checks one by one
// against the store; beyond it, it reads every membership.
const checkOne = 20000

// storedOf reads the stored real-time memberships of pids into out.
func (e *Engine) storedOf(ctx context.Context, pids []string, out map[string][]string) error {
	for _, pid := range pids {
		ms, err := e.st.MembershipsOf(ctx, pid)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !e.segs.deferred(m.Segment) {
				out[pid] = append(out[pid], m.Segment)
			}
		}
	}
	return nil
}

// loadPublished reads what each scheduled segment last published.
func (e *Engine) loadPublished(ctx context.Context) error {
	s := e.segs
	for seg := range s.sched {
		pub := map[string]bool{}
		for after := ""; ; {
			ms, err := e.st.Members(ctx, seg, after, 10000)
			if err != nil {
				return err
			}
			for _, m := range ms {
				pub[m.ProfileID] = true
			}
			if len(ms) < 10000 {
				break
			}
			after = ms[len(ms)-1].ProfileID
		}
		s.pub[seg] = pub
	}
	return nil
}

// diffQuiet is diff without touching sizes (install counted them already).
func (s *segments) diffQuiet(pid string, before, after []string, at time.Time, reason string, out []kiln.Transition) []kiln.Transition {
	sizes := maps.Clone(s.sizes)
	out = s.diff(pid, before, after, at, reason, always, out)
	s.sizes = sizes
	return out
}

// sameSet reports whether a and b hold the same segments.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// --- definitions ----------------------------------------------------------

// ApplyResult says what applying definitions did (or would do).
type ApplyResult struct {
	Created   []string       `json:"created"`
	Changed   []string       `json:"changed"`
	Unchanged []string       `json:"unchanged"`
	Deleted   []string       `json:"deleted,omitempty"`
	Entered   map[string]int `json:"entered"` // per segment, by the backfill
	Exited    map[string]int `json:"exited"`
	DryRun    bool           `json:"dryRun"`
	Took      string         `json:"took"`
}

// ApplyDefinitions applies the definitions in src (the text form): new
// ones are created, changed ones get a new version, others are left as
// they are. The whole resulting set is checked first; on any error nothing
// changes and the error lists every problem with its line and column.
// Membership is then recomputed from the stored events and every change is
// recorded as a transition with reason "definition_change", acted on as
// each segment's backfill policy says. With dryRun nothing is stored.
func (e *Engine) ApplyDefinitions(ctx context.Context, src string, dryRun bool) (*ApplyResult, error) {
	set, err := rule.Parse(src)
	if err != nil {
		return nil, definitionError(err)
	}
	return e.applySet(ctx, set.Defs, nil, dryRun)
}

// DeleteDefinitions removes definitions by name; members of removed
// segments exit with reason "definition_change".
func (e *Engine) DeleteDefinitions(ctx context.Context, names []string) (*ApplyResult, error) {
	return e.applySet(ctx, nil, names, false)
}

func definitionError(err error) error {
	var el rule.ErrorList
	if errors.As(err, &el) {
		return &kiln.Error{Code: kiln.EInvalid, Message: el.Error()}
	}
	return kiln.Errorf(kiln.EInvalid, "%v", err)
}

func (e *Engine) applySet(ctx context.Context, defs []*rule.Def, deletes []string, dryRun bool) (*ApplyResult, error) {
	start := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.segs == nil || e.res == nil {
		return nil, kiln.Errorf(kiln.EUnavailable, "the engine is still starting")
	}
	s := e.segs
	out := &ApplyResult{Entered: map[string]int{}, Exited: map[string]int{}, DryRun: dryRun}
	now := e.cfg.Now().UTC()

	// The resulting set: stored definitions, replaced or removed.
	next := map[string]kiln.Definition{}
	for n, d := range s.defs {
		next[n] = d
	}
	var changed []kiln.Definition
	seen := map[string]bool{}
	for _, d := range defs {
		if seen[d.Name] {
			return nil, kiln.Errorf(kiln.EInvalid, "line %d:%d: %s %s is defined twice", d.Line, d.Col, d.Kind, d.Name)
		}
		seen[d.Name] = true
		d.Version = 0
		text := rule.FormatDef(d)
		old, exists := s.defs[d.Name]
		if exists && old.Text == text {
			out.Unchanged = append(out.Unchanged, d.Name)
			continue
		}
		body, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		nd := kiln.Definition{Name: d.Name, Kind: d.Kind, Version: old.Version + 1, Text: text, Body: body, AppliedAt: now}
		next[d.Name] = nd
		changed = append(changed, nd)
		if exists {
			out.Changed = append(out.Changed, d.Name)
		} else {
			out.Created = append(out.Created, d.Name)
		}
	}
	for _, n := range deletes {
		old, ok := s.defs[n]
		if !ok {
			return nil, kiln.Errorf(kiln.ENotFound, "no definition %q", n)
		}
		delete(next, n)
		del := old
		del.Version++
		del.AppliedAt = now
		del.DeletedAt = &now
		changed = append(changed, del)
		out.Deleted = append(out.Deleted, n)
	}

	// Check the whole set with the new definitions' own positions, so
	// errors point into the applied text.
	set := &rule.Set{}
	for _, n := range slices.Sorted(maps.Keys(next)) {
		if d := findDef(defs, n); d != nil && !slices.Contains(out.Unchanged, n) {
			set.Defs = append(set.Defs, d)
			continue
		}
		var rd rule.Def
		if err := json.Unmarshal(next[n].Body, &rd); err != nil {
			return nil, err
		}
		set.Defs = append(set.Defs, &rd)
	}
	var prog *eval.Program
	if len(set.Defs) > 0 {
		if _, err := rule.Check(set, nil); err != nil {
			return nil, definitionError(err)
		}
		var err error
		if prog, err = eval.Compile(set, e.evalOptions()); err != nil {
			return nil, definitionError(err)
		}
	}
	if len(changed) == 0 {
		out.Took = time.Since(start).Round(time.Millisecond).String()
		return out, nil
	}

	// What time did before the edit is recorded first, so the edit's
	// transitions are the only ones at its instant.
	if !dryRun {
		now = e.evalNow()
		if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
			return nil, err
		}
	}
	// A dry run lets event processing go on while it replays. The replay
	// also finds amounts the new definitions would leave out (a currency
	// they do not read, or cannot convert): then nothing is applied.
	var check *eval.CurrencyCheck
	if prog != nil {
		check = prog.NewCurrencyCheck()
	}
	r, err := e.replayLocked(ctx, replayFrom{prog: prog, static: s.static, check: check}, e.processed.Load(), now, nil, dryRun)
	states := r.states
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check.Err(); err != nil {
			return nil, definitionError(err)
		}
	}
	s = e.segs // the same unless a dry run let something change it
	versions := map[string]int64{}
	backfill := map[string]string{}
	for n, d := range next {
		versions[n] = d.Version
	}
	if prog != nil {
		for _, d := range prog.Definitions().Defs {
			backfill[d.Name] = d.Backfill
		}
	}
	// Transitions: old memberships against new ones.
	ns := &segments{prog: prog, defs: next, versions: versions, backfill: backfill, states: states, static: s.static, clock: s.clock, sizes: map[string]int64{}, pub: clonePub(s.pub)}
	if err := ns.setSchedules(e.loc, now); err != nil {
		return nil, definitionError(err)
	}
	var res store.Resolution
	ns.lazyEvidence = true
	for _, pid := range unionKeys(s.states, states) {
		before := s.memberships(pid)
		var after []string
		if prog != nil {
			if ps := states[pid]; ps != nil {
				after = prog.Memberships(ps.st)
			}
		}
		res.Transitions = ns.diff(pid, before, after, now, kiln.ReasonDefinitionChange, ns.backfillAct, res.Transitions)
	}
	ns.lazyEvidence = false
	if prog != nil {
		ns.fillEvidence(res.Transitions, now)
	}
	for _, t := range res.Transitions {
		if t.Entered {
			out.Entered[t.Segment]++
		} else {
			out.Exited[t.Segment]++
		}
	}
	out.Took = time.Since(start).Round(time.Millisecond).String()
	if dryRun {
		return out, nil
	}
	// The definitions are saved with the transitions they cause: a crash
	// leaves both or neither.
	res.Definitions = changed
	res.Checkpoints = clockAt(now.UnixMilli())
	if err := e.write(ctx, &res); err != nil {
		return nil, fmt.Errorf("saving the definitions and their backfill's transitions: %w", err)
	}
	if prog != nil {
		ns.install(states, r.pop)
	}
	e.segs = ns
	e.moveClock(now)
	e.log.Info("definitions applied", "created", len(out.Created), "changed", len(out.Changed), "deleted", len(out.Deleted), "transitions", len(res.Transitions), "took", out.Took)
	return out, nil
}

// clonePub copies what scheduled segments last published.
func clonePub(pub map[string]map[string]bool) map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(pub))
	for seg, m := range pub {
		out[seg] = maps.Clone(m)
	}
	return out
}

func findDef(defs []*rule.Def, name string) *rule.Def {
	for _, d := range defs {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// backfillAct applies a segment's backfill policy: "all" acts on every
// transition of the backfill, "new" only on entries, "none" on nothing.
// The default is "new".
func (s *segments) backfillAct(segment string, entered bool) bool {
	switch s.backfill[segment] {
	case "all":
		return true
	case "none":
		return false
	}
	return entered
}

// --- queries --------------------------------------------------------------

// Explain evaluates a segment's condition tree for a profile now.
func (e *Engine) Explain(ctx context.Context, segment, profileID string) (*eval.Node, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil || !slices.Contains(s.prog.Segments(), segment) {
		return nil, false, kiln.Errorf(kiln.ENotFound, "no segment %q", segment)
	}
	ps := s.states[profileID]
	if ps == nil {
		ps = &pstate{st: s.prog.NewState()}
		ps.prof.Static = s.static[profileID]
		ps.prof.Rank = s.pop.View(profileID)
	}
	n, err := s.prog.Explain(ps.st, &ps.prof, segment, e.cfg.Now())
	if err != nil {
		return nil, false, err
	}
	in, _ := s.prog.Member(ps.st, segment)
	return n, in, nil
}

// ProfileSegments returns a profile's computed trait values and the
// segments it is in, from the live state.
func (e *Engine) ProfileSegments(profileID string) (map[string]any, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil {
		return nil, nil
	}
	ps := s.states[profileID]
	if ps == nil {
		return nil, nil
	}
	return s.prog.TraitValues(ps.st), s.memberships(profileID)
}

// ProfileModelTraits returns the traits the customer models set on a
// profile (predictions, RFM, cluster, retail and restaurant traits), or nil.
func (e *Engine) ProfileModelTraits(profileID string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.models == nil {
		return nil
	}
	return maps.Clone(e.models.traits[profileID])
}

// SegmentInfo describes a live segment or trait.
type SegmentInfo struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Version     int64           `json:"version"`
	Size        int64           `json:"size"`
	Freshness   *rule.Freshness `json:"freshness,omitempty"`
	Backfill    string          `json:"backfill,omitempty"`
	Static      bool            `json:"static,omitempty"`
	Text        string          `json:"text"`
	AppliedAt   time.Time       `json:"appliedAt"`
}

// Definitions lists the live definitions with segment sizes.
func (e *Engine) Definitions() []SegmentInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil {
		return nil
	}
	var out []SegmentInfo
	for _, d := range s.prog.Definitions().Defs {
		st := s.defs[d.Name]
		out = append(out, SegmentInfo{Name: d.Name, Kind: d.Kind, Title: d.Title, Description: d.Description, Version: st.Version,
			Size: s.sizes[d.Name], Freshness: d.Freshness, Backfill: d.Backfill, Static: d.Static, Text: st.Text, AppliedAt: st.AppliedAt})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == rule.KindSegment
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// MembersAsOf answers "who was in this segment at instant at": the log
// up to what is processed is replayed into fresh states, leaving out
// events dated after at, and evaluated at at, the way a recompute is
// (on every CPU, holding the engine's lock only to attribute events, and
// memory for one state per profile rather than every event), with only
// the definitions the segment needs. Model traits
// are not known as of the past, so conditions on them see none. The
// property test holds this equal to the naive evaluator, and the SQL
// differential test to PostgreSQL.
func (e *Engine) MembersAsOf(ctx context.Context, segment string, at time.Time) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil || !slices.Contains(s.prog.Segments(), segment) {
		return nil, kiln.Errorf(kiln.ENotFound, "no segment %q", segment)
	}
	// Only the segment and what it refers to are evaluated.
	prog, err := onlyFor(s.prog, segment, e.evalOptions())
	if err != nil {
		return nil, err
	}
	r, err := e.replayLocked(ctx, replayFrom{prog: prog, static: s.static, asOf: true}, e.processed.Load(), at, nil, true)
	if err != nil {
		return nil, fmt.Errorf("reading the log for %s as of %s: %w", segment, at.Format(time.RFC3339), err)
	}
	var out []string
	for pid, ps := range r.states {
		if in, _ := prog.Member(ps.st, segment); in {
			out = append(out, pid)
		}
	}
	sort.Strings(out)
	return out, nil
}

// onlyFor compiles the part of prog that segment needs: itself and the
// traits and segments it refers to.
func onlyFor(prog *eval.Program, segment string, opts eval.Options) (*eval.Program, error) {
	set := prog.Definitions()
	info, err := rule.Check(set, nil)
	if err != nil {
		return nil, err
	}
	return eval.Compile(&rule.Set{Defs: info.Needs(set, rule.DefKey{Kind: rule.KindSegment, Name: segment})}, opts)
}

// --- recompute jobs ---------------------------------------------------------

// Job is a running or finished recompute.
type Job struct {
	ID         int64     `json:"id"`
	Segment    string    `json:"segment,omitempty"` // "" for all
	Total      int64     `json:"total"`             // events to replay
	Done       int64     `json:"done"`
	State      string    `json:"state"` // running, done, failed
	Error      string    `json:"error,omitempty"`
	Entered    int       `json:"entered"`
	Exited     int       `json:"exited"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

type jobs struct {
	mu   sync.Mutex
	next int64
	all  map[int64]*Job
}

// Job returns a copy of a job's current state.
func (e *Engine) Job(id int64) (Job, bool) {
	e.jobs.mu.Lock()
	defer e.jobs.mu.Unlock()
	j, ok := e.jobs.all[id]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// Recompute rebuilds membership of one segment (or all, segment "") from
// the stored events and records every difference with reason "recompute".
// It runs in the background; follow it with Job.
func (e *Engine) Recompute(ctx context.Context, segment string) (Job, error) {
	e.mu.Lock()
	if e.segs == nil || e.segs.prog == nil {
		e.mu.Unlock()
		return Job{}, kiln.Errorf(kiln.ENotFound, "no definitions to recompute")
	}
	if segment != "" && !slices.Contains(e.segs.prog.Segments(), segment) {
		e.mu.Unlock()
		return Job{}, kiln.Errorf(kiln.ENotFound, "no segment %q", segment)
	}
	e.mu.Unlock()
	e.jobs.mu.Lock()
	if e.jobs.all == nil {
		e.jobs.all = map[int64]*Job{}
	}
	e.jobs.next++
	j := &Job{ID: e.jobs.next, Segment: segment, Total: e.processed.Load(), State: "running", StartedAt: e.cfg.Now().UTC()}
	e.jobs.all[j.ID] = j
	cp := *j
	e.jobs.mu.Unlock()
	go func() {
		err := e.recompute(context.WithoutCancel(ctx), j)
		e.jobs.mu.Lock()
		j.FinishedAt = e.cfg.Now().UTC()
		j.State = "done"
		if err != nil {
			j.State, j.Error = "failed", err.Error()
		}
		e.jobs.mu.Unlock()
	}()
	return cp, nil
}

func (e *Engine) recompute(ctx context.Context, j *Job) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.evalNow()
	if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
		return err
	}
	s := e.segs
	r, err := e.replay(ctx, s.prog, s.static, e.processed.Load(), now, func(done int64) {
		e.jobs.mu.Lock()
		j.Done = done
		e.jobs.mu.Unlock()
	})
	if err != nil {
		return err
	}
	states := r.states
	// What was published before, then the fresh states go live, then the
	// differences (whose evidence needs the fresh states).
	pids := unionKeys(s.states, states)
	befores := make([][]string, len(pids))
	for i, pid := range pids {
		befores[i] = s.memberships(pid)
	}
	pubs := clonePub(s.pub)
	s.install(states, r.pop)
	s.pub = pubs
	s.lazyEvidence = true
	var res store.Resolution
	for i, pid := range pids {
		before := befores[i]
		var after []string
		if ps := states[pid]; ps != nil {
			after = s.prog.Memberships(ps.st)
		}
		if j.Segment != "" {
			// Only this segment's published membership moves; the fresh
			// states agree with the old ones on every other segment.
			before = onlySeg(before, j.Segment)
			after = onlySeg(after, j.Segment)
		}
		res.Transitions = s.diffQuiet(pid, before, after, now, kiln.ReasonRecompute, res.Transitions)
	}
	s.lazyEvidence = false
	s.fillEvidence(res.Transitions, now)
	for seg := range s.sched {
		s.sizes[seg] = int64(len(s.pub[seg]))
	}
	res.Checkpoints = clockAt(now.UnixMilli())
	if err := e.write(ctx, &res); err != nil {
		e.segsDirty = true // live states moved ahead of the store: rebuild
		return fmt.Errorf("recording the recompute's transitions: %w", err)
	}
	e.moveClock(now)
	e.jobs.mu.Lock()
	for _, t := range res.Transitions {
		if t.Entered {
			j.Entered++
		} else {
			j.Exited++
		}
	}
	j.Done = j.Total
	e.jobs.mu.Unlock()
	return nil
}

func onlySeg(segs []string, seg string) []string {
	if slices.Contains(segs, seg) {
		return []string{seg}
	}
	return nil
}

// SetStatic adds and removes profiles on a static segment's list; the
// changes are recorded as transitions with reason "manual".
func (e *Engine) SetStatic(ctx context.Context, segment string, add, remove []string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.segs
	if s == nil || s.prog == nil {
		return 0, kiln.Errorf(kiln.ENotFound, "no segment %q", segment)
	}
	var static bool
	for _, d := range s.prog.Definitions().Defs {
		if d.Name == segment && d.Kind == rule.KindSegment {
			static = d.Static
			if !static {
				return 0, kiln.Errorf(kiln.EInvalid, "segment %s is computed from its condition; only static segments take a member list", segment)
			}
		}
	}
	if !static {
		return 0, kiln.Errorf(kiln.ENotFound, "no segment %q", segment)
	}
	for _, pid := range append(slices.Clone(add), remove...) {
		if _, err := e.st.GetProfile(ctx, pid); err != nil {
			if store.IsNotFound(err) {
				return 0, kiln.Errorf(kiln.ENotFound, "no profile %s", pid)
			}
			return 0, err
		}
	}
	now := e.evalNow()
	if err := e.catchUp(ctx, now.UnixMilli()); err != nil {
		return 0, err
	}
	if err := e.invalidateSnapshot(ctx); err != nil {
		return 0, err
	}
	if err := e.st.SetStaticMembers(ctx, segment, add, remove); err != nil {
		return 0, err
	}
	var res store.Resolution
	res.Checkpoints = clockAt(now.UnixMilli())
	touch := func(pid string, in bool) {
		list := slices.DeleteFunc(slices.Clone(s.static[pid]), func(x string) bool { return x == segment })
		if in {
			list = append(list, segment)
		}
		s.static[pid] = list
		ps := s.state(pid)
		ps.prof.Static = list
		r := s.prog.ApplyProfile(ps.st, &ps.prof, now)
		res.Transitions = s.transitions(pid, r, now, kiln.ReasonManual, 0, res.Transitions)
		s.schedule(pid, ps, r.NextDue)
		res.Transitions = s.rerank(pid, now, res.Transitions)
	}
	for _, pid := range add {
		touch(pid, true)
	}
	for _, pid := range remove {
		touch(pid, false)
	}
	if err := e.write(ctx, &res); err != nil {
		e.segsDirty = true
		return 0, err
	}
	e.moveClock(now)
	return len(res.Transitions), nil
}

// sampleSizes stores segment sizes for the charts when they changed.
func (e *Engine) sampleSizes(ctx context.Context, last map[string]int64) map[string]int64 {
	cur := e.sizesNow()
	if cur == nil || maps.Equal(cur, last) {
		return last
	}
	now := e.cfg.Now().UTC().Truncate(time.Second)
	var ss []kiln.SegmentSize
	for seg, n := range cur {
		ss = append(ss, kiln.SegmentSize{Segment: seg, At: now, Size: n})
	}
	if err := e.st.SaveSegmentSizes(ctx, ss); err != nil {
		e.log.Warn("saving segment sizes", "err", err)
		return last
	}
	return cur
}
