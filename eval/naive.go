package eval

import (
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// Snapshot is a profile's computed traits and segment memberships at
// one instant.
type Snapshot struct {
	Traits   map[string]any  // computed trait -> Number, string, bool or nil
	Segments map[string]bool // every segment -> member?
}

// Naive computes a profile's traits and memberships at instant at from
// scratch, from ALL of its events (any order; events later than at are
// ignored, ties in time keep slice order), its traits and static lists.
// It shares no state handling with the incremental evaluator: it is the
// reference for tests and answers as-of questions ("who was in this
// segment at T") and backtests. Cost: O(aggregates x events).
//
// An event filter that reads profile traits reads them as the event
// arrived: events must be in log order, and the traits each event sees
// are those the events up to it (itself included) set, folded as
// Profile.Absorb does. Conditions read prof.
func (p *Program) Naive(events []*kiln.Event, prof *Profile, at time.Time) Snapshot {
	return p.NaiveAt(events, nil, prof, at)
}

// NaiveAt is Naive with the profile traits each event's filters read
// given (eventTraits[i] for events[i]), for callers that changed the
// profile other than by events; nil rebuilds them as Naive does.
func (p *Program) NaiveAt(events []*kiln.Event, eventTraits []map[string]any, prof *Profile, at time.Time) Snapshot {
	vals, members := p.naiveCore(events, eventTraits, prof, at)
	return p.snapshot(vals, members)
}

// snapshot turns naive node values and memberships into a Snapshot.
func (p *Program) snapshot(vals []value, members []bool) Snapshot {
	snap := Snapshot{Traits: map[string]any{}, Segments: map[string]bool{}}
	for _, s := range p.segs {
		snap.Segments[s.name] = members[s.idx]
	}
	for _, i := range p.traits {
		snap.Traits[p.aggs[i].name] = vals[i].any()
	}
	return snap
}

// naiveCore is NaiveAt's node values and memberships.
func (p *Program) naiveCore(events []*kiln.Event, eventTraits []map[string]any, prof *Profile, at time.Time) ([]value, []bool) {
	if eventTraits == nil && p.filterTraits {
		eventTraits = replayTraits(events)
	}
	trAt := func(i int) map[string]any {
		if eventTraits == nil {
			return nil
		}
		return eventTraits[i]
	}
	now := at.UnixMilli()
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		return events[order[i]].Timestamp.UnixMilli() < events[order[j]].Timestamp.UnixMilli()
	})
	vals := make([]value, len(p.aggs))
	for i, a := range p.aggs {
		switch a.kind {
		case akRun, akWin:
			vals[i] = p.naiveAgg(a, events, trAt, order, now)
		case akNotFollowed:
			vals[i] = p.naiveNotFollowed(a, events, trAt, order, now)
		case akDerived:
			vals[i] = evalExpr(a.expr, func(k int) value { return vals[k] })
		}
		if vals[i].kind == kNum {
			vals[i].str = a.cur
		}
	}
	members := make([]bool, len(p.segs))
	p.naiveSegments(vals, members, prof, now)
	return vals, members
}

func (p *Program) naiveSegments(vals []value, members []bool, prof *Profile, now int64) {
	env := condEnv{p: p, vals: vals, members: members, prof: prof, now: now}
	for _, s := range p.segs {
		if s.static {
			members[s.idx] = prof.inStatic(s.name)
		} else {
			members[s.idx] = env.eval(s.cond)
		}
	}
}

// replayTraits gives the profile traits as each event (in log order)
// arrived: those the events up to it, itself included, set (Absorb).
func replayTraits(events []*kiln.Event) []map[string]any {
	out := make([]map[string]any, len(events))
	var pr Profile
	for i, ev := range events {
		if (&Profile{}).Absorb(ev) {
			// A copy: earlier events keep what they saw.
			next := make(map[string]any, len(pr.Traits)+1)
			for k, v := range pr.Traits {
				next[k] = v
			}
			pr.Traits = next
			pr.Absorb(ev)
		}
		out[i] = pr.Traits
	}
	return out
}

// inWindow reports whether an event at t counts for a at now.
func (p *Program) inWindow(a *aggNode, t, now int64) bool {
	if t > now {
		return false
	}
	switch a.wk {
	case wAll:
		return true
	case wBetween:
		return t >= a.from && t < a.to
	case wRolling:
		return t > now-a.span
	}
	start, _ := p.period(a.wk, now)
	return t >= start
}

func (p *Program) naiveAgg(a *aggNode, events []*kiln.Event, trAt func(int) map[string]any, order []int, now int64) value {
	f := p.feats[a.feat]
	var (
		n        int64
		sum      = numV(intNum(0))
		cnt      int64
		mm       value
		first    value
		last     value
		distinct = map[uint64]bool{}
	)
	for _, i := range order {
		ev := events[i]
		t := ev.Timestamp.UnixMilli()
		if ev.Name != f.event || !p.inWindow(a, t, now) {
			continue
		}
		ok, vs := p.naiveValues(f, ev, trAt(i))
		if !ok {
			continue
		}
		if a.fn == rule.FnCount && f.enc == encNone {
			n++
			continue
		}
		if a.fn == rule.FnFirstTime || a.fn == rule.FnLastTime {
			// Events in time order: the first seen is the earliest.
			if a.fn == rule.FnLastTime || first.kind == kNull {
				first = timeV(t)
			}
			continue
		}
		if len(vs) == 0 {
			continue
		}
		switch a.fn {
		case rule.FnCount:
			n += int64(len(vs))
		case rule.FnSum, rule.FnAvg:
			for _, v := range vs {
				if sum.kind == kNum && v.kind == kNum {
					sum = numOr(add(sum.dec(), v.dec()))
				} else {
					sum = overV
				}
			}
			cnt += int64(len(vs))
		case rule.FnMin, rule.FnMax:
			for _, v := range vs {
				switch {
				case mm.kind == kOver || v.kind == kOver:
					mm = overV
				case mm.kind == kNull:
					mm = v
				case a.fn == rule.FnMin && cmpNum(v.dec(), mm.dec()) < 0, a.fn == rule.FnMax && cmpNum(v.dec(), mm.dec()) > 0:
					mm = v
				}
			}
		case rule.FnFirst:
			if first.kind == kNull {
				first = vs[0]
			}
		case rule.FnLast:
			last = vs[len(vs)-1]
		case rule.FnDistinct:
			for _, v := range vs {
				distinct[hashValue(v)] = true
			}
		}
	}
	switch a.fn {
	case rule.FnCount:
		return numV(intNum(n))
	case rule.FnSum:
		if sum.kind == kNum {
			return numV(sum.dec().norm())
		}
		return sum
	case rule.FnAvg:
		if cnt == 0 {
			return null
		}
		if sum.kind != kNum {
			return overV
		}
		return numOr(quo(sum.c, sum.s, cnt))
	case rule.FnMin, rule.FnMax:
		if mm.kind == kNum {
			mm = numV(mm.dec().norm())
		}
		return mm
	case rule.FnFirst:
		return first
	case rule.FnLast:
		return last
	case rule.FnFirstTime, rule.FnLastTime:
		return first
	}
	return numV(intNum(int64(len(distinct))))
}

func (p *Program) naiveNotFollowed(a *aggNode, events []*kiln.Event, trAt func(int) map[string]any, order []int, now int64) value {
	fa, fb := p.feats[a.feat], p.feats[a.featB]
	var as, bs []int64
	for _, i := range order {
		ev := events[i]
		t := ev.Timestamp.UnixMilli()
		if t > now {
			continue
		}
		if ev.Name == fa.event {
			if ok, _ := p.naiveValues(fa, ev, trAt(i)); ok {
				as = append(as, t)
			}
		}
		if ev.Name == fb.event {
			if ok, _ := p.naiveValues(fb, ev, trAt(i)); ok {
				bs = append(bs, t)
			}
		}
	}
	if a.open {
		// Open-ended: an A in (now-W, now] at least G old with no B at or
		// after it (the same millisecond included) up to now.
		for _, t := range as {
			if t <= now-a.span || t+a.within > now {
				continue
			}
			followed := false
			for _, b := range bs {
				if b >= t {
					followed = true
				}
			}
			if !followed {
				return boolV(true)
			}
		}
		return boolV(false)
	}
	for _, t := range as {
		if t <= now-a.span || t+a.within > now {
			continue
		}
		followed := false
		for _, b := range bs {
			if b >= t && b < t+a.within {
				followed = true
			}
		}
		if !followed {
			return boolV(true)
		}
	}
	return boolV(false)
}

// naiveValues is Program.values written again from the scope as
// written and with big rationals, so the property test checks scope and
// conversion too: an event matches when it is in scope (an amount
// neither scoped nor converted reads the default currency only) and
// passes the filter; converted amounts are amount × rate rounded
// half-even to the target's decimals.
func (p *Program) naiveValues(f *feature, ev *kiln.Event, tr map[string]any) (bool, []value) {
	cur := p.currency
	if c, ok := ev.Properties["currency"].(string); ok && strings.TrimSpace(c) != "" {
		cur = strings.ToUpper(strings.TrimSpace(c))
	}
	if sc := f.rscope; sc != nil {
		if (sc.Sources != nil && !slices.Contains(sc.Sources, ev.SourceID)) ||
			(sc.Stores != nil && !slices.Contains(sc.Stores, ev.Store)) ||
			(sc.Currencies != nil && !slices.Contains(sc.Currencies, cur)) {
			return false, nil
		}
	}
	if f.implicit && cur != p.currency {
		return false, nil
	}
	ok, vs := p.naiveExtract(f, ev.Properties, tr)
	if !ok || f.conv == "" || cur == f.conv {
		return ok, vs
	}
	rate, found := p.rates.m[[2]string{cur, f.conv}]
	if !found {
		return false, nil
	}
	places := minorUnits(f.conv)
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	for i, v := range vs {
		if v.kind != kNum {
			continue
		}
		x := new(big.Rat).Mul(v.dec().rat(), rate.rat())
		x.Mul(x, new(big.Rat).SetInt(scale))
		q, r := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
		r2 := new(big.Int).Abs(r)
		r2.Lsh(r2, 1)
		if c := r2.Cmp(x.Denom()); c > 0 || (c == 0 && q.Bit(0) == 1) {
			if x.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
		if !q.IsInt64() {
			vs[i] = overV
			continue
		}
		vs[i] = numV(num{c: q.Int64(), d: 1, s: uint8(places)}.norm())
	}
	return true, vs
}

// naiveExtract is feature.extract with the filter interpreted from the
// syntax tree (naiveFilter), so the property test checks the compiled
// filters too.
func (p *Program) naiveExtract(f *feature, props, tr map[string]any) (bool, []value) {
	var out []value
	if f.arr == "" {
		if f.where != nil && !p.naiveFilter(f.where, props, nil, tr) {
			return false, nil
		}
		if f.path != nil {
			out = f.keep(out, lookup(props, f.path))
		}
		return true, out
	}
	items, _ := props[f.arr].([]any)
	matched := false
	for _, it := range items {
		item, _ := it.(map[string]any)
		if item == nil || (f.where != nil && !p.naiveFilter(f.where, props, item, tr)) {
			continue
		}
		matched = true
		if f.itemPath {
			out = f.keep(out, lookup(item, f.path))
		}
	}
	if matched && f.path != nil && !f.itemPath {
		out = f.keep(out, lookup(props, f.path))
	}
	return matched, out
}

// naiveFilter interprets a filter on an event's properties (and the
// line item being looked at, for item paths). Line-item conditions
// collect the passing items and compute with exact rationals.
func (p *Program) naiveFilter(f *rule.Filter, props, item, tr map[string]any) bool {
	switch f.Op {
	case rule.FAnd:
		for _, a := range f.Args {
			if !p.naiveFilter(a, props, item, tr) {
				return false
			}
		}
		return true
	case rule.FOr:
		for _, a := range f.Args {
			if p.naiveFilter(a, props, item, tr) {
				return true
			}
		}
		return false
	case rule.FNot:
		return !p.naiveFilter(f.Args[0], props, item, tr)
	case rule.FItems:
		return p.naiveItems(f, props, tr)
	case rule.FExpr:
		right := f.Right
		if right == nil && f.Cmp != rule.CmpIn && f.Cmp != rule.CmpExists && f.Cmp != rule.CmpNotExists {
			right = constExpr(f.Value) // a literal Value from JSON is a constant right side
		}
		return p.naiveComparison(f.Left, f.Cmp, right, f.Value, props, item, tr, nil)
	}
	segs, _ := rule.SplitPath(f.Path)
	src := item
	if segs[0] == "properties" {
		src = props
	}
	x := lookup(src, segs[1:])
	lit, list := literal(f.Value)
	switch {
	case f.Func == rule.FnLength:
		return compare(lengthOf(x), f.Cmp, lit, list)
	case f.Cmp == rule.CmpContains:
		return containsAny(x, lit)
	}
	return compare(toValue(x), f.Cmp, lit, list)
}

func (p *Program) naiveItems(f *rule.Filter, props, tr map[string]any) bool {
	arr, field := f.Path, []string(nil)
	if segs, _ := rule.SplitPath(f.Path); len(segs) > 1 {
		arr, field = segs[0], segs[1:]
	}
	list, _ := props[arr].([]any)
	var objs, pass []map[string]any
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			objs = append(objs, m)
			if f.Where == nil || p.naiveFilter(f.Where, props, m, tr) {
				pass = append(pass, m)
			}
		}
	}
	switch f.Func {
	case rule.FnAny:
		return len(pass) > 0
	case rule.FnAll:
		return len(objs) > 0 && len(pass) == len(objs)
	}
	var vals []value
	for _, m := range pass {
		if field == nil {
			vals = append(vals, boolV(true)) // count(products): the item
			continue
		}
		if v := objValue(lookup(m, field)); v.kind != kNull {
			vals = append(vals, v)
		}
	}
	lit, lits := literal(f.Value)
	switch f.Func {
	case rule.FnCount:
		return ratCompare(big.NewRat(int64(len(vals)), 1), f.Cmp, lit, lits)
	case rule.FnDistinct:
		seen := map[uint64]bool{}
		for _, v := range vals {
			seen[hashValue(v)] = true
		}
		return ratCompare(big.NewRat(int64(len(seen)), 1), f.Cmp, lit, lits)
	}
	var nums []*big.Rat
	for _, v := range vals {
		switch v.kind {
		case kOver:
			return compare(overV, f.Cmp, lit, lits)
		case kNum:
			nums = append(nums, v.dec().rat())
		}
	}
	var r *big.Rat
	switch f.Func {
	case rule.FnSum, rule.FnAvg:
		r = new(big.Rat)
		for _, x := range nums {
			r.Add(r, x)
		}
		if f.Func == rule.FnAvg {
			if len(nums) == 0 {
				return compare(null, f.Cmp, lit, lits)
			}
			r.Quo(r, big.NewRat(int64(len(nums)), 1))
		}
	default: // min, max
		for _, x := range nums {
			if c := x.Cmp(r0(r)); r == nil || (f.Func == rule.FnMin && c < 0) || (f.Func == rule.FnMax && c > 0) {
				r = x
			}
		}
		if r == nil {
			return compare(null, f.Cmp, lit, lits)
		}
	}
	return ratCompare(r, f.Cmp, lit, lits)
}

func r0(r *big.Rat) *big.Rat {
	if r == nil {
		return new(big.Rat)
	}
	return r
}

// ratCompare compares an exact number with a literal (or a list of
// them), as compare does for values.
func ratCompare(r *big.Rat, cmp string, lit value, list []value) bool {
	eq := func(l value) bool { return l.kind == kNum && r.Cmp(l.dec().rat()) == 0 }
	switch cmp {
	case rule.CmpExists:
		return true
	case rule.CmpNotExists:
		return false
	case rule.CmpEq:
		return eq(lit)
	case rule.CmpNe:
		return !eq(lit)
	case rule.CmpIn:
		for _, l := range list {
			if eq(l) {
				return true
			}
		}
		return false
	}
	if lit.kind != kNum {
		return false
	}
	c := r.Cmp(lit.dec().rat())
	switch cmp {
	case rule.CmpLt:
		return c < 0
	case rule.CmpLe:
		return c <= 0
	case rule.CmpGt:
		return c > 0
	case rule.CmpGe:
		return c >= 0
	}
	return false
}
