package eval

import (
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln/rule"
)

// Node is one condition of a segment with its current value and why.
// Value is a Number (shown as users write it), string, bool or nil;
// Currency is set when it is money.
type Node struct {
	Condition string  `json:"condition"`
	Value     any     `json:"value,omitempty"`
	Currency  string  `json:"currency,omitempty"`
	Holds     bool    `json:"holds"`
	Why       string  `json:"why"`
	Children  []*Node `json:"children,omitempty"`
}

// Explain returns a segment's condition tree evaluated for the profile
// at now, with each node's value and why the profile is in or out. It
// does not modify st.
func (p *Program) Explain(st *State, prof *Profile, segment string, now time.Time) (*Node, error) {
	i, ok := p.segIdx[segment]
	if !ok {
		return nil, fmt.Errorf("eval: unknown segment %q", segment)
	}
	c := st.Clone()
	p.Advance(c, prof, now)
	s := p.segs[i]
	if s.static {
		in := prof.inStatic(s.name)
		why := "not listed"
		if in {
			why = "listed"
		}
		return &Node{Condition: "static segment " + s.name, Holds: in, Why: why}, nil
	}
	env := &condEnv{p: p, st: c, prof: prof, now: c.now}
	return env.explain(s.cond), nil
}

func (e *condEnv) explain(c *cnode) *Node {
	n := &Node{Condition: c.text}
	switch c.op {
	case cAnd, cOr:
		falses := 0
		for _, k := range c.kids {
			kn := e.explain(k)
			n.Children = append(n.Children, kn)
			if !kn.Holds {
				falses++
			}
		}
		if c.op == cAnd {
			n.Holds = falses == 0
			if n.Holds {
				n.Why = "all conditions hold"
			} else {
				n.Why = fmt.Sprintf("%d of %d conditions do not hold", falses, len(c.kids))
			}
		} else {
			n.Holds = falses < len(c.kids)
			if n.Holds {
				n.Why = fmt.Sprintf("%d of %d conditions hold", len(c.kids)-falses, len(c.kids))
			} else {
				n.Why = "no condition holds"
			}
		}
		return n
	case cNot:
		kn := e.explain(c.kids[0])
		n.Children = []*Node{kn}
		n.Holds = !kn.Holds
		n.Why = fmt.Sprintf("the negated condition is %v", kn.Holds)
		return n
	}
	var ev []Evidence
	e.evidence = &ev
	n.Holds = e.eval(c)
	e.evidence = nil
	var v string
	switch {
	case len(ev) == 1 && ev[0].Value.IsOverflow():
		v = "value overflow (beyond the exact range)"
	case len(ev) == 1 && ev[0].Value.v.kind == kObj:
		v = "value " + ev[0].Value.String() // "an object of 2 keys", "a list of 3"
	case len(ev) == 1 && !ev[0].Value.IsNull():
		n.Value = ev[0].Value.Any()
		if num, ok := ev[0].Value.Number(); ok {
			n.Currency = num.Currency
			v = "value " + num.Display()
		} else {
			v = fmt.Sprintf("value %v", n.Value)
		}
	default:
		v = "no value"
	}
	switch c.op {
	case cAgg, cProfile:
		if c.op == cAgg && e.st != nil && e.p.aggs[c.node].kind == akNotFollowed {
			n.Why = e.p.sequenceWhy(e.st, e.p.aggs[c.node], e.now)
			break
		}
		if c.list != nil {
			n.Why = fmt.Sprintf("%s; needs %s %v", v, c.cmp, valuesString(c.list))
		} else if c.cmp == "exists" || c.cmp == "not exists" {
			n.Why = fmt.Sprintf("%s; needs %s", v, c.cmp)
		} else {
			lit := c.lit
			if c.op == cAgg && lit.kind == kNum && e.p.curs != nil {
				lit.str = e.p.curs[c.node] // a threshold is in the amount's currency: 500.00 GBP
			}
			n.Why = fmt.Sprintf("%s; needs %s %s", v, c.cmp, lit)
		}
		if c.op == cAgg {
			n.Why += e.filterTraitsWhy(c.node)
		}
	case cExpr:
		_, r, _ := e.exprLeaf(c)
		switch {
		case c.xr != nil:
			n.Why = fmt.Sprintf("%s; needs %s %s, the value of %s", v, c.cmp, r, rule.FormatExpr(c.rc.Right))
			if r.kind == kNull {
				n.Why = fmt.Sprintf("%s; %s has no value, so nothing compares", v, rule.FormatExpr(c.rc.Right))
			}
		case c.list != nil:
			n.Why = fmt.Sprintf("%s; needs %s %v", v, c.cmp, valuesString(c.list))
		case c.cmp == "exists" || c.cmp == "not exists":
			n.Why = fmt.Sprintf("%s; needs %s", v, c.cmp)
		default:
			n.Why = fmt.Sprintf("%s; needs %s %s", v, c.cmp, c.lit)
		}
	case cSeg:
		n.Why = fmt.Sprintf("member: %v", n.Holds)
	case cRank:
		n.Why = e.rankWhy(c, v)
	default:
		n.Why = e.dateWhy(c, v)
	}
	return n
}

// filterTraitsWhy names the profile traits an aggregate's event filter
// reads, with their values now: each event was judged with those it
// arrived with.
func (e *condEnv) filterTraitsWhy(node int) string {
	a := e.p.aggs[node]
	if a.kind != akWin && a.kind != akRun {
		return ""
	}
	paths := filterProfilePaths(e.p.feats[a.feat].where, nil)
	if len(paths) == 0 {
		return ""
	}
	var tr map[string]any
	if e.prof != nil {
		tr = e.prof.Traits
	}
	s := "; its filter reads"
	for i, p := range paths {
		segs, _ := rule.SplitPath(p)
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(" traits.%s (now %s)", p, toValue(lookup(tr, segs)))
	}
	return s + " as each event arrived"
}

// dateWhy says how far a date condition is from holding.
func (e *condEnv) dateWhy(c *cnode, v string) string {
	x := e.dateOf(c)
	if c.op == cAnniv {
		y, m, d, days, ok := e.p.nextAnniversary(x, e.now)
		if !ok {
			return v + "; not a date"
		}
		return fmt.Sprintf("next anniversary %04d-%02d-%02d, in %d days; needs fewer than %d", y, m, d, days, c.days)
	}
	t, ok := e.p.dateValue(x)
	if !ok {
		return v + "; not a date"
	}
	age := time.Duration(e.now-t) * time.Millisecond
	span := time.Duration(c.span) * time.Millisecond
	if c.op == cAgo {
		return fmt.Sprintf("%s was %s ago; needs more than %s", time.UnixMilli(t).In(e.p.loc).Format(time.RFC3339), roughly(age), roughly(span))
	}
	return fmt.Sprintf("%s was %s ago; needs less than %s", time.UnixMilli(t).In(e.p.loc).Format(time.RFC3339), roughly(age), roughly(span))
}

// roughly prints a duration in days, hours or minutes.
func roughly(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + roughly(-d)
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
	return fmt.Sprintf("%.0f minutes", d.Minutes())
}

func valuesString(vs []value) string {
	s := "["
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += v.String()
	}
	return s + "]"
}

// sequenceWhy says which events decide "A not followed by B": the A that
// stands unfollowed, or the latest A and the B that followed it.
func (p *Program) sequenceWhy(st *State, a *aggNode, now int64) string {
	at := func(t int64) string { return time.UnixMilli(t).In(p.loc).Format("2006-01-02T15:04:05.000Z07:00") }
	evA, evB := fmt.Sprintf("%q", p.feats[a.feat].event), fmt.Sprintf("%q", p.feats[a.featB].event)
	lo := now - a.span
	var as, bs []int64
	recs := p.recsOf(st)
	for i := 0; i < len(recs); i += recLen(recs, i) {
		t := int64(recs[i])
		if t <= lo || t > now {
			continue
		}
		if ok, _ := p.featVals(recs, i, a.feat); ok {
			as = append(as, t)
		}
		if ok, _ := p.featVals(recs, i, a.featB); ok {
			bs = append(bs, t)
		}
	}
	span := roughly(time.Duration(a.within) * time.Millisecond)
	if a.open {
		var lastA int64
		found := false
		for _, t := range as {
			if t+a.within <= now {
				lastA, found = t, true
			}
		}
		switch {
		case !found && a.within > 0 && len(as) > 0:
			return fmt.Sprintf("no %s in the window is %s old yet (the latest at %s)", evA, span, at(as[len(as)-1]))
		case !found:
			return fmt.Sprintf("no %s in the window", evA)
		}
		for _, b := range bs {
			if b >= lastA {
				return fmt.Sprintf("the latest %s, at %s, was followed by %s at %s", evA, at(lastA), evB, at(b))
			}
		}
		return fmt.Sprintf("%s at %s has no %s at or after it", evA, at(lastA), evB)
	}
	decided := 0
	for _, t := range as {
		if t+a.within > now {
			continue
		}
		decided++
		followed := false
		for _, b := range bs {
			if b >= t && b < t+a.within {
				followed = true
				break
			}
		}
		if !followed {
			return fmt.Sprintf("%s at %s had no %s within %s (by %s)", evA, at(t), evB, span, at(t+a.within))
		}
	}
	if decided == 0 {
		return fmt.Sprintf("no %s in the window is %s old yet", evA, span)
	}
	return fmt.Sprintf("each of %d %s %s followed by %s within %s", decided, evA, map[bool]string{true: "was", false: "were"}[decided == 1], evB, span)
}
