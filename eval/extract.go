package eval

import (
	"slices"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln/rule"
)

// Filter ops, compiled.
const (
	fAnd uint8 = iota
	fOr
	fNot
	fCmp
	fItems
	fExpr
)

type cfilter struct {
	op     uint8
	kids   []*cfilter
	item   bool     // path is read from the current line item
	path   []string // after "properties" or after the item array
	length bool     // compare length(path)
	cmp    string
	lit    value
	list   []value
	// fItems: fn over the items of arr (the value at path of each, for
	// all but count of items, any and all) that pass where.
	fn    string
	arr   string
	where *cfilter
	// fExpr: left cmp right, or left cmp lit/list (right nil).
	left, right *xexpr
}

// compileFilter compiles an event filter; arr receives the line-item
// array it reads per item; loc is the zone of date functions.
func compileFilter(f *rule.Filter, arr *string, loc *time.Location) *cfilter {
	c := &cfilter{}
	switch f.Op {
	case rule.FAnd, rule.FOr, rule.FNot:
		c.op = map[string]uint8{rule.FAnd: fAnd, rule.FOr: fOr, rule.FNot: fNot}[f.Op]
		for _, k := range f.Args {
			c.kids = append(c.kids, compileFilter(k, arr, loc))
		}
	case rule.FItems:
		// It reads its own array whatever the enclosing filter looks
		// at: not an item filter of the feature.
		c.op = fItems
		c.fn = f.Func
		c.cmp = f.Cmp
		c.lit, c.list = literal(f.Value)
		if f.Func == rule.FnAny || f.Func == rule.FnAll || !strings.Contains(f.Path, ".") {
			c.arr = f.Path
		} else {
			c.arr = rule.ItemArray(f.Path)
			c.path = pathAfter(f.Path)
		}
		if f.Where != nil {
			var inner string
			c.where = compileFilter(f.Where, &inner, loc)
		}
	case rule.FExpr:
		c.op = fExpr
		c.cmp = f.Cmp
		c.lit, c.list = literal(f.Value)
		noNode := func(*rule.Expr) int { panic("eval: an event filter reads no computed trait") }
		c.left = compileX(f.Left, loc, arr, noNode)
		switch {
		case f.Right != nil:
			c.right = compileX(f.Right, loc, arr, noNode)
		case f.Cmp != rule.CmpIn && f.Cmp != rule.CmpExists && f.Cmp != rule.CmpNotExists:
			// A literal Value (from JSON) is a constant right side: the
			// text form reads it so.
			c.right = &xexpr{op: xLit, lit: c.lit}
		}
	default:
		c.op = fCmp
		c.cmp = f.Cmp
		c.length = f.Func == rule.FnLength
		c.lit, c.list = literal(f.Value)
		c.path = pathAfter(f.Path)
		if a := rule.ItemArray(f.Path); a != "" {
			c.item = true
			*arr = a
		}
	}
	return c
}

// pathAfter splits a checked path and drops its first segment
// ("properties" or the item array).
func pathAfter(p string) []string {
	segs, _ := rule.SplitPath(p)
	return segs[1:]
}

func lookup(m map[string]any, path []string) any {
	if len(path) == 1 {
		return m[path[0]] // the common case: properties.revenue
	}
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// eval evaluates the filter on an event's properties, the line item
// being looked at (or nil) and the profile's traits as the event
// arrives (tr).
func (f *cfilter) eval(props, item, tr map[string]any) bool {
	switch f.op {
	case fAnd:
		for _, k := range f.kids {
			if !k.eval(props, item, tr) {
				return false
			}
		}
		return true
	case fOr:
		for _, k := range f.kids {
			if k.eval(props, item, tr) {
				return true
			}
		}
		return false
	case fNot:
		return !f.kids[0].eval(props, item, tr)
	}
	switch f.op {
	case fItems:
		return f.items(props, tr)
	case fExpr:
		env := xenv{props: props, item: item, traits: tr}
		l := f.left.eval(&env)
		if f.right == nil {
			return compareX(l, f.cmp, nil, f.lit, f.list)
		}
		if l.kind == kNull {
			return false // nothing compares with a missing value: skip the right side
		}
		r := f.right.eval(&env)
		return compareX(l, f.cmp, &r, null, nil)
	}
	src := props
	if f.item {
		src = item
	}
	x := lookup(src, f.path)
	if f.length {
		return compare(lengthOf(x), f.cmp, f.lit, f.list)
	}
	if f.cmp == "contains" {
		return containsAny(x, f.lit)
	}
	return compare(toValue(x), f.cmp, f.lit, f.list)
}

// items evaluates a line-item condition on one event: the aggregate
// over the items of f.arr that pass f.where, compared with the literal.
// Items that are not objects are skipped; sum, avg, min and max read
// numbers (other values are skipped, an overflowing one makes the
// result overflow, which compares false); count(arr) counts items,
// count(arr.field) the items with a value there; distinct counts
// distinct values (by hash, as the distinct aggregate does); any needs
// one passing item, all needs items and every one passing.
func (f *cfilter) items(props, tr map[string]any) bool {
	list, _ := props[f.arr].([]any)
	var (
		n, cnt int64
		sum    = num{d: 1}
		over   bool
		mm     value
		hbuf   [16]uint64
		hashes = hbuf[:0]
	)
	for _, it := range list {
		item, _ := it.(map[string]any)
		if item == nil {
			continue
		}
		pass := f.where == nil || f.where.eval(props, item, tr)
		switch f.fn {
		case rule.FnAny:
			if pass {
				return true
			}
			continue
		case rule.FnAll:
			if !pass {
				return false
			}
			n++
			continue
		}
		if !pass {
			continue
		}
		if f.path == nil { // count(products)
			n++
			continue
		}
		v := objValue(lookup(item, f.path))
		switch f.fn {
		case rule.FnCount:
			if v.kind != kNull {
				n++
			}
		case rule.FnDistinct:
			if v.kind != kNull {
				if h := hashValue(v); !slices.Contains(hashes, h) {
					hashes = append(hashes, h)
				}
			}
		case rule.FnSum, rule.FnAvg:
			switch v.kind {
			case kNum:
				var ok bool
				if sum, ok = add(sum, v.dec()); !ok {
					over = true
				}
				cnt++
			case kOver:
				over = true
				cnt++
			}
		case rule.FnMin, rule.FnMax:
			switch {
			case v.kind == kOver || mm.kind == kOver:
				mm = overV
			case v.kind != kNum:
			case mm.kind == kNull, f.fn == rule.FnMin && cmpNum(v.dec(), mm.dec()) < 0, f.fn == rule.FnMax && cmpNum(v.dec(), mm.dec()) > 0:
				mm = v
			}
		}
	}
	var r value
	switch f.fn {
	case rule.FnAny:
		return false
	case rule.FnAll:
		return n > 0
	case rule.FnCount:
		r = numV(intNum(n))
	case rule.FnDistinct:
		r = numV(intNum(int64(len(hashes))))
	case rule.FnSum:
		r = numOr(sum, !over)
	case rule.FnAvg:
		switch {
		case cnt == 0:
			r = null
		case over:
			r = overV
		default:
			r = numOr(quo(sum.c, sum.s, cnt))
		}
	default:
		r = mm
	}
	return compare(r, f.cmp, f.lit, f.list)
}

// extract evaluates a feature on one event's properties: whether the
// event matches, and the values it contributes (appended to buf). Line
// items are filtered one by one: with an item value path every matching
// item contributes its value; otherwise the event matches when at least
// one item passes. tr is the profile's traits as the event arrives.
func (f *feature) extract(props, tr map[string]any, buf []value) (bool, []value) {
	if f.arr == "" {
		if f.filter != nil && !f.filter.eval(props, nil, tr) {
			return false, buf
		}
		if f.path != nil {
			buf = f.keep(buf, lookup(props, f.path))
		}
		return true, buf
	}
	items, _ := props[f.arr].([]any)
	matched := false
	for _, it := range items {
		item, _ := it.(map[string]any)
		if item == nil {
			continue
		}
		if f.filter != nil && !f.filter.eval(props, item, tr) {
			continue
		}
		matched = true
		if !f.itemPath {
			break
		}
		buf = f.keep(buf, lookup(item, f.path))
	}
	if matched && f.path != nil && !f.itemPath {
		buf = f.keep(buf, lookup(props, f.path))
	}
	return matched, buf
}

// keep appends x's value if the feature's encoding stores it:
// numbers-only features drop strings (and keep, as overflow, numbers too
// large for a record word), nulls are never values, and objects and
// lists are values only for count and distinct (by content).
func (f *feature) keep(buf []value, x any) []value {
	v := toValue(x)
	if v.kind == kNull {
		return buf
	}
	if v.kind == kObj {
		if f.enc != encHash {
			return buf
		}
		v = objValue(x)
	}
	if f.enc == encNum {
		switch v.kind {
		case kNum:
			if _, ok := wordNum(v.dec()); !ok {
				v = overV
			}
		case kOver:
		default:
			return buf
		}
	}
	return append(buf, v)
}
