package eval

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln/rule"
)

// The naive evaluator's own interpreter of expressions, from the syntax
// tree (the compiled form is xexpr), so the property test checks both.
// The semantics are written down in expr.go.

// naiveComparison interprets "left cmp right" (or left cmp value, for
// in, exists and not exists) on an event (props, the item looked at) and
// the profile's traits; vals are node values (conditions).
func (p *Program) naiveComparison(left *rule.Expr, cmp string, right *rule.Expr, v any, props, item, tr map[string]any, vals []value) bool {
	l := p.naiveExpr(left, props, item, tr, vals)
	if right == nil {
		lit, list := literal(v)
		return compare(l, cmp, lit, list)
	}
	r := p.naiveExpr(right, props, item, tr, vals)
	if l.kind == kNull || r.kind == kNull {
		return false // a missing value decides nothing
	}
	return compare(l, cmp, r, nil)
}

// constExpr is the constant expression of a literal value.
func constExpr(v any) *rule.Expr {
	switch x := v.(type) {
	case float64:
		return &rule.Expr{Op: rule.ExprNum, Num: x}
	case string:
		return &rule.Expr{Op: rule.ExprString, Str: x}
	case bool:
		return &rule.Expr{Op: rule.ExprBool, Bool: x}
	}
	return &rule.Expr{Op: rule.ExprString} // unchecked; Check rejects other values
}

// naiveCondExpr is a condition's comparison of expressions: its left
// value, its right value and whether it holds.
func (p *Program) naiveCondExpr(c *rule.Cond, tr map[string]any, vals []value) (value, value, bool) {
	l := p.naiveExpr(c.Left, nil, nil, tr, vals)
	r := null
	if c.Right != nil {
		r = p.naiveExpr(c.Right, nil, nil, tr, vals)
	}
	return l, r, p.naiveComparison(c.Left, c.Cmp, c.Right, c.Value, nil, nil, tr, vals)
}

func (p *Program) naiveExpr(e *rule.Expr, props, item, tr map[string]any, vals []value) value {
	switch e.Op {
	case rule.ExprNum:
		return toValue(e.Num)
	case rule.ExprString:
		return value{kind: kStr, str: e.Str}
	case rule.ExprBool:
		return boolV(e.Bool)
	case rule.ExprProp:
		segs, _ := rule.SplitPath(e.Name)
		src := item
		if segs[0] == "properties" {
			src = props
		}
		return toValue(lookup(src, segs[1:]))
	case rule.ExprProfile:
		segs, _ := rule.SplitPath(e.Name)
		x := lookup(tr, segs)
		if e.Func == rule.FnLength {
			return lengthOf(x)
		}
		return toValue(x)
	case rule.ExprTrait:
		return noCurrency(vals[p.traitIdx[e.Name]])
	case rule.ExprAgg:
		return noCurrency(vals[p.aggKey["agg:"+rule.FormatAgg(e.Agg)]])
	case rule.ExprCall:
		args := make([]value, len(e.Args))
		for i, a := range e.Args {
			args[i] = p.naiveExpr(a, props, item, tr, vals)
		}
		return p.naiveCall(e.Func, args)
	}
	l := p.naiveExpr(e.Args[0], props, item, tr, vals)
	r := p.naiveExpr(e.Args[1], props, item, tr, vals)
	switch {
	case l.kind == kStr && r.kind == kStr:
		if e.Op == rule.ExprAdd {
			return value{kind: kStr, str: l.str + r.str}
		}
		return null
	case l.kind == kNull || r.kind == kNull || l.kind == kStr || r.kind == kStr || l.kind == kBool || r.kind == kBool || l.kind == kObj || r.kind == kObj:
		return null
	case e.Op == rule.ExprDiv && r.kind == kNum && cmpNum(r.dec(), intNum(0)) == 0:
		return null
	case l.kind == kOver || r.kind == kOver:
		return overV
	}
	ops := map[string]func(a, b num) (num, bool){rule.ExprAdd: add, rule.ExprSub: sub, rule.ExprMul: mul, rule.ExprDiv: div}
	n, ok := ops[e.Op](l.dec(), r.dec())
	if !ok {
		return overV
	}
	if n.d == 1 {
		n = n.norm()
	}
	return numV(n)
}

// noCurrency drops a number's currency: in an expression, money is a
// plain number.
func noCurrency(v value) value {
	if v.kind == kNum {
		v.str = ""
	}
	return v
}

func (p *Program) naiveCall(fn string, args []value) value {
	a := args[0]
	switch fn {
	case rule.FnLower:
		if a.kind == kStr {
			return value{kind: kStr, str: strings.ToLower(a.str)}
		}
		return null
	case rule.FnUpper:
		if a.kind == kStr {
			return value{kind: kStr, str: strings.ToUpper(a.str)}
		}
		return null
	case rule.FnTrim:
		if a.kind == kStr {
			return value{kind: kStr, str: strings.TrimSpace(a.str)}
		}
		return null
	case rule.FnLength:
		switch a.kind {
		case kStr:
			return numV(intNum(int64(utf8.RuneCountInString(a.str))))
		case kObj:
			return numV(intNum(int64(a.d)))
		}
		return null
	}
	date := func(v value) (y int, m time.Month, d int, wd time.Weekday, ok bool) {
		if v.kind != kStr {
			return
		}
		t, ok := rule.ParseDate(v.str, p.loc)
		if !ok {
			return
		}
		t = t.In(p.loc)
		return t.Year(), t.Month(), t.Day(), t.Weekday(), true
	}
	y, m, d, wd, ok := date(a)
	if !ok {
		return null
	}
	switch fn {
	case rule.FnYear:
		return numV(intNum(int64(y)))
	case rule.FnMonth:
		return numV(intNum(int64(m)))
	case rule.FnDay:
		return numV(intNum(int64(d)))
	case rule.FnDayOfWeek:
		iso := int64(wd)
		if wd == time.Sunday {
			iso = 7
		}
		return numV(intNum(iso))
	case rule.FnDaysBetween:
		y2, m2, d2, _, ok := date(args[1])
		if !ok {
			return null
		}
		return numV(intNum(civilDays(y2, int(m2), d2) - civilDays(y, int(m), d)))
	}
	return null
}

// civilDays numbers a calendar date (days since 1970-01-01 in the
// proleptic Gregorian calendar), by H. Hinnant's days_from_civil.
func civilDays(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
