package rule

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	text string // identifier, punctuation, number text or unquoted string
	pos  Pos
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return strconv.Quote(t.text)
	}
	return "\"" + t.text + "\""
}

func lex(src string) ([]token, error) {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for k := 0; k < n; k++ {
			if src[i] == '\n' {
				line++
				col = 1
			} else if src[i] < 0x80 || src[i] >= 0xC0 {
				col++
			}
			i++
		}
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			adv(1)
			continue
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				adv(1)
			}
			continue
		}
		p := Pos{line, col}
		switch {
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				if j < len(src) && src[j] == '\n' {
					return nil, &Error{Pos: p, Msg: "unterminated string"}
				}
				j++
			}
			if j >= len(src) {
				return nil, &Error{Pos: p, Msg: "unterminated string"}
			}
			s, err := strconv.Unquote(src[i : j+1])
			if err != nil {
				return nil, &Error{Pos: p, Msg: "bad string escape in " + src[i:j+1]}
			}
			toks = append(toks, token{tString, s, p})
			adv(j + 1 - i)
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			// "15m" is a number followed by a unit, lexed as two tokens.
			toks = append(toks, token{tNumber, src[i:j], p})
			adv(j - i)
		case c == '_' || isLetter(src[i:]):
			j := i
			quoted := false
			for j < len(src) {
				r, n := utf8.DecodeRuneInString(src[j:])
				if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
					j += n
					continue
				}
				if r == '.' && j+1 < len(src) && (src[j+1] == '_' || isLetter(src[j+1:])) {
					j += n
					continue
				}
				if r == '.' && j+1 < len(src) && src[j+1] == '"' {
					// A quoted path segment: traits."VAT id".
					q, err := strconv.QuotedPrefix(src[j+1:])
					if err != nil || strings.ContainsRune(q, '\n') {
						return nil, &Error{Pos: p, Msg: "bad quoted segment in path " + src[i:min(len(src), j+40)]}
					}
					j += 1 + len(q)
					quoted = true
					continue
				}
				break
			}
			text := src[i:j]
			if quoted {
				segs, ok := SplitPath(text)
				if !ok {
					return nil, &Error{Pos: p, Msg: fmt.Sprintf("bad path %s: a quoted segment cannot be empty", text)}
				}
				text = JoinPath(segs) // canonical: quotes only where needed
			}
			toks = append(toks, token{tIdent, text, p})
			adv(j - i)
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			if two == "!=" || two == "<=" || two == ">=" || two == "==" {
				if two == "==" {
					two = "="
				}
				toks = append(toks, token{tPunct, two, p})
				adv(2)
				continue
			}
			if strings.IndexByte("(){}[],=<>+-*/%", c) >= 0 {
				toks = append(toks, token{tPunct, string(c), p})
				adv(1)
				continue
			}
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, &Error{Pos: p, Msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
	toks = append(toks, token{kind: tEOF, pos: Pos{line, col}})
	return toks, nil
}

func isLetter(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLetter(r)
}

// Parse reads definitions in the text form. It reports the first syntax
// error with its line and column; semantic errors (unknown names, types,
// cycles) are Check's job.
func Parse(src string) (*Set, error) {
	src = strings.TrimPrefix(src, "\ufeff") // a byte-order mark some editors write
	toks, err := lex(src)
	if err != nil {
		return nil, ErrorList{err.(*Error)}
	}
	p := &parser{toks: toks}
	set, perr := p.file()
	if perr != nil {
		return nil, ErrorList{perr}
	}
	// The parser bounds its own recursion; a long arithmetic chain
	// (1 + 1 + ...) nests the tree without recursing, so check the tree.
	if derr := checkDepth(set); derr != nil {
		return nil, ErrorList{derr}
	}
	return set, nil
}

type parser struct {
	toks  []token
	i     int
	depth int // nesting of parentheses and not, bounded by MaxDepth
}

// bail aborts parsing with a positioned error; file() recovers it.
// tryParenCond recovers it too, to reparse a parenthesis as arithmetic,
// unless it is final: nesting too deep is too deep either way.
type bail struct {
	err   *Error
	final bool
}

// nest enters one level of nesting at t, failing past MaxDepth before
// the recursion can exhaust the stack; defer the function it returns.
func (p *parser) nest(t token) func() {
	p.depth++
	if p.depth > MaxDepth {
		panic(bail{err: tooDeep(t.pos), final: true})
	}
	return func() { p.depth-- }
}

func (p *parser) peek() token       { return p.toks[p.i] }
func (p *parser) peekN(n int) token { return p.toks[min(p.i+n, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) failAt(t token, format string, args ...any) {
	panic(bail{err: &Error{Pos: t.pos, Msg: fmt.Sprintf(format, args...)}})
}

// is reports whether the next token is the keyword or punctuation s.
func (p *parser) is(s string) bool {
	t := p.peek()
	return (t.kind == tIdent || t.kind == tPunct) && t.text == s
}

func (p *parser) isAt(n int, s string) bool {
	t := p.peekN(n)
	return (t.kind == tIdent || t.kind == tPunct) && t.text == s
}

func (p *parser) accept(s string) bool {
	if p.is(s) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(s, what string) token {
	t := p.next()
	if (t.kind != tIdent && t.kind != tPunct) || t.text != s {
		p.failAt(t, "expected %s, found %s", what, t)
	}
	return t
}

func (p *parser) file() (set *Set, err *Error) {
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			set, err = nil, b.err
		}
	}()
	set = &Set{}
	for p.peek().kind != tEOF {
		set.Defs = append(set.Defs, p.def())
	}
	return set, nil
}

var reserved = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "of": true, "where": true,
	"trait": true, "segment": true, "true": true, "false": true, "all": true,
	"this": true, "today": true, "between": true, "last": true, "within": true,
	"performed": true, "did": true, "anniversary": true, "static": true,
	"title": true, "description": true, "freshness": true, "backfill": true,
	"exists": true, "contains": true, "followed": true,
}

func (p *parser) name(what string) (string, token) {
	t := p.next()
	if t.kind != tIdent || strings.Contains(t.text, ".") || reserved[t.text] {
		p.failAt(t, "expected %s name, found %s", what, t)
	}
	return t.text, t
}

func (p *parser) def() *Def {
	t := p.next()
	d := &Def{Pos: t.pos}
	switch {
	case t.kind == tIdent && t.text == KindTrait:
		d.Kind = KindTrait
	case t.kind == tIdent && t.text == KindSegment:
		d.Kind = KindSegment
	default:
		p.failAt(t, "expected \"trait\" or \"segment\", found %s", t)
	}
	d.Name, _ = p.name(d.Kind)
	if p.peek().kind == tString {
		d.Title = p.next().text
	}
	if d.Kind == KindTrait {
		p.expect("=", "\"=\" after the trait name")
		d.Value = p.expr(ctxTrait)
	} else {
		if p.accept("static") {
			d.Static = true
		} else {
			p.expect("{", "\"{\" (the segment condition) or \"static\"")
			d.Cond = p.cond()
			p.expect("}", "\"}\" closing the segment condition (or \"and\"/\"or\")")
		}
	}
	p.options(d)
	return d
}

func (p *parser) options(d *Def) {
	for {
		t := p.peek()
		if t.kind != tIdent {
			return
		}
		switch t.text {
		case "title":
			p.next()
			d.Title = p.str("title")
		case "description":
			p.next()
			d.Description = p.str("description")
		case "backfill":
			p.next()
			v := p.next()
			if v.kind != tIdent || (v.text != "all" && v.text != "new" && v.text != "none") {
				p.failAt(v, "backfill must be all, new or none, found %s", v)
			}
			d.Backfill = v.text
		case "freshness":
			p.next()
			f := &Freshness{Pos: p.peek().pos}
			v := p.next()
			switch {
			case v.kind == tIdent && (v.text == FreshRealtime || v.text == FreshManual):
				f.Mode = v.text
			case v.kind == tIdent && v.text == FreshEvery:
				f.Mode = FreshEvery
				f.Every = p.span()
			case v.kind == tIdent && v.text == FreshCron:
				f.Mode = FreshCron
				f.Cron = p.str("cron schedule")
				if p.accept("tz") {
					f.TZ = p.str("time zone")
				}
			default:
				p.failAt(v, "freshness must be realtime, every <span>, cron \"<spec>\" or manual, found %s", v)
			}
			d.Freshness = f
		default:
			return
		}
	}
}

func (p *parser) str(what string) string {
	t := p.next()
	if t.kind != tString {
		p.failAt(t, "expected a quoted %s, found %s", what, t)
	}
	return t.text
}

var unitNames = map[string]string{
	"m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
	"h": "hours", "hour": "hours", "hours": "hours",
	"d": "days", "day": "days", "days": "days",
}

func (p *parser) span() *Span {
	t := p.next()
	if t.kind != tNumber {
		p.failAt(t, "expected a number of minutes, hours or days, found %s", t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil {
		p.failAt(t, "expected a whole number, found %s", t)
	}
	u := p.next()
	unit, ok := unitNames[u.text]
	if u.kind != tIdent || !ok {
		p.failAt(u, "expected minutes, hours or days after %d, found %s", n, u)
	}
	return &Span{N: n, Unit: unit, Pos: t.pos}
}

var aggFuncs = map[string]string{
	"count": FnCount, "sum": FnSum, "avg": FnAvg, "average": FnAvg, "min": FnMin, "max": FnMax,
	"first": FnFirst, "last": FnLast, "distinct": FnDistinct, "distinct_count": FnDistinct,
	"count_distinct": FnDistinct,
}

// isAggStart reports whether an aggregate starts here: a function name
// followed by "(" or "of".
func (p *parser) isAggStart() bool {
	t := p.peek()
	if t.kind != tIdent {
		return false
	}
	if p.isTimeAgg() {
		return true
	}
	if _, ok := aggFuncs[t.text]; !ok {
		return false
	}
	return p.isAt(1, "(") || p.isAt(1, "of")
}

// isTimeAgg reports whether "last time of" or "first time of" starts
// here.
func (p *parser) isTimeAgg() bool {
	return (p.is("last") || p.is("first")) && p.isAt(1, "time") && p.isAt(2, "of")
}

func (p *parser) agg() *Agg {
	if p.isTimeAgg() {
		// last time of "Event" [SCOPE] [where FILTER] [WINDOW]: the
		// window is optional (all time).
		t := p.next()
		p.next()
		p.next()
		a := &Agg{Func: FnLastTime, Pos: t.pos}
		if t.text == "first" {
			a.Func = FnFirstTime
		}
		ev := p.next()
		if ev.kind != tString {
			p.failAt(ev, "expected a quoted event name such as \"Order Completed\", found %s", ev)
		}
		a.Event = ev.text
		a.Scope = p.scope()
		if p.accept("where") {
			a.Where = p.filter()
		}
		if a.Window = p.window(false); a.Window == nil {
			a.Window = &Window{Kind: WinAll, Pos: p.peek().pos}
		}
		return a
	}
	t := p.next()
	a := &Agg{Func: aggFuncs[t.text], Pos: t.pos}
	if p.accept("(") {
		pt := p.next()
		if pt.kind != tIdent || !strings.Contains(pt.text, ".") {
			p.failAt(pt, "expected a property path such as properties.revenue or products.quantity, found %s", pt)
		}
		a.Path = pt.text
		if p.accept("in") {
			a.Convert = p.currency()
		}
		p.expect(")", "\")\"")
	}
	p.expect("of", "\"of\" and an event name")
	ev := p.next()
	if ev.kind != tString {
		p.failAt(ev, "expected a quoted event name such as \"Order Completed\", found %s", ev)
	}
	a.Event = ev.text
	a.Scope = p.scope()
	if p.accept("where") {
		a.Where = p.filter()
	}
	a.Window = p.window(true)
	return a
}

func (p *parser) window(required bool) *Window {
	t := p.peek()
	w := &Window{Pos: t.pos}
	switch {
	case p.is("in") && p.isAt(1, "last"):
		p.next()
		p.next()
		s := p.span()
		w.Kind, w.N, w.Unit = WinLast, s.N, s.Unit
	case p.is("all") && p.isAt(1, "time"):
		p.next()
		p.next()
		w.Kind = WinAll
	case p.is("today"):
		p.next()
		w.Kind = WinToday
	case p.is("this"):
		p.next()
		u := p.next()
		switch u.text {
		case "week":
			w.Kind = WinWeek
		case "month":
			w.Kind = WinMonth
		case "year":
			w.Kind = WinYear
		default:
			p.failAt(u, "expected week, month or year after \"this\", found %s", u)
		}
	case p.is("between"):
		p.next()
		w.Kind = WinBetween
		w.From = p.str("start date (YYYY-MM-DD)")
		p.expect("and", "\"and\" between the two dates")
		w.To = p.str("end date (YYYY-MM-DD)")
	default:
		if !required {
			return nil
		}
		p.failAt(t, "expected a window (in last N days, all time, today, this week/month/year, between \"date\" and \"date\"), found %s", t)
	}
	return w
}

func (p *parser) filter() *Filter {
	f := p.filterAnd()
	for p.is("or") {
		t := p.next()
		f = joinFilter(FOr, f, p.filterAnd(), t.pos)
	}
	return f
}

func joinFilter(op string, a, b *Filter, pos Pos) *Filter {
	if a.Op == op {
		a.Args = append(a.Args, b)
		return a
	}
	return &Filter{Op: op, Args: []*Filter{a, b}, Pos: a.Pos}
}

func (p *parser) filterAnd() *Filter {
	f := p.filterNot()
	for p.is("and") {
		t := p.next()
		f = joinFilter(FAnd, f, p.filterNot(), t.pos)
	}
	return f
}

func (p *parser) filterNot() *Filter {
	t := p.peek()
	if p.accept("not") {
		defer p.nest(t)()
		return &Filter{Op: FNot, Args: []*Filter{p.filterNot()}, Pos: t.pos}
	}
	if p.is("(") {
		// A parenthesis opens a sub-filter or arithmetic such as
		// (properties.a + properties.b) * 2 > 10: try the filter, and
		// fall back when a comparison or arithmetic follows it.
		save := p.i
		if f, ok := p.tryParenFilter(); ok {
			return f
		}
		p.i = save
	}
	if t.kind == tIdent && p.isAt(1, "(") {
		if f := p.itemFilter(t); f != nil {
			return f
		}
	}
	left := p.expr(ctxFilter)
	f := &Filter{Op: FExpr, Left: left, Pos: left.Pos}
	f.Cmp, f.Value, f.Right = p.cmpExpr(ctxFilter)
	// A property (or its length) compared with a literal keeps the
	// plain form: properties.gift = true.
	switch {
	case f.Right != nil:
	case left.Op == ExprProp:
		return &Filter{Op: FCmp, Path: left.Name, Cmp: f.Cmp, Value: f.Value, Pos: left.Pos}
	case left.Op == ExprCall && left.Func == FnLength && len(left.Args) == 1 && left.Args[0].Op == ExprProp:
		return &Filter{Op: FCmp, Func: FnLength, Path: left.Args[0].Name, Cmp: f.Cmp, Value: f.Value, Pos: left.Pos}
	}
	if f.Right == nil && f.Cmp != CmpIn && f.Cmp != CmpExists && f.Cmp != CmpNotExists {
		// A literal right side of a comparison is an expression here.
		f.Right = literalExpr(f.Value, f.Pos)
		f.Value = nil
	}
	return f
}

// literalExpr is the constant expression of a literal.
func literalExpr(v any, pos Pos) *Expr {
	switch x := v.(type) {
	case float64:
		return &Expr{Op: ExprNum, Num: x, Pos: pos}
	case string:
		return &Expr{Op: ExprString, Str: x, Pos: pos}
	case bool:
		return &Expr{Op: ExprBool, Bool: x, Pos: pos}
	}
	return nil
}

// itemFilter parses a filter that starts with a function: length(PATH)
// OP VALUE, a per-event aggregate over the event's own line items
// (sum(products.quantity [where F]) OP VALUE), or any(F) / all(F). It
// returns nil when t is no such function.
func (p *parser) itemFilter(t token) *Filter {
	switch fn := t.text; {
	case fn == FnAny || fn == FnAll:
		p.next()
		p.next()
		defer p.nest(t)()
		inner := p.filter()
		p.expect(")", "\")\" closing "+fn+"(")
		return &Filter{Op: FItems, Func: fn, Path: filterArray(inner), Where: inner, Pos: t.pos}
	case aggFuncs[fn] != "" && aggFuncs[fn] != FnFirst && aggFuncs[fn] != FnLast:
		p.next()
		p.next()
		pt := p.next()
		if pt.kind != tIdent || strings.HasPrefix(pt.text, "traits.") || strings.HasPrefix(pt.text, "properties.") || (aggFuncs[fn] != FnCount && !strings.Contains(pt.text, ".")) {
			p.failAt(pt, "expected line items such as products.quantity (or products, for count), found %s", pt)
		}
		f := &Filter{Op: FItems, Func: aggFuncs[fn], Path: pt.text, Pos: t.pos}
		if p.accept("where") {
			defer p.nest(t)()
			f.Where = p.filter()
		}
		p.expect(")", "\")\" closing "+fn+"(")
		f.Cmp, f.Value = p.cmpOp()
		return f
	}
	return nil
}

// filterArray is the first line-item array a filter reads, or "".
func filterArray(f *Filter) string {
	if f == nil {
		return ""
	}
	switch f.Op {
	case FCmp:
		return itemArray(f.Path)
	case FItems:
		return ""
	case FExpr:
		if arr := exprArray(f.Left); arr != "" {
			return arr
		}
		return exprArray(f.Right)
	}
	for _, a := range f.Args {
		if arr := filterArray(a); arr != "" {
			return arr
		}
	}
	return ""
}

// exprArray is the first line-item array an expression reads, or "".
func exprArray(e *Expr) string {
	if e == nil {
		return ""
	}
	if e.Op == ExprProp {
		return itemArray(e.Name)
	}
	for _, a := range e.Args {
		if arr := exprArray(a); arr != "" {
			return arr
		}
	}
	return ""
}

// cmpOp parses a comparison operator and its operand.
func (p *parser) cmpOp() (string, any) {
	t := p.next()
	switch {
	case t.kind == tPunct && (t.text == "=" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		return t.text, p.literal()
	case t.kind == tIdent && t.text == "contains":
		return CmpContains, p.literal()
	case t.kind == tIdent && t.text == "in":
		p.expect("[", "\"[\" starting a list")
		var list []any
		for !p.is("]") {
			list = append(list, p.literal())
			if !p.accept(",") {
				break
			}
		}
		p.expect("]", "\"]\" closing the list")
		if list == nil {
			list = []any{}
		}
		return CmpIn, list
	case t.kind == tIdent && t.text == "exists":
		return CmpExists, nil
	case t.kind == tIdent && t.text == "not" && p.is("exists"):
		p.next()
		return CmpNotExists, nil
	}
	p.failAt(t, "expected a comparison (=, !=, <, <=, >, >=, contains, in [...], exists, not exists), found %s", t)
	return "", nil
}

func (p *parser) literal() any {
	t := p.next()
	switch {
	case t.kind == tString:
		return t.text
	case t.kind == tNumber:
		return p.number(t, 1)
	case t.kind == tPunct && t.text == "-":
		n := p.next()
		if n.kind != tNumber {
			p.failAt(n, "expected a number after \"-\", found %s", n)
		}
		return p.number(n, -1)
	case t.kind == tIdent && t.text == "true":
		return true
	case t.kind == tIdent && t.text == "false":
		return false
	}
	p.failAt(t, "expected a value (a quoted string, a number, true or false), found %s", t)
	return nil
}

func (p *parser) number(t token, sign float64) float64 {
	v, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		p.failAt(t, "bad number %s", t.text)
	}
	return sign * v
}

// Expression contexts: what an expression may read.
type exprCtx uint8

const (
	ctxTrait  exprCtx = iota // a computed trait: aggregates, traits, numbers
	ctxCond                  // a segment condition: also profile traits and functions
	ctxFilter                // an event filter: event properties, profile traits, functions
)

// expr parses arithmetic (and, in conditions and filters, constants
// and functions).
func (p *parser) expr(ctx exprCtx) *Expr {
	e := p.term(ctx)
	for p.is("+") || p.is("-") {
		t := p.next()
		e = &Expr{Op: t.text, Args: []*Expr{e, p.term(ctx)}, Pos: e.Pos}
	}
	return e
}

func (p *parser) term(ctx exprCtx) *Expr {
	e := p.factor(ctx)
	for p.is("*") || p.is("/") {
		t := p.next()
		e = &Expr{Op: t.text, Args: []*Expr{e, p.factor(ctx)}, Pos: e.Pos}
	}
	return e
}

func (p *parser) factor(ctx exprCtx) *Expr {
	inCond := ctx != ctxTrait
	t := p.peek()
	switch {
	case ctx != ctxTrait && t.kind == tString:
		p.next()
		return &Expr{Op: ExprString, Str: t.text, Pos: t.pos}
	case ctx != ctxTrait && (p.is("true") || p.is("false")):
		p.next()
		return &Expr{Op: ExprBool, Bool: t.text == "true", Pos: t.pos}
	case ctx == ctxFilter && p.isAggStart():
		p.failAt(t, "an event filter cannot aggregate events: compare the event's own values (or line items: sum(products.quantity) >= 24)")
	case t.kind == tNumber:
		p.next()
		return &Expr{Op: ExprNum, Num: p.number(t, 1), Pos: t.pos}
	case p.is("-") && p.peekN(1).kind == tNumber:
		p.next()
		return &Expr{Op: ExprNum, Num: p.number(p.next(), -1), Pos: t.pos}
	case p.is("("):
		p.next()
		defer p.nest(t)()
		e := p.expr(ctx)
		p.expect(")", "\")\"")
		return e
	case p.isAggStart():
		a := p.agg()
		return &Expr{Op: ExprAgg, Agg: a, Pos: a.Pos}
	case t.kind == tIdent && t.text == FnLength && ctx != ctxFilter && p.isAt(1, "(") && strings.HasPrefix(p.peekN(2).text, "traits.") && p.isAt(3, ")"):
		p.next()
		p.next()
		pt := p.next()
		p.expect(")", "\")\" closing length(")
		if !inCond {
			p.failAt(t, "a computed trait cannot read profile trait %s; use it in a segment condition", pt.text)
		}
		return &Expr{Op: ExprProfile, Func: FnLength, Name: strings.TrimPrefix(pt.text, "traits."), Pos: t.pos}
	case ctx != ctxTrait && t.kind == tIdent && ExprFuncs[t.text] > 0 && p.isAt(1, "("):
		p.next()
		p.next()
		defer p.nest(t)()
		e := &Expr{Op: ExprCall, Func: t.text, Pos: t.pos}
		for !p.is(")") {
			e.Args = append(e.Args, p.expr(ctx))
			if !p.accept(",") {
				break
			}
		}
		p.expect(")", "\")\" closing "+t.text+"(")
		return e
	case ctx == ctxFilter && t.kind == tIdent && strings.Contains(t.text, ".") && !strings.HasPrefix(t.text, "traits."):
		p.next()
		return &Expr{Op: ExprProp, Name: t.text, Pos: t.pos}
	case ctx == ctxFilter && t.kind == tIdent && !strings.Contains(t.text, ".") && !reserved[t.text]:
		p.failAt(t, "expected an event property such as properties.%s (or products.category, or traits.NAME for the profile), found %s", t.text, t)
	case t.kind == tIdent && strings.HasPrefix(t.text, "traits."):
		p.next()
		if !inCond {
			p.failAt(t, "a computed trait cannot read profile trait %s; use it in a segment condition", t.text)
		}
		return &Expr{Op: ExprProfile, Name: strings.TrimPrefix(t.text, "traits."), Pos: t.pos}
	case t.kind == tIdent && !strings.Contains(t.text, ".") && !reserved[t.text]:
		p.next()
		return &Expr{Op: ExprTrait, Name: t.text, Pos: t.pos}
	case t.kind == tIdent && strings.Contains(t.text, "."):
		p.failAt(t, "%s is an event property: wrap it in an aggregate such as sum(%s) of \"Event\" in last 30 days, or write traits.NAME for a profile trait", t.text, t.text)
	}
	if ctx == ctxFilter {
		p.failAt(t, "expected a value (properties.NAME, traits.NAME, a quoted string, a number, true or false), found %s", t)
	}
	p.failAt(t, "expected a value (a trait, an aggregate such as count of \"Order Completed\" in last 30 days, traits.NAME, a quoted string or a number), found %s", t)
	return nil
}

func (p *parser) cond() *Cond {
	c := p.condAnd()
	for p.is("or") {
		p.next()
		c = joinCond(COr, c, p.condAnd())
	}
	return c
}

func joinCond(op string, a, b *Cond) *Cond {
	if a.Op == op && a.Pos.Line >= 0 {
		a.Args = append(a.Args, b)
		return a
	}
	return &Cond{Op: op, Args: []*Cond{a, b}, Pos: a.Pos}
}

func (p *parser) condAnd() *Cond {
	c := p.condNot()
	for p.is("and") {
		p.next()
		c = joinCond(CAnd, c, p.condNot())
	}
	return c
}

func (p *parser) condNot() *Cond {
	t := p.peek()
	if p.is("not") && !(p.isAt(1, "in") && p.isAt(2, "segment")) {
		p.next()
		defer p.nest(t)()
		return &Cond{Op: CNot, Args: []*Cond{p.condNot()}, Pos: t.pos}
	}
	if p.is("not") {
		p.next()
		defer p.nest(t)()
		return &Cond{Op: CNot, Args: []*Cond{p.primary()}, Pos: t.pos}
	}
	return p.primary()
}

func (p *parser) primary() *Cond {
	t := p.peek()
	switch {
	case p.is("("):
		// A parenthesis opens either a sub-condition or arithmetic such
		// as (a + b) > 3: try the condition, and fall back when a
		// comparison or arithmetic follows the closing parenthesis.
		save := p.i
		if c, ok := p.tryParenCond(); ok {
			return c
		}
		p.i = save
	case p.is("in") && p.isAt(1, "segment"):
		p.next()
		p.next()
		name, nt := p.name("segment")
		return &Cond{Op: CSegment, Segment: name, Pos: nt.pos}
	case p.is("performed"):
		p.next()
		ref := p.eventRef()
		return &Cond{Op: CPerformed, Agg: &Agg{Func: FnCount, Event: ref.Event, Scope: ref.Scope, Where: ref.Where, Window: p.window(true), Pos: ref.Pos}, Pos: t.pos}
	case p.is("did"):
		p.next()
		p.expect("not", "\"not perform\"")
		p.expect("perform", "\"perform\"")
		ref := p.eventRef()
		return &Cond{Op: CNotPerformed, Agg: &Agg{Func: FnCount, Event: ref.Event, Scope: ref.Scope, Where: ref.Where, Window: p.window(true), Pos: ref.Pos}, Pos: t.pos}
	case t.kind == tString:
		first := p.eventRef()
		p.expect("not", "\"not followed by\" after an event name (or use count of \"Event\" ...)")
		p.expect("followed", "\"followed by\"")
		p.expect("by", "\"by\"")
		then := p.eventRef()
		c := &Cond{Op: CNotFollowed, First: first, Then: then, Pos: t.pos}
		switch {
		case p.accept("within"):
			c.Within = p.span()
		case p.is("for"):
			p.next()
			p.expect("at", "\"at least\" and a time span (for at least 4 hours)")
			p.expect("least", "\"least\" and a time span (for at least 4 hours)")
			c.For = p.span()
		}
		if c.Window = p.window(false); c.Window == nil {
			p.failAt(p.peek(), "expected within SPAN, for at least SPAN or the window (in last N days) after \"not followed by\" %s, found %s", strconv.Quote(then.Event), p.peek())
		}
		return c
	case p.is("anniversary"):
		p.next()
		p.expect("of", "\"of\"")
		pt := p.next()
		if pt.kind != tIdent || !strings.HasPrefix(pt.text, "traits.") {
			p.failAt(pt, "expected a profile date trait such as traits.birthday, found %s", pt)
		}
		p.expect("within", "\"within next N days\"")
		p.expect("next", "\"next\"")
		s := p.span()
		return &Cond{Op: CAnniversary, Profile: strings.TrimPrefix(pt.text, "traits."), Within: s, Pos: t.pos}
	case t.kind == tIdent && strings.HasPrefix(t.text, "traits.") && (p.isAt(1, "more") || p.isAt(1, "within")):
		p.next()
		name := strings.TrimPrefix(t.text, "traits.")
		if p.accept("more") {
			p.expect("than", "\"than\"")
			s := p.span()
			p.expect("ago", "\"ago\"")
			return &Cond{Op: CAgo, Profile: name, Within: s, Pos: t.pos}
		}
		p.next()
		if p.accept("next") {
			// "traits.birthday within next 7 days" reads as the
			// anniversary; canonical text spells it out.
			return &Cond{Op: CAnniversary, Profile: name, Within: p.span(), Pos: t.pos}
		}
		p.expect("last", "\"last\" or \"next\" (traits.X within last N days, traits.X within next N days)")
		return &Cond{Op: CWithinLast, Profile: name, Within: p.span(), Pos: t.pos}
	}
	if _, ok := rankFuncs[t.text]; ok && t.kind == tIdent && p.isAt(1, "of") {
		// rank of T, percentile of T, quintile of T ... OP N
		p.next()
		p.next()
		c := &Cond{Op: CRank, Rank: p.rank(t.text, t.pos), Pos: t.pos}
		c.Cmp, c.Value = p.cmpOp()
		return c
	}
	e := p.expr(ctxCond)
	switch {
	case p.is("in") && (p.isAt(1, "top") || p.isAt(1, "bottom")):
		// T in top P% [among S]
		if e.Op != ExprTrait {
			p.failAt(p.peek(), "in top / in bottom ranks a computed trait by its name (spend_365d in top 20%%), not %s", FormatExpr(e))
		}
		p.next()
		fn := p.next().text
		n := p.next()
		if n.kind != tNumber {
			p.failAt(n, "expected a percentage such as 20%% after in %s, found %s", fn, n)
		}
		v := p.number(n, 1)
		p.expect("%", `"%" after the percentage`)
		r := &Rank{Func: fn, Trait: e.Name, Pos: e.Pos}
		if p.accept("among") {
			r.Among, _ = p.name("segment")
		}
		return &Cond{Op: CRank, Rank: r, Value: v, Pos: e.Pos}
	case p.is("more") && p.isAt(1, "than"):
		// A date value: last time of "X" more than 30 days ago.
		p.next()
		p.next()
		s := p.span()
		p.expect("ago", "\"ago\"")
		return &Cond{Op: CAgo, Left: e, Within: s, Pos: e.Pos}
	case p.is("within") && p.isAt(1, "last"):
		p.next()
		p.next()
		return &Cond{Op: CWithinLast, Left: e, Within: p.span(), Pos: e.Pos}
	}
	c := &Cond{Op: CCmp, Left: e, Pos: e.Pos}
	c.Cmp, c.Value, c.Right = p.cmpExpr(ctxCond)
	return c
}

var rankFuncs = map[string]bool{RankRank: true, RankPercentile: true, RankQuartile: true, RankQuintile: true, RankDecile: true}

// rank parses what follows "FUNC of": the trait and its population.
func (p *parser) rank(fn string, pos Pos) *Rank {
	name, _ := p.name("computed trait")
	r := &Rank{Func: fn, Trait: name, Pos: pos}
	if p.accept("among") {
		r.Among, _ = p.name("segment")
	}
	return r
}

// cmpExpr parses a comparison operator and its operand: a literal (the
// Value, as before expressions) or an expression (the Right side).
func (p *parser) cmpExpr(ctx exprCtx) (string, any, *Expr) {
	t := p.peek()
	if t.kind == tPunct && (t.text == "=" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=") || p.is("contains") {
		p.next()
		r := p.expr(ctx)
		if v, ok := exprLiteral(r); ok {
			return t.text, v, nil
		}
		return t.text, nil, r
	}
	cmp, v := p.cmpOp()
	return cmp, v, nil
}

// exprLiteral is the literal value of a constant expression.
func exprLiteral(e *Expr) (any, bool) {
	switch e.Op {
	case ExprNum:
		return e.Num, true
	case ExprString:
		return e.Str, true
	case ExprBool:
		return e.Bool, true
	}
	return nil, false
}

func (p *parser) tryParenFilter() (f *Filter, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if b, isBail := r.(bail); !isBail || b.final {
				panic(r)
			}
			f, ok = nil, false
		}
	}()
	defer p.nest(p.next())()
	f = p.filter()
	p.expect(")", "\")\"")
	if p.afterParenIsValue() {
		return nil, false
	}
	return f, true
}

// afterParenIsValue reports whether what follows a closing parenthesis
// makes it arithmetic or a value compared: an operator or a comparison.
func (p *parser) afterParenIsValue() bool {
	n := p.peek()
	if n.kind == tPunct && strings.Contains("= != < <= > >= + - * /", n.text) && n.text != "" && !p.is("(") {
		return true
	}
	return p.is("contains") || p.is("exists") || (p.is("in") && p.isAt(1, "[")) || (p.is("not") && p.isAt(1, "exists"))
}

func (p *parser) tryParenCond() (c *Cond, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if b, isBail := r.(bail); !isBail || b.final {
				panic(r)
			}
			c, ok = nil, false
		}
	}()
	defer p.nest(p.next())()
	c = p.cond()
	p.expect(")", "\")\"")
	n := p.peek()
	if n.kind == tPunct && strings.Contains("= != < <= > >= + - * /", n.text) && n.text != "" && !p.is("(") {
		return nil, false
	}
	if p.is("contains") || p.is("exists") || (p.is("in") && p.isAt(1, "[")) {
		return nil, false
	}
	return c, true
}

func (p *parser) eventRef() *EventRef {
	t := p.next()
	if t.kind != tString {
		p.failAt(t, "expected a quoted event name, found %s", t)
	}
	r := &EventRef{Event: t.text, Pos: t.pos}
	r.Scope = p.scope()
	if p.accept("where") {
		r.Where = p.filter()
	}
	return r
}

// scope parses the clauses that limit an event reference, in any order,
// each at most once: from source "webstore", at store "york" (or at
// location), in currency GBP; each takes one value or a [list].
func (p *parser) scope() *Scope {
	var s *Scope
	for {
		t := p.peek()
		var list *[]string
		var what string
		if s == nil {
			s = &Scope{Pos: t.pos}
		}
		switch {
		case p.is("from") && p.isAt(1, "source"):
			list, what = &s.Sources, "source"
		case p.is("at") && (p.isAt(1, "store") || p.isAt(1, "location")):
			list, what = &s.Stores, "store"
		case p.is("in") && p.isAt(1, "currency"):
			list, what = &s.Currencies, "currency"
		default:
			if s.Sources == nil && s.Stores == nil && s.Currencies == nil {
				return nil
			}
			return s
		}
		if *list != nil {
			p.failAt(t, "the %s is limited twice; list the values once: %s %s [\"a\", \"b\"]", what, t.text, p.peekN(1).text)
		}
		p.next()
		p.next()
		one := func() string {
			if what == "currency" {
				return p.currency()
			}
			return p.str(what + " id")
		}
		if p.accept("[") {
			*list = []string{}
			for !p.is("]") {
				*list = append(*list, one())
				if !p.accept(",") {
					break
				}
			}
			p.expect("]", "\"]\" closing the list")
		} else {
			*list = []string{one()}
		}
	}
}

// currency reads a currency code, bare (GBP) or quoted ("GBP"); Check
// validates it.
func (p *parser) currency() string {
	t := p.next()
	if (t.kind != tIdent && t.kind != tString) || strings.Contains(t.text, ".") {
		p.failAt(t, "expected a currency code such as GBP, found %s", t)
	}
	return t.text
}
