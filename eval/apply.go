package eval

import (
	"fmt"
	"math"
	mbits "math/bits"
	"slices"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// Profile is what the evaluator needs to know about a profile besides
// its events: its traits (identify calls, last write wins) and the static
// segments it is listed in. Conditions on it are re-read only when told
// it may have changed: an identify event (or any event with traits) given
// to Apply, or ApplyProfile; otherwise their last values are reused.
type Profile struct {
	Traits map[string]any
	Static []string
	// Rank ranks the profile among others for population-relative
	// conditions (Population.View); nil ranks it in a population of
	// itself alone.
	Rank Ranking
}

func (pr *Profile) inStatic(name string) bool {
	return pr != nil && slices.Contains(pr.Static, name)
}

// Result is what one call changed.
type Result struct {
	// Changed lists segment memberships that flipped, in evaluation order.
	Changed []Change
	// Traits lists computed traits whose value changed.
	Traits []TraitChange
	// NextDue is the instant at which the passage of time alone can next
	// change a trait or membership of this profile (a window boundary, a
	// late follow-up deadline, midnight for an anniversary, a future
	// event's time); zero when nothing is scheduled. Call Advance then.
	NextDue time.Time
}

// Change is one segment membership flip.
type Change struct {
	Segment string
	Entered bool // false: exited
	// Evidence is the value of every leaf of the condition at the time of
	// the flip (what made it true or false).
	Evidence []Evidence
}

// Evidence is one condition leaf's value.
type Evidence struct {
	Condition string `json:"condition"`
	Value     Value  `json:"value"`
	Holds     bool   `json:"holds"`
	// Why is set for population-relative conditions: the standing in the
	// population at that instant (rank of N, percentile, the values that
	// satisfy it).
	Why string `json:"why,omitempty"`
}

// TraitChange is a computed trait's new value. A fresh state starts from
// the empty profile's values (0 for count, sum and distinct; null for the
// others), so its first Result lists only traits that differ from those;
// TraitValues gives them all.
type TraitChange struct {
	Trait    string
	Old, New Value
}

type work struct {
	now     int64
	init    bool   // first evaluation of a fresh state
	tick    bool   // a due instant has passed
	profile bool   // profile traits or static lists may have changed
	rank    bool   // other profiles moved: re-evaluate the rankings
	stored  bool   // a record was added (a future event schedules a due)
	dirty   bitset // nodes to recompute
	changed bitset // nodes whose value changed
	segs    bitset // segments to re-evaluate
	// Named traits that changed, with their old boxed values, until
	// Result.Traits is built (kept small: work is zeroed on every call).
	tIdx  [16]int32
	tOld  [16]uint64
	nT    int
	tMore []TraitChange // beyond 16
}

// bitset keeps small programs' sets in an array, so that work stays on
// the stack and Apply allocates nothing for bookkeeping.
type bitset struct {
	a   [8]uint64
	x   []uint64 // programs with more than 512 nodes or segments
	any bool
}

func (b *bitset) words(n int) []uint64 {
	if n > 512 {
		if b.x == nil {
			b.x = make([]uint64, (n+63)/64)
		}
		return b.x
	}
	return b.a[:(n+63)/64]
}

func (b *bitset) set(n, i int) {
	b.any = true
	b.words(n)[i>>6] |= 1 << (i & 63)
}

func (b *bitset) has(i int) bool {
	if !b.any {
		return false
	}
	if b.x != nil {
		return b.x[i>>6]&(1<<(i&63)) != 0
	}
	return b.a[i>>6]&(1<<(i&63)) != 0
}

func (p *Program) own(st *State) {
	if st.fp != p.fp {
		panic("eval: state belongs to another program (use Program.Adopt after UnmarshalBinary)")
	}
}

// begin moves the state's clock to now, doing what became due.
func (p *Program) begin(st *State, now time.Time, w *work) {
	p.own(st)
	w.now = now.UnixMilli()
	if w.now < st.now {
		w.now = st.now // the clock never runs backwards for a profile
	}
	st.now = w.now
	if !st.inited {
		st.inited = true
		w.init = true
		return
	}
	if st.nextDue == 0 || w.now < st.nextDue {
		return
	}
	w.tick = true
	recs := p.recsOf(st)
	if st.pend == 0 {
		recs = nil
	}
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t > w.now {
			break
		}
		if recs[i+1]&pendingBit == 0 {
			continue
		}
		recs[i+1] &^= pendingBit
		st.pend--
		for _, f := range p.feats {
			if !f.run {
				continue
			}
			if ok, vals := p.featVals(recs, i, f.idx); ok {
				p.foldUsers(st, w, f, t, vals)
			}
		}
	}
	for d, due := range p.dueOf(st) {
		if due == 0 || due > w.now {
			continue
		}
		for _, a := range p.dueAggs[d] {
			w.dirty.set(len(p.aggs), a)
		}
		for _, sg := range p.dueSegs[d] {
			w.segs.set(len(p.segs), sg)
		}
	}
}

func (p *Program) foldUsers(st *State, w *work, f *feature, t int64, vals []uint64) {
	for _, u := range f.users {
		a := p.aggs[u]
		if a.kind != akRun || (a.wk == wBetween && (t < a.from || t >= a.to)) {
			continue
		}
		p.fold(st, a, t, vals)
		w.dirty.set(len(p.aggs), u)
	}
}

// sumAcc adds numbers exactly; once a value or the total is out of
// range it stays overflow (reported, never wrapped).
type sumAcc struct {
	n    num
	over bool
}

func (a *sumAcc) addWord(w uint64) {
	s := uint8(w & tagMask)
	if s == a.n.s && !a.over {
		// The common case: a word at the sum's scale.
		c := int64(w) >> 5
		if r := a.n.c + c; (r > a.n.c) == (c > 0) {
			a.n.c = r
			return
		}
		a.over = true
		return
	}
	if a.over {
		return
	}
	x, ok := numWord(w)
	if ok {
		a.n, ok = add(a.n, x)
	}
	a.over = !ok
}

// Running sums keep their coefficient in one word and the scale (with
// an overflow bit) in the next.
const accOver = 1 << 8

func loadSum(acc []uint64) sumAcc {
	return sumAcc{n: num{c: int64(acc[0]), d: 1, s: uint8(acc[1])}, over: acc[1]&accOver != 0}
}

func (a *sumAcc) store(acc []uint64) {
	acc[0] = uint64(a.n.c)
	acc[1] = uint64(a.n.s)
	if a.over {
		acc[1] |= accOver
	}
}

// minMax keeps the least (or greatest) of boxed numbers in m; an
// overflow among them makes the answer overflow.
func minMax(m, v uint64, isMin bool) uint64 {
	if m == boxOver || v == boxOver {
		return boxOver
	}
	if m == boxNull {
		return v
	}
	a, ok1 := numWord(m)
	b, ok2 := numWord(v)
	if !ok1 || !ok2 {
		return boxOver
	}
	if c := cmpNum(b, a); (isMin && c < 0) || (!isMin && c > 0) {
		return v
	}
	return m
}

// fold adds one event's values to a running accumulator.
func (p *Program) fold(st *State, a *aggNode, t int64, vals []uint64) {
	acc := p.accOf(st)[a.acc:]
	switch a.fn {
	case rule.FnCount:
		n := uint64(1)
		if p.feats[a.feat].enc != encNone {
			n = uint64(len(vals))
		}
		acc[0] += n
	case rule.FnSum, rule.FnAvg:
		sum := loadSum(acc)
		for _, v := range vals {
			sum.addWord(v)
		}
		sum.store(acc)
		if a.fn == rule.FnAvg {
			acc[2] += uint64(len(vals))
		}
	case rule.FnMin, rule.FnMax:
		for _, v := range vals {
			acc[0] = minMax(acc[0], v, a.fn == rule.FnMin)
		}
	case rule.FnFirst:
		if acc[1] == boxNull || t < int64(acc[0]) {
			acc[0], acc[1] = uint64(t), vals[0]
		}
	case rule.FnLast:
		if acc[1] == boxNull || t >= int64(acc[0]) {
			acc[0], acc[1] = uint64(t), vals[len(vals)-1]
		}
	case rule.FnFirstTime:
		if acc[1] == boxNull || t < int64(acc[0]) {
			acc[0], acc[1] = uint64(t), boxTrue
		}
	case rule.FnLastTime:
		if acc[1] == boxNull || t > int64(acc[0]) {
			acc[0], acc[1] = uint64(t), boxTrue
		}
	case rule.FnDistinct:
		s := st.sets[a.set]
		for _, h := range vals {
			if i, found := slices.BinarySearch(s, h); !found {
				s = slices.Insert(s, i, h)
			}
		}
		st.sets[a.set] = s
	}
}

// addEvent extracts an event's features, folds running aggregates and
// stores a record for windowed ones.
func (p *Program) addEvent(st *State, ev *kiln.Event, tr map[string]any, w *work) {
	fs := p.byEvent[ev.Name]
	if len(fs) == 0 {
		return
	}
	t := ev.Timestamp.UnixMilli()
	pending := t > w.now
	tooOld := t <= w.now-p.horizon
	var vbuf [16]value
	var rbuf [48]uint64
	var ebuf [16]uint64
	rec := append(rbuf[:0], uint64(t), 0)
	for k := 0; k < p.maskWords; k++ {
		rec = append(rec, 0)
	}
	stored, anyRun := false, false
	cur := ""
	for _, fi := range fs {
		f := p.feats[fi]
		ok, vals := p.values(f, ev, tr, &cur, vbuf[:0])
		if !ok || (f.enc != encNone && len(vals) == 0) {
			continue
		}
		enc := ebuf[:0]
		for _, v := range vals {
			switch f.enc {
			case encNum:
				w, ok := wordNum(v.dec()) // f.keep made it fit, or overflow
				if !ok || v.kind != kNum {
					w = boxOver
				}
				enc = append(enc, w)
			case encHash:
				enc = append(enc, hashValue(v))
			default:
				enc = append(enc, st.box(v))
			}
		}
		if f.run && !pending {
			p.foldUsers(st, w, f, t, enc)
		}
		if (f.win && !tooOld) || (f.run && pending) {
			rec[2+fi>>6] |= 1 << (fi & 63)
			if f.enc != encNone {
				if f.itemPath {
					rec = append(rec, uint64(len(enc)))
				}
				rec = append(rec, enc...)
			}
			stored = true
			anyRun = anyRun || (f.run && pending)
			if f.win {
				for _, u := range f.users {
					if k := p.aggs[u].kind; k == akWin || k == akNotFollowed {
						w.dirty.set(len(p.aggs), u)
					}
				}
			}
		}
	}
	if !stored {
		return
	}
	rec[1] = uint64(len(rec))
	if anyRun {
		rec[1] |= pendingBit
		st.pend++
	}
	p.insertRec(st, rec)
	w.stored = true
}

// values evaluates a feature on one event: whether the event matches
// (its scope, then its filter) and the values it contributes, converted
// when the feature converts amounts. *cur caches the event's currency.
// tr is the profile's traits as the event arrives: a filter that reads
// them decides once per event, as a line-item condition does.
func (p *Program) values(f *feature, ev *kiln.Event, tr map[string]any, cur *string, buf []value) (bool, []value) {
	if f.scope != nil || f.conv != "" {
		if *cur == "" {
			*cur = eventCurrency(ev, p.currency)
		}
		if f.scope != nil && !f.scope.match(ev, *cur) {
			return false, buf
		}
	}
	ok, vals := f.extract(ev.Properties, tr, buf)
	if ok && f.conv != "" && !p.rates.convert(vals, *cur, f.conv) {
		return false, buf // no rate: left out (CurrencyCheck reports it)
	}
	return ok, vals
}

// Apply adds one event of the profile (it may be late or out of order:
// it is placed by its timestamp) and evaluates what it affects at now.
// An identify event (or any event carrying traits) also re-evaluates the
// conditions on profile traits; prof must already hold the merged traits.
// Event filters that read profile traits read prof's as the event
// arrives (once: the event's match is fixed then, as line-item
// conditions are), so replays must give each event the traits it saw.
// now never runs backwards for a state: an earlier now is taken as the
// state's last one. Times are evaluated at millisecond precision.
func (p *Program) Apply(st *State, prof *Profile, ev *kiln.Event, now time.Time) Result {
	var w work
	p.begin(st, now, &w)
	if ev != nil {
		if ev.Type == kiln.Identify || len(ev.Traits) > 0 {
			w.profile = true
		}
		var tr map[string]any
		if prof != nil {
			tr = prof.Traits
		}
		p.addEvent(st, ev, tr, &w)
	}
	return p.finish(st, prof, &w)
}

// ApplyProfile re-evaluates everything that reads profile traits or
// static segment lists, after either changed.
func (p *Program) ApplyProfile(st *State, prof *Profile, now time.Time) Result {
	var w work
	p.begin(st, now, &w)
	w.profile = true
	return p.finish(st, prof, &w)
}

// Advance evaluates what the passage of time changed up to now. The
// engine calls it at Result.NextDue; calling it earlier or later is
// harmless (late calls report the state at now, not at each boundary).
func (p *Program) Advance(st *State, prof *Profile, now time.Time) Result {
	var w work
	p.begin(st, now, &w)
	return p.finish(st, prof, &w)
}

func (p *Program) finish(st *State, prof *Profile, w *work) Result {
	now := w.now
	var res Result
	if !(w.init || w.tick || w.profile || w.stored || w.dirty.any || w.rank) {
		if st.nextDue != 0 {
			res.NextDue = time.UnixMilli(st.nextDue)
		}
		return res
	}
	nseg := len(p.segs)
	// Nodes, in index order: a node's dependents have higher indexes, so
	// marking them while iterating reaches them in this same pass.
	dirty := w.dirty.words(len(p.aggs))
	for wi := 0; wi < len(dirty); wi++ {
		for dirty[wi] != 0 {
			b := bits64(dirty[wi])
			dirty[wi] &^= 1 << b
			i := wi*64 + b
			a := p.aggs[i]
			nv := p.compute(st, a, now)
			if nv == p.cacheOf(st)[i] {
				continue
			}
			if a.name != "" {
				if w.nT < len(w.tIdx) {
					w.tIdx[w.nT], w.tOld[w.nT] = int32(i), p.cacheOf(st)[i]
					w.nT++
				} else {
					w.tMore = append(w.tMore, TraitChange{Trait: a.name, Old: p.nodeValue(st, i, p.cacheOf(st)[i]), New: p.nodeValue(st, i, nv)})
				}
			}
			p.cacheOf(st)[i] = nv
			w.changed.set(len(p.aggs), i)
			for _, u := range a.users {
				w.dirty.set(len(p.aggs), u)
			}
			for _, sg := range p.aggSegs[i] {
				w.segs.set(nseg, sg)
			}
		}
	}
	if w.nT > 0 {
		res.Traits = make([]TraitChange, w.nT, w.nT+len(w.tMore))
		cache := p.cacheOf(st)
		for k := 0; k < w.nT; k++ {
			i := w.tIdx[k]
			res.Traits[k] = TraitChange{Trait: p.aggs[i].name, Old: p.nodeValue(st, int(i), w.tOld[k]), New: p.nodeValue(st, int(i), cache[i])}
		}
		res.Traits = append(res.Traits, w.tMore...)
	}
	if w.profile {
		for _, sg := range p.profSegs {
			w.segs.set(nseg, sg)
		}
	}
	if w.rank {
		for _, sg := range p.rankSegs {
			w.segs.set(nseg, sg)
		}
	}
	if w.init {
		// A fresh state starts with the empty profile's memberships.
		// Segments reading the profile, and those the empty profile is
		// in (reported as entered), are evaluated now.
		copy(p.memberOf(st), p.emptyMember)
		for _, sg := range p.segs {
			if sg.profileT || p.emptyMember[sg.idx>>6]&(1<<(sg.idx&63)) != 0 {
				w.segs.set(nseg, sg.idx)
			}
		}
	}
	if w.segs.any {
		env := condEnv{p: p, st: st, prof: prof, now: now, due: p.dueOf(st), pbits: p.pbitsOf(st), fresh: w.init || w.profile}
		segs := w.segs.words(nseg)
		for wi := 0; wi < len(segs); wi++ {
			for segs[wi] != 0 {
				b := bits64(segs[wi])
				segs[wi] &^= 1 << b
				s := p.segs[wi*64+b]
				var in bool
				if s.static {
					in = prof.inStatic(s.name)
				} else {
					in = env.eval(s.cond)
				}
				old := p.memberOf(st)[s.idx>>6]&(1<<(s.idx&63)) != 0
				reported := old
				if w.init && !s.profileT {
					reported = false // the template was never reported
				}
				if in {
					p.memberOf(st)[s.idx>>6] |= 1 << (s.idx & 63)
				} else {
					p.memberOf(st)[s.idx>>6] &^= 1 << (s.idx & 63)
				}
				if in != reported {
					res.Changed = append(res.Changed, p.change(st, prof, s, in, now))
				}
				if in != old {
					for _, d := range s.dependents {
						w.segs.set(nseg, d)
					}
				}
			}
		}
	}
	if recs := p.recsOf(st); len(recs) > 0 && int64(recs[0]) <= now-p.horizon {
		p.prune(st, now-p.horizon)
	}
	// Strings of pruned records and replaced first/last values are
	// garbage; compact when the pool is twice what was alive last time.
	p.compactStrings(st)
	st.nextDue = p.nextDue(st, now)
	if st.nextDue != 0 {
		res.NextDue = time.UnixMilli(st.nextDue)
	}
	return res
}

func bits64(x uint64) int { return mbits.TrailingZeros64(x) }

// change builds a membership change with its evidence.
func (p *Program) change(st *State, prof *Profile, s *segNode, in bool, now int64) Change {
	ch := Change{Segment: s.name, Entered: in}
	if s.cond != nil {
		ch.Evidence = make([]Evidence, 0, s.leaves)
		ev := condEnv{p: p, st: st, prof: prof, now: now, evidence: &ch.Evidence}
		ev.eval(s.cond)
	} else {
		ch.Evidence = []Evidence{{Condition: "listed in static segment " + s.name, Value: Value{boolV(in)}, Holds: in}}
	}
	return ch
}

func (p *Program) nextDue(st *State, now int64) int64 {
	nd := int64(0)
	for _, d := range p.dueOf(st) {
		if d > now && (nd == 0 || d < nd) {
			nd = d
		}
	}
	recs := p.recsOf(st)
	if st.pend == 0 {
		recs = nil
	}
	for i := 0; i < len(recs); i += recLen(recs, i) {
		if recs[i+1]&pendingBit != 0 {
			if t := int64(recs[i]); t > now && (nd == 0 || t < nd) {
				nd = t
			}
			break
		}
	}
	return nd
}

// compute returns a node's value at now, updating its due instant.
func (p *Program) compute(st *State, a *aggNode, now int64) uint64 {
	switch a.kind {
	case akRun:
		acc := p.accOf(st)[a.acc:]
		switch a.fn {
		case rule.FnCount:
			return st.boxNum(intNum(int64(acc[0])))
		case rule.FnSum:
			return st.boxSum(loadSum(acc))
		case rule.FnAvg:
			return st.boxAvg(loadSum(acc), acc[2])
		case rule.FnFirst, rule.FnLast:
			return acc[1]
		case rule.FnFirstTime, rule.FnLastTime:
			if acc[1] == boxNull {
				return boxNull
			}
			return st.box(timeV(int64(acc[0])))
		case rule.FnDistinct:
			return st.boxNum(intNum(int64(len(st.sets[a.set]))))
		}
		return acc[0]
	case akWin:
		v, due := p.computeWin(st, a, now)
		p.dueOf(st)[a.due] = due
		return v
	case akNotFollowed:
		v, due := p.computeNotFollowed(st, a, now)
		p.dueOf(st)[a.due] = due
		return v
	}
	return st.box(evalExpr(a.expr, func(i int) value { return st.unbox(p.cacheOf(st)[i]) }))
}

func (st *State) boxSum(s sumAcc) uint64 {
	if s.over {
		return boxOver
	}
	return st.boxNum(s.n)
}

// boxAvg boxes sum/n exactly: a quotient that does not end keeps its
// divisor (in the pool), so comparisons are sum >= threshold × n.
func (st *State) boxAvg(s sumAcc, n uint64) uint64 {
	if n == 0 {
		return boxNull
	}
	if s.over || n > math.MaxInt64 {
		return boxOver
	}
	q, ok := quo(s.n.c, s.n.s, int64(n))
	if !ok || q.d > math.MaxInt32 {
		return boxOver // as numV has it
	}
	return st.boxNum(q)
}

func minDue(d, c int64) int64 {
	if d == 0 || c < d {
		return c
	}
	return d
}

// computeWin aggregates the records of a's feature inside its window.
// Rolling windows are (now-span, now]: an event at t counts until
// t+span exclusive, so it leaves at exactly t+span. Calendar windows are
// [period start, now].
func (p *Program) computeWin(st *State, a *aggNode, now int64) (uint64, int64) {
	var lo, next int64
	if a.wk == wRolling {
		lo = now - a.span
	} else {
		var start int64
		start, next = p.period(a.wk, now)
		lo = start - 1
	}
	fenc := p.feats[a.feat].enc
	var (
		n      int64
		sum    = sumAcc{n: num{d: 1}}
		cnt    uint64
		mm     = boxNull
		first  = boxNull
		last   = boxNull
		hbuf   [32]uint64
		hashes = hbuf[:0]
		due    int64
		seen   bool
		tFirst int64
		tLast  int64
	)
	recs := p.recsOf(st)
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t <= lo {
			continue
		}
		ok, vals := p.featVals(recs, i, a.feat)
		if !ok {
			continue
		}
		if t > now {
			due = minDue(due, t)
			break
		}
		if !seen {
			tFirst = t
		}
		tLast = t
		if !seen {
			seen = true
			if a.wk == wRolling {
				due = minDue(due, t+a.span)
			} else {
				due = minDue(due, next)
			}
		}
		switch a.fn {
		case rule.FnCount:
			if fenc == encNone {
				n++
			} else {
				n += int64(len(vals))
			}
		case rule.FnSum, rule.FnAvg:
			for _, v := range vals {
				sum.addWord(v)
			}
			cnt += uint64(len(vals))
		case rule.FnMin, rule.FnMax:
			for _, v := range vals {
				mm = minMax(mm, v, a.fn == rule.FnMin)
			}
		case rule.FnFirst:
			if first == boxNull {
				first = vals[0]
			}
		case rule.FnLast:
			last = vals[len(vals)-1]
		case rule.FnDistinct:
			hashes = append(hashes, vals...)
		}
	}
	switch a.fn {
	case rule.FnCount:
		return st.boxNum(intNum(n)), due
	case rule.FnSum:
		return st.boxSum(sum), due
	case rule.FnAvg:
		return st.boxAvg(sum, cnt), due
	case rule.FnMin, rule.FnMax:
		return mm, due
	case rule.FnFirst:
		return first, due
	case rule.FnLast:
		return last, due
	case rule.FnFirstTime, rule.FnLastTime:
		if !seen {
			return boxNull, due
		}
		if a.fn == rule.FnFirstTime {
			return st.box(timeV(tFirst)), due
		}
		return st.box(timeV(tLast)), due
	}
	slices.Sort(hashes)
	return st.boxNum(intNum(int64(len(slices.Compact(hashes))))), due
}

// computeNotFollowed: true when some A in (now-W, now] whose deadline
// a+T has passed (a+T <= now) saw no B in [a, a+T).
func (p *Program) computeNotFollowed(st *State, a *aggNode, now int64) (uint64, int64) {
	if a.open {
		return p.computeOpenNotFollowed(st, a, now)
	}
	lo := now - a.span
	var bbuf [32]int64
	bs := bbuf[:0]
	recs := p.recsOf(st)
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t <= lo {
			continue
		}
		if t > now {
			break
		}
		if ok, _ := p.featVals(recs, i, a.featB); ok {
			bs = append(bs, t)
		}
	}
	result := false
	var due int64
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t <= lo {
			continue
		}
		if ok, _ := p.featVals(recs, i, a.feat); !ok {
			continue
		}
		if t > now {
			due = minDue(due, t)
			break
		}
		followed := false
		for _, b := range bs {
			if b >= t && b < t+a.within {
				followed = true
				break
			}
		}
		if t+a.within > now {
			if !followed {
				due = minDue(due, t+a.within) // decided then, unless B comes
			}
			continue
		}
		if !followed {
			result = true
			due = minDue(due, t+a.span) // leaves the window then
		}
	}
	if result {
		return boxTrue, due
	}
	return boxFalse, due
}

// computeOpenNotFollowed: true when some A at a in (now-W, now-G] (G is
// the "for at least" span, often 0) saw no B in [a, now]. A B at the
// same millisecond as an A follows it. If some A stands unfollowed, so
// does the latest A up to now-G (every B after it is after the earlier
// one too), so the answer is: the latest such A is later than the
// latest B up to now.
func (p *Program) computeOpenNotFollowed(st *State, a *aggNode, now int64) (uint64, int64) {
	lo, hi := now-a.span, now-a.within
	var lastA, lastB, due int64
	hasA, hasB := false, false
	recs := p.recsOf(st)
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t <= lo {
			continue
		}
		isA, _ := p.featVals(recs, i, a.feat)
		isB, _ := p.featVals(recs, i, a.featB)
		if !isA && !isB {
			continue
		}
		if t > now {
			due = minDue(due, t) // counts from its own time
			break
		}
		if isB {
			lastB, hasB = t, true
		}
		if isA {
			if t <= hi {
				lastA, hasA = t, true
			} else {
				due = minDue(due, t+a.within) // stands unfollowed long enough then
			}
		}
	}
	if hasA {
		// It leaves the window then (earlier As have left already).
		due = minDue(due, lastA+a.span)
		if !hasB || lastB < lastA {
			return boxTrue, due
		}
	}
	return boxFalse, due
}

// evalExpr computes arithmetic exactly; null (or a non-number) anywhere,
// or a division by zero, makes the result null; a result out of range
// is overflow.
func evalExpr(c *cexpr, get func(int) value) value {
	switch c.op {
	case 'n':
		return c.lit
	case 'a':
		v := get(c.node)
		if v.kind != kNum && v.kind != kOver {
			return null
		}
		v.str = "" // the node's currency; the expression's is its own
		return v
	}
	return arith(c.op, evalExpr(c.l, get), evalExpr(c.r, get))
}

// condEnv evaluates conditions against either a State (incremental) or
// naive node values.
type condEnv struct {
	p        *Program
	st       *State
	vals     []value  // naive
	members  []bool   // naive
	prof     *Profile // read only when a condition reads a trait: it is cold memory
	now      int64
	due      []int64 // date conditions write their next change here
	evidence *[]Evidence
	// pbits holds the last values of profile-reading leaves; unless
	// fresh (the profile may have changed), a leaf whose due instant has
	// not come reuses its value instead of reading and parsing traits.
	pbits []uint64
	fresh bool
}

// dateOf is what a date condition reads: a profile trait, or a node's
// value (last time of "X").
func (e *condEnv) dateOf(c *cnode) any {
	if c.onNode {
		return e.node(c.node).any()
	}
	return e.trait(c.ppath)
}

func (e *condEnv) cached(c *cnode) (bool, bool) {
	if e.pbits == nil || e.fresh || e.evidence != nil || c.pbit < 0 {
		return false, false
	}
	if c.due >= 0 {
		if d := e.due[c.due]; d != 0 && d <= e.now {
			return false, false
		}
	}
	return e.pbits[c.pbit>>6]&(1<<(c.pbit&63)) != 0, true
}

func (e *condEnv) keep(c *cnode, holds bool) bool {
	if e.pbits != nil && c.pbit >= 0 {
		if holds {
			e.pbits[c.pbit>>6] |= 1 << (c.pbit & 63)
		} else {
			e.pbits[c.pbit>>6] &^= 1 << (c.pbit & 63)
		}
	}
	return holds
}

// trait reads a profile trait by path: traits.company.name reads name
// in the object company.
func (e *condEnv) trait(path []string) any {
	if e.prof == nil {
		return nil
	}
	return lookup(e.prof.Traits, path)
}

func (e *condEnv) node(i int) value {
	if e.st != nil {
		return e.p.nodeValue(e.st, i, e.p.cacheOf(e.st)[i]).v
	}
	return e.vals[i]
}

// nodeValue unboxes a node's value, with its currency when it is money.
func (p *Program) nodeValue(st *State, i int, b uint64) Value {
	v := st.unbox(b)
	if v.kind == kNum && p.curs != nil {
		v.str = p.curs[i]
	}
	return Value{v}
}

func (e *condEnv) member(i int) bool {
	if e.st != nil {
		return e.p.memberOf(e.st)[i>>6]&(1<<(i&63)) != 0
	}
	return e.members[i]
}

func (e *condEnv) note(c *cnode, v value, holds bool) bool {
	if e.evidence != nil {
		*e.evidence = append(*e.evidence, Evidence{Condition: c.text, Value: Value{v}, Holds: holds})
	}
	return holds
}

// eval evaluates every node (no short circuit), so each date condition's
// due instant is always current.
func (e *condEnv) eval(c *cnode) bool {
	switch c.op {
	case cAnd:
		r := true
		for _, k := range c.kids {
			if !r && !k.timed && e.evidence == nil {
				continue // decided; k has no due instant to keep current
			}
			r = e.eval(k) && r
		}
		return r
	case cOr:
		r := false
		for _, k := range c.kids {
			if r && !k.timed && e.evidence == nil {
				continue
			}
			r = e.eval(k) || r
		}
		return r
	case cNot:
		return !e.eval(c.kids[0])
	case cAgg:
		v := e.node(c.node)
		return e.note(c, v, compare(v, c.cmp, c.lit, c.list))
	case cProfile:
		if holds, ok := e.cached(c); ok {
			return holds
		}
		x := e.trait(c.ppath)
		if c.length {
			v := lengthOf(x)
			return e.keep(c, e.note(c, v, compare(v, c.cmp, c.lit, c.list)))
		}
		if c.cmp == "contains" {
			return e.keep(c, e.note(c, toValue(x), containsAny(x, c.lit)))
		}
		v := toValue(x)
		return e.keep(c, e.note(c, v, compare(v, c.cmp, c.lit, c.list)))
	case cSeg:
		in := e.member(c.seg)
		return e.note(c, boolV(in), in)
	case cExpr:
		l, _, holds := e.exprLeaf(c)
		return e.note(c, l, holds)
	case cRank:
		holds, v := e.rankLeaf(c)
		e.note(c, v, holds)
		if e.evidence != nil {
			ev := *e.evidence
			ev[len(ev)-1].Why = e.rankWhy(c, "value "+Value{v}.String())
		}
		return holds
	}
	if holds, ok := e.cached(c); ok {
		return holds
	}
	x := e.dateOf(c)
	var holds bool
	var due int64
	switch c.op {
	case cAnniv:
		holds, due = e.p.anniversary(x, c.days, e.now)
	case cAgo, cWithinLast:
		if t, ok := e.p.dateValue(x); ok {
			if c.op == cAgo {
				holds = t+c.span <= e.now
				if !holds {
					due = t + c.span
				}
			} else {
				holds = e.now-c.span < t && t <= e.now
				switch {
				case t > e.now:
					due = t
				case holds:
					due = t + c.span
				}
			}
		}
	}
	if e.due != nil {
		e.due[c.due] = due
	}
	return e.keep(c, e.note(c, toValue(x), holds))
}

// exprLeaf evaluates a comparison of expressions: its left value, its
// right value (null when it compares with a literal) and whether it
// holds. The naive evaluator interprets the syntax tree instead.
func (e *condEnv) exprLeaf(c *cnode) (value, value, bool) {
	var tr map[string]any
	if e.prof != nil {
		tr = e.prof.Traits
	}
	if e.vals != nil {
		return e.p.naiveCondExpr(c.rc, tr, e.vals)
	}
	env := xenv{traits: tr, node: e.node}
	l := c.xl.eval(&env)
	if c.xr == nil {
		return l, null, compareX(l, c.cmp, nil, c.lit, c.list)
	}
	r := c.xr.eval(&env)
	return l, r, compareX(l, c.cmp, &r, null, nil)
}

// Member reports whether the state's profile is in the segment (as of
// the last Apply/Advance).
func (p *Program) Member(st *State, segment string) (bool, error) {
	i, ok := p.segIdx[segment]
	if !ok {
		return false, fmt.Errorf("eval: unknown segment %q", segment)
	}
	return p.memberOf(st)[i>>6]&(1<<(i&63)) != 0, nil
}

// Memberships lists the segments the profile is in.
func (p *Program) Memberships(st *State) []string {
	var out []string
	for _, s := range p.segs {
		if p.memberOf(st)[s.idx>>6]&(1<<(s.idx&63)) != 0 {
			out = append(out, s.name)
		}
	}
	return out
}

// TraitValues returns the computed traits' values (as of the last
// Apply/Advance): Number, string, bool or nil.
func (p *Program) TraitValues(st *State) map[string]any {
	out := make(map[string]any, len(p.traits))
	for _, i := range p.traits {
		out[p.aggs[i].name] = p.nodeValue(st, i, p.cacheOf(st)[i]).Any()
	}
	return out
}
