package eval

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln/rule"
)

// Expressions (rule.ExprProp, ExprCall, string constants, + joining
// strings, and comparisons of two values) compiled for event filters and
// condition leaves. Semantics, shared with the naive evaluator's own
// interpreter (naiveExpr):
//   - a missing value is null; a function or an operator of a null, or of
//     a value of the wrong type, is null; x / 0 is null;
//   - + adds two numbers and joins two strings;
//   - a comparison of two values is false when either is null, for every
//     operator including != (nothing is known about a missing value);
//   - dates are "YYYY-MM-DD" (midnight in the evaluator's time zone) or
//     RFC 3339 strings; their parts are read in the evaluator's zone and
//     days_between counts calendar days there.

// Compiled expression ops.
const (
	xLit uint8 = iota
	xProp
	xTrait
	xNode
	xCall
	xArith
)

type xexpr struct {
	op     uint8
	lit    value
	item   bool     // xProp: read from the line item
	path   []string // xProp (after properties or the array), xTrait
	length bool     // xTrait: length(traits.PATH)
	node   int      // xNode
	fn     string   // xCall
	arith  byte     // xArith: + - * /
	args   []*xexpr
	loc    *time.Location // date functions
}

// xenv is what an expression reads.
type xenv struct {
	props, item, traits map[string]any
	node                func(int) value
}

// compileX compiles an expression; arr receives the line-item array an
// event filter's expression reads; node resolves computed traits and
// aggregates of a condition.
func compileX(e *rule.Expr, loc *time.Location, arr *string, node func(*rule.Expr) int) *xexpr {
	switch e.Op {
	case rule.ExprNum:
		return &xexpr{op: xLit, lit: toValue(e.Num)}
	case rule.ExprString:
		return &xexpr{op: xLit, lit: value{kind: kStr, str: e.Str}}
	case rule.ExprBool:
		return &xexpr{op: xLit, lit: boolV(e.Bool)}
	case rule.ExprProp:
		x := &xexpr{op: xProp, path: pathAfter(e.Name)}
		if a := rule.ItemArray(e.Name); a != "" {
			x.item = true
			*arr = a
		}
		return x
	case rule.ExprProfile:
		segs, _ := rule.SplitPath(e.Name)
		return &xexpr{op: xTrait, path: segs, length: e.Func == rule.FnLength}
	case rule.ExprAgg, rule.ExprTrait:
		return &xexpr{op: xNode, node: node(e)}
	case rule.ExprCall:
		x := &xexpr{op: xCall, fn: e.Func, loc: loc}
		for _, a := range e.Args {
			x.args = append(x.args, compileX(a, loc, arr, node))
		}
		return x
	}
	return &xexpr{op: xArith, arith: e.Op[0], args: []*xexpr{compileX(e.Args[0], loc, arr, node), compileX(e.Args[1], loc, arr, node)}}
}

func (x *xexpr) eval(env *xenv) value {
	switch x.op {
	case xLit:
		return x.lit
	case xProp:
		if x.item {
			return toValue(lookup(env.item, x.path))
		}
		return toValue(lookup(env.props, x.path))
	case xTrait:
		v := lookup(env.traits, x.path)
		if x.length {
			return lengthOf(v)
		}
		return toValue(v)
	case xNode:
		v := env.node(x.node)
		if v.kind == kNum {
			v.str = "" // a number's currency is not part of its value here
		}
		return v
	case xCall:
		if len(x.args) == 2 {
			return daysBetween(x.args[0].eval(env), x.args[1].eval(env), x.loc)
		}
		return call1(x.fn, x.args[0].eval(env), x.loc)
	}
	return arith(x.arith, x.args[0].eval(env), x.args[1].eval(env))
}

// arith is one operator of an expression: numbers exactly (as derived
// traits compute), + also joins two strings.
func arith(op byte, l, r value) value {
	if l.kind == kStr && r.kind == kStr && op == '+' {
		return value{kind: kStr, str: l.str + r.str}
	}
	if (l.kind != kNum && l.kind != kOver) || (r.kind != kNum && r.kind != kOver) {
		return null
	}
	if op == '/' && r.kind == kNum && r.c == 0 {
		return null
	}
	if l.kind == kOver || r.kind == kOver {
		return overV
	}
	var n num
	var ok bool
	switch op {
	case '+':
		n, ok = add(l.dec(), r.dec())
	case '-':
		n, ok = sub(l.dec(), r.dec())
	case '*':
		n, ok = mul(l.dec(), r.dec())
	default:
		n, ok = div(l.dec(), r.dec())
	}
	if ok && n.d == 1 {
		n = n.norm()
	}
	return numOr(n, ok)
}

// call1 is a function of one value.
func call1(fn string, v value, loc *time.Location) value {
	switch fn {
	case rule.FnLower, rule.FnUpper, rule.FnTrim:
		if v.kind != kStr {
			return null
		}
		switch fn {
		case rule.FnLower:
			v.str = strings.ToLower(v.str)
		case rule.FnUpper:
			v.str = strings.ToUpper(v.str)
		default:
			v.str = strings.TrimSpace(v.str)
		}
		return v
	case rule.FnLength:
		switch v.kind {
		case kStr:
			return numV(intNum(int64(utf8.RuneCountInString(v.str))))
		case kObj:
			return numV(intNum(int64(v.d)))
		}
		return null
	}
	t, ok := dateOf(v, loc)
	if !ok {
		return null
	}
	switch fn {
	case rule.FnYear:
		return numV(intNum(int64(t.Year())))
	case rule.FnMonth:
		return numV(intNum(int64(t.Month())))
	case rule.FnDay:
		return numV(intNum(int64(t.Day())))
	case rule.FnDayOfWeek:
		return numV(intNum(int64((int(t.Weekday())+6)%7 + 1)))
	}
	return null
}

// dateOf reads a date value in loc.
func dateOf(v value, loc *time.Location) (time.Time, bool) {
	if v.kind != kStr {
		return time.Time{}, false
	}
	t, ok := rule.ParseDate(v.str, loc)
	return t.In(loc), ok
}

// daysBetween counts the calendar days (in loc) from a's date to b's.
func daysBetween(a, b value, loc *time.Location) value {
	ta, ok1 := dateOf(a, loc)
	tb, ok2 := dateOf(b, loc)
	if !ok1 || !ok2 {
		return null
	}
	da := time.Date(ta.Year(), ta.Month(), ta.Day(), 0, 0, 0, 0, time.UTC)
	db := time.Date(tb.Year(), tb.Month(), tb.Day(), 0, 0, 0, 0, time.UTC)
	return numV(intNum(int64(db.Sub(da) / (24 * time.Hour))))
}

// compareX compares two values of expressions (r), or a value with a
// literal or list (exists, not exists, in): null on either side of a
// comparison of two values decides nothing, so it is false.
func compareX(l value, cmp string, r *value, lit value, list []value) bool {
	if r == nil {
		return compare(l, cmp, lit, list)
	}
	if l.kind == kNull || r.kind == kNull {
		return false
	}
	return compare(l, cmp, *r, nil)
}
