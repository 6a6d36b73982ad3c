package rule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // freshness time zones must validate on machines without zoneinfo

	"github.com/robfig/cron/v3"
)

// Type is the type of a trait value.
type Type string

// Value types.
const (
	TAny    Type = "any" // first/last of a property, or an undeclared profile trait
	TNumber Type = "number"
	TString Type = "string"
	TBool   Type = "bool"
	TDate   Type = "date"   // profile traits holding "YYYY-MM-DD" or RFC 3339 strings
	TObject Type = "object" // profile traits holding an object: traits.company.name reads into it
	TList   Type = "list"   // profile traits holding a list: traits.tags contains "vip", length(traits.tags)
)

// Schema declares the profile traits definitions may read, with their
// types. A nil Schema (or nil Traits) accepts any traits.NAME, typed at
// evaluation time.
type Schema struct {
	Traits map[string]Type
}

// DemoSchema is the profile traits the demo generator and the shipped
// library use.
var DemoSchema = &Schema{Traits: map[string]Type{
	"email": TString, "first_name": TString, "last_name": TString, "phone": TString,
	"birthday": TDate, "created_at": TDate, "company": TString, "vat_id": TString,
	"home_location": TString, "customer_type": TString, "email_consent": TBool,
}}

// Limits on windows and spans, so per-profile retention stays bounded.
const (
	MaxWindowDays = 3660 // ten years
	MaxAnnivDays  = 366
)

// Info is what Check learned about a valid set: evaluation orders and
// value types. eval.Compile uses it.
type Info struct {
	// TraitOrder lists computed traits so that each comes after the
	// traits it refers to; SegmentOrder does the same for segments.
	TraitOrder   []string
	SegmentOrder []string
	TraitTypes   map[string]Type
	Traits       map[string]*Def
	Segments     map[string]*Def
	// TraitRefs and SegmentRefs list, for each definition (by kind and
	// name), the computed traits and the segments its value or condition
	// refers to directly.
	TraitRefs   map[DefKey][]string
	SegmentRefs map[DefKey][]string
}

// DefKey names a definition: traits and segments have separate names.
type DefKey struct{ Kind, Name string }

// Needs returns the definitions of s that the segment or trait named by
// k depends on, itself included, in the order of s: what a program
// evaluating only k must hold.
func (info *Info) Needs(s *Set, k DefKey) []*Def {
	need := map[DefKey]bool{}
	var visit func(k DefKey)
	visit = func(k DefKey) {
		if need[k] {
			return
		}
		need[k] = true
		for _, t := range info.TraitRefs[k] {
			visit(DefKey{KindTrait, t})
		}
		for _, g := range info.SegmentRefs[k] {
			visit(DefKey{KindSegment, g})
		}
	}
	visit(k)
	var out []*Def
	for _, d := range s.Defs {
		if need[DefKey{d.Kind, d.Name}] {
			out = append(out, d)
		}
	}
	return out
}

// ParseJSON reads the JSON form of a definition set (unknown fields are
// rejected, so a typo in a form builder is an error, not a silent no-op).
// Nesting is bounded as in the text form (see MaxDepth).
func ParseJSON(data []byte) (*Set, error) {
	if err := CheckJSONDepth(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Set
	if err := dec.Decode(&s); err != nil {
		return nil, ErrorList{{Msg: "definitions JSON: " + err.Error()}}
	}
	if err := checkDepth(&s); err != nil {
		return nil, ErrorList{err}
	}
	return &s, nil
}

// Load parses the text form and checks it: the one call `kiln apply`
// needs.
func Load(src string, schema *Schema) (*Set, *Info, error) {
	s, err := Parse(src)
	if err != nil {
		return nil, nil, err
	}
	info, err := Check(s, schema)
	if err != nil {
		return nil, nil, err
	}
	return s, info, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

type checker struct {
	schema *Schema
	errs   ErrorList
	info   *Info
	cur    *Def
	ranks  []rankUse // population-relative conditions, checked against their populations last
}

type rankUse struct {
	c   *Cond
	def *Def
}

func (c *checker) errf(p Pos, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.Line == 0 && c.cur != nil {
		msg = c.cur.Kind + " " + c.cur.Name + ": " + msg
	}
	c.errs = append(c.errs, &Error{Pos: p, Msg: msg})
}

// Check validates a whole definition set: names, references to traits
// and segments, value types, windows, options and cycles. Every problem is
// reported (as an ErrorList, in source order), so evaluation never meets
// an invalid definition.
func Check(s *Set, schema *Schema) (*Info, error) {
	// Parse and ParseJSON bound nesting already; a set built in code or
	// read back from the store is bounded here, before the walks below.
	if err := checkDepth(s); err != nil {
		return nil, ErrorList{err}
	}
	c := &checker{schema: schema, info: &Info{
		TraitTypes: map[string]Type{}, Traits: map[string]*Def{}, Segments: map[string]*Def{},
		TraitRefs: map[DefKey][]string{}, SegmentRefs: map[DefKey][]string{},
	}}
	for _, d := range s.Defs {
		c.cur = d
		if !nameRE.MatchString(d.Name) || reserved[d.Name] {
			c.errf(d.Pos, "bad %s name %q: use letters, digits and _ (not a keyword)", d.Kind, d.Name)
		}
		if prev := c.info.Traits[d.Name]; prev != nil {
			c.errf(d.Pos, "%s %s is already defined as a trait at %d:%d", d.Kind, d.Name, prev.Line, prev.Col)
			continue
		}
		if prev := c.info.Segments[d.Name]; prev != nil {
			c.errf(d.Pos, "%s %s is already defined as a segment at %d:%d", d.Kind, d.Name, prev.Line, prev.Col)
			continue
		}
		switch d.Kind {
		case KindTrait:
			c.info.Traits[d.Name] = d
			if d.Value == nil {
				c.errf(d.Pos, "trait %s has no value", d.Name)
			}
			if d.Static || d.Cond != nil {
				c.errf(d.Pos, "trait %s cannot have a condition or be static", d.Name)
			}
		case KindSegment:
			c.info.Segments[d.Name] = d
			if d.Static == (d.Cond != nil) {
				c.errf(d.Pos, "segment %s needs exactly one of a condition or static", d.Name)
			}
			if d.Value != nil {
				c.errf(d.Pos, "segment %s cannot have a trait value", d.Name)
			}
		default:
			c.errf(d.Pos, "unknown definition kind %q (want trait or segment)", d.Kind)
		}
		c.options(d)
	}
	// Traits: types and trait-to-trait cycles, in dependency order.
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var tstack []string
	var visitT func(name string, from Pos) Type
	visitT = func(name string, from Pos) Type {
		d := c.info.Traits[name]
		switch state[name] {
		case 1:
			i := 0
			for i < len(tstack) && tstack[i] != name {
				i++
			}
			c.errf(from, "trait cycle: %s -> %s", strings.Join(tstack[i:], " -> "), name)
			return TAny
		case 2:
			return c.info.TraitTypes[name]
		}
		state[name] = 1
		tstack = append(tstack, name)
		saved := c.cur
		c.cur = d
		t := TAny
		if d.Value != nil {
			key := DefKey{KindTrait, name}
			t = c.expr(d.Value, false, func(n string, p Pos) Type {
				c.info.TraitRefs[key] = append(c.info.TraitRefs[key], n)
				return visitT(n, p)
			})
		}
		c.cur = saved
		tstack = tstack[:len(tstack)-1]
		state[name] = 2
		c.info.TraitTypes[name] = t
		c.info.TraitOrder = append(c.info.TraitOrder, name)
		return t
	}
	for _, d := range s.Defs {
		if d.Kind == KindTrait && c.info.Traits[d.Name] == d {
			visitT(d.Name, d.Pos)
		}
	}
	// Segments: conditions and segment-to-segment cycles.
	sstate := map[string]int{}
	var stack []string
	var visitS func(name string, from Pos)
	visitS = func(name string, from Pos) {
		switch sstate[name] {
		case 1:
			i := 0
			for i < len(stack) && stack[i] != name {
				i++
			}
			c.errf(from, "segment cycle: %s -> %s", strings.Join(stack[i:], " -> "), name)
			return
		case 2:
			return
		}
		d := c.info.Segments[name]
		sstate[name] = 1
		stack = append(stack, name)
		saved := c.cur
		c.cur = d
		if d.Cond != nil {
			key := DefKey{KindSegment, name}
			c.cond(d.Cond, func(n string, p Pos) Type {
				c.info.TraitRefs[key] = append(c.info.TraitRefs[key], n)
				return visitT(n, p)
			}, func(n string, p Pos) {
				c.info.SegmentRefs[key] = append(c.info.SegmentRefs[key], n)
				visitS(n, p)
			})
		}
		c.cur = saved
		stack = stack[:len(stack)-1]
		sstate[name] = 2
		c.info.SegmentOrder = append(c.info.SegmentOrder, name)
	}
	for _, d := range s.Defs {
		if d.Kind == KindSegment && c.info.Segments[d.Name] == d {
			visitS(d.Name, d.Pos)
		}
	}
	c.rankPopulations()
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool {
			a, b := c.errs[i], c.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		return nil, c.errs
	}
	return c.info, nil
}

func (c *checker) options(d *Def) {
	switch d.Backfill {
	case "", "all", "new", "none":
	default:
		c.errf(d.Pos, "backfill must be all, new or none, not %q", d.Backfill)
	}
	f := d.Freshness
	if f == nil {
		return
	}
	switch f.Mode {
	case FreshRealtime, FreshManual:
	case FreshEvery:
		if f.Every == nil {
			c.errf(f.Pos, "freshness every needs a span such as 15 minutes")
			return
		}
		c.span(f.Every, "freshness")
		if f.Every.Unit == "minutes" && f.Every.N < 1 {
			c.errf(f.Every.Pos, "freshness every must be at least 1 minute")
		}
	case FreshCron:
		if _, err := cron.ParseStandard(f.Cron); err != nil {
			c.errf(f.Pos, "bad cron schedule %q: %v", f.Cron, err)
		}
		if f.TZ != "" {
			if _, err := time.LoadLocation(f.TZ); err != nil {
				c.errf(f.Pos, "unknown time zone %q", f.TZ)
			}
		}
	default:
		c.errf(f.Pos, "freshness must be realtime, every, cron or manual, not %q", f.Mode)
	}
}

func (c *checker) span(s *Span, what string) time.Duration {
	var unit time.Duration
	switch s.Unit {
	case "minutes":
		unit = time.Minute
	case "hours":
		unit = time.Hour
	case "days":
		unit = 24 * time.Hour
	default:
		c.errf(s.Pos, "%s: unit must be minutes, hours or days, not %q", what, s.Unit)
		return 0
	}
	if s.N <= 0 {
		c.errf(s.Pos, "%s: span must be positive, not %d %s", what, s.N, s.Unit)
		return 0
	}
	d := time.Duration(s.N) * unit
	if d > MaxWindowDays*24*time.Hour {
		c.errf(s.Pos, "%s: span %d %s is longer than the limit of %d days", what, s.N, s.Unit, MaxWindowDays)
	}
	return d
}

func (c *checker) window(w *Window, where Pos) {
	if w == nil {
		c.errf(where, "missing window (in last N days, all time, today, this week/month/year, between dates)")
		return
	}
	switch w.Kind {
	case WinAll, WinToday, WinWeek, WinMonth, WinYear:
	case WinLast:
		c.span(&Span{N: w.N, Unit: w.Unit, Pos: w.Pos}, "window")
	case WinBetween:
		var from, to time.Time
		var err1, err2 error
		if !dateRE.MatchString(w.From) {
			err1 = fmt.Errorf("x")
		} else {
			from, err1 = time.Parse(time.DateOnly, w.From)
		}
		if !dateRE.MatchString(w.To) {
			err2 = fmt.Errorf("x")
		} else {
			to, err2 = time.Parse(time.DateOnly, w.To)
		}
		if err1 != nil {
			c.errf(w.Pos, "bad window start date %q: want YYYY-MM-DD", w.From)
		}
		if err2 != nil {
			c.errf(w.Pos, "bad window end date %q: want YYYY-MM-DD", w.To)
		}
		if err1 == nil && err2 == nil && to.Before(from) {
			c.errf(w.Pos, "window ends (%s) before it starts (%s)", w.To, w.From)
		}
	default:
		c.errf(w.Pos, "unknown window kind %q", w.Kind)
	}
}

// itemArray returns the array a path reads items of ("products" for
// products.quantity), or "" for an event-level properties path.
func itemArray(path string) string {
	if strings.HasPrefix(path, "properties.") {
		return ""
	}
	i := strings.IndexByte(path, '.')
	if i < 0 {
		return ""
	}
	return path[:i]
}

// ItemArray is exported for the evaluator: the line-item array a path
// reads, or "".
func ItemArray(path string) string { return itemArray(path) }

func (c *checker) path(p string, pos Pos) {
	segs, ok := SplitPath(p)
	if !ok || len(segs) < 2 || segs[0] == "traits" || (segs[0] != "properties" && !nameRE.MatchString(p[:strings.IndexByte(p, '.')])) {
		c.errf(pos, "bad event property %q: want properties.NAME[.NAME...] or ARRAY.FIELD (e.g. products.category); quote odd names: properties.\"utm-source\"", p)
	}
}

func (c *checker) agg(a *Agg) {
	switch a.Func {
	case FnCount:
	case FnSum, FnAvg, FnMin, FnMax, FnFirst, FnLast, FnDistinct:
		if a.Path == "" {
			c.errf(a.Pos, "%s needs a property, e.g. %s(properties.revenue)", a.Func, a.Func)
		}
	case FnFirstTime, FnLastTime:
		if a.Path != "" || a.Convert != "" {
			c.errf(a.Pos, "%s takes no property: it is the time of the event", strings.Replace(a.Func, "_", " ", 1))
		}
	default:
		c.errf(a.Pos, "unknown aggregate %q (want count, sum, avg, min, max, first, last, distinct, first_time or last_time)", a.Func)
	}
	if strings.TrimSpace(a.Event) == "" {
		c.errf(a.Pos, "missing event name")
	}
	arrays := map[string]bool{}
	if a.Path != "" {
		c.path(a.Path, a.Pos)
		if arr := itemArray(a.Path); arr != "" {
			arrays[arr] = true
		}
	}
	if a.Convert != "" {
		switch a.Func {
		case FnSum, FnAvg, FnMin, FnMax, FnFirst, FnLast:
			c.currency(a.Convert, a.Pos)
		default:
			c.errf(a.Pos, "%s does not add amounts: only sum, avg, min, max, first and last convert (in %s)", a.Func, a.Convert)
		}
	}
	c.scope(a.Scope)
	if IsAmount(a) && a.Convert == "" && a.Scope != nil && len(a.Scope.Currencies) > 1 {
		c.errf(a.Pos, "%s(%s) would mix amounts in %s: convert them into one, %s(%s in %s), or keep one currency",
			a.Func, a.Path, strings.Join(a.Scope.Currencies, " and "), a.Func, a.Path, a.Scope.Currencies[0])
	}
	c.filter(a.Where, arrays)
	if len(arrays) > 1 {
		names := make([]string, 0, len(arrays))
		for k := range arrays {
			names = append(names, k)
		}
		sort.Strings(names)
		c.errf(a.Pos, "one aggregate cannot read items of two arrays (%s)", strings.Join(names, ", "))
	}
	c.window(a.Window, a.Pos)
}

// currencyRE is an ISO 4217 code.
var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

func (c *checker) currency(code string, pos Pos) {
	if !currencyRE.MatchString(code) {
		c.errf(pos, "bad currency %q: want a three-letter ISO 4217 code such as GBP", code)
	}
}

func (c *checker) scope(s *Scope) {
	if s == nil {
		return
	}
	for _, l := range []struct {
		what string
		list []string
	}{{"from source", s.Sources}, {"at store", s.Stores}, {"in currency", s.Currencies}} {
		if l.list != nil && len(l.list) == 0 {
			c.errf(s.Pos, "%s [] matches no event", l.what)
		}
		seen := map[string]bool{}
		for _, v := range l.list {
			if strings.TrimSpace(v) == "" {
				c.errf(s.Pos, "%s needs a value, not %q", l.what, v)
			}
			if seen[v] {
				c.errf(s.Pos, "%s lists %q twice", l.what, v)
			}
			seen[v] = true
		}
	}
	for _, v := range s.Currencies {
		c.currency(v, s.Pos)
	}
}

// amountFields are the last path segments that hold money in Segment's
// e-commerce spec (revenue, total, subtotal, value, price, tax,
// shipping, discount), plus Kiln's restaurant tip and spend and a
// generic amount.
var amountFields = map[string]bool{
	"revenue": true, "total": true, "subtotal": true, "value": true, "price": true,
	"tax": true, "shipping": true, "discount": true, "tip": true, "spend": true, "amount": true,
}

// IsAmount reports whether an aggregate's values are money: its path
// ends in an amount field (properties.revenue, products.price) or it
// converts into a currency. Only sum, avg, min, max, first and last of
// an amount are money; counts are not.
func IsAmount(a *Agg) bool {
	switch a.Func {
	case FnSum, FnAvg, FnMin, FnMax, FnFirst, FnLast:
	default:
		return false
	}
	if a.Convert != "" {
		return true
	}
	i := strings.LastIndexByte(a.Path, '.')
	return i >= 0 && amountFields[a.Path[i+1:]]
}

func (c *checker) filter(f *Filter, arrays map[string]bool) {
	if f == nil {
		return
	}
	switch f.Op {
	case FAnd, FOr:
		if len(f.Args) < 2 {
			c.errf(f.Pos, "%s needs at least two operands", f.Op)
		}
		for _, a := range f.Args {
			c.filter(a, arrays)
		}
	case FNot:
		if len(f.Args) != 1 {
			c.errf(f.Pos, "not needs exactly one operand")
		}
		for _, a := range f.Args {
			c.filter(a, arrays)
		}
	case FCmp:
		c.path(f.Path, f.Pos)
		if arr := itemArray(f.Path); arr != "" {
			arrays[arr] = true
		}
		switch f.Func {
		case "":
			c.literal(f.Cmp, f.Value, TAny, f.Path, f.Pos)
		case FnLength:
			c.literal(f.Cmp, f.Value, TNumber, "length("+f.Path+")", f.Pos)
		default:
			c.errf(f.Pos, "unknown function %q on %s (want length)", f.Func, f.Path)
		}
	case FItems:
		c.itemFilter(f)
	case FExpr:
		if f.Left == nil {
			c.errf(f.Pos, "comparison without a left side")
			return
		}
		c.compare(f.Left, f.Cmp, f.Right, f.Value, ctxFilter, arrays, nil, f.Pos)
	default:
		c.errf(f.Pos, "unknown filter op %q", f.Op)
	}
}

// itemFilter checks a per-event condition over the event's own line
// items. It reads its array on its own, whatever item the filter around
// it is looking at, so its array is not the enclosing aggregate's.
func (c *checker) itemFilter(f *Filter) {
	text := FormatFilter(f)
	arr := f.Path
	switch f.Func {
	case FnAny, FnAll:
		if f.Where == nil {
			c.errf(f.Pos, "%s needs a condition on line items, e.g. %s(products.category = \"teaware\")", f.Func, f.Func)
			return
		}
		if f.Cmp != "" || f.Value != nil {
			c.errf(f.Pos, "%s takes no comparison", text)
		}
	case FnCount, FnSum, FnAvg, FnMin, FnMax, FnDistinct:
		arr = itemArray(f.Path)
		if f.Func == FnCount && !strings.Contains(f.Path, ".") {
			arr = f.Path // count(products): the items themselves
		} else {
			c.path(f.Path, f.Pos)
		}
		if arr == "" {
			c.errf(f.Pos, "%s(%s): want line items such as products.quantity%s", f.Func, f.Path, map[bool]string{true: " (or products, for count)"}[f.Func == FnCount])
			return
		}
		c.literal(f.Cmp, f.Value, TNumber, f.Func+"("+f.Path+")", f.Pos)
	default:
		c.errf(f.Pos, "unknown line-item function %q (want count, sum, avg, min, max, distinct, any or all)", f.Func)
		return
	}
	if !nameRE.MatchString(arr) {
		c.errf(f.Pos, "%s: want line items of one array such as products (products.category = \"teaware\")", text)
		return
	}
	inner := map[string]bool{}
	c.filter(f.Where, inner)
	for other := range inner {
		if other != arr {
			c.errf(f.Pos, "%s reads items of %s and of %s: one line-item condition reads one array", text, arr, other)
			break
		}
	}
}

func literalType(v any) Type {
	switch v.(type) {
	case string:
		return TString
	case float64:
		return TNumber
	case bool:
		return TBool
	}
	return ""
}

// literal checks a comparison's operand against the left side's type.
func (c *checker) literal(cmp string, v any, left Type, what string, pos Pos) {
	switch cmp {
	case CmpExists, CmpNotExists:
		if v != nil {
			c.errf(pos, "%s takes no value", cmp)
		}
		return
	case CmpIn:
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			c.errf(pos, "in needs a non-empty list of values")
			return
		}
		for _, x := range list {
			c.literal(CmpEq, x, left, what, pos)
		}
		return
	case CmpEq, CmpNe, CmpLt, CmpLe, CmpGt, CmpGe, CmpContains:
	default:
		c.errf(pos, "unknown comparison %q", cmp)
		return
	}
	lt := literalType(v)
	if lt == "" {
		c.errf(pos, "%s %s needs a string, number or boolean value", what, cmp)
		return
	}
	switch cmp {
	case CmpLt, CmpLe, CmpGt, CmpGe:
		if lt == TBool {
			c.errf(pos, "%s %s %v: booleans have no order", what, cmp, v)
			return
		}
	case CmpContains:
		if left == TNumber || left == TBool || left == TObject {
			c.errf(pos, "wrong type: %s is a %s, contains needs a string or a list", what, left)
			return
		}
	}
	if left == TDate && lt == TString {
		if _, ok := ParseDate(v.(string), time.UTC); !ok {
			c.errf(pos, "%s is a date: %q is not YYYY-MM-DD or RFC 3339", what, v)
		}
		return
	}
	if (left == TList || left == TObject) && cmp != CmpContains {
		c.errf(pos, "wrong type: %s is a %s: test it with exists, contains or length(...)", what, left)
		return
	}
	if left != TAny && left != lt && cmp != CmpContains {
		c.errf(pos, "wrong type: %s is a %s, compared with a %s (%s)", what, left, lt, formatValue(v))
	}
}

func (c *checker) expr(e *Expr, inCond bool, visitT func(string, Pos) Type) Type {
	if inCond {
		return c.vexpr(e, ctxCond, nil, visitT)
	}
	return c.vexpr(e, ctxTrait, nil, visitT)
}

// vexpr checks an expression in its context and returns its type.
// arrays collects the line-item arrays an event filter reads.
func (c *checker) vexpr(e *Expr, ctx exprCtx, arrays map[string]bool, visitT func(string, Pos) Type) Type {
	switch e.Op {
	case ExprAgg:
		if ctx == ctxFilter {
			c.errf(e.Pos, "an event filter cannot aggregate events (%s)", FormatExpr(e))
			return TAny
		}
		if e.Agg == nil {
			c.errf(e.Pos, "aggregate expression without an aggregate")
			return TAny
		}
		c.agg(e.Agg)
		switch e.Agg.Func {
		case FnFirst, FnLast:
			return TAny
		case FnFirstTime, FnLastTime:
			return TDate
		}
		return TNumber
	case ExprTrait:
		if ctx == ctxFilter {
			c.errf(e.Pos, "an event filter reads the event (properties.NAME) and the profile (traits.NAME), not computed trait %s", e.Name)
			return TAny
		}
		if c.info.Traits[e.Name] == nil {
			if c.info.Segments[e.Name] != nil {
				c.errf(e.Pos, "%s is a segment, not a trait: write in segment %s", e.Name, e.Name)
			} else {
				c.errf(e.Pos, "unknown trait %s%s", e.Name, c.suggest(e.Name))
			}
			return TAny
		}
		return visitT(e.Name, e.Pos)
	case ExprProfile:
		if ctx == ctxTrait {
			c.errf(e.Pos, "traits.%s: a computed trait cannot read profile traits; compare them in a segment condition (traits.%s >= 3)", e.Name, e.Name)
		}
		t := c.profileType(e.Name, e.Pos)
		switch e.Func {
		case "":
			return t
		case FnLength:
			if t == TNumber || t == TBool || t == TDate {
				c.errf(e.Pos, "wrong type: traits.%s is a %s, length needs a list, an object or a string", e.Name, t)
			}
			return TNumber
		}
		c.errf(e.Pos, "unknown function %q on traits.%s (want length)", e.Func, e.Name)
		return TAny
	case ExprProp:
		if ctx != ctxFilter {
			c.errf(e.Pos, "%s is an event property: only an event filter (where ...) reads it", e.Name)
			return TAny
		}
		c.path(e.Name, e.Pos)
		if arr := itemArray(e.Name); arr != "" && arrays != nil {
			arrays[arr] = true
		}
		return TAny
	case ExprNum:
		return TNumber
	case ExprString, ExprBool:
		if ctx == ctxTrait {
			c.errf(e.Pos, "a computed trait is a number: %s is not", FormatExpr(e))
		}
		if e.Op == ExprString {
			return TString
		}
		return TBool
	case ExprCall:
		return c.call(e, ctx, arrays, visitT)
	case ExprAdd, ExprSub, ExprMul, ExprDiv:
		if len(e.Args) != 2 {
			c.errf(e.Pos, "%s needs two operands", e.Op)
			return TNumber
		}
		var ts [2]Type
		for i, a := range e.Args {
			ts[i] = c.vexpr(a, ctx, arrays, visitT)
		}
		if e.Op == ExprAdd && ctx != ctxTrait && (ts[0] == TString || ts[1] == TString) {
			// + joins strings.
			for i, t := range ts {
				if t != TString && t != TAny {
					c.errf(e.Args[i].Pos, "wrong type: %s joins strings, %s is a %s", FormatExpr(e), FormatExpr(e.Args[i]), t)
				}
			}
			return TString
		}
		for i, t := range ts {
			if t != TNumber && t != TAny {
				c.errf(e.Args[i].Pos, "wrong type: arithmetic on a %s (%s)", t, FormatExpr(e.Args[i]))
			}
		}
		if ctx != ctxTrait && e.Op == ExprAdd && ts[0] == TAny && ts[1] == TAny {
			return TAny // numbers add, strings join
		}
		return TNumber
	}
	c.errf(e.Pos, "unknown expression op %q", e.Op)
	return TAny
}

// call checks a function of an expression.
func (c *checker) call(e *Expr, ctx exprCtx, arrays map[string]bool, visitT func(string, Pos) Type) Type {
	n, ok := ExprFuncs[e.Func]
	if !ok || ctx == ctxTrait {
		if ctx == ctxTrait && ok {
			c.errf(e.Pos, "a computed trait cannot use %s(...): use it in a segment condition or an event filter", e.Func)
		} else {
			c.errf(e.Pos, "unknown function %q (want lower, upper, trim, length, year, month, day, day_of_week or days_between)", e.Func)
		}
		return TAny
	}
	if len(e.Args) != n {
		c.errf(e.Pos, "%s takes %d value%s, not %d", e.Func, n, map[bool]string{true: "s"}[n > 1], len(e.Args))
		return TAny
	}
	for _, a := range e.Args {
		t := c.vexpr(a, ctx, arrays, visitT)
		bad := false
		switch e.Func {
		case FnLower, FnUpper, FnTrim:
			bad = t != TString && t != TAny
		case FnLength:
			bad = t != TString && t != TAny && t != TList && t != TObject
		default: // dates
			bad = t != TDate && t != TString && t != TAny
		}
		if bad {
			want := map[string]string{FnLower: "a string", FnUpper: "a string", FnTrim: "a string", FnLength: "a string, a list or an object"}[e.Func]
			if want == "" {
				want = "a date"
			}
			c.errf(a.Pos, "wrong type: %s needs %s, %s is a %s", e.Func, want, FormatExpr(a), t)
		}
	}
	switch e.Func {
	case FnLower, FnUpper, FnTrim:
		return TString
	}
	return TNumber
}

// compare checks a comparison of two expressions (Right), or of an
// expression with a list or nothing (Value: in, exists, not exists).
func (c *checker) compare(left *Expr, cmp string, right *Expr, v any, ctx exprCtx, arrays map[string]bool, visitT func(string, Pos) Type, pos Pos) {
	lt := c.vexpr(left, ctx, arrays, visitT)
	if ctx == ctxCond && lt == TDate && left.Op != ExprProfile && cmp != CmpExists && cmp != CmpNotExists {
		// The instant of an event: compared with spans from now, to
		// the millisecond, not with literals or other values.
		c.errf(pos, "%s is the time of an event: compare it with more than SPAN ago, within last SPAN, exists or not exists", FormatExpr(left))
		return
	}
	if right == nil {
		c.literal(cmp, v, lt, FormatExpr(left), pos)
		return
	}
	if v != nil {
		c.errf(pos, "a comparison has either a right side or a value, not both")
	}
	rt := c.vexpr(right, ctx, arrays, visitT)
	what := FormatExpr(left) + " " + cmp + " " + FormatExpr(right)
	switch cmp {
	case CmpEq, CmpNe, CmpLt, CmpLe, CmpGt, CmpGe:
	case CmpContains:
		if (lt != TString && lt != TAny) || (rt != TString && rt != TAny) {
			c.errf(pos, "wrong type: %s: contains between two values needs two strings (%s and %s)", what, lt, rt)
		}
		return
	default:
		c.errf(pos, "%s: %s takes no value to its right", what, cmp)
		return
	}
	for _, t := range []Type{lt, rt} {
		if t == TList || t == TObject {
			c.errf(pos, "wrong type: %s compares a %s: compare its length(...) or a field", what, t)
			return
		}
		if t == TBool && cmp != CmpEq && cmp != CmpNe {
			c.errf(pos, "%s: booleans have no order", what)
			return
		}
	}
	if lt == TDate {
		lt = TString
	}
	if rt == TDate {
		rt = TString
	}
	if lt != TAny && rt != TAny && lt != rt {
		c.errf(pos, "wrong type: %s compares a %s with a %s", what, lt, rt)
	}
}

func (c *checker) suggest(name string) string {
	best, bestD := "", 4
	for n := range c.info.Traits {
		if d := editDistance(name, n); d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if best != "" {
		return " (did you mean " + best + "?)"
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// profileType is the type of a profile trait path (company.name): the
// schema declares top-level traits; a path into an object is untyped.
func (c *checker) profileType(name string, pos Pos) Type {
	segs, ok := SplitPath(name)
	if !ok {
		c.errf(pos, "bad profile trait name %q: want traits.NAME[.NAME...]; quote odd names: traits.\"VAT id\"", name)
		return TAny
	}
	if c.schema == nil || c.schema.Traits == nil {
		return TAny
	}
	t, ok := c.schema.Traits[segs[0]]
	if !ok {
		c.errf(pos, "unknown profile trait traits.%s", JoinPath(segs[:1]))
		return TAny
	}
	if len(segs) > 1 {
		if t != TAny && t != TObject {
			c.errf(pos, "wrong type: traits.%s is a %s, it has no field %s", JoinPath(segs[:1]), t, JoinPath(segs[1:2]))
		}
		return TAny
	}
	return t
}

func (c *checker) cond(k *Cond, visitT func(string, Pos) Type, visitS func(string, Pos)) {
	switch k.Op {
	case CAnd, COr:
		if len(k.Args) < 2 {
			c.errf(k.Pos, "%s needs at least two operands", k.Op)
		}
		for _, a := range k.Args {
			c.cond(a, visitT, visitS)
		}
	case CNot:
		if len(k.Args) != 1 {
			c.errf(k.Pos, "not needs exactly one operand")
		}
		for _, a := range k.Args {
			c.cond(a, visitT, visitS)
		}
	case CCmp:
		if k.Left == nil {
			c.errf(k.Pos, "comparison without a left side")
			return
		}
		c.compare(k.Left, k.Cmp, k.Right, k.Value, ctxCond, nil, visitT, k.Pos)
	case CSegment:
		if c.info.Segments[k.Segment] == nil {
			if c.info.Traits[k.Segment] != nil {
				c.errf(k.Pos, "%s is a trait, not a segment", k.Segment)
			} else {
				c.errf(k.Pos, "unknown segment %s", k.Segment)
			}
			return
		}
		visitS(k.Segment, k.Pos)
	case CPerformed, CNotPerformed:
		if k.Agg == nil {
			c.errf(k.Pos, "%s without an event", k.Op)
			return
		}
		c.agg(k.Agg)
	case CNotFollowed:
		if k.First == nil || k.Then == nil {
			c.errf(k.Pos, "not followed by needs two events")
			return
		}
		if k.Within != nil && k.For != nil {
			c.errf(k.For.Pos, "not followed by takes within SPAN (a deadline) or for at least SPAN (up to now), not both")
		}
		for _, r := range []*EventRef{k.First, k.Then} {
			if strings.TrimSpace(r.Event) == "" {
				c.errf(r.Pos, "missing event name")
			}
			arrays := map[string]bool{}
			c.scope(r.Scope)
			c.filter(r.Where, arrays)
			if len(arrays) > 1 {
				c.errf(r.Pos, "one filter cannot read items of two arrays")
			}
		}
		if k.Within != nil {
			c.span(k.Within, "not followed by ... within")
		}
		if k.For != nil {
			c.span(k.For, "not followed by ... for at least")
		}
		c.window(k.Window, k.Pos)
		if k.Window != nil && k.Window.Kind != WinLast {
			c.errf(k.Window.Pos, "not followed by needs a rolling window (in last N days), not %s", FormatWindow(k.Window))
		}
		if k.For != nil && k.Window != nil && k.Window.Kind == WinLast && k.For.N > 0 &&
			spanOf(k.For) >= spanOf(&Span{N: k.Window.N, Unit: k.Window.Unit}) {
			c.errf(k.For.Pos, "not followed by ... for at least %s in last %d %s: no event can stand that long inside the window; make the window longer", formatSpan(k.For), k.Window.N, k.Window.Unit)
		}
	case CAgo, CWithinLast:
		if k.Left == nil {
			c.dateCond(k)
			return
		}
		// A date value: a computed trait or an aggregate such as last
		// time of "Order Completed" (or first/last of a property holding
		// dates).
		if k.Profile != "" {
			c.errf(k.Pos, "%s reads either a profile trait or a value, not both", k.Op)
		}
		if k.Left.Op == ExprProfile {
			c.errf(k.Pos, "traits.%s: name a profile trait in profileTrait", k.Left.Name)
			return
		}
		if t := c.expr(k.Left, true, visitT); t != TDate && t != TAny {
			c.errf(k.Left.Pos, "wrong type: %s is a %s, not a date (more than ... ago and within last need a date such as last time of \"Order Completed\")", FormatExpr(k.Left), t)
		}
		if k.Within == nil {
			c.errf(k.Pos, "missing span")
			return
		}
		c.span(k.Within, k.Op)
	case CAnniversary:
		c.dateCond(k)
	case CRank:
		c.rank(k, visitT, visitS)
	default:
		c.errf(k.Pos, "unknown condition op %q", k.Op)
	}
}

func spanOf(s *Span) time.Duration {
	switch s.Unit {
	case "minutes":
		return time.Duration(s.N) * time.Minute
	case "hours":
		return time.Duration(s.N) * time.Hour
	}
	return time.Duration(s.N) * 24 * time.Hour
}

// dateCond checks a condition on a profile date trait.
func (c *checker) dateCond(k *Cond) {
	t := c.profileType(k.Profile, k.Pos)
	if t != TAny && t != TDate {
		c.errf(k.Pos, "wrong type: traits.%s is a %s, not a date", k.Profile, t)
	}
	if k.Within == nil {
		c.errf(k.Pos, "missing span")
		return
	}
	c.span(k.Within, k.Op)
	if k.Op == CAnniversary && (k.Within.Unit != "days" || k.Within.N > MaxAnnivDays) {
		c.errf(k.Within.Pos, "anniversary within next needs 1 to %d days", MaxAnnivDays)
	}
}

// ParseDate reads a date trait value: "YYYY-MM-DD" (midnight in loc) or
// RFC 3339. It is shared by the checker and the evaluator so both accept
// the same values.
func ParseDate(s string, loc *time.Location) (time.Time, bool) {
	if len(s) == 10 {
		t, err := time.ParseInLocation(time.DateOnly, s, loc)
		return t, err == nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// rank checks a population-relative condition: a numeric computed
// trait, an existing population segment, and a comparison its score can
// make.
func (c *checker) rank(k *Cond, visitT func(string, Pos) Type, visitS func(string, Pos)) {
	r := k.Rank
	if r == nil {
		c.errf(k.Pos, "rank condition without a ranking")
		return
	}
	c.ranks = append(c.ranks, rankUse{k, c.cur})
	pos := r.Pos
	if pos.Line == 0 {
		pos = k.Pos
	}
	tiles := RankTiles[r.Func]
	switch {
	case r.Func == RankRank, r.Func == RankPercentile, tiles > 0:
		switch k.Cmp {
		case CmpEq, CmpNe, CmpLt, CmpLe, CmpGt, CmpGe:
		default:
			c.errf(pos, "%s of %s compares with =, !=, <, <=, > or >= and a number, not %s", r.Func, r.Trait, k.Cmp)
		}
	case r.Func == RankTop, r.Func == RankBottom:
		if k.Cmp != "" {
			c.errf(pos, "in %s P%% takes no comparison", r.Func)
		}
	default:
		c.errf(pos, "unknown ranking %q (want rank, percentile, quartile, quintile, decile, top or bottom)", r.Func)
		return
	}
	if t := c.info.Traits[r.Trait]; t == nil {
		if c.info.Segments[r.Trait] != nil {
			c.errf(pos, "%s is a segment, not a computed trait: %s ranks a computed trait", r.Trait, r.Func)
		} else {
			c.errf(pos, "unknown computed trait %s%s", r.Trait, c.suggest(r.Trait))
		}
	} else if ty := visitT(r.Trait, pos); ty != TNumber && ty != TAny {
		c.errf(pos, "wrong type: %s is a %s; %s ranks numbers", r.Trait, ty, r.Func)
	}
	if r.Among != "" {
		if c.info.Segments[r.Among] == nil {
			if c.info.Traits[r.Among] != nil {
				c.errf(pos, "%s is a trait, not a segment: among names the population's segment", r.Among)
			} else {
				c.errf(pos, "unknown segment %s", r.Among)
			}
		} else {
			visitS(r.Among, pos)
		}
	}
	v, ok := k.Value.(float64)
	if !ok {
		c.errf(pos, "%s needs a number, not %s", r.Func, formatValue(k.Value))
		return
	}
	whole := v == float64(int64(v))
	switch {
	case r.Func == RankRank:
		if !whole || v < 1 {
			c.errf(pos, "rank of %s compares with a whole number of at least 1 (rank 1 is the highest value), not %s", r.Trait, formatNum(v))
		}
	case tiles > 0:
		if !whole || v < 1 || v > float64(tiles) {
			c.errf(pos, "%s of %s is a score from 1 to %d (%d: the highest values), not %s", r.Func, r.Trait, tiles, tiles, formatNum(v))
		}
	case r.Func == RankPercentile:
		if v < 0 || v > 100 || !fourDecimals(v) {
			c.errf(pos, "percentile of %s compares with a number from 0 to 100 with at most 4 decimals, not %s", r.Trait, formatNum(v))
		}
	default:
		if v <= 0 || v > 100 || !fourDecimals(v) {
			c.errf(pos, "in %s %s%%: the percentage must be above 0 and at most 100, with at most 4 decimals", r.Func, formatNum(v))
		}
	}
}

// fourDecimals reports whether v has at most four decimals as written.
func fourDecimals(v float64) bool {
	s := formatNum(v)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s)-i-1 <= 4
	}
	return true
}

// rankPopulations refuses populations that depend on rankings
// themselves: a population segment (and every segment it refers to)
// must not use a population-relative condition, so ranks are decided
// from memberships that do not depend on ranks.
func (c *checker) rankPopulations() {
	if len(c.ranks) == 0 {
		return
	}
	direct := map[string]bool{}
	for _, u := range c.ranks {
		if u.def != nil {
			direct[u.def.Name] = true
		}
	}
	has := map[string]bool{}
	for _, name := range c.info.SegmentOrder { // dependencies first
		has[name] = direct[name]
		for _, d := range c.info.SegmentRefs[DefKey{KindSegment, name}] {
			has[name] = has[name] || has[d]
		}
	}
	for _, u := range c.ranks {
		if r := u.c.Rank; r != nil && r.Among != "" && has[r.Among] {
			saved := c.cur
			c.cur = u.def
			pos := r.Pos
			if pos.Line == 0 {
				pos = u.c.Pos
			}
			c.errf(pos, "population %s uses a population-relative condition itself (directly or through in segment); a population must not depend on ranks", r.Among)
			c.cur = saved
		}
	}
}
