package eval

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// Population-relative conditions (rank of T, percentile of T, quintile
// of T, T in top P%, each optionally among a segment) compare one
// profile's value with every other profile's: they are the only
// conditions a profile's own events and traits do not decide. The
// evaluator stays per profile: such a condition reads the population
// through Profile.Rank, a Ranking, and the caller keeps the population
// current with a Population (an order-statistic structure per ranked
// (trait, population) pair), which names, after each change of one
// profile, the other profiles whose standing may have crossed a
// threshold: Rerank them at the same instant.
//
// Tie rules (N: the profiles in the population, those with a numeric
// value of the trait that are members of the among segment, if any;
// less and greater: those with a strictly smaller and a strictly
// greater value):
//
//	rank        = 1 + greater                   (ties share the best rank; 1 is the highest value)
//	percentile  = 100 × less / N                (0 for the lowest value; ties share it)
//	quantile k  = floor(k × less / N) + 1       (1..k: quartile 4, quintile 5, decile 10; k for the highest values)
//	top P%      : 100 × greater < P × N         (fewer than P% of the population is strictly above)
//	bottom P%   : 100 × less < P × N            (fewer than P% is strictly below)
//
// A profile outside the population (no value, a value that is not a
// number, overflow, or not in the among segment) satisfies no ranking,
// whatever the comparison (so != is false too). A profile in the
// population counts itself, so N >= 1 whenever a ranking is decided;
// when N = 0 nobody is in the population and every ranking is false.
// All arithmetic is on integers and exact.

// rankKey is one ranked (trait, population) pair.
type rankKey struct {
	node  int // the trait's node
	among int // the population segment, or -1: everyone with a value
	text  string
}

// rankLeaf is one population-relative condition.
type rankLeaf struct {
	key   int
	fn    string
	tiles int    // quartile, quintile, decile: 4, 5, 10
	cmp   string // rank, percentile, tiles: the comparison; top and bottom: "<"
	c     int64  // rank and tiles: the whole number compared with
	x4    int64  // percentile, top, bottom: the percentage × 10^4
	rc    *rule.Cond
}

// Ranking answers population-relative conditions for one profile. Get
// one from Population.View (or leave Profile.Rank nil: the profile is
// then ranked in a population of itself alone).
type Ranking interface {
	// standing counts the members of key's population with a value
	// strictly less and strictly greater than v, and the population's
	// size, with the asking profile counted in it at v.
	standing(key int, v value) (less, greater, n int)
	// bounds is the lowest and highest value of the members that
	// satisfy leaf, with the asking profile counted at v (for Explain).
	bounds(leaf int, v value) (lo, hi value, ok bool)
}

// score compares leaf's score at count x (less, or greater for rank and
// top) in a population of n with the leaf's number: -1, 0 or +1.
func (l *rankLeaf) score(x, n int) int {
	var a, b int64
	switch l.fn {
	case rule.RankRank:
		a, b = int64(x)+1, l.c
	case rule.RankPercentile, rule.RankTop, rule.RankBottom:
		a, b = int64(x)*1_000_000, l.x4*int64(n)
	default:
		a, b = int64(l.tiles)*int64(x)/int64(n)+1, l.c
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// byGreater reports whether the leaf's score reads the members above
// the value (rank, top) rather than those below.
func (l *rankLeaf) byGreater() bool { return l.fn == rule.RankRank || l.fn == rule.RankTop }

// holds decides the leaf for a member with less and greater in a
// population of n (n >= 1).
func (l *rankLeaf) holds(less, greater, n int) bool {
	x := less
	if l.byGreater() {
		x = greater
	}
	s := l.score(x, n)
	switch l.cmp {
	case "=":
		return s == 0
	case "!=":
		return s != 0
	case "<":
		return s < 0
	case "<=":
		return s <= 0
	case ">":
		return s > 0
	case ">=":
		return s >= 0
	}
	return false
}

// span is the half-open range [x1, x2) of counts x in [0, n) at which
// the leaf's score satisfies its comparison, and whether the leaf holds
// outside it instead (!=). The score never decreases with x.
func (l *rankLeaf) span(n int) (x1, x2 int, outside bool) {
	ge := sort.Search(n, func(x int) bool { return l.score(x, n) >= 0 })
	gt := sort.Search(n, func(x int) bool { return l.score(x, n) > 0 })
	switch l.cmp {
	case ">=":
		return ge, n, false
	case ">":
		return gt, n, false
	case "<=":
		return 0, gt, false
	case "<":
		return 0, ge, false
	case "!=":
		return ge, gt, true
	}
	return ge, gt, false
}

// compileRank compiles a population-relative condition into leaf n.
func (p *Program) compileRank(c *rule.Cond, n *cnode, sg *segNode) {
	r := c.Rank
	key := rankKey{node: p.traitIdx[r.Trait], among: -1, text: r.Trait}
	if r.Among != "" {
		key.among = p.segIdx[r.Among]
		key.text += " among " + r.Among
		sg.segDeps = addDep(sg.segDeps, key.among)
	}
	sg.aggDeps = addDep(sg.aggDeps, key.node)
	sg.rankDep = true
	k := slices.IndexFunc(p.rkeys, func(x rankKey) bool { return x.node == key.node && x.among == key.among })
	if k < 0 {
		k = len(p.rkeys)
		p.rkeys = append(p.rkeys, key)
	}
	l := &rankLeaf{key: k, fn: r.Func, tiles: rule.RankTiles[r.Func], cmp: c.Cmp, rc: c}
	v, _ := c.Value.(float64)
	switch r.Func {
	case rule.RankTop, rule.RankBottom:
		l.cmp = "<"
		l.x4 = percent4(v)
	case rule.RankPercentile:
		l.x4 = percent4(v)
	default:
		l.c = int64(v)
	}
	n.op = cRank
	n.rank = len(p.rleaves)
	p.rleaves = append(p.rleaves, l)
}

// percent4 is a percentage with at most four decimals (rule.Check
// allows no more) × 10^4, exactly.
func percent4(v float64) int64 {
	nm, _ := numFromFloat(v)
	x, _ := nm.roundTo(4)
	return x
}

// rankLeaf evaluates a population-relative condition: whether it holds
// and the ranked value.
func (e *condEnv) rankLeaf(c *cnode) (bool, value) {
	l := e.p.rleaves[c.rank]
	v, in := e.rankInput(l.key)
	if !in {
		return false, v
	}
	less, greater, n := e.standing(l.key, v)
	return l.holds(less, greater, n), v
}

// rankInput is the profile's value for key and whether it is in key's
// population.
func (e *condEnv) rankInput(k int) (value, bool) {
	key := e.p.rkeys[k]
	v := e.node(key.node)
	if v.kind != kNum || key.among >= 0 && !e.member(key.among) {
		return v, false
	}
	return v, true
}

func (e *condEnv) standing(k int, v value) (less, greater, n int) {
	if e.prof == nil || e.prof.Rank == nil {
		return 0, 0, 1 // a population of itself
	}
	return e.prof.Rank.standing(k, v)
}

// rankWhy explains a population-relative condition: the value, its
// standing, the population's size and the values that satisfy it now.
func (e *condEnv) rankWhy(c *cnode, v string) string {
	l := e.p.rleaves[c.rank]
	key := e.p.rkeys[l.key]
	val, in := e.rankInput(l.key)
	if !in {
		why := "no numeric value of " + e.p.aggs[key.node].name
		if val.kind == kNum {
			why = "not in segment " + e.p.segs[key.among].name
		}
		return why + ", so not in the population " + key.text + ": no ranking holds"
	}
	less, greater, n := e.standing(l.key, val)
	pct := numV(num{c: int64(100 * less), d: int64(n)})
	s := fmt.Sprintf("%s; rank %d of %d (%d below, %d above), percentile %s", v, greater+1, n, less, greater, pct)
	if l.tiles > 0 {
		s += fmt.Sprintf(", %s %d", l.fn, l.tiles*less/n+1)
	}
	var lo, hi value
	ok := false
	if e.prof != nil && e.prof.Rank != nil {
		lo, hi, ok = e.prof.Rank.bounds(c.rank, val)
	} else if l.holds(0, 0, 1) != (l.cmp == "!=") {
		lo, hi, ok = val, val, true // a population of itself
	}
	cur := ""
	if e.p.curs != nil {
		cur = e.p.curs[key.node]
	}
	lo.str, hi.str = cur, cur
	switch {
	case !ok && l.cmp == "!=":
		s += "; every member satisfies " + rule.FormatRank(l.rc)
	case !ok:
		s += "; no member satisfies " + rule.FormatRank(l.rc) + " now"
	case l.cmp == "!=":
		s += fmt.Sprintf("; members from %s to %s do not satisfy it now", lo, hi)
	default:
		s += fmt.Sprintf("; it holds now from %s to %s", lo, hi)
	}
	return s
}

// Rerank re-evaluates the profile's population-relative conditions (and
// the segments that refer to them) after other profiles moved: call it
// for the profiles Population.Update names, at the same instant. The
// zero time evaluates at the state's own instant without doing what fell
// due since (a ranking does not depend on the time): the engine does so,
// and advances every profile due at an instant itself.
func (p *Program) Rerank(st *State, prof *Profile, now time.Time) Result {
	var w work
	p.begin(st, now, &w)
	w.rank = true
	return p.finish(st, prof, &w)
}

// RankDependent reports whether segment's membership depends on other
// profiles: it uses a population-relative condition, itself or through
// segments it refers to.
func (p *Program) RankDependent(segment string) bool {
	i, ok := p.segIdx[segment]
	return ok && p.segs[i].rankT
}

// Ranked reports whether the program has population-relative conditions
// (NewPopulation returns nil otherwise).
func (p *Program) Ranked() bool { return len(p.rleaves) > 0 }

// --- the population ---------------------------------------------------------

// Population keeps, for each ranked (trait, population) pair of a
// program, the values of the profiles in the population in order, so
// standing and thresholds are O(log N) and an update names only the
// profiles whose conditions may flip. Update and Remove must not run
// concurrently with anything else; evaluations through views (Apply,
// Explain) may run concurrently with each other.
type Population struct {
	p    *Program
	sets []*rankSet
	mu   sync.RWMutex // views read; bounds of a value not recorded swap it in for a moment
}

// NewPopulation returns an empty population for the program, or nil
// when it has no population-relative conditions.
func (p *Program) NewPopulation() *Population {
	if !p.Ranked() {
		return nil
	}
	pop := &Population{p: p}
	for range p.rkeys {
		pop.sets = append(pop.sets, newRankSet())
	}
	return pop
}

// View is pid's Ranking: set it as the profile's Profile.Rank. It ranks
// pid at the value it asks with, whatever the population holds for it
// (its own change is being evaluated before Update records it).
func (pop *Population) View(pid string) Ranking {
	if pop == nil {
		return nil
	}
	return &popView{pop: pop, pid: pid}
}

// Update records pid's current values and memberships from its state
// and returns the other profiles (sorted) whose population-relative
// conditions may have changed: Rerank each. Profiles whose standing
// changed without crossing a threshold are not named.
func (pop *Population) Update(pid string, st *State) []string {
	if pop == nil {
		return nil
	}
	env := condEnv{p: pop.p, st: st}
	var out map[string]bool
	for k, set := range pop.sets {
		v, in := env.rankInput(k)
		old, had := set.at[pid]
		if had == in && (!in || cmpNum(old.dec(), v.dec()) == 0) {
			continue
		}
		out = pop.move(k, pid, old, had, v, in, out)
	}
	return sortedKeys(out)
}

// Load records pid's values from its state without naming anyone, for
// building a population from many states at once (start-up, a
// recompute): O(1) each, then Seal sorts once. pid must not be in the
// population yet; nothing but Load may run before Seal.
func (pop *Population) Load(pid string, st *State) {
	if pop == nil {
		return
	}
	env := condEnv{p: pop.p, st: st}
	for k, set := range pop.sets {
		if v, in := env.rankInput(k); in {
			set.at[pid] = v
			set.pending = append(set.pending, rentry{v, pid})
		}
	}
}

// Seal sorts what Load recorded: O(N log N).
func (pop *Population) Seal() {
	if pop == nil {
		return
	}
	for _, set := range pop.sets {
		all := set.pending
		set.pending = nil
		for _, b := range set.blocks {
			all = append(all, b...)
		}
		slices.SortFunc(all, cmpEntry)
		set.blocks = nil
		for len(all) > 0 {
			k := min(len(all), rankBlock)
			set.blocks = append(set.blocks, slices.Clone(all[:k]))
			all = all[k:]
		}
		set.n = len(set.at)
	}
}

// Remove takes pid out of every population (the profile was deleted or
// merged away) and returns the profiles to Rerank.
func (pop *Population) Remove(pid string) []string {
	if pop == nil {
		return nil
	}
	var out map[string]bool
	for k, set := range pop.sets {
		if old, had := set.at[pid]; had {
			out = pop.move(k, pid, old, true, value{}, false, out)
		}
	}
	return sortedKeys(out)
}

// Len is the size of the population of the i-th ranked pair (for tests
// and metrics).
func (pop *Population) Len(i int) int { return pop.sets[i].n }

func (pop *Population) move(k int, pid string, old value, had bool, v value, in bool, out map[string]bool) map[string]bool {
	set := pop.sets[k]
	var leaves []int
	for i, l := range pop.p.rleaves {
		if l.key == k {
			leaves = append(leaves, i)
		}
	}
	before := make([]valRange, len(leaves))
	for i, li := range leaves {
		before[i] = set.satisfying(pop.p.rleaves[li])
	}
	if had {
		set.remove(rentry{old, pid})
	}
	if in {
		set.insert(rentry{v, pid})
	}
	for i, li := range leaves {
		after := set.satisfying(pop.p.rleaves[li])
		if before[i] == after {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		// Everyone in one range and not the other may have flipped:
		// the ranges' differences, usually a few members at either end.
		add := func(e rentry) {
			if e.pid != pid {
				out[e.pid] = true
			}
		}
		set.eachDiff(before[i], after, add)
		set.eachDiff(after, before[i], add)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type popView struct {
	pop *Population
	pid string
}

func (w *popView) standing(k int, v value) (less, greater, n int) {
	w.pop.mu.RLock()
	defer w.pop.mu.RUnlock()
	set := w.pop.sets[k]
	n = set.n
	less = set.countLess(v)
	greater = n - set.countLE(v)
	if old, had := set.at[w.pid]; had {
		n--
		switch c := cmpNum(old.dec(), v.dec()); {
		case c < 0:
			less--
		case c > 0:
			greater--
		}
	}
	return less, greater, n + 1
}

func (w *popView) bounds(leaf int, v value) (lo, hi value, ok bool) {
	l := w.pop.p.rleaves[leaf]
	set := w.pop.sets[l.key]
	w.pop.mu.RLock()
	old, had := set.at[w.pid]
	if had && cmpNum(old.dec(), v.dec()) == 0 {
		r := set.satisfying(l)
		w.pop.mu.RUnlock()
		return r.lo, r.hi, !r.empty
	}
	w.pop.mu.RUnlock()
	// Ranked at another value than recorded (its change is being
	// evaluated): swap it in for the answer.
	w.pop.mu.Lock()
	defer w.pop.mu.Unlock()
	old, had = set.at[w.pid]
	if had {
		set.remove(rentry{old, w.pid})
	}
	set.insert(rentry{v, w.pid})
	r := set.satisfying(l)
	set.remove(rentry{v, w.pid})
	if had {
		set.insert(rentry{old, w.pid})
	}
	return r.lo, r.hi, !r.empty
}

// valRange is the values [lo, hi] of the members a leaf's comparison
// selects (for !=, those it does not select).
type valRange struct {
	lo, hi value
	empty  bool
}

// --- the order-statistic structure -------------------------------------------

type rentry struct {
	v   value
	pid string
}

func cmpEntry(a, b rentry) int {
	if c := cmpNum(a.v.dec(), b.v.dec()); c != 0 {
		return c
	}
	return strings.Compare(a.pid, b.pid)
}

// rankSet is the members of one population, sorted by (value, id), in
// blocks of at most 2 × rankBlock entries: insert, remove and rank
// queries are O(N / rankBlock + log N), which at a million members is a
// few microseconds, simpler than a balanced tree and cache friendly.
type rankSet struct {
	blocks  [][]rentry
	n       int
	at      map[string]value
	pending []rentry // Load's, until Seal
}

const rankBlock = 512

func newRankSet() *rankSet { return &rankSet{at: map[string]value{}} }

// block returns the index of the block where e belongs.
func (s *rankSet) block(e rentry) int {
	for i, b := range s.blocks {
		if cmpEntry(b[len(b)-1], e) >= 0 {
			return i
		}
	}
	return len(s.blocks) - 1
}

func (s *rankSet) insert(e rentry) {
	s.at[e.pid] = e.v
	s.n++
	if len(s.blocks) == 0 {
		s.blocks = [][]rentry{{e}}
		return
	}
	bi := s.block(e)
	b := s.blocks[bi]
	j, _ := slices.BinarySearchFunc(b, e, cmpEntry)
	b = slices.Insert(b, j, e)
	if len(b) > 2*rankBlock {
		left := slices.Clone(b[:rankBlock])
		right := slices.Clone(b[rankBlock:])
		s.blocks = slices.Insert(s.blocks, bi+1, right)
		b = left
	}
	s.blocks[bi] = b
}

func (s *rankSet) remove(e rentry) {
	if len(s.blocks) == 0 {
		return
	}
	bi := s.block(e)
	b := s.blocks[bi]
	j, found := slices.BinarySearchFunc(b, e, cmpEntry)
	if !found {
		return
	}
	delete(s.at, e.pid)
	s.n--
	b = slices.Delete(b, j, j+1)
	if len(b) == 0 {
		s.blocks = slices.Delete(s.blocks, bi, bi+1)
		return
	}
	s.blocks[bi] = b
}

// count is the number of members with a value < v (or <= v with le).
func (s *rankSet) count(v value, le bool) int {
	n := 0
	below := func(x value) bool {
		c := cmpNum(x.dec(), v.dec())
		return c < 0 || le && c == 0
	}
	for _, b := range s.blocks {
		if below(b[len(b)-1].v) {
			n += len(b)
			continue
		}
		return n + sort.Search(len(b), func(i int) bool { return !below(b[i].v) })
	}
	return n
}

func (s *rankSet) countLess(v value) int { return s.count(v, false) }
func (s *rankSet) countLE(v value) int   { return s.count(v, true) }

// kth is the member at position i (0: the lowest value).
func (s *rankSet) kth(i int) rentry {
	for _, b := range s.blocks {
		if i < len(b) {
			return b[i]
		}
		i -= len(b)
	}
	panic("eval: rank position out of range")
}

// each calls f for the members with values from lo to hi, in order;
// with loOpen or hiOpen the bound itself is left out.
func (s *rankSet) each(lo value, loOpen bool, hi value, hiOpen bool, f func(rentry)) {
	below := func(v value) bool { // v is before the range
		c := cmpNum(v.dec(), lo.dec())
		return c < 0 || loOpen && c == 0
	}
	for _, b := range s.blocks {
		if below(b[len(b)-1].v) {
			continue
		}
		for _, e := range b[sort.Search(len(b), func(i int) bool { return !below(b[i].v) }):] {
			if c := cmpNum(e.v.dec(), hi.dec()); c > 0 || hiOpen && c == 0 {
				return
			}
			f(e)
		}
	}
}

// eachDiff calls f for the members with values in a and not in b.
func (s *rankSet) eachDiff(a, b valRange, f func(rentry)) {
	switch {
	case a.empty:
	case b.empty:
		s.each(a.lo, false, a.hi, false, f)
	default:
		// Below b: from a.lo up to a.hi or just under b.lo.
		if cmpNum(a.lo.dec(), b.lo.dec()) < 0 {
			if cmpNum(a.hi.dec(), b.lo.dec()) < 0 {
				s.each(a.lo, false, a.hi, false, f)
			} else {
				s.each(a.lo, false, b.lo, true, f)
			}
		}
		// Above b: from just over b.hi (or a.lo) up to a.hi.
		if cmpNum(a.hi.dec(), b.hi.dec()) > 0 {
			if cmpNum(a.lo.dec(), b.hi.dec()) > 0 {
				s.each(a.lo, false, a.hi, false, f)
			} else {
				s.each(b.hi, true, a.hi, false, f)
			}
		}
	}
}

// runStart is the first position of the members with the value at
// position i (less of that value), or n for i >= n.
func (s *rankSet) runStart(i int) int {
	if i >= s.n {
		return s.n
	}
	return s.countLess(s.kth(i).v)
}

// satisfying is the range of member values at which the leaf's score
// satisfies its comparison now (for !=: at which it does not).
func (s *rankSet) satisfying(l *rankLeaf) valRange {
	n := s.n
	if n == 0 {
		return valRange{empty: true}
	}
	x1, x2, _ := l.span(n)
	var a, b int // positions [a, b)
	if l.byGreater() {
		// greater = n - countLE: members whose countLE is in (n-x2, n-x1].
		a, b = s.runStart(n-x2), s.runStart(n-x1)
	} else {
		// less: members whose run starts in [x1, x2).
		a, b = s.runStart(x1), s.runStart(x2)
		if x1 < n && s.countLess(s.kth(x1).v) != x1 {
			a = s.countLE(s.kth(x1).v)
		}
		if x2 < n && s.countLess(s.kth(x2).v) != x2 {
			b = s.countLE(s.kth(x2).v)
		}
	}
	if a >= b {
		return valRange{empty: true}
	}
	return valRange{lo: s.kth(a).v, hi: s.kth(b - 1).v}
}

// --- the naive reference --------------------------------------------------------

// NaiveProfile is one profile's input to NaivePopulation.
type NaiveProfile struct {
	ID     string
	Events []*kiln.Event
	// EventTraits are the traits each event saw (see NaiveAt); nil
	// replays them.
	EventTraits []map[string]any
	Profile     *Profile // nil: no traits or lists
}

// NaivePopulation computes every profile's traits and memberships at
// instant at from scratch, as Naive does, with population-relative
// conditions decided by counting the other profiles' naive values one
// by one: it shares nothing with Population and is the reference for
// tests and as-of questions. Profile.Rank of the inputs is not used.
// Cost: O(profiles × (aggregates × events + profiles)).
func (p *Program) NaivePopulation(in []NaiveProfile, at time.Time) map[string]Snapshot {
	now := at.UnixMilli()
	type core struct {
		vals    []value
		members []bool
		prof    Profile
	}
	cores := make([]core, len(in))
	for i, np := range in {
		if np.Profile != nil {
			cores[i].prof = *np.Profile
		}
		cores[i].prof.Rank = nil
		cores[i].vals, cores[i].members = p.naiveCore(np.Events, np.EventTraits, &cores[i].prof, at)
	}
	out := make(map[string]Snapshot, len(in))
	if !p.Ranked() {
		for i, np := range in {
			out[np.ID] = p.snapshot(cores[i].vals, cores[i].members)
		}
		return out
	}
	// The populations: ranks never decide a population's membership or a
	// trait (rule.Check), so the first pass gives them exactly.
	nr := &naiveRanking{p: p, pops: make([][]rentry, len(p.rkeys))}
	for i, np := range in {
		env := condEnv{p: p, vals: cores[i].vals, members: cores[i].members}
		for k := range p.rkeys {
			if v, ok := env.rankInput(k); ok {
				nr.pops[k] = append(nr.pops[k], rentry{v, np.ID})
			}
		}
	}
	for i, np := range in {
		c := &cores[i]
		c.prof.Rank = &naiveView{nr, np.ID}
		p.naiveSegments(c.vals, c.members, &c.prof, now)
		out[np.ID] = p.snapshot(c.vals, c.members)
	}
	return out
}

type naiveRanking struct {
	p    *Program
	pops [][]rentry
}

type naiveView struct {
	r   *naiveRanking
	pid string
}

// members is key's population with the asking profile at v.
func (w *naiveView) members(k int, v value) []rentry {
	out := []rentry{{v, w.pid}}
	for _, e := range w.r.pops[k] {
		if e.pid != w.pid {
			out = append(out, e)
		}
	}
	return out
}

func naiveCount(ms []rentry, v value) (less, greater int) {
	for _, e := range ms {
		switch cmpNum(e.v.dec(), v.dec()) {
		case -1:
			less++
		case 1:
			greater++
		}
	}
	return less, greater
}

func (w *naiveView) standing(k int, v value) (less, greater, n int) {
	ms := w.members(k, v)
	less, greater = naiveCount(ms, v)
	return less, greater, len(ms)
}

func (w *naiveView) bounds(leaf int, v value) (lo, hi value, ok bool) {
	l := w.r.p.rleaves[leaf]
	ms := w.members(l.key, v)
	for _, e := range ms {
		less, greater := naiveCount(ms, e.v)
		in := l.holds(less, greater, len(ms))
		if l.cmp == "!=" {
			in = !in
		}
		if !in {
			continue
		}
		if !ok || cmpNum(e.v.dec(), lo.dec()) < 0 {
			lo = e.v
		}
		if !ok || cmpNum(e.v.dec(), hi.dec()) > 0 {
			hi = e.v
		}
		ok = true
	}
	return lo, hi, ok
}
