package eval

import (
	"strings"

	"github.com/kiln-cdp/kiln/rule"
)

// Filter ops, compiled.
const (
	fAnd uint8 = iota
	fOr
	fNot
	fCmp
)

type cfilter struct {
	op   uint8
	kids []*cfilter
	item bool     // path is read from the current line item
	path []string // after "properties" or after the item array
	cmp  string
	lit  value
	list []value
}

func compileFilter(f *rule.Filter, arr *string) *cfilter {
	c := &cfilter{}
	switch f.Op {
	case rule.FAnd, rule.FOr, rule.FNot:
		c.op = map[string]uint8{rule.FAnd: fAnd, rule.FOr: fOr, rule.FNot: fNot}[f.Op]
		for _, k := range f.Args {
			c.kids = append(c.kids, compileFilter(k, arr))
		}
	default:
		c.op = fCmp
		c.cmp = f.Cmp
		c.lit, c.list = literal(f.Value)
		segs := strings.Split(f.Path, ".")
		c.path = segs[1:]
		if a := rule.ItemArray(f.Path); a != "" {
			c.item = true
			*arr = a
		}
	}
	return c
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

func (f *cfilter) eval(props, item map[string]any) bool {
	switch f.op {
	case fAnd:
		for _, k := range f.kids {
			if !k.eval(props, item) {
				return false
			}
		}
		return true
	case fOr:
		for _, k := range f.kids {
			if k.eval(props, item) {
				return true
			}
		}
		return false
	case fNot:
		return !f.kids[0].eval(props, item)
	}
	src := props
	if f.item {
		src = item
	}
	x := lookup(src, f.path)
	if f.cmp == "contains" {
		return containsAny(x, f.lit)
	}
	return compare(toValue(x), f.cmp, f.lit, f.list)
}

// extract evaluates a feature on one event's properties: whether the
// event matches, and the values it contributes (appended to buf). Line
// items are filtered one by one: with an item value path every matching
// item contributes its value; otherwise the event matches when at least
// one item passes.
func (f *feature) extract(props map[string]any, buf []value) (bool, []value) {
	if f.arr == "" {
		if f.filter != nil && !f.filter.eval(props, nil) {
			return false, buf
		}
		if f.path != nil {
			buf = f.keep(buf, toValue(lookup(props, f.path)))
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
		if f.filter != nil && !f.filter.eval(props, item) {
			continue
		}
		matched = true
		if !f.itemPath {
			break
		}
		buf = f.keep(buf, toValue(lookup(item, f.path)))
	}
	if matched && f.path != nil && !f.itemPath {
		buf = f.keep(buf, toValue(lookup(props, f.path)))
	}
	return matched, buf
}

// keep appends v if the feature's encoding stores it: numbers-only
// features drop strings (and keep, as overflow, numbers too large for a
// record word), and nulls are never values.
func (f *feature) keep(buf []value, v value) []value {
	if v.kind == kNull {
		return buf
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
