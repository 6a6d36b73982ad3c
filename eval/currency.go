package eval

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// minorUnits is the number of decimals a currency's amounts are shown
// with (ISO 4217): two for most, none for the yen or the won, three
// for the dinars of Bahrain, Iraq, Jordan, Kuwait, Libya and Tunisia
// and the Omani rial.
func minorUnits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// DefaultCurrency is the currency of amounts in events without
// properties.currency when Options.Currency is empty.
const DefaultCurrency = "USD"

// Rates are fixed conversion rates between currencies, for definitions
// that convert amounts (sum(properties.revenue in GBP)). Only rates that
// are given convert: 1 EUR = 0.86 GBP converts euros into pounds, not
// pounds into euros (an inverse such as 1/0.86 does not end, and the
// business states the rate it books, each way).
type Rates struct {
	m    map[[2]string]num
	text string // canonical, for the program's fingerprint
}

// ParseRates reads rates as a marketer writes them, separated by commas:
// "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP" (the leading 1 may be left out:
// "EUR=0.86 GBP"). Errors name the rate and what is wrong with it.
func ParseRates(s string) (Rates, error) {
	r := Rates{m: map[[2]string]num{}}
	var canon []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		from, to, ok := strings.Cut(item, "=")
		f := strings.Fields(from)
		t := strings.Fields(to)
		if len(f) == 2 && f[0] == "1" {
			f = f[1:]
		}
		if !ok || len(f) != 1 || len(t) != 2 {
			return Rates{}, fmt.Errorf("rate %q: want \"1 EUR = 0.86 GBP\"", item)
		}
		for _, c := range []string{f[0], t[1]} {
			if !isCurrencyCode(c) {
				return Rates{}, fmt.Errorf("rate %q: %q is not a three-letter currency code such as GBP", item, c)
			}
		}
		n, ok := parseNum([]byte(t[0]))
		if !ok || n.c <= 0 {
			return Rates{}, fmt.Errorf("rate %q: %q is not a positive number", item, t[0])
		}
		if f[0] == t[1] {
			return Rates{}, fmt.Errorf("rate %q converts %s into itself", item, f[0])
		}
		k := [2]string{f[0], t[1]}
		if _, dup := r.m[k]; dup {
			return Rates{}, fmt.Errorf("rate %q: %s into %s is given twice", item, f[0], t[1])
		}
		r.m[k] = n.norm()
		canon = append(canon, "1 "+f[0]+" = "+string(n.norm().appendText(nil, 0, false))+" "+t[1])
	}
	sort.Strings(canon)
	r.text = strings.Join(canon, ", ")
	return r, nil
}

// String returns the rates in ParseRates' form, sorted.
func (r Rates) String() string { return r.text }

// rate is the rate from one currency into another; 1 into itself.
func (r Rates) rate(from, to string) (num, bool) {
	if from == to {
		return intNum(1), true
	}
	n, ok := r.m[[2]string{from, to}]
	return n, ok
}

func isCurrencyCode(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// eventCurrency is the currency of an event's amounts: properties.currency
// (upper-cased: senders write "gbp" too), or def when it has none.
func eventCurrency(ev *kiln.Event, def string) string {
	if c, ok := ev.Properties["currency"].(string); ok {
		if c = strings.TrimSpace(c); c != "" {
			return strings.ToUpper(c)
		}
	}
	return def
}

// cscope is a compiled rule.Scope; the currency list may also hold the
// implicit currency of an amount that is not converted.
type cscope struct {
	sources, stores, currencies []string
}

func compileScope(s *rule.Scope, only string) *cscope {
	c := &cscope{}
	if s != nil {
		c.sources, c.stores, c.currencies = s.Sources, s.Stores, s.Currencies
	}
	if only != "" && c.currencies == nil {
		c.currencies = []string{only}
	}
	if c.sources == nil && c.stores == nil && c.currencies == nil {
		return nil
	}
	return c
}

// key identifies the scope in a feature key.
func (c *cscope) key() string {
	if c == nil {
		return ""
	}
	return strings.Join(c.sources, "\x01") + "\x02" + strings.Join(c.stores, "\x01") + "\x02" + strings.Join(c.currencies, "\x01")
}

// match reports whether an event is in scope; cur is its currency.
func (c *cscope) match(ev *kiln.Event, cur string) bool {
	if c.sources != nil && !slices.Contains(c.sources, ev.SourceID) {
		return false
	}
	if c.stores != nil && !slices.Contains(c.stores, ev.Store) {
		return false
	}
	return c.currencies == nil || slices.Contains(c.currencies, cur)
}

// convert converts amounts in place from one currency into another,
// each rounded half-even to the target's decimals; ok is false when
// there is no rate (the event is left out). A product out of range is
// overflow.
func (r Rates) convert(vals []value, from, to string) bool {
	if from == to {
		return true
	}
	rate, ok := r.rate(from, to)
	if !ok {
		return false
	}
	places := minorUnits(to)
	for i, v := range vals {
		if v.kind != kNum {
			continue
		}
		n, ok := mul(v.dec(), rate)
		var c int64
		if ok {
			c, ok = n.roundTo(places)
		}
		if !ok {
			vals[i] = overV
			continue
		}
		vals[i] = numV(num{c: c, d: 1, s: uint8(places)}.norm())
	}
	return true
}

// CurrencyCheck finds amounts that a program's aggregates would leave
// out: amounts in a currency other than the default for an aggregate
// that neither scopes nor converts them (it would otherwise silently
// read one currency of a mix), and amounts in a currency without a rate
// for one that converts. The engine shows it every event when
// definitions are applied and refuses them when Err is not nil. It is
// not safe for concurrent use.
type CurrencyCheck struct {
	p *Program
	// feature -> currency -> events
	seen map[int]map[string]int
}

// NewCurrencyCheck starts a check of the program against events.
func (p *Program) NewCurrencyCheck() *CurrencyCheck {
	return &CurrencyCheck{p: p, seen: map[int]map[string]int{}}
}

// Note looks at one event; it reports whether the event showed an
// aggregate an amount it leaves out in a currency not seen before.
func (c *CurrencyCheck) Note(ev *kiln.Event) bool {
	fresh := false
	p := c.p
	var buf [16]value
	for _, fi := range p.byEvent[ev.Name] {
		f := p.feats[fi]
		if !f.implicit && f.conv == "" {
			continue
		}
		cur := eventCurrency(ev, p.currency)
		if f.implicit {
			if cur == p.currency {
				continue
			}
			// In scope but for its currency?
			if s := f.scope; (s.sources != nil && !slices.Contains(s.sources, ev.SourceID)) || (s.stores != nil && !slices.Contains(s.stores, ev.Store)) {
				continue
			}
		} else {
			if _, ok := p.rates.rate(cur, f.conv); ok || (f.scope != nil && !f.scope.match(ev, cur)) {
				continue
			}
		}
		if ok, vals := f.extract(ev.Properties, nil, buf[:0]); !ok || len(vals) == 0 {
			continue // no amount
		}
		m := c.seen[fi]
		if m == nil {
			m = map[string]int{}
			c.seen[fi] = m
		}
		fresh = fresh || m[cur] == 0
		m[cur]++
	}
	return fresh
}

// Err reports every aggregate that would leave amounts out, at its line
// and column (or naming its definition), as a rule.ErrorList; nil if
// none does.
func (c *CurrencyCheck) Err() error {
	var errs rule.ErrorList
	for _, a := range c.p.aggs {
		m := c.seen[a.feat]
		if a.agg == nil || len(m) == 0 || a.kind == akNotFollowed {
			continue
		}
		f := c.p.feats[a.feat]
		curs := slices.Sorted(maps.Keys(m))
		var held []string
		for _, k := range curs {
			held = append(held, fmt.Sprintf("%s (%d %s)", k, m[k], plural(m[k], "event")))
		}
		var msg string
		if f.implicit {
			msg = fmt.Sprintf("%s reads amounts in %s, the default currency, but %q events received hold amounts in %s too: say which currency (... of %q in currency %s ...) or convert them (%s(%s in %s) with rates such as 1 %s = ... %s)",
				a.text, c.p.currency, f.event, strings.Join(held, ", "), f.event, curs[0], a.fn, a.agg.Path, c.p.currency, curs[0], c.p.currency)
		} else {
			msg = fmt.Sprintf("%s converts amounts into %s, but there is no rate from %s: give one (1 %s = ... %s), or leave them out (in currency ...)",
				a.text, f.conv, strings.Join(held, ", "), curs[0], f.conv)
		}
		if a.agg.Line == 0 {
			msg = a.def + ": " + msg
		}
		errs = append(errs, &rule.Error{Pos: a.agg.Pos, Msg: msg})
	}
	if errs == nil {
		return nil
	}
	slices.SortStableFunc(errs, func(x, y *rule.Error) int {
		if x.Line != y.Line {
			return x.Line - y.Line
		}
		return x.Col - y.Col
	})
	return errs
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
