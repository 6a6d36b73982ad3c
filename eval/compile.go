package eval

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/kiln-cdp/kiln/rule"
)

// Options configure compilation.
type Options struct {
	// Location is the time zone of calendar windows (today, this week,
	// ...), of date-only trait values ("1990-02-28" is midnight there) and
	// of anniversaries. Nil means UTC.
	Location *time.Location
	// Schema declares profile traits (nil accepts any traits.NAME).
	Schema *rule.Schema
	// Currency is the currency of amounts in events without
	// properties.currency, and of amounts a definition neither scopes
	// nor converts; empty means DefaultCurrency (USD).
	Currency string
	// Rates convert amounts for definitions that ask for it
	// (sum(properties.revenue in GBP)).
	Rates Rates
}

// Feature value encodings: what a record keeps per matching event.
const (
	encNone uint8 = iota // nothing: count of events
	encNum               // numbers only (sum, avg, min, max)
	encBox               // any scalar, boxed (first, last, count of values)
	encHash              // 64-bit hashes (distinct)
)

// feature is one (event, filter, value path, encoding): traits that share
// all four share the feature, so an order feeds "revenue in 30 days",
// "in 365 days" and "all time" from one extracted value.
type feature struct {
	idx      int
	key      string
	event    string
	filter   *cfilter
	scope    *cscope     // the events it reads, by source, store and currency; nil: all
	rscope   *rule.Scope // the scope as written, for the naive evaluator
	conv     string      // amounts are converted into this currency, or ""
	implicit bool        // an amount in the default currency only, by default (see CurrencyCheck)
	arr      string      // the line-item array read per item, or ""
	path     []string    // value path (after "properties", or after arr for items)
	itemPath bool        // the value is read per item
	enc      uint8
	win      bool // read by a windowed aggregate (kept as records)
	run      bool // read by a running aggregate (folded into accumulators)
	users    []int
	// where is the filter as written: Naive interprets it.
	where *rule.Filter
}

// Aggregate node kinds.
const (
	akWin uint8 = iota // over records in a rolling or calendar window
	akRun              // running accumulator: all time or fixed dates
	akNotFollowed
	akDerived // arithmetic over other nodes
)

// Window kinds, compiled.
const (
	wAll uint8 = iota
	wRolling
	wToday
	wWeek
	wMonth
	wYear
	wBetween
)

type aggNode struct {
	idx    int
	kind   uint8
	name   string    // trait name, or "" for an anonymous aggregate of a condition
	text   string    // canonical text, for evidence and Explain
	cur    string    // money: the currency its numbers are in, else ""
	agg    *rule.Agg // the aggregate, for errors (nil for other kinds)
	def    string    // "trait NAME" or "segment NAME" that first used it
	fn     string
	feat   int
	featB  int // not followed: the follow-up event
	wk     uint8
	span   int64 // rolling window or not-followed window, ms
	within int64 // not followed: T, ms (open-ended: the "for at least" span, or 0)
	open   bool  // not followed, open-ended: no B at or after A up to now
	from   int64 // between: [from, to) in ms
	to     int64
	acc    int // running: accumulator offset
	set    int // running distinct: set index
	due    int // due slot, -1 if the node never changes by time alone
	expr   *cexpr
	deps   []int
	users  []int // derived nodes reading this node (recomputed after it changes)
}

type cexpr struct {
	op   byte // 'a' node, 'n' number, + - * /
	node int
	lit  value // 'n': the number, exact
	l, r *cexpr
}

// Condition node ops.
const (
	cAnd uint8 = iota
	cOr
	cNot
	cAgg     // node value compared with a literal
	cProfile // profile trait compared with a literal
	cSeg
	cAnniv
	cAgo
	cWithinLast
	cExpr // an expression compared with another, or with a literal
	cRank // a population-relative condition (rank.go)
)

type cnode struct {
	op      uint8
	kids    []*cnode
	node    int
	profile string   // the profile trait's path, as written
	ppath   []string // the same, split
	length  bool     // compare length(traits.PATH)
	cmp     string
	lit     value
	list    []value
	seg     int
	span    int64 // ms (ago, within last)
	days    int   // anniversary
	due     int
	text    string
	timed   bool // a leaf below keeps state (a due instant or a cached profile value)
	// cExpr: the two sides (xr nil: compared with lit or list), and the
	// comparison as written, for the naive evaluator and Explain.
	xl, xr *xexpr
	rc     *rule.Cond
	// pbit numbers leaves that read profile traits: their last value is
	// kept in the state, since it changes only with the profile (or, for
	// dates, at the leaf's due instant).
	pbit int
	// onNode: ago / within last read node's value (a date value such as
	// last time of "X") instead of a profile trait.
	onNode bool
	rank   int // cRank: the leaf's index in Program.rleaves
}

type segNode struct {
	idx        int
	dependents []int // segments that refer to this one
	// profileT: the segment reads profile traits or static lists, or
	// ranks the profile among others, itself or through segments it
	// refers to; others start from the template.
	profileT   bool
	name       string
	def        *rule.Def
	static     bool
	cond       *cnode
	aggDeps    []int
	segDeps    []int
	profileDep bool
	dues       []int
	leaves     int  // condition leaves, for evidence
	rankDep    bool // the condition ranks the profile in a population
	rankT      bool // rankDep, itself or through segments it refers to
}

// Program is a compiled definition set. It is immutable and safe for
// concurrent use; all per-profile data lives in State.
type Program struct {
	loc       *time.Location
	currency  string // of events without one, and of amounts neither scoped nor converted
	rates     Rates
	errs      rule.ErrorList // currency errors found while compiling
	defName   string         // the definition being compiled, for errors without a position
	fp        uint64
	set       *rule.Set
	feats     []*feature
	featKey   map[string]int
	byEvent   map[string][]int
	maskWords int
	aggs      []*aggNode
	aggKey    map[string]int
	traits    []int // named traits, in definition order
	traitIdx  map[string]int
	curs      []string   // node -> currency of its money values; nil if none is money
	segs      []*segNode // dependency order
	segIdx    map[string]int
	accWords  int
	nSets     int
	nDue      int
	horizon   int64 // ms: records older than now-horizon can go
	nStatic   int
	aggSegs   [][]int // node -> segments reading it directly
	profSegs  []int   // segments reading profile traits / static lists
	dueSegs   [][]int // due slot -> segment owning that date condition
	dueAggs   [][]int // due slot -> nodes (none for a date condition)
	dueKey    map[string]int
	// A fresh state starts from these: every node's value over no events
	// (0 for counts and sums, null otherwise) and the memberships of
	// segments that do not read the profile.
	emptyCache  []uint64
	emptyMember []uint64
	// Offsets in State.fix: member bits [0, oCache), node values
	// [oCache, oDue), due instants [oDue, oAcc), accumulators [oAcc,
	// oPBits), profile-leaf values [oPBits, oRecs), records [oRecs, ...).
	oCache, oDue, oAcc, oPBits, oRecs int
	nPBits                            int // condition leaves reading profile traits
	// filterTraits: an event filter reads profile traits (as the event
	// arrives), so the naive evaluator replays them per event.
	filterTraits bool
	// Population-relative conditions (rank.go): the ranked (trait,
	// population) pairs, the leaves, and the segments holding them.
	rkeys    []rankKey
	rleaves  []*rankLeaf
	rankSegs []int
}

// Compile checks a definition set (rule.Check) and compiles it.
func Compile(s *rule.Set, opts Options) (*Program, error) {
	info, err := rule.Check(s, opts.Schema)
	if err != nil {
		return nil, err
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	cur := opts.Currency
	if cur == "" {
		cur = DefaultCurrency
	}
	if !isCurrencyCode(cur) {
		return nil, fmt.Errorf("eval: default currency %q is not a three-letter code such as USD", cur)
	}
	p := &Program{
		loc: loc, set: s, currency: cur, rates: opts.Rates, featKey: map[string]int{}, byEvent: map[string][]int{},
		aggKey: map[string]int{}, traitIdx: map[string]int{}, segIdx: map[string]int{}, dueKey: map[string]int{},
	}
	h := fnv.New64a()
	h.Write([]byte(rule.Format(s)))
	h.Write([]byte(loc.String()))
	h.Write([]byte("\x00" + cur + "\x00" + opts.Rates.String()))
	p.fp = h.Sum64()

	for _, name := range info.TraitOrder {
		d := info.Traits[name]
		p.defName = "trait " + name
		var idx int
		if d.Value.Op == rule.ExprAgg {
			idx = p.aggNodeFor(d.Value.Agg, name)
		} else {
			idx = p.derived(d.Value, name)
		}
		p.traitIdx[name] = idx
	}
	for _, d := range s.Defs {
		if d.Kind == rule.KindTrait {
			p.traits = append(p.traits, p.traitIdx[d.Name])
		}
	}
	for _, name := range info.SegmentOrder {
		d := info.Segments[name]
		p.defName = "segment " + name
		sg := &segNode{idx: len(p.segs), name: name, def: d, static: d.Static}
		p.segIdx[name] = sg.idx
		p.segs = append(p.segs, sg)
		if d.Static {
			p.nStatic++
			sg.profileDep = true
			continue
		}
		sg.cond = p.cond(d.Cond, sg)
		sg.leaves = countLeaves(sg.cond)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	for _, a := range p.aggs {
		if a.cur != "" {
			p.curs = make([]string, len(p.aggs))
			for i, b := range p.aggs {
				p.curs[i] = b.cur
			}
			break
		}
	}
	p.maskWords = (len(p.feats) + 63) / 64
	for _, f := range p.feats {
		p.byEvent[f.event] = append(p.byEvent[f.event], f.idx)
	}
	p.aggSegs = make([][]int, len(p.aggs))
	p.dueSegs = make([][]int, p.nDue)
	p.dueAggs = make([][]int, p.nDue)
	for _, a := range p.aggs {
		if a.due >= 0 {
			p.dueAggs[a.due] = append(p.dueAggs[a.due], a.idx)
		}
	}
	for _, sg := range p.segs {
		for _, a := range sg.aggDeps {
			p.aggSegs[a] = append(p.aggSegs[a], sg.idx)
		}
		sg.rankT = sg.rankDep
		for _, d := range sg.segDeps {
			p.segs[d].dependents = append(p.segs[d].dependents, sg.idx)
			sg.profileT = sg.profileT || p.segs[d].profileT
			sg.rankT = sg.rankT || p.segs[d].rankT
		}
		// A ranked segment depends on the other profiles: a fresh
		// state evaluates it, as one reading the profile.
		sg.profileT = sg.profileT || sg.profileDep || sg.rankDep
		if sg.profileDep {
			p.profSegs = append(p.profSegs, sg.idx)
		}
		if sg.rankDep {
			p.rankSegs = append(p.rankSegs, sg.idx)
		}
		for _, d := range sg.dues {
			p.dueSegs[d] = append(p.dueSegs[d], sg.idx)
		}
	}
	p.oCache = (len(p.segs) + 63) / 64
	p.oDue = p.oCache + len(p.aggs)
	p.oAcc = p.oDue + p.nDue
	p.oPBits = p.oAcc + p.accWords
	p.oRecs = p.oPBits + (p.nPBits+63)/64
	p.templates()
	return p, nil
}

// templates evaluates the empty profile once, so new states need not.
func (p *Program) templates() {
	st := &State{fp: p.fp}
	p.initState(st)
	cache, due, member := p.cacheOf(st), p.dueOf(st), p.memberOf(st)
	for i, a := range p.aggs {
		cache[i] = p.compute(st, a, 0)
	}
	if len(st.strs) > 0 {
		panic("eval: the empty profile's values must fit words") // templates share no pool
	}
	for i := range due {
		due[i] = 0
	}
	env := condEnv{p: p, st: st}
	for _, sg := range p.segs {
		if sg.profileT {
			continue
		}
		if env.eval(sg.cond) {
			member[sg.idx>>6] |= 1 << (sg.idx & 63)
		}
	}
	p.emptyCache = cache
	p.emptyMember = member
}

func spanMs(s *rule.Span) int64 {
	switch s.Unit {
	case "minutes":
		return int64(s.N) * 60_000
	case "hours":
		return int64(s.N) * 3_600_000
	}
	return int64(s.N) * 86_400_000
}

const day = int64(86_400_000)

func (p *Program) feature(event string, where *rule.Filter, path string, enc uint8, rscope *rule.Scope, only, conv string) int {
	scope := compileScope(rscope, only)
	key := event + "\x00" + path + "\x00" + string(rune('0'+enc)) + "\x00" + scope.key() + "\x00" + conv + "\x00" + only + "\x00"
	if where != nil {
		key += rule.FormatFilter(where)
	}
	if i, ok := p.featKey[key]; ok {
		return i
	}
	f := &feature{idx: len(p.feats), key: key, event: event, enc: enc, scope: scope, rscope: rscope, conv: conv, implicit: only != ""}
	if path != "" {
		f.path = pathAfter(path)
		if arr := rule.ItemArray(path); arr != "" {
			f.arr, f.itemPath = arr, true
		}
	}
	if where != nil {
		var arr string
		f.where = where
		f.filter = compileFilter(where, &arr, p.loc)
		p.filterTraits = p.filterTraits || filterReadsProfile(where)
		if arr != "" {
			f.arr = arr
		}
	}
	p.featKey[key] = f.idx
	p.feats = append(p.feats, f)
	return f.idx
}

func encFor(fn string) uint8 {
	switch fn {
	case rule.FnCount:
		return encHash // count(path) counts values of any type; a hash is the cheapest word
	case rule.FnSum, rule.FnAvg, rule.FnMin, rule.FnMax:
		return encNum
	case rule.FnDistinct:
		return encHash
	}
	return encBox
}

func (p *Program) newNode(n *aggNode, key string) int {
	n.idx = len(p.aggs)
	n.due = -1
	p.aggs = append(p.aggs, n)
	if key != "" {
		p.aggKey[key] = n.idx
	}
	return n.idx
}

func (p *Program) dueSlot() int {
	p.nDue++
	return p.nDue - 1
}

func (p *Program) retain(ms int64) {
	if ms > p.horizon {
		p.horizon = ms
	}
}

// aggNodeFor returns the node of an aggregate; anonymous aggregates with
// the same text share one node.
func (p *Program) aggNodeFor(a *rule.Agg, name string) int {
	text := rule.FormatAgg(a)
	key := ""
	if name == "" {
		key = "agg:" + text
		if i, ok := p.aggKey[key]; ok {
			return i
		}
	}
	n := &aggNode{name: name, text: text, fn: a.Func, agg: a, def: p.defName}
	enc := encNone
	if a.Path != "" {
		enc = encFor(a.Func)
	}
	// An amount is in one currency: the one it converts into, the one
	// its scope names, or else the default, and then it reads only
	// amounts in the default (never a mix; see CurrencyCheck).
	only := ""
	if rule.IsAmount(a) {
		switch {
		case a.Convert != "":
			n.cur = a.Convert
		case a.Scope != nil && len(a.Scope.Currencies) == 1:
			n.cur = a.Scope.Currencies[0]
		default:
			n.cur, only = p.currency, p.currency
		}
	}
	n.feat = p.feature(a.Event, a.Where, a.Path, enc, a.Scope, only, a.Convert)
	f := p.feats[n.feat]
	w := a.Window
	switch w.Kind {
	case rule.WinAll, rule.WinBetween:
		n.kind = akRun
		n.wk = wAll
		if w.Kind == rule.WinBetween {
			n.wk = wBetween
			from, _ := time.ParseInLocation(time.DateOnly, w.From, p.loc)
			to, _ := time.ParseInLocation(time.DateOnly, w.To, p.loc)
			n.from = from.UnixMilli()
			n.to = to.AddDate(0, 0, 1).UnixMilli()
		}
		f.run = true
		n.acc = p.accWords
		p.accWords += accWidth(a.Func)
		n.set = -1
		if a.Func == rule.FnDistinct {
			n.set = p.nSets
			p.nSets++
		}
	default:
		n.kind = akWin
		f.win = true
		n.due = -2 // assigned below
		switch w.Kind {
		case rule.WinLast:
			n.wk = wRolling
			n.span = spanMs(&rule.Span{N: w.N, Unit: w.Unit})
			p.retain(n.span)
		case rule.WinToday:
			n.wk = wToday
			p.retain(2 * day)
		case rule.WinWeek:
			n.wk = wWeek
			p.retain(8 * day)
		case rule.WinMonth:
			n.wk = wMonth
			p.retain(32 * day)
		case rule.WinYear:
			n.wk = wYear
			p.retain(367 * day)
		}
	}
	idx := p.newNode(n, key)
	if n.kind == akWin {
		// Aggregates over the same feature and window change at the
		// same instants (the first record in the window leaves, or the
		// period ends): they share a due slot.
		dk := fmt.Sprintf("due:%d:%d:%d", n.feat, n.wk, n.span)
		if slot, ok := p.dueKey[dk]; ok {
			n.due = slot
		} else {
			n.due = p.dueSlot()
			p.dueKey[dk] = n.due
		}
	}
	f.users = append(f.users, idx)
	return idx
}

// accWidth is the number of accumulator words a running aggregate needs.
func accWidth(fn string) int {
	switch fn {
	case rule.FnSum, rule.FnFirst, rule.FnLast, rule.FnFirstTime, rule.FnLastTime:
		return 2 // coefficient+scale, or time+value (for times, a flag: boxNull when none)
	case rule.FnAvg:
		return 3 // coefficient+scale, count
	case rule.FnDistinct:
		return 0 // a hash set
	}
	return 1
}

func (p *Program) compileExpr(e *rule.Expr) *cexpr {
	switch e.Op {
	case rule.ExprAgg:
		return &cexpr{op: 'a', node: p.aggNodeFor(e.Agg, "")}
	case rule.ExprTrait:
		return &cexpr{op: 'a', node: p.traitIdx[e.Name]}
	case rule.ExprNum:
		return &cexpr{op: 'n', lit: toValue(e.Num)}
	}
	return &cexpr{op: e.Op[0], l: p.compileExpr(e.Args[0]), r: p.compileExpr(e.Args[1])}
}

func exprDeps(c *cexpr, out []int) []int {
	switch c.op {
	case 'a':
		for _, d := range out {
			if d == c.node {
				return out
			}
		}
		return append(out, c.node)
	case 'n':
		return out
	}
	return exprDeps(c.r, exprDeps(c.l, out))
}

func (p *Program) derived(e *rule.Expr, name string) int {
	text := rule.FormatExpr(e)
	key := ""
	if name == "" {
		key = "expr:" + text
		if i, ok := p.aggKey[key]; ok {
			return i
		}
	}
	ce := p.compileExpr(e)
	n := &aggNode{kind: akDerived, name: name, text: text, expr: ce, deps: exprDeps(ce, nil), cur: p.exprCurrency(e)}
	idx := p.newNode(n, key)
	for _, d := range n.deps {
		p.aggs[d].users = append(p.aggs[d].users, idx)
	}
	return idx
}

func (p *Program) notFollowed(c *rule.Cond) int {
	key := "nf:" + rule.FormatCond(c)
	if i, ok := p.aggKey[key]; ok {
		return i
	}
	n := &aggNode{kind: akNotFollowed, text: rule.FormatCond(c), fn: "not_followed", wk: wRolling}
	n.feat = p.feature(c.First.Event, c.First.Where, "", encNone, c.First.Scope, "", "")
	n.featB = p.feature(c.Then.Event, c.Then.Where, "", encNone, c.Then.Scope, "", "")
	p.feats[n.feat].win = true
	p.feats[n.featB].win = true
	n.span = spanMs(&rule.Span{N: c.Window.N, Unit: c.Window.Unit})
	if c.Within == nil {
		// Open-ended: As in the window, Bs up to now; a B before the
		// window's start is before every A that counts.
		n.open = true
		if c.For != nil {
			n.within = spanMs(c.For)
		}
		p.retain(n.span)
	} else {
		n.within = spanMs(c.Within)
		p.retain(n.span + n.within)
	}
	idx := p.newNode(n, key)
	n.due = p.dueSlot()
	p.feats[n.feat].users = append(p.feats[n.feat].users, idx)
	p.feats[n.featB].users = append(p.feats[n.featB].users, idx)
	return idx
}

func addDep(list []int, i int) []int {
	for _, x := range list {
		if x == i {
			return list
		}
	}
	return append(list, i)
}

func (p *Program) cond(c *rule.Cond, sg *segNode) *cnode {
	n := &cnode{text: rule.FormatCond(c), due: -1, pbit: -1}
	switch c.Op {
	case rule.CAnd, rule.COr, rule.CNot:
		n.op = map[string]uint8{rule.CAnd: cAnd, rule.COr: cOr, rule.CNot: cNot}[c.Op]
		for _, k := range c.Args {
			n.kids = append(n.kids, p.cond(k, sg))
		}
	case rule.CCmp:
		n.cmp = c.Cmp
		n.lit, n.list = literal(c.Value)
		if c.Right != nil || !plainLeft(c.Left) {
			// An expression: evaluated whenever the segment is, from
			// its nodes' values and the profile's traits.
			n.op = cExpr
			n.rc = c
			node := func(e *rule.Expr) int {
				i := p.traitIdx[e.Name]
				if e.Op == rule.ExprAgg {
					i = p.aggNodeFor(e.Agg, "")
				}
				sg.aggDeps = addDep(sg.aggDeps, i)
				return i
			}
			var arr string
			n.xl = compileX(c.Left, p.loc, &arr, node)
			if c.Right != nil {
				n.xr = compileX(c.Right, p.loc, &arr, node)
			}
			if readsProfile(c.Left) || readsProfile(c.Right) {
				sg.profileDep = true
			}
			if c.Right != nil && plainLeft(c.Left) && plainLeft(c.Right) && c.Left.Op != rule.ExprProfile && c.Right.Op != rule.ExprProfile {
				// Amounts compared must share a currency, as amounts added do.
				if l, r := p.exprCurrency(c.Left), p.exprCurrency(c.Right); l != "" && r != "" && l != r {
					msg := fmt.Sprintf("%s compares amounts in two currencies (%s and %s); convert one, e.g. sum(properties.revenue in %s)", rule.FormatCond(c), l, r, l)
					if c.Line == 0 {
						msg = p.defName + ": " + msg
					}
					p.errs = append(p.errs, &rule.Error{Pos: c.Pos, Msg: msg})
				}
			}
			break
		}
		switch c.Left.Op {
		case rule.ExprProfile:
			n.op = cProfile
			n.profile = c.Left.Name
			n.ppath, _ = rule.SplitPath(c.Left.Name)
			n.length = c.Left.Func == rule.FnLength
			sg.profileDep = true
			n.pbit = p.nPBits
			p.nPBits++
		case rule.ExprAgg:
			n.op = cAgg
			n.node = p.aggNodeFor(c.Left.Agg, "")
		case rule.ExprTrait:
			n.op = cAgg
			n.node = p.traitIdx[c.Left.Name]
		default:
			n.op = cAgg
			n.node = p.derived(c.Left, "")
		}
		if n.op == cAgg {
			sg.aggDeps = addDep(sg.aggDeps, n.node)
		}
	case rule.CSegment:
		n.op = cSeg
		n.seg = p.segIdx[c.Segment]
		sg.segDeps = addDep(sg.segDeps, n.seg)
	case rule.CPerformed, rule.CNotPerformed:
		n.op = cAgg
		n.node = p.aggNodeFor(c.Agg, "")
		n.lit = numV(intNum(0))
		n.cmp = ">"
		if c.Op == rule.CNotPerformed {
			n.cmp = "="
		}
		sg.aggDeps = addDep(sg.aggDeps, n.node)
	case rule.CNotFollowed:
		n.op = cAgg
		n.node = p.notFollowed(c)
		n.cmp = "="
		n.lit = boolV(true)
		sg.aggDeps = addDep(sg.aggDeps, n.node)
	case rule.CAgo, rule.CWithinLast:
		if c.Left == nil {
			p.dateLeaf(c, n, sg)
			break
		}
		// A date value (last time of "X", a trait holding one): it
		// changes with its node, and the leaf flips at a due instant of
		// its own.
		n.op = map[string]uint8{rule.CAgo: cAgo, rule.CWithinLast: cWithinLast}[c.Op]
		n.onNode = true
		switch c.Left.Op {
		case rule.ExprAgg:
			n.node = p.aggNodeFor(c.Left.Agg, "")
		case rule.ExprTrait:
			n.node = p.traitIdx[c.Left.Name]
		default:
			n.node = p.derived(c.Left, "")
		}
		n.span = spanMs(c.Within)
		n.due = p.dueSlot()
		sg.dues = append(sg.dues, n.due)
		sg.aggDeps = addDep(sg.aggDeps, n.node)
	case rule.CAnniversary:
		p.dateLeaf(c, n, sg)
	case rule.CRank:
		p.compileRank(c, n, sg)
	default:
		panic(fmt.Sprintf("eval: unchecked condition op %q", c.Op))
	}
	// Leaves that keep state (a due instant, a cached profile value) are
	// never skipped by short-circuiting, so that state stays current.
	n.timed = n.due >= 0 || n.pbit >= 0
	for _, k := range n.kids {
		n.timed = n.timed || k.timed
	}
	return n
}

// dateLeaf compiles a condition on a profile date trait.
func (p *Program) dateLeaf(c *rule.Cond, n *cnode, sg *segNode) {
	n.op = map[string]uint8{rule.CAnniversary: cAnniv, rule.CAgo: cAgo, rule.CWithinLast: cWithinLast}[c.Op]
	n.profile = c.Profile
	n.ppath, _ = rule.SplitPath(c.Profile)
	n.span = spanMs(c.Within)
	n.days = c.Within.N
	n.due = p.dueSlot()
	sg.profileDep = true
	sg.dues = append(sg.dues, n.due)
	n.pbit = p.nPBits
	p.nPBits++
}

// plainLeft reports whether a comparison's left side compiles as
// before expressions: a profile trait (or its length), or arithmetic
// over computed traits, aggregates and numbers (a derived node).
func plainLeft(e *rule.Expr) bool {
	if e.Op == rule.ExprProfile {
		return true
	}
	var numeric func(e *rule.Expr) bool
	numeric = func(e *rule.Expr) bool {
		switch e.Op {
		case rule.ExprAgg, rule.ExprTrait, rule.ExprNum:
			return true
		case rule.ExprAdd, rule.ExprSub, rule.ExprMul, rule.ExprDiv:
			return numeric(e.Args[0]) && numeric(e.Args[1])
		}
		return false
	}
	return numeric(e)
}

// filterReadsProfile reports whether an event filter reads profile
// traits.
func filterReadsProfile(f *rule.Filter) bool {
	if f == nil {
		return false
	}
	if readsProfile(f.Left) || readsProfile(f.Right) || filterReadsProfile(f.Where) {
		return true
	}
	for _, a := range f.Args {
		if filterReadsProfile(a) {
			return true
		}
	}
	return false
}

// filterProfilePaths appends the profile trait paths an event filter
// reads (once each, in order).
func filterProfilePaths(f *rule.Filter, out []string) []string {
	if f == nil {
		return out
	}
	var expr func(e *rule.Expr)
	expr = func(e *rule.Expr) {
		if e == nil {
			return
		}
		if e.Op == rule.ExprProfile && !slices.Contains(out, e.Name) {
			out = append(out, e.Name)
		}
		for _, a := range e.Args {
			expr(a)
		}
	}
	expr(f.Left)
	expr(f.Right)
	out = filterProfilePaths(f.Where, out)
	for _, a := range f.Args {
		out = filterProfilePaths(a, out)
	}
	return out
}

// readsProfile reports whether an expression reads profile traits.
func readsProfile(e *rule.Expr) bool {
	if e == nil {
		return false
	}
	if e.Op == rule.ExprProfile {
		return true
	}
	for _, a := range e.Args {
		if readsProfile(a) {
			return true
		}
	}
	return false
}

func countLeaves(c *cnode) int {
	if len(c.kids) == 0 {
		return 1
	}
	n := 0
	for _, k := range c.kids {
		n += countLeaves(k)
	}
	return n
}

func literal(v any) (value, []value) {
	if list, ok := v.([]any); ok {
		out := make([]value, len(list))
		for i, x := range list {
			out[i] = toValue(x)
		}
		return null, out
	}
	return toValue(v), nil
}

// Traits lists the computed trait names, in definition order.
func (p *Program) Traits() []string {
	out := make([]string, len(p.traits))
	for i, a := range p.traits {
		out[i] = p.aggs[a].name
	}
	return out
}

// Segments lists the segment names in evaluation order (a segment comes
// after the segments it refers to).
func (p *Program) Segments() []string {
	out := make([]string, len(p.segs))
	for i, s := range p.segs {
		out[i] = s.name
	}
	return out
}

// Definitions returns the compiled set (do not modify it).
func (p *Program) Definitions() *rule.Set { return p.set }

// Stats describe a program's size.
type Stats struct {
	Features, WindowedFeatures, Aggregates, WindowedAggregates, Segments int
	// Horizon is how far back records are kept.
	Horizon time.Duration
}

// Stats reports the program's size.
func (p *Program) Stats() Stats {
	s := Stats{Features: len(p.feats), Aggregates: len(p.aggs), Segments: len(p.segs), Horizon: time.Duration(p.horizon) * time.Millisecond}
	for _, f := range p.feats {
		if f.win {
			s.WindowedFeatures++
		}
	}
	for _, a := range p.aggs {
		if a.kind == akWin || a.kind == akNotFollowed {
			s.WindowedAggregates++
		}
	}
	return s
}

// exprCurrency is the currency of arithmetic over amounts: amounts added
// or subtracted must share one (a constant is in it); an amount times or
// divided by a plain number stays in its currency; a ratio of amounts is
// a plain number. A mix is a compile error at the operator's operand.
func (p *Program) exprCurrency(e *rule.Expr) string {
	switch e.Op {
	case rule.ExprAgg:
		return p.aggs[p.aggNodeFor(e.Agg, "")].cur
	case rule.ExprTrait:
		return p.aggs[p.traitIdx[e.Name]].cur
	case rule.ExprNum, rule.ExprProfile:
		return ""
	}
	l, r := p.exprCurrency(e.Args[0]), p.exprCurrency(e.Args[1])
	switch {
	case e.Op == rule.ExprAdd || e.Op == rule.ExprSub:
		if l != "" && r != "" && l != r {
			verb := "adds"
			if e.Op == rule.ExprSub {
				verb = "subtracts"
			}
			msg := fmt.Sprintf("%s %s %s (%s) and %s (%s): amounts in two currencies; convert one, e.g. sum(properties.revenue in %s)",
				rule.FormatExpr(e), verb, rule.FormatExpr(e.Args[0]), l, rule.FormatExpr(e.Args[1]), r, l)
			if e.Line == 0 {
				msg = p.defName + ": " + msg
			}
			p.errs = append(p.errs, &rule.Error{Pos: e.Pos, Msg: msg})
		}
		if l != "" {
			return l
		}
		return r
	case l != "" && r != "":
		return "" // a ratio (or a product) of amounts
	case e.Op == rule.ExprDiv:
		return l
	}
	return l + r
}
