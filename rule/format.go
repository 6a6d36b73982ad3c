package rule

import (
	"strconv"
	"strings"
)

// Format prints a definition set in the canonical text form; Parse(Format(s))
// yields s again (positions aside).
func Format(s *Set) string {
	var b strings.Builder
	for i, d := range s.Defs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(FormatDef(d))
	}
	return b.String()
}

// FormatDef prints one definition, ending with a newline.
func FormatDef(d *Def) string {
	var b strings.Builder
	b.WriteString(d.Kind + " " + d.Name)
	if d.Title != "" {
		b.WriteString(" " + strconv.Quote(d.Title))
	}
	switch {
	case d.Kind == KindTrait && d.Value != nil:
		b.WriteString(" = " + FormatExpr(d.Value))
	case d.Static:
		b.WriteString(" static")
	case d.Cond != nil:
		b.WriteString(" {\n")
		if (d.Cond.Op == CAnd || d.Cond.Op == COr) && len(d.Cond.Args) > 1 {
			for i, a := range d.Cond.Args {
				b.WriteString("  ")
				if i > 0 {
					b.WriteString(d.Cond.Op + " ")
				}
				b.WriteString(condOperand(a, d.Cond.Op))
				b.WriteString("\n")
			}
		} else {
			b.WriteString("  " + FormatCond(d.Cond) + "\n")
		}
		b.WriteString("}")
	}
	b.WriteString("\n")
	if d.Description != "" {
		b.WriteString("  description " + strconv.Quote(d.Description) + "\n")
	}
	if f := d.Freshness; f != nil {
		b.WriteString("  freshness " + f.Mode)
		switch f.Mode {
		case FreshEvery:
			if f.Every != nil {
				b.WriteString(" " + formatSpan(f.Every))
			}
		case FreshCron:
			b.WriteString(" " + strconv.Quote(f.Cron))
			if f.TZ != "" {
				b.WriteString(" tz " + strconv.Quote(f.TZ))
			}
		}
		b.WriteString("\n")
	}
	if d.Backfill != "" {
		b.WriteString("  backfill " + d.Backfill + "\n")
	}
	return b.String()
}

func formatSpan(s *Span) string { return strconv.Itoa(s.N) + " " + s.Unit }

// FormatExpr prints a value expression.
func FormatExpr(e *Expr) string { return formatExpr(e, 0) }

func exprPrec(op string) int {
	switch op {
	case ExprAdd, ExprSub:
		return 1
	case ExprMul, ExprDiv:
		return 2
	}
	return 3
}

func formatExpr(e *Expr, outer int) string {
	if e == nil {
		return "<nil>"
	}
	switch e.Op {
	case ExprAgg:
		return FormatAgg(e.Agg)
	case ExprTrait:
		return e.Name
	case ExprProfile:
		if e.Func != "" {
			return e.Func + "(traits." + canonPath(e.Name) + ")"
		}
		return "traits." + canonPath(e.Name)
	case ExprNum:
		return formatNum(e.Num)
	case ExprString:
		return strconv.Quote(e.Str)
	case ExprBool:
		return strconv.FormatBool(e.Bool)
	case ExprProp:
		return canonPath(e.Name)
	case ExprCall:
		parts := make([]string, len(e.Args))
		for i, a := range e.Args {
			parts[i] = formatExpr(a, 0)
		}
		return e.Func + "(" + strings.Join(parts, ", ") + ")"
	}
	p := exprPrec(e.Op)
	if len(e.Args) != 2 {
		return "<bad " + e.Op + ">"
	}
	// Left-associative: the right operand needs parentheses at equal
	// precedence (a - (b - c)).
	s := formatExpr(e.Args[0], p) + " " + e.Op + " " + formatExpr(e.Args[1], p+1)
	if p < outer {
		return "(" + s + ")"
	}
	return s
}

func formatNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// FormatAgg prints an aggregate.
func FormatAgg(a *Agg) string {
	if a == nil {
		return "<nil>"
	}
	s := a.Func
	switch a.Func {
	case FnFirstTime:
		s = "first time"
	case FnLastTime:
		s = "last time"
	}
	if a.Path != "" {
		s += "(" + canonPath(a.Path)
		if a.Convert != "" {
			s += " in " + formatCurrency(a.Convert)
		}
		s += ")"
	}
	s += " of " + strconv.Quote(a.Event) + FormatScope(a.Scope)
	if a.Where != nil {
		s += " where " + FormatFilter(a.Where)
	}
	return s + " " + FormatWindow(a.Window)
}

// FormatWindow prints a window.
func FormatWindow(w *Window) string {
	if w == nil {
		return "<no window>"
	}
	switch w.Kind {
	case WinAll:
		return "all time"
	case WinLast:
		return "in last " + strconv.Itoa(w.N) + " " + w.Unit
	case WinToday:
		return "today"
	case WinWeek, WinMonth, WinYear:
		return "this " + w.Kind
	case WinBetween:
		return "between " + strconv.Quote(w.From) + " and " + strconv.Quote(w.To)
	}
	return "<window " + w.Kind + ">"
}

// FormatFilter prints an event filter.
func FormatFilter(f *Filter) string { return formatFilter(f, "") }

func formatFilter(f *Filter, outer string) string {
	switch f.Op {
	case FCmp:
		if f.Func != "" {
			return f.Func + "(" + canonPath(f.Path) + ") " + formatCmp(f.Cmp, f.Value)
		}
		return canonPath(f.Path) + " " + formatCmp(f.Cmp, f.Value)
	case FExpr:
		if f.Right != nil {
			return FormatExpr(f.Left) + " " + f.Cmp + " " + FormatExpr(f.Right)
		}
		return FormatExpr(f.Left) + " " + formatCmp(f.Cmp, f.Value)
	case FItems:
		if f.Func == FnAny || f.Func == FnAll {
			if f.Where == nil {
				return "<bad " + f.Func + ">"
			}
			return f.Func + "(" + FormatFilter(f.Where) + ")"
		}
		s := f.Func + "(" + canonPath(f.Path)
		if f.Where != nil {
			s += " where " + FormatFilter(f.Where)
		}
		return s + ") " + formatCmp(f.Cmp, f.Value)
	case FNot:
		if len(f.Args) != 1 {
			return "<bad not>"
		}
		return "not " + formatFilter(f.Args[0], FNot)
	case FAnd, FOr:
		parts := make([]string, len(f.Args))
		for i, a := range f.Args {
			parts[i] = formatFilter(a, f.Op)
		}
		s := strings.Join(parts, " "+f.Op+" ")
		if outer != "" && !(outer == FOr && f.Op == FAnd) {
			return "(" + s + ")"
		}
		return s
	}
	return "<filter " + f.Op + ">"
}

func formatCmp(cmp string, v any) string {
	switch cmp {
	case CmpExists, CmpNotExists:
		return cmp
	case CmpIn:
		list, _ := v.([]any)
		parts := make([]string, len(list))
		for i, x := range list {
			parts[i] = formatValue(x)
		}
		return "in [" + strings.Join(parts, ", ") + "]"
	}
	return cmp + " " + formatValue(v)
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return formatNum(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	return "<value>"
}

// FormatCond prints a segment condition.
func FormatCond(c *Cond) string { return formatCond(c, "") }

// condOperand prints one line of a top-level and/or list; nested and/or
// get parentheses even where precedence would not need them, for readers.
func condOperand(c *Cond, outer string) string {
	if c.Op == CAnd || c.Op == COr {
		return "(" + formatCond(c, "") + ")"
	}
	return formatCond(c, outer)
}

func formatCond(c *Cond, outer string) string {
	if c == nil {
		return "<nil>"
	}
	switch c.Op {
	case CAnd, COr:
		parts := make([]string, len(c.Args))
		for i, a := range c.Args {
			parts[i] = formatCond(a, c.Op)
		}
		s := strings.Join(parts, " "+c.Op+" ")
		if outer != "" && !(outer == COr && c.Op == CAnd) {
			return "(" + s + ")"
		}
		return s
	case CNot:
		if len(c.Args) != 1 {
			return "<bad not>"
		}
		return "not " + formatCond(c.Args[0], CNot)
	case CCmp:
		left := FormatExpr(c.Left)
		if startsWithString(c.Left) {
			// A condition starting with a quoted string reads as an
			// event name ("A" not followed by ...).
			left = "(" + left + ")"
		}
		if c.Right != nil {
			return left + " " + c.Cmp + " " + FormatExpr(c.Right)
		}
		return left + " " + formatCmp(c.Cmp, c.Value)
	case CSegment:
		return "in segment " + c.Segment
	case CPerformed, CNotPerformed:
		a := c.Agg
		if a == nil {
			return "<bad " + c.Op + ">"
		}
		s := "performed "
		if c.Op == CNotPerformed {
			s = "did not perform "
		}
		s += strconv.Quote(a.Event) + FormatScope(a.Scope)
		if a.Where != nil {
			s += " where " + FormatFilter(a.Where)
		}
		return s + " " + FormatWindow(a.Window)
	case CNotFollowed:
		if c.First == nil || c.Then == nil {
			return "<bad not_followed>"
		}
		s := formatRef(c.First) + " not followed by " + formatRef(c.Then)
		if c.Within != nil {
			s += " within " + formatSpan(c.Within)
		}
		if c.For != nil {
			s += " for at least " + formatSpan(c.For)
		}
		return s + " " + FormatWindow(c.Window)
	case CRank:
		return FormatRank(c)
	case CAnniversary:
		return "anniversary of traits." + canonPath(c.Profile) + " within next " + spanOr(c.Within)
	case CAgo:
		return dateSubject(c) + " more than " + spanOr(c.Within) + " ago"
	case CWithinLast:
		return dateSubject(c) + " within last " + spanOr(c.Within)
	}
	return "<cond " + c.Op + ">"
}

// dateSubject is what ago and within_last read: a profile trait or a
// date value.
func dateSubject(c *Cond) string {
	if c.Left != nil {
		return FormatExpr(c.Left)
	}
	return "traits." + canonPath(c.Profile)
}

// startsWithString reports whether an expression's text starts with a
// quoted string.
func startsWithString(e *Expr) bool {
	for e != nil {
		switch e.Op {
		case ExprString:
			return true
		case ExprAdd, ExprSub, ExprMul, ExprDiv:
			if len(e.Args) == 0 {
				return false
			}
			e = e.Args[0]
		default:
			return false
		}
	}
	return false
}

func spanOr(s *Span) string {
	if s == nil {
		return "<no span>"
	}
	return formatSpan(s)
}

func formatRef(r *EventRef) string {
	s := strconv.Quote(r.Event) + FormatScope(r.Scope)
	if r.Where != nil {
		s += " where " + FormatFilter(r.Where)
	}
	return s
}

// FormatScope prints a scope's clauses with a leading space ("" for
// none), in the canonical order: source, store, currency.
func FormatScope(sc *Scope) string {
	if sc == nil {
		return ""
	}
	var b strings.Builder
	clause := func(kw string, list []string, quote bool) {
		if list == nil {
			return
		}
		b.WriteString(" " + kw + " ")
		q := func(v string) string {
			if quote {
				return strconv.Quote(v)
			}
			return formatCurrency(v)
		}
		if len(list) == 1 {
			b.WriteString(q(list[0]))
			return
		}
		b.WriteString("[")
		for i, v := range list {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(q(v))
		}
		b.WriteString("]")
	}
	clause("from source", sc.Sources, true)
	clause("at store", sc.Stores, true)
	clause("in currency", sc.Currencies, false)
	return b.String()
}

func formatCurrency(c string) string {
	if currencyRE.MatchString(c) && !reserved[c] {
		return c
	}
	return strconv.Quote(c)
}

// canonPath prints a path with quotes only where needed (a path from
// JSON may quote a plain name); a path that does not split is printed as
// it is, for Check to report.
func canonPath(p string) string {
	if segs, ok := SplitPath(p); ok {
		return JoinPath(segs)
	}
	return p
}

// FormatRank is a population-relative condition's text.
func FormatRank(c *Cond) string {
	r := c.Rank
	if r == nil {
		return "<bad rank>"
	}
	among := ""
	if r.Among != "" {
		among = " among " + r.Among
	}
	if r.Func == RankTop || r.Func == RankBottom {
		return r.Trait + " in " + r.Func + " " + formatValue(c.Value) + "%" + among
	}
	return r.Func + " of " + r.Trait + among + " " + formatCmp(c.Cmp, c.Value)
}
