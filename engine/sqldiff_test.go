package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
)

// The differential test against SQL: random event streams and random
// segment definitions are evaluated by Kiln, live (the engine processes
// the events as they happen, with a clock that moves to each event and
// records expiries at their instants) and as of past instants
// (MembersAsOf), and by PostgreSQL from the same events with a query
// written independently for each definition. Member lists must be equal
// at every instant checked, which include the exact edges of windows
// (an event at t counts in "in last N days" until t+N exclusive) and
// sums and averages that land exactly on a threshold.
//
// KILN_TEST_POSTGRES names the server; KILN_SQLDIFF_SEEDS sets how many
// random streams are tried (default 6).

// sqlAtom is one condition, in Kiln's language and in SQL over the tables
// ev(id, u, name, ts, revenue, category, shipped, city, ship_name,
// discount), item(ev, category, quantity, price) (an order's line items,
// properties.products) and ident(id, u, first_name, last_name) (identify
// calls: the one with id i comes just before event i) for the profile p.u
// as of :T (a literal substituted per instant). An event filter reads
// the profile's traits as the event arrived: the last identify up to it.
type sqlAtom struct{ kiln, sql string }

type sqlDiffGen struct {
	rng *rand.Rand
}

var (
	diffEvents     = []string{kiln.OrderCompleted, "Checkout Started", "Page Viewed"}
	diffRevenues   = []string{"0.01", "19.99", "50", "99.99", "100", "100.01", "113.07", "120", "140", "250", "386.93", "500"}
	diffThresholds = []string{"0", "100", "119.99", "120", "200", "386.93", "500", "500.00", "500.01"}
	diffOps        = []string{">=", ">", "=", "<", "<=", "!="}
	diffWindows    = []struct {
		kiln string
		ms   int64 // 0: all time
	}{
		{"in last 2 hours", 2 * 3600_000}, {"in last 1 days", 86400_000}, {"in last 7 days", 7 * 86400_000},
		{"in last 30 days", 30 * 86400_000}, {"all time", 0},
	}
)

func (g *sqlDiffGen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *sqlDiffGen) window() (string, string) {
	w := diffWindows[g.rng.IntN(len(diffWindows))]
	if w.ms == 0 {
		return w.kiln, "ts <= :T"
	}
	return w.kiln, fmt.Sprintf("ts > :T - %d AND ts <= :T", w.ms)
}

// filter is an optional where clause on the event's own properties,
// its line items included (ev is the event the clause is about).
func (g *sqlDiffGen) filter() (string, string) {
	items := "FROM item i WHERE i.ev = ev.id"
	trait := func(name string) string {
		return fmt.Sprintf("(SELECT d.%s FROM ident d WHERE d.u = ev.u AND d.id <= ev.id ORDER BY d.id DESC LIMIT 1)", name)
	}
	fullName := trait("first_name") + " || ' ' || " + trait("last_name")
	switch g.rng.IntN(19) {
	case 13, 14:
		// Expressions: a comparison of two values is false when either
		// is missing, != included (SQL's NULL).
		return ` where properties.shipping_address.name != traits.first_name + " " + traits.last_name`,
			fmt.Sprintf(" AND COALESCE(ship_name <> %s, false)", fullName)
	case 15:
		return ` where lower(trim(properties.shipping_address.name)) = lower(traits.first_name + " " + traits.last_name)`,
			fmt.Sprintf(" AND COALESCE(lower(btrim(ship_name, ' ')) = lower(%s), false)", fullName)
	case 16:
		op, x := g.pick(diffOps), g.pick([]string{"0", "50", "100", "100.01"})
		return fmt.Sprintf(" where properties.revenue - properties.discount %s %s", op, x),
			fmt.Sprintf(" AND COALESCE(revenue - discount %s %s, false)", strings.Replace(op, "!=", "<>", 1), x)
	case 17:
		return " where properties.revenue < properties.discount * 2 or upper(properties.category) + \"!\" = \"TEAWARE!\"",
			" AND (COALESCE(revenue < discount * 2, false) OR COALESCE(upper(category) || '!' = 'TEAWARE!', false))"
	case 18:
		k := g.pick([]string{"6", "7", "8"})
		return ` where length(properties.shipping_address.name) > ` + k, " AND COALESCE(char_length(ship_name) > " + k + ", false)"
	case 9:
		return ` where properties.shipping_address exists`, " AND shipped"
	case 10:
		k := g.pick([]string{"1", "2"})
		return ` where properties.shipping_address.city = "York" or length(properties.products) >= ` + k,
			fmt.Sprintf(" AND (COALESCE(city = 'York', false) OR (SELECT count(*) %s) >= %s)", items, k)
	case 4:
		k := g.pick([]string{"1", "12", "24", "25"})
		return " where sum(products.quantity) >= " + k, fmt.Sprintf(" AND (SELECT COALESCE(sum(i.quantity), 0) %s) >= %s", items, k)
	case 5:
		return ` where any(products.category = "teaware") and any(products.category = "gift sets")`,
			fmt.Sprintf(" AND EXISTS (SELECT 1 %s AND i.category = 'teaware') AND EXISTS (SELECT 1 %s AND i.category = 'gift sets')", items, items)
	case 6:
		return ` where all(products.category = "teaware")`,
			fmt.Sprintf(" AND EXISTS (SELECT 1 %s) AND NOT EXISTS (SELECT 1 %s AND i.category IS DISTINCT FROM 'teaware')", items, items)
	case 7:
		op, x := g.pick(diffOps), g.pick([]string{"20", "19.99", "100", "250"})
		v := fmt.Sprintf("(SELECT avg(i.price) %s)", items)
		return fmt.Sprintf(" where avg(products.price) %s %s", op, x), " AND " + compare(v, op, x)
	case 8:
		return ` where count(products where products.price >= 100) >= 2 or distinct(products.category) >= 3`,
			fmt.Sprintf(" AND ((SELECT count(*) %s AND i.price >= 100) >= 2 OR (SELECT count(DISTINCT i.category) %s) >= 3)", items, items)
	case 0:
		return ` where properties.category = "teaware"`, " AND category = 'teaware'"
	case 1:
		return ` where properties.category != "teaware"`, " AND category IS DISTINCT FROM 'teaware'"
	case 2:
		v := g.pick(diffRevenues)
		return " where properties.revenue >= " + v, " AND revenue >= " + v
	case 3:
		return ` where properties.category exists`, " AND category IS NOT NULL"
	}
	return "", ""
}

// compare is v OP x in SQL with Kiln's rule for a missing value: every
// comparison is false except !=, which is true.
func compare(v, op, x string) string {
	if op == "!=" {
		return fmt.Sprintf("(%s IS NULL OR %s <> %s)", v, v, x)
	}
	return fmt.Sprintf("COALESCE(%s %s %s, false)", v, op, x)
}

func (g *sqlDiffGen) atom() sqlAtom {
	win, wsql := g.window()
	switch g.rng.IntN(10) {
	case 7, 8:
		// Open-ended: a checkout in the window, at least G old (G may be
		// 0), with no order at or after it up to now (an order in the
		// same millisecond follows it).
		spans := []struct {
			kiln string
			ms   int64
		}{{"", 0}, {"", 0}, {" for at least 2 hours", 2 * 3600_000}, {" for at least 1 days", 86400_000}}
		sp := spans[g.rng.IntN(len(spans))]
		w := diffWindows[2+g.rng.IntN(2)]
		then, thenSQL := `"Order Completed"`, ""
		if g.rng.IntN(3) == 0 {
			v := g.pick(diffRevenues)
			then, thenSQL = `"Order Completed" where properties.revenue >= `+v, " AND b.revenue >= "+v
		}
		return sqlAtom{fmt.Sprintf(`"Checkout Started" not followed by %s%s %s`, then, sp.kiln, w.kiln),
			fmt.Sprintf(`EXISTS (SELECT 1 FROM ev a WHERE a.u = p.u AND a.name = 'Checkout Started' AND a.ts > :T - %d AND a.ts + %d <= :T
  AND NOT EXISTS (SELECT 1 FROM ev b WHERE b.u = p.u AND b.name = 'Order Completed'%s AND b.ts >= a.ts AND b.ts <= :T))`, w.ms, sp.ms, thenSQL)}
	case 9:
		// The time of the last (or first) event, compared with a span
		// back from now: flips exactly at t + span.
		ev := g.pick(diffEvents)
		f, fsql := g.filter()
		fn, sqlFn := "last", "max"
		if g.rng.IntN(3) == 0 {
			fn, sqlFn = "first", "min"
		}
		spans := []struct {
			kiln string
			ms   int64
		}{{"2 hours", 2 * 3600_000}, {"1 days", 86400_000}, {"7 days", 7 * 86400_000}}
		sp := spans[g.rng.IntN(len(spans))]
		v := fmt.Sprintf("(SELECT %s(ts) FROM ev WHERE u = p.u AND name = '%s'%s AND %s)", sqlFn, ev, fsql, wsql)
		head := fmt.Sprintf(`%s time of "%s"%s %s`, fn, ev, f, win)
		switch g.rng.IntN(5) {
		case 0, 1:
			return sqlAtom{head + " more than " + sp.kiln + " ago", fmt.Sprintf("COALESCE(%s + %d <= :T, false)", v, sp.ms)}
		case 2, 3:
			return sqlAtom{head + " within last " + sp.kiln, fmt.Sprintf("COALESCE(%s > :T - %d, false)", v, sp.ms)}
		}
		return sqlAtom{head + " exists", v + " IS NOT NULL"}
	case 5:
		// A sequence: some A at a in the window with a+S <= now and no B
		// in [a, a+S).
		spans := []struct {
			kiln string
			ms   int64
		}{{"2 hours", 2 * 3600_000}, {"1 days", 86400_000}}
		sp := spans[g.rng.IntN(len(spans))]
		w := diffWindows[2+g.rng.IntN(2)]
		return sqlAtom{fmt.Sprintf(`"Checkout Started" not followed by "Order Completed" within %s %s`, sp.kiln, w.kiln),
			fmt.Sprintf(`EXISTS (SELECT 1 FROM ev a WHERE a.u = p.u AND a.name = 'Checkout Started' AND a.ts > :T - %d AND a.ts <= :T AND a.ts + %d <= :T
  AND NOT EXISTS (SELECT 1 FROM ev b WHERE b.u = p.u AND b.name = 'Order Completed' AND b.ts >= a.ts AND b.ts < a.ts + %d))`, w.ms, sp.ms, sp.ms)}
	case 6:
		f, fsql := g.filter()
		op, k := g.pick(diffOps), strconv.Itoa(g.rng.IntN(3))
		v := fmt.Sprintf("(SELECT count(DISTINCT category) FROM ev WHERE u = p.u AND name = 'Page Viewed'%s AND %s)", fsql, wsql)
		return sqlAtom{fmt.Sprintf(`distinct(properties.category) of "Page Viewed"%s %s %s %s`, f, win, op, k), compare(v, op, k)}
	case 0, 1:
		ev := g.pick(diffEvents)
		f, fsql := g.filter()
		op, k := g.pick(diffOps), strconv.Itoa(g.rng.IntN(4))
		v := fmt.Sprintf("(SELECT count(*) FROM ev WHERE u = p.u AND name = '%s'%s AND %s)", ev, fsql, wsql)
		return sqlAtom{fmt.Sprintf(`count of "%s"%s %s %s %s`, ev, f, win, op, k), compare(v, op, k)}
	case 2:
		agg := g.pick([]string{"sum", "avg", "max", "min"})
		f, fsql := g.filter()
		op, x := g.pick(diffOps), g.pick(diffThresholds)
		v := fmt.Sprintf("(SELECT %s(revenue) FROM ev WHERE u = p.u AND name = 'Order Completed' AND revenue IS NOT NULL%s AND %s)", agg, fsql, wsql)
		if agg == "sum" {
			v = "COALESCE(" + v + ", 0)" // a sum of nothing is 0; an average, minimum or maximum of nothing is missing
		}
		return sqlAtom{fmt.Sprintf(`%s(properties.revenue) of "Order Completed"%s %s %s %s`, agg, f, win, op, x), compare(v, op, x)}
	case 3:
		ev := g.pick(diffEvents)
		f, fsql := g.filter()
		return sqlAtom{fmt.Sprintf(`performed "%s"%s %s`, ev, f, win),
			fmt.Sprintf("EXISTS (SELECT 1 FROM ev WHERE u = p.u AND name = '%s'%s AND %s)", ev, fsql, wsql)}
	default:
		ev := g.pick(diffEvents)
		f, fsql := g.filter()
		return sqlAtom{fmt.Sprintf(`did not perform "%s"%s %s`, ev, f, win),
			fmt.Sprintf("NOT EXISTS (SELECT 1 FROM ev WHERE u = p.u AND name = '%s'%s AND %s)", ev, fsql, wsql)}
	}
}

// rankAtom is a random population-relative condition on trait, whose
// value for profile q.u is value in SQL (NULL: outside the population),
// among everyone or, with among, the profiles that pass it.
func (g *sqlDiffGen) rankAtom(trait, value, among string) sqlAtom {
	amongKiln := ""
	if among != "" {
		amongKiln = " among s_buy"
	}
	op := g.pick(diffOps)
	sqlOp := strings.Replace(op, "!=", "<>", 1)
	var k, pred string
	switch g.rng.IntN(5) {
	case 0:
		pc := g.pick([]string{"10", "20", "25", "50", "33.3333"})
		fn := g.pick([]string{"top", "bottom"})
		k = fmt.Sprintf("%s in %s %s%%%s", trait, fn, pc, amongKiln)
		pred = fmt.Sprintf("(r - 1) * 100 < %s * n", pc)
		if fn == "bottom" {
			pred = fmt.Sprintf("less * 100 < %s * n", pc)
		}
	case 1:
		c := g.pick([]string{"1", "2", "3", "5"})
		k = fmt.Sprintf("rank of %s%s %s %s", trait, amongKiln, op, c)
		pred = fmt.Sprintf("r %s %s", sqlOp, c)
	case 2:
		x := g.pick([]string{"0", "25", "50", "75", "12.5"})
		k = fmt.Sprintf("percentile of %s%s %s %s", trait, amongKiln, op, x)
		pred = fmt.Sprintf("less * 100 %s %s * n", sqlOp, x)
	default:
		fn := g.pick([]string{"quartile", "quintile", "decile"})
		tiles := map[string]int{"quartile": 4, "quintile": 5, "decile": 10}[fn]
		c := 1 + g.rng.IntN(tiles)
		k = fmt.Sprintf("%s of %s%s %s %d", fn, trait, amongKiln, op, c)
		pred = fmt.Sprintf("%d * less / n + 1 %s %d", tiles, sqlOp, c)
	}
	return sqlAtom{k, fmt.Sprintf(`p.u IN (SELECT y.u FROM (SELECT x.u, rank() OVER (ORDER BY x.v DESC) AS r, rank() OVER (ORDER BY x.v) - 1 AS less, count(*) OVER () AS n
  FROM (SELECT q.u, %s AS v FROM (SELECT DISTINCT u FROM ev WHERE ts <= :T) q WHERE true%s) x WHERE x.v IS NOT NULL) y WHERE %s)`,
		value, strings.ReplaceAll(among, "q.u", "q.u"), pred)}
}

// cond is a random condition of up to depth levels of and, or and not.
func (g *sqlDiffGen) cond(depth int) sqlAtom {
	if depth == 0 || g.rng.IntN(3) == 0 {
		return g.atom()
	}
	switch g.rng.IntN(3) {
	case 0:
		a, b := g.cond(depth-1), g.cond(depth-1)
		return sqlAtom{"(" + a.kiln + " and " + b.kiln + ")", "(" + a.sql + " AND " + b.sql + ")"}
	case 1:
		a, b := g.cond(depth-1), g.cond(depth-1)
		return sqlAtom{"(" + a.kiln + " or " + b.kiln + ")", "(" + a.sql + " OR " + b.sql + ")"}
	}
	a := g.cond(depth - 1)
	return sqlAtom{"not (" + a.kiln + ")", "NOT (" + a.sql + ")"}
}

type diffEvent struct {
	user, name string
	ts         int64 // Unix ms
	revenue    string
	category   string
	items      []diffItem
	// shipped: the event has a properties.shipping_address object, with
	// city unless city is "".
	shipped bool
	city    string
	// shipName is properties.shipping_address.name ("": none); discount
	// properties.discount ("": none); ident, when set, is an identify
	// call setting first_name and last_name just before the event.
	shipName string
	discount string
	ident    []string
}

type diffItem struct {
	category, quantity, price string
}

// stream makes events over 60 days from base, with some placed exactly on
// and a millisecond inside the window edges of the instants checked.
func (g *sqlDiffGen) stream(base int64, instants []int64) []diffEvent {
	const span = 60 * 86400_000
	var out []diffEvent
	event := func(ts int64) {
		e := diffEvent{user: fmt.Sprintf("u%02d", g.rng.IntN(20)), name: g.pick(diffEvents), ts: ts}
		if e.name == kiln.OrderCompleted {
			e.revenue = g.pick(diffRevenues)
			for range g.rng.IntN(4) {
				e.items = append(e.items, diffItem{g.pick([]string{"teaware", "teaware", "gift sets", "glassware"}),
					g.pick([]string{"1", "4", "12", "20", "23", "24"}), g.pick(diffRevenues)})
			}
			if e.shipped = g.rng.IntN(2) == 0; e.shipped {
				e.city = g.pick([]string{"York", "Leeds", ""})
				e.shipName = g.pick([]string{"Ann Lee", "Ann Lee", "Bob Smith", " ann lee", "Ann Smith", ""})
			}
			if g.rng.IntN(2) == 0 {
				e.discount = g.pick([]string{"0", "10", "50", "99.99", "250"})
			}
		}
		if e.name != "Checkout Started" && g.rng.IntN(4) != 0 {
			e.category = g.pick([]string{"teaware", "glassware"})
		}
		if g.rng.IntN(5) == 0 {
			e.ident = []string{g.pick([]string{"Ann", "Bob"}), g.pick([]string{"Lee", "Smith"})}
		}
		out = append(out, e)
		if e.name == "Checkout Started" && g.rng.IntN(3) == 0 {
			// An order at the checkout's millisecond (it follows the
			// checkout) or one either side of it.
			o := diffEvent{user: e.user, name: kiln.OrderCompleted, ts: ts + []int64{0, 0, -1, 1}[g.rng.IntN(4)], revenue: g.pick(diffRevenues)}
			out = append(out, o)
		}
	}
	for range 250 {
		event(base + g.rng.Int64N(span))
	}
	for _, t := range instants {
		for range 4 {
			w := diffWindows[g.rng.IntN(len(diffWindows)-1)].ms
			edge := t - w + []int64{0, 1, -1}[g.rng.IntN(3)]
			if edge > base {
				event(edge)
			}
		}
		event(t) // at the instant itself: it counts
	}
	slices.SortStableFunc(out, func(a, b diffEvent) int { return int(a.ts - b.ts) })
	return out
}

func TestSegmentsMatchSQL(t *testing.T) {
	dsn := os.Getenv("KILN_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("KILN_TEST_POSTGRES is not set: the differential test needs PostgreSQL as its independent SQL engine")
	}
	seeds := 6
	if s, err := strconv.Atoi(os.Getenv("KILN_SQLDIFF_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { checkAgainstSQL(t, dsn, uint64(seed)) })
	}
}

func checkAgainstSQL(t *testing.T, dsn string, seed uint64) {
	ctx := context.Background()
	g := &sqlDiffGen{rng: rand.New(rand.NewPCG(seed, 11))}
	b := setup(t, true)
	base := b.clock.Load()

	// Definitions, and the instants to check: some random, some a
	// millisecond either side of a window's end after the last event.
	var defs strings.Builder
	var segs []string
	conds := map[string]sqlAtom{}
	for i := range 10 {
		c := g.cond(2)
		name := fmt.Sprintf("s%d", i)
		fmt.Fprintf(&defs, "segment %s { %s }\n", name, c.kiln)
		segs = append(segs, name)
		conds[name] = c
	}
	// A computed trait, and a segment built on another segment and it.
	x := g.pick(diffThresholds)
	defs.WriteString("trait t_spend = sum(properties.revenue) of \"Order Completed\" in last 30 days\n")
	fmt.Fprintf(&defs, "segment s10 { in segment s0 and t_spend >= %s }\n", x)
	segs = append(segs, "s10")
	// A comparison of two computed traits: null (no order) on either
	// side holds nothing.
	defs.WriteString("trait t_max = max(properties.revenue) of \"Order Completed\" in last 7 days\n")
	defs.WriteString("segment s11 { t_spend >= t_max * 2 }\n")
	segs = append(segs, "s11")
	conds["s11"] = sqlAtom{"t_spend >= t_max * 2", fmt.Sprintf(
		"COALESCE(COALESCE((SELECT sum(revenue) FROM ev WHERE u = p.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T), 0) >= 2 * (SELECT max(revenue) FROM ev WHERE u = p.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T), false)",
		int64(30*86400_000), int64(7*86400_000))}
	conds["s10"] = sqlAtom{"in segment s0 and t_spend >= " + x, fmt.Sprintf(
		"(%s AND COALESCE((SELECT sum(revenue) FROM ev WHERE u = p.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T), 0) >= %s)",
		conds["s0"].sql, int64(30*86400_000), x)}
	// Population-relative conditions: ranks among the profiles known at
	// :T, PostgreSQL's rank() giving 1 + the number strictly above (ties
	// share the best rank) and rank() - 1 in ascending order the number
	// strictly below.
	defs.WriteString("trait t_orders = count of \"Order Completed\" in last 7 days\n")
	defs.WriteString("segment s_buy { t_spend > 0 }\n")
	spendSQL := fmt.Sprintf("COALESCE((SELECT sum(revenue) FROM ev WHERE u = q.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T), 0)", int64(30*86400_000))
	ordersSQL := fmt.Sprintf("(SELECT count(*) FROM ev WHERE u = q.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T)", int64(7*86400_000))
	maxSQL := fmt.Sprintf("(SELECT max(revenue) FROM ev WHERE u = q.u AND name = 'Order Completed' AND ts > :T - %d AND ts <= :T)", int64(7*86400_000))
	buySQL := " AND " + spendSQL + " > 0"
	for i, r := range []struct{ trait, value, among string }{
		{"t_spend", spendSQL, ""}, {"t_spend", spendSQL, buySQL}, {"t_orders", ordersSQL, ""}, {"t_max", maxSQL, buySQL}, {"t_max", maxSQL, ""},
	} {
		c := g.rankAtom(r.trait, r.value, r.among)
		name := fmt.Sprintf("s%d", 12+i)
		fmt.Fprintf(&defs, "segment %s { %s }\n", name, c.kiln)
		segs = append(segs, name)
		conds[name] = c
	}
	var instants []int64
	for range 6 {
		instants = append(instants, base+g.rng.Int64N(60*86400_000))
	}
	evs := g.stream(base, instants)
	lastEv := evs[len(evs)-1].ts
	for _, w := range []int64{2 * 3600_000, 86400_000, 7 * 86400_000} {
		instants = append(instants, lastEv+w-1, lastEv+w)
	}
	end := slices.Max(instants)
	if _, err := b.e.ApplyDefinitions(ctx, defs.String(), false); err != nil {
		t.Fatalf("%v\n%s", err, defs.String())
	}

	// Kiln, live: each event is processed at its instant.
	for i := 0; i < len(evs); {
		j := i
		var batch []kiln.Event
		for ; j < len(evs) && evs[j].ts == evs[i].ts; j++ {
			e := evs[j]
			props := map[string]any{}
			if e.revenue != "" {
				f, _ := strconv.ParseFloat(e.revenue, 64)
				props["revenue"] = f
			}
			if e.category != "" {
				props["category"] = e.category
			}
			if e.items != nil {
				var products []any
				for _, it := range e.items {
					q, _ := strconv.ParseFloat(it.quantity, 64)
					p, _ := strconv.ParseFloat(it.price, 64)
					products = append(products, map[string]any{"category": it.category, "quantity": q, "price": p})
				}
				props["products"] = products
			}
			if e.shipped {
				addr := map[string]any{"country": "GB"}
				if e.city != "" {
					addr["city"] = e.city
				}
				if e.shipName != "" {
					addr["name"] = e.shipName
				}
				props["shipping_address"] = addr
			}
			if e.discount != "" {
				f, _ := strconv.ParseFloat(e.discount, 64)
				props["discount"] = f
			}
			at := time.UnixMilli(e.ts).UTC()
			batch = append(batch, kiln.Event{Name: e.name, Timestamp: at, ReceivedAt: at, Properties: props})
		}
		b.clock.Store(evs[i].ts)
		for k := range batch {
			if id := evs[i+k].ident; id != nil {
				at := batch[k].Timestamp
				b.send(t, evs[i+k].user, kiln.Event{Type: kiln.Identify, Timestamp: at, ReceivedAt: at,
					Traits: map[string]any{"first_name": id[0], "last_name": id[1]}})
			}
			b.send(t, evs[i+k].user, batch[k])
		}
		i = j
	}
	b.clock.Store(end + 1)
	if err := b.e.tick(ctx); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{} // profile id -> user
	for _, e := range evs {
		pid, err := b.st.ProfileFor(ctx, kiln.Identifier{Kind: kiln.UserID, Value: e.user})
		if err != nil {
			t.Fatal(err)
		}
		users[pid] = e.user
	}
	ts, err := b.st.Transitions(ctx, store.TransitionQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(ts, func(a, b kiln.Transition) int { return int(a.ID - b.ID) })
	liveAt := func(seg string, at int64) []string {
		in := map[string]bool{}
		for _, tr := range ts {
			if tr.Segment == seg && tr.At.UnixMilli() <= at {
				in[users[tr.ProfileID]] = tr.Entered
			}
		}
		var out []string
		for u, ok := range in {
			if ok {
				out = append(out, u)
			}
		}
		slices.Sort(out)
		return out
	}

	// PostgreSQL, from the same events.
	conn, err := pgx.Connect(ctx, pgtest.Schema(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE ev (id bigint PRIMARY KEY, u text NOT NULL, name text NOT NULL, ts bigint NOT NULL, revenue numeric, category text,
  shipped boolean NOT NULL, city text, ship_name text, discount numeric);
CREATE TABLE item (ev bigint NOT NULL REFERENCES ev, category text, quantity numeric, price numeric);
CREATE TABLE ident (id bigint NOT NULL, u text NOT NULL, first_name text, last_name text)`); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, len(evs))
	var itemRows, identRows [][]any
	for i, e := range evs {
		var rev, cat any
		if e.revenue != "" {
			rev = e.revenue
		}
		if e.category != "" {
			cat = e.category
		}
		var city any
		if e.city != "" {
			city = e.city
		}
		var shipName, discount any
		if e.shipName != "" {
			shipName = e.shipName
		}
		if e.discount != "" {
			discount = e.discount
		}
		rows[i] = []any{i, e.user, e.name, e.ts, rev, cat, e.shipped, city, shipName, discount}
		if e.ident != nil {
			identRows = append(identRows, []any{i, e.user, e.ident[0], e.ident[1]})
		}
		for _, it := range e.items {
			itemRows = append(itemRows, []any{i, it.category, it.quantity, it.price})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"ev"}, []string{"id", "u", "name", "ts", "revenue", "category", "shipped", "city", "ship_name", "discount"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"ident"}, []string{"id", "u", "first_name", "last_name"}, pgx.CopyFromRows(identRows)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"item"}, []string{"ev", "category", "quantity", "price"}, pgx.CopyFromRows(itemRows)); err != nil {
		t.Fatal(err)
	}
	sqlAt := func(seg string, at int64) []string {
		q := "SELECT p.u FROM (SELECT DISTINCT u FROM ev WHERE ts <= :T) p WHERE " + conds[seg].sql + " ORDER BY p.u"
		q = strings.ReplaceAll(q, ":T", strconv.FormatInt(at, 10))
		rs, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return out
	}

	fails, nonEmpty, checks := 0, 0, 0
	for _, at := range instants {
		for _, seg := range segs {
			want := sqlAt(seg, at)
			checks++
			if len(want) > 0 {
				nonEmpty++
			}
			live := liveAt(seg, at)
			asOfPids, err := b.e.MembersAsOf(ctx, seg, time.UnixMilli(at).UTC())
			if err != nil {
				t.Fatal(err)
			}
			var asOf []string
			for _, pid := range asOfPids {
				asOf = append(asOf, users[pid])
			}
			slices.Sort(asOf)
			if !slices.Equal(want, live) || !slices.Equal(want, asOf) {
				fails++
				if fails <= 5 {
					t.Errorf("segment %s { %s }\nat %s (+%d ms from the start):\n  SQL:   %v\n  live:  %v\n  as-of: %v\n  SQL condition: %s",
						seg, conds[seg].kiln, time.UnixMilli(at).UTC().Format(time.RFC3339Nano),
						at-base, want, live, asOf, conds[seg].sql)
				}
			}
		}
	}
	if fails > 5 {
		t.Errorf("... %d differences in all", fails)
	}
	// A comparison of empty lists proves nothing: most must hold members.
	if nonEmpty < checks/3 {
		t.Errorf("only %d of %d member lists were not empty: the random definitions are degenerate", nonEmpty, checks)
	}
	t.Logf("%d member lists compared, %d not empty", checks, nonEmpty)
}
