package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// The property test: random definitions (every aggregate, window kind
// and condition operator), random event streams with late and future
// events, random profile trait and static-list changes, and random clock
// moves including exact boundaries. After every call the incremental
// state must equal the naive evaluator at the same instant, and nothing
// may change strictly between now and NextDue.

type gen struct {
	r      *rand.Rand
	base   time.Time
	traits []string // named traits
	kinds  map[string]string
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) filter() string {
	return g.pick(
		`properties.g = true`, `properties.g != true`, `properties.s in ["x", "y"]`,
		`properties.v >= 3`, `items.c = "p"`, `not items.c = "q"`,
		`properties.s = "x" or items.q > 2`, `properties.s contains "x"`, `properties.v exists`,
		`items.q <= 2 and properties.v < 10`, `properties.meta.tier = "gold"`, `properties.meta.tier != "gold"`,
		g.itemCond(), g.itemCond(), g.itemCond()+" and "+g.pick(`items.c = "p"`, `properties.g = true`, g.itemCond()),
		`properties.meta exists`, `properties.meta not exists`, `properties.tags contains "t1"`, `length(properties.tags) >= 2`,
		`length(properties.items) = 2`, `length(properties.s) = 2`, `properties.meta."odd key" = 1`, `properties.meta."odd key" != 1`,
		g.exprFilter(), g.exprFilter(), g.exprFilter(),
	)
}

// exprFilter compares two values of the event and the profile as the
// event arrives (traits.nick, traits.country, ...).
func (g *gen) exprFilter() string {
	return g.pick(
		`properties.s = traits.nick`, `properties.s != traits.nick`, `properties.s + "y" = traits.nick`,
		`lower(properties.s) = lower(traits.nick)`, `upper(properties.s) contains "X"`, `trim(properties.s) != traits.company.name`,
		`length(properties.s) + properties.v > 3`, `properties.v * 2 >= properties.m`, `properties.m / properties.v < 1`,
		`items.q > properties.v`, `items.c + items.k = "pk1"`, `items.q * items.p >= 100`, `properties.s = traits.nick and items.c = "p"`,
		`month(traits.birthday) = 3`, `day_of_week(properties.day) = properties.v`, `days_between(traits.created_at, properties.day) >= 1`,
		`year(properties.day) - year(traits.birthday) >= 30`, `day(properties.day) <= day(traits.birthday)`, `properties.s + traits.nick in ["xx", "yxy"]`,
		`traits.nick exists and properties.s != traits.nick`, `properties.g = traits.vip`, `properties.meta.tier != traits.company.name`,
	)
}

// itemCond is a condition on an event's own line items.
func (g *gen) itemCond() string {
	cmp := func(ts ...string) string { return " " + g.pick(">=", "=", "<", "!=") + " " + g.pick(ts...) }
	where := func() string {
		return g.pick("", "", ` where items.c = "p"`, ` where items.q >= 2`, ` where any(items.k = "k1")`, ` where properties.g = true`)
	}
	switch g.r.IntN(8) {
	case 0:
		return "sum(items.q" + where() + ")" + cmp("2", "4", "6")
	case 1:
		// Thresholds that amounts land on exactly (see amounts).
		return g.pick("sum", "avg") + "(items.p" + where() + ")" + cmp("0.5", "120", "40", "500", "0.3")
	case 2:
		return "count(" + g.pick("items", "items.q", "items.k", "items.meta") + where() + ")" + cmp("1", "2", "3")
	case 3:
		return "distinct(" + g.pick("items.k", "items.q", "items.meta") + where() + ")" + cmp("1", "2")
	case 4:
		return g.pick("min", "max") + "(" + g.pick("items.q", "items.p") + where() + ")" + cmp("1", "2", "100", "0.1")
	case 5:
		return g.pick("any", "all") + "(" + g.pick(`items.c = "p"`, `items.q >= 2`, `items.c = "q" and items.k != "k3"`, `not items.c = "p"`, `items.q * items.p > properties.v`, `items.c + items.k = traits.nick`) + ")"
	case 6:
		return `any(items.c = "p") and any(items.c = "q")`
	}
	return "count(items" + where() + ") in [0, 2]"
}

func (g *gen) window() string {
	d := func(days int) string { return g.base.AddDate(0, 0, days).Format(time.DateOnly) }
	return g.pick(
		"in last 30 minutes", "in last 90 minutes", "in last 5 hours", "in last 1 days",
		"in last 2 days", "in last 4 days", "all time", "today", "this week", "this month", "this year",
		fmt.Sprintf("between %q and %q", d(1), d(3)), fmt.Sprintf("between %q and %q", d(-1), d(0)),
	)
}

// scope returns a random scope clause (often none): a source, store or
// currency, or several. usd allows amounts scoped to dollars (never in
// arithmetic with pounds: that is a compile error).
func (g *gen) scope(usd bool) string {
	var s string
	if g.r.IntN(3) == 0 {
		s += " " + g.pick(`from source "w"`, `from source ["w", "p"]`)
	}
	if g.r.IntN(3) == 0 {
		s += " " + g.pick(`at store "s1"`, `at store ["s1", "s2"]`)
	}
	if g.r.IntN(4) == 0 {
		if usd {
			s += " " + g.pick(`in currency GBP`, `in currency USD`, `in currency EUR`)
		} else {
			s += " in currency GBP"
		}
	}
	return s
}

// agg returns an aggregate's text and its kind ("num" or "any").
func (g *gen) agg() (string, string) { return g.aggIn(false) }

func (g *gen) aggIn(usd bool) (string, string) {
	ev := g.pick(`"A"`, `"B"`, `"C"`)
	var head, kind string
	money := false
	switch g.r.IntN(13) {
	case 11, 12:
		// The time of the first or last matching event; the window may
		// be left out (all time).
		s := g.pick("last", "first", "last") + " time of " + ev + g.scope(true)
		if g.r.IntN(2) == 0 {
			s += " where " + g.filter()
		}
		if g.r.IntN(4) > 0 {
			s += " " + g.window()
		}
		return s, "time"
	case 0:
		head, kind = "count", "num"
	case 1:
		head, kind = "count("+g.pick("properties.s", "items.k", "properties.meta", "properties.tags")+")", "num"
	case 2, 3:
		head, kind = g.pick("sum", "avg", "min", "max")+"("+g.pick("properties.v", "items.q", "properties.m", "properties.m", "items.p")+")", "num"
	case 4, 5:
		head, kind = g.pick("first", "last")+"("+g.pick("properties.s", "properties.v", "items.k", "items.q")+")", "any"
	case 6:
		head, kind = "distinct("+g.pick("properties.s", "items.k", "properties.v", "properties.meta", "items.meta", "properties.tags")+")", "num"
	case 7, 8:
		// Amounts: money in the default currency (GBP), in the one the
		// scope names, or converted into GBP at the test's rates.
		head, kind = g.pick("sum", "avg", "min", "max", "sum", "first", "last")+"("+g.pick("properties.revenue", "items.price", "properties.revenue in GBP", "items.price in GBP", "properties.m in GBP")+")", "num"
		money = !strings.Contains(head, " in ")
	default:
		head, kind = "count", "num"
	}
	s := head + " of " + ev + g.scope(usd || !money)
	if g.r.IntN(2) == 0 {
		s += " where " + g.filter()
	}
	return s + " " + g.window(), kind
}

func (g *gen) leaf(segs []string) string {
	switch g.r.IntN(14) {
	case 0, 1, 2:
		t := g.traits[g.r.IntN(len(g.traits))]
		if g.kinds[t] == "time" {
			return t + " " + g.timeCmp()
		}
		if g.kinds[t] == "any" {
			return t + " " + g.pick(`= "x"`, "exists", "not exists", `!= "y"`, "= 2", "> 1")
		}
		if g.r.IntN(2) == 0 {
			// Thresholds that amounts land on exactly (see amounts).
			return t + " " + g.pick(">= 0.5", "= 0.5", "< 0.5", ">= 500", "= 500", "> 500", ">= 120", "= 120", "<= 120", "= 40", "> 0.3", "<= 0.6", "= 0.1", "= 0.25")
		}
		return t + " " + g.pick(">= 1", ">= 2", "= 0", "!= 1", "< 3", "> 4.5", "exists")
	case 3:
		a, kind := g.aggIn(true)
		if kind == "time" {
			return a + " " + g.timeCmp()
		}
		if kind == "any" {
			return a + " exists"
		}
		return a + " " + g.pick(">= 1", ">= 20.01", "= 0.5")
	case 4:
		return g.pick("performed", "did not perform") + " " + g.pick(`"A"`, `"B"`) + g.scope(true) + " " + g.window()
	case 5:
		return fmt.Sprintf(`%s not followed by %s within %s %s`, g.pick(`"A"`, `"B" where properties.g = true`, `"A" from source "w"`, `"B" in currency USD`),
			g.pick(`"B"`, `"C"`, `"A" where items.c = "p"`, `"B" at store "s1"`, `"C" from source ["w", "p"] in currency GBP`), g.pick("30 minutes", "2 hours", "1 days"),
			g.pick("in last 3 hours", "in last 1 days", "in last 3 days"))
	case 6:
		if g.r.IntN(2) == 0 {
			// Open-ended: no B at or after A up to now (the same
			// millisecond follows), optionally for at least a span.
			return fmt.Sprintf(`%s not followed by %s%s %s`, g.pick(`"A"`, `"B" where properties.g = true`, `"A" from source "w"`, `"C" at store "s1"`),
				g.pick(`"B"`, `"C"`, `"A"`, `"A" where items.c = "p"`, `"B" at store "s1"`, `"C" from source ["w", "p"] in currency GBP`),
				g.pick("", "", " for at least 30 minutes", " for at least 2 hours", " for at least 1 days"),
				g.pick("in last 25 hours", "in last 3 days", "in last 26 hours"))
		}
		return "anniversary of traits.birthday within next " + g.pick("1 days", "3 days", "7 days", "366 days")
	case 7:
		return "traits.created_at " + g.pick("more than 2 days ago", "more than 90 minutes ago", "within last 5 hours", "within last 3 days")
	case 8:
		return g.pick(`traits.country = "UK"`, `traits.vip = true`, `traits.country in ["UK", "FR"]`, `traits.country exists`, `traits.country contains "U"`,
			`traits.company exists`, `traits.company.name = "Acme"`, `traits.company.size >= 10`, `traits.company."VAT id" exists`,
			`length(traits.tags) >= 2`, `traits.tags contains "vip"`, `length(traits.company) = 2`, `length(traits.country) = 2`,
			`traits.company.since more than 2 days ago`)
	case 9:
		if len(segs) > 0 {
			return "in segment " + segs[g.r.IntN(len(segs))]
		}
		return "in segment st"
	case 11:
		// Expressions in conditions: profile traits and computed traits.
		t := g.traits[g.r.IntN(len(g.traits))]
		if g.kinds[t] == "time" {
			return t + " " + g.timeCmp() // an event's time compares with spans only
		}
		if g.kinds[t] == "any" {
			return g.pick(t+" = traits.nick", t+" + traits.nick = \"xx\"", "lower("+t+") != traits.country", "length("+t+") = 1")
		}
		return g.pick(t+" > length(traits.nick)", t+" >= traits.company.size", t+" * 2 != traits.company.size - 1",
			`month(traits.birthday) = month(traits.created_at)`, `traits.nick + "!" = "x!"`, `lower(traits.country) = "uk"`,
			`days_between(traits.birthday, traits.created_at) > 10000`, `day_of_week(traits.birthday) >= 6`)
	case 10:
		a, b := g.traits[g.r.IntN(len(g.traits))], g.traits[g.r.IntN(len(g.traits))]
		if g.kinds[a] == "num" && g.kinds[b] == "num" {
			return fmt.Sprintf("%s - %s * 0.5 %s", a, b, g.pick("> 1", "<= 0", "!= 2"))
		}
		if g.kinds[a] == "any" {
			return a + ` > "x"`
		}
		if g.kinds[a] == "time" {
			return a + " " + g.timeCmp()
		}
		return a + " >= 1"
	default:
		t := g.traits[g.r.IntN(len(g.traits))]
		if g.kinds[t] == "time" {
			return t + " " + g.timeCmp()
		}
		return t + " >= 1"
	}
}

// timeCmp compares the time of an event.
func (g *gen) timeCmp() string {
	return g.pick("more than 30 minutes ago", "more than 5 hours ago", "more than 2 days ago", "within last 90 minutes",
		"within last 1 days", "within last 4 days", "exists", "not exists")
}

func (g *gen) cond(depth int, segs []string) string {
	if depth == 0 || g.r.IntN(3) == 0 {
		return g.leaf(segs)
	}
	switch g.r.IntN(3) {
	case 0:
		return "(" + g.cond(depth-1, segs) + " and " + g.cond(depth-1, segs) + ")"
	case 1:
		return "(" + g.cond(depth-1, segs) + " or " + g.cond(depth-1, segs) + ")"
	}
	return "not " + g.cond(depth-1, segs)
}

func (g *gen) definitions() string {
	var b strings.Builder
	g.kinds = map[string]string{}
	n := 4 + g.r.IntN(6)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("t%d", i)
		a, kind := g.agg()
		fmt.Fprintf(&b, "trait %s = %s\n", name, a)
		g.traits = append(g.traits, name)
		g.kinds[name] = kind
	}
	var nums []string
	for _, t := range g.traits {
		if g.kinds[t] == "num" {
			nums = append(nums, t)
		}
	}
	if len(nums) >= 2 {
		fmt.Fprintf(&b, "trait d0 = %s + %s * 2\n", nums[0], nums[1])
		fmt.Fprintf(&b, "trait d1 = %s / %s\n", nums[len(nums)-1], nums[0])
		fmt.Fprintf(&b, "trait d2 = %s * 0.1 - %s / 3\n", nums[0], nums[len(nums)-1])
		g.traits = append(g.traits, "d0", "d1", "d2")
		g.kinds["d0"], g.kinds["d1"], g.kinds["d2"] = "num", "num", "num"
	}
	b.WriteString("segment st static\n")
	segs := []string{"st"}
	for i := 0; i < 3+g.r.IntN(6); i++ {
		name := fmt.Sprintf("s%d", i)
		fmt.Fprintf(&b, "segment %s {\n  %s\n}\n", name, g.cond(3, segs))
		segs = append(segs, name)
	}
	return b.String()
}

func (g *gen) event(now time.Time) *kiln.Event {
	var at time.Time
	switch g.r.IntN(10) {
	case 0, 1: // late, up to 3 days
		at = now.Add(-time.Duration(g.r.IntN(3*24*60)) * time.Minute)
	case 2: // in the future (clock skew)
		at = now.Add(time.Duration(1+g.r.IntN(120)) * time.Minute)
	case 3: // exactly now
		at = now
	default:
		at = now.Add(-time.Duration(g.r.IntN(30)) * time.Minute)
	}
	props := map[string]any{}
	if g.r.IntN(5) > 0 {
		props["v"] = float64(g.r.IntN(40)-5) / 2
	}
	if g.r.IntN(3) > 0 {
		props["m"] = g.amount()
	}
	if g.r.IntN(3) > 0 {
		props["revenue"] = g.amount()
	}
	if g.r.IntN(3) > 0 {
		// No currency is the default's (GBP); JPY has no rate.
		props["currency"] = g.pick("GBP", "gbp", "USD", "EUR", "JPY")
	}
	if g.r.IntN(5) > 0 {
		props["s"] = g.pick("x", "y", "z", "xy")
		if g.r.IntN(3) == 0 {
			// Many distinct strings, so the state's string pool compacts.
			props["s"] = fmt.Sprintf("x%d", g.r.IntN(60))
		}
	}
	if g.r.IntN(3) > 0 {
		props["g"] = g.r.IntN(2) == 0
	}
	if g.r.IntN(3) == 0 {
		props["day"] = g.pick("2024-03-02", "2024-03-31", "1990-03-30", "2024-12-29T23:30:00Z", "not a date")
	}
	if g.r.IntN(3) == 0 {
		props["meta"] = map[string]any{"tier": g.pick("gold", "silver")}
		if g.r.IntN(2) == 0 {
			props["meta"].(map[string]any)["odd key"] = float64(g.r.IntN(2))
		}
	}
	if g.r.IntN(3) == 0 {
		var tags []any
		for i := 0; i < g.r.IntN(4); i++ {
			tags = append(tags, g.pick("t1", "t2", "t3"))
		}
		props["tags"] = tags
	}
	var items []any
	for i := 0; i < g.r.IntN(4); i++ {
		it := map[string]any{"c": g.pick("p", "q"), "k": g.pick("k1", "k2", "k3")}
		if g.r.IntN(5) > 0 {
			it["q"] = float64(1 + g.r.IntN(4))
		}
		if g.r.IntN(2) > 0 {
			it["p"] = g.amount()
		}
		if g.r.IntN(2) > 0 {
			it["price"] = g.amount()
		}
		switch g.r.IntN(8) {
		case 0:
			it["q"] = "many" // not a number: sums skip it
		case 1:
			it["meta"] = map[string]any{"w": float64(g.r.IntN(2))}
		}
		if g.r.IntN(12) == 0 {
			items = append(items, "not an object")
		}
		items = append(items, it)
	}
	if items != nil {
		props["items"] = items
	}
	name := g.pick("A", "B", "C", "D")
	return &kiln.Event{Type: kiln.Track, Name: name, Timestamp: at, Properties: props,
		SourceID: g.pick("w", "p", "e"), Store: g.pick("s1", "s2", "s3", "")}
}

// amounts: two-decimal values whose float64 sums miss the thresholds
// the conditions use (0.1+0.2+0.2 = 0.5, 386.93+113.07 = 500, the
// average of 100 and 140 is 120, 19.99+20.01 = 40), and some that make
// averages that do not end.
var amounts = []float64{0.1, 0.2, 0.2, 0.3, 0.7, 0.05, 19.99, 20.01, 100, 140, 120, 386.93, 113.07, 33.33, 0.01, -0.1}

func (g *gen) amount() float64 { return amounts[g.r.IntN(len(amounts))] }

var propRates, _ = ParseRates("1 EUR = 0.86 GBP, 1 USD = 0.79 GBP")

func (g *gen) profileTraits() map[string]any {
	t := map[string]any{}
	if g.r.IntN(4) > 0 {
		t["birthday"] = g.pick("2000-02-29", "1990-03-30", "1985-04-01", "1970-12-31", "1999-01-01",
			g.base.AddDate(-30, 0, g.r.IntN(5)).Format(time.DateOnly))
	}
	if g.r.IntN(4) > 0 {
		t["created_at"] = g.base.Add(time.Duration(g.r.IntN(6*24*60)-2*24*60) * time.Minute).Format(time.RFC3339)
	}
	if g.r.IntN(2) > 0 {
		t["country"] = g.pick("UK", "FR", "DE")
	}
	if g.r.IntN(2) > 0 {
		t["vip"] = g.r.IntN(2) == 0
	}
	switch g.r.IntN(3) {
	case 0:
		t["company"] = map[string]any{"name": g.pick("Acme", "Teahouse"), "size": float64(g.r.IntN(20)),
			"since": g.base.Add(time.Duration(g.r.IntN(6*24*60)-4*24*60) * time.Minute).Format(time.RFC3339)}
		if g.r.IntN(2) == 0 {
			t["company"].(map[string]any)["VAT id"] = "GB1"
		}
	case 1:
		t["company"] = "Acme"
	}
	if g.r.IntN(2) > 0 {
		t["tags"] = []any{"vip", "trade", "x"}[:g.r.IntN(4)]
	}
	if g.r.IntN(3) > 0 {
		t["nick"] = g.pick("x", "y", "xy", "X", "Acme")
	}
	return t
}

func TestIncrementalMatchesNaive(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	if n, err := strconv.Atoi(os.Getenv("KILN_PROP_SEEDS")); err == nil {
		seeds = n // a longer hunt: KILN_PROP_SEEDS=20000 go test -run IncrementalMatchesNaive ./eval
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	bases := []time.Time{
		time.Date(2024, 3, 29, 22, 0, 0, 0, london),   // DST starts Mar 31
		time.Date(2024, 12, 29, 20, 0, 0, 0, london),  // year and week boundary
		time.Date(2024, 2, 26, 12, 0, 0, 0, london),   // Feb 29 birthdays
		time.Date(2023, 10, 27, 23, 30, 0, 0, london), // DST ends Oct 29
	}
	for seed := 0; seed < seeds; seed++ {
		g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 7)), base: bases[seed%len(bases)]}
		src := g.definitions()
		set, err := rule.Parse(src)
		if err != nil {
			t.Fatalf("seed %d: generated definitions do not parse: %v\n%s", seed, err, src)
		}
		p, err := Compile(set, Options{Location: london, Currency: "GBP", Rates: propRates})
		if err != nil {
			t.Fatalf("seed %d: generated definitions do not compile: %v\n%s", seed, err, src)
		}
		checkRun(t, seed, g, p, src)
		if t.Failed() {
			return
		}
	}
}

func checkRun(t *testing.T, seed int, g *gen, p *Program, src string) {
	st := p.NewState()
	prof := &Profile{Traits: g.profileTraits()}
	var events []*kiln.Event
	// The traits each event's filters read: the profile's as it arrived.
	var evTraits []map[string]any
	now := g.base
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s\ndefinitions:\n%s\nsteps:\n%s", seed, fmt.Sprintf(format, args...), src, strings.Join(log, "\n"))
	}
	reportedTraits := p.TraitValues(st) // a fresh state holds the empty profile's values
	reportedIn := map[string]bool{}
	compareAt := func(what string, res Result) {
		t.Helper()
		// The reported changes, accumulated, must give the current state.
		for _, c := range res.Changed {
			if reportedIn[c.Segment] == c.Entered {
				fail("%s: change %+v repeats the previous report", what, c)
			}
			reportedIn[c.Segment] = c.Entered
			if len(c.Evidence) == 0 {
				fail("%s: change %+v has no evidence", what, c)
			}
		}
		for _, c := range res.Traits {
			if !reflect.DeepEqual(reportedTraits[c.Trait], c.Old.Any()) {
				fail("%s: trait change %s old %v, last reported %v", what, c.Trait, c.Old, reportedTraits[c.Trait])
			}
			reportedTraits[c.Trait] = c.New.Any()
		}
		if !reflect.DeepEqual(reportedTraits, p.TraitValues(st)) {
			fail("%s: reported trait changes add up to %v, state has %v", what, reportedTraits, p.TraitValues(st))
		}
		for _, s := range p.Segments() {
			in, _ := p.Member(st, s)
			if reportedIn[s] != in {
				fail("%s: reported membership of %s is %v, state says %v", what, s, reportedIn[s], in)
			}
			node, err := p.Explain(st, prof, s, now)
			if err != nil || node.Holds != in {
				fail("%s: Explain(%s) holds=%v, member=%v (%v)", what, s, node.Holds, in, err)
			}
		}
		want := p.NaiveAt(events, evTraits, prof, now)
		got := p.TraitValues(st)
		if !reflect.DeepEqual(got, want.Traits) {
			fail("%s at %s: traits\n got  %v\n want %v", what, now.Format(time.RFC3339Nano), got, want.Traits)
		}
		var wantIn []string
		for _, s := range p.Segments() {
			if want.Segments[s] {
				wantIn = append(wantIn, s)
			}
		}
		if gotIn := p.Memberships(st); !slices.Equal(gotIn, wantIn) {
			fail("%s at %s: segments\n got  %v\n want %v", what, now.Format(time.RFC3339Nano), gotIn, wantIn)
		}
		// Nothing may change strictly between now and NextDue.
		if !res.NextDue.IsZero() {
			if !res.NextDue.After(now) {
				fail("%s: NextDue %s is not after now %s", what, res.NextDue, now)
			}
			gap := res.NextDue.Sub(now)
			for _, probe := range []time.Duration{time.Millisecond, gap / 2, gap - time.Millisecond} {
				if probe <= 0 || probe >= gap {
					continue
				}
				mid := p.NaiveAt(events, evTraits, prof, now.Add(probe))
				if !reflect.DeepEqual(mid.Traits, want.Traits) || !reflect.DeepEqual(mid.Segments, want.Segments) {
					fail("%s: NextDue %s is late: at %s (before it) the naive answer differs\n now %v %v\n then %v %v",
						what, res.NextDue.Format(time.RFC3339Nano), now.Add(probe).Format(time.RFC3339Nano), want.Traits, want.Segments, mid.Traits, mid.Segments)
				}
			}
		} else {
			// Nothing scheduled: a far later instant must look the same.
			later := p.NaiveAt(events, evTraits, prof, now.Add(400*24*time.Hour))
			if !reflect.DeepEqual(later.Segments, want.Segments) || !reflect.DeepEqual(later.Traits, want.Traits) {
				fail("%s: NextDue is zero but the answer changes later\n now %v %v\n later %v %v", what, want.Traits, want.Segments, later.Traits, later.Segments)
			}
		}
	}
	res := p.ApplyProfile(st, prof, now)
	log = append(log, "init "+now.Format(time.RFC3339))
	compareAt("init", res)
	for step := 0; step < 60; step++ {
		switch k := g.r.IntN(10); {
		case k < 5:
			ev := g.event(now)
			events = append(events, ev)
			evTraits = append(evTraits, prof.Traits)
			log = append(log, fmt.Sprintf("event %s from %s at %q at %s %v", ev.Name, ev.SourceID, ev.Store, ev.Timestamp.Format(time.RFC3339), ev.Properties))
			res = p.Apply(st, prof, ev, now)
		case k < 7 && !res.NextDue.IsZero():
			now = res.NextDue
			log = append(log, "advance to NextDue "+now.Format(time.RFC3339Nano))
			res = p.Advance(st, prof, now)
		case k < 8:
			now = now.Add(time.Duration(g.r.IntN(36*60)) * time.Minute)
			log = append(log, "advance to "+now.Format(time.RFC3339Nano))
			res = p.Advance(st, prof, now)
		case k < 9:
			prof = &Profile{Traits: g.profileTraits()}
			if g.r.IntN(2) == 0 {
				prof.Static = []string{"st"}
			}
			if g.r.IntN(2) == 0 {
				// An identify call carries the new traits.
				ev := &kiln.Event{Type: kiln.Identify, Timestamp: now, Traits: prof.Traits}
				log = append(log, fmt.Sprintf("identify %v static %v", prof.Traits, prof.Static))
				res = p.Apply(st, prof, ev, now)
			} else {
				log = append(log, fmt.Sprintf("profile %v static %v", prof.Traits, prof.Static))
				res = p.ApplyProfile(st, prof, now)
			}
		default:
			// Snapshot and restore.
			b, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var st2 State
			if err := st2.UnmarshalBinary(b); err != nil {
				fail("unmarshal: %v", err)
			}
			if err := p.Adopt(&st2); err != nil {
				fail("adopt: %v", err)
			}
			st = &st2
			log = append(log, "snapshot/restore")
			res = p.Advance(st, prof, now)
		}
		compareAt(log[len(log)-1], res)
	}
	// Rebuilding by replay in arrival order gives the same answer, and
	// its Result lists exactly the memberships and non-empty traits.
	st3, rres := p.rebuildAt(events, evTraits, prof, now)
	var entered []string
	for _, c := range rres.Changed {
		entered = append(entered, c.Segment)
	}
	if !slices.Equal(entered, p.Memberships(st3)) {
		fail("Rebuild result lists %v, state has %v", entered, p.Memberships(st3))
	}
	if got, want := p.TraitValues(st3), p.TraitValues(st); !reflect.DeepEqual(got, want) {
		fail("replayed state differs: traits\n got  %v\n want %v", got, want)
	}
	if got, want := p.Memberships(st3), p.Memberships(st); !slices.Equal(got, want) {
		fail("replayed state differs: segments\n got  %v\n want %v", got, want)
	}
}
