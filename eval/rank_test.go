package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// popRun drives a Population as the engine does: evaluate one profile,
// record it, Rerank the profiles Update names, at the same instant.
type popRun struct {
	t        *testing.T
	p        *Program
	pop      *Population
	states   map[string]*State
	profs    map[string]*Profile
	events   map[string][]*kiln.Event
	evTraits map[string][]map[string]any
	reported map[string]map[string]bool
	due      map[string]time.Time
	log      []string
	fail     func(format string, args ...any)
}

func newPopRun(t *testing.T, p *Program) *popRun {
	r := &popRun{t: t, p: p, pop: p.NewPopulation(), states: map[string]*State{}, profs: map[string]*Profile{},
		events: map[string][]*kiln.Event{}, evTraits: map[string][]map[string]any{}, reported: map[string]map[string]bool{}, due: map[string]time.Time{}}
	r.fail = func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format, args...)
	}
	return r
}

func (r *popRun) add(pid string, prof *Profile, now time.Time) {
	prof.Rank = r.pop.View(pid)
	r.profs[pid] = prof
	r.states[pid] = r.p.NewState()
	r.reported[pid] = map[string]bool{}
	r.after(pid, r.p.ApplyProfile(r.states[pid], prof, now), now)
}

// after records a Result of pid and reranks the profiles its change
// moved. Reranking moves a profile's clock to now, so something due at
// that very instant may move its own values: it is updated in turn.
func (r *popRun) after(pid string, res Result, now time.Time) {
	r.t.Helper()
	r.note(pid, res)
	work := []string{pid}
	for len(work) > 0 {
		q := work[0]
		work = work[1:]
		for _, o := range r.pop.Update(q, r.states[q]) {
			if o == q {
				r.fail("Update names the profile it updates")
			}
			r.note(o, r.p.Rerank(r.states[o], r.profs[o], now))
			work = append(work, o)
		}
	}
}

func (r *popRun) note(pid string, res Result) {
	r.t.Helper()
	r.due[pid] = res.NextDue
	for _, c := range res.Changed {
		if r.reported[pid][c.Segment] == c.Entered {
			r.fail("%s: change %+v repeats the previous report\n%s", pid, c, strings.Join(r.log, "\n"))
		}
		r.reported[pid][c.Segment] = c.Entered
	}
}

func (r *popRun) remove(pid string, now time.Time) {
	delete(r.states, pid)
	delete(r.profs, pid)
	delete(r.events, pid)
	delete(r.evTraits, pid)
	delete(r.reported, pid)
	delete(r.due, pid)
	for _, o := range r.pop.Remove(pid) {
		r.note(o, r.p.Rerank(r.states[o], r.profs[o], now))
	}
}

// advance moves time to until: profiles in the order of their due
// instants, each at its own, as the engine's timer does.
func (r *popRun) advance(until time.Time) {
	due := r.due
	for {
		var next string
		for _, pid := range mapsKeys(due) {
			if d := due[pid]; !d.IsZero() && !d.After(until) && (next == "" || d.Before(due[next])) {
				next = pid
			}
		}
		if next == "" {
			return
		}
		at := due[next]
		res := r.p.Advance(r.states[next], r.profs[next], at)
		r.after(next, res, at)
	}
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// check compares every profile with NaivePopulation at now, and the
// population with one built at once from the states (Load, Seal).
func (r *popRun) check(what string, now time.Time) {
	r.t.Helper()
	built := r.p.NewPopulation()
	for _, pid := range mapsKeys(r.states) {
		built.Load(pid, r.states[pid])
	}
	built.Seal()
	for k := range r.pop.sets {
		a, b := r.pop.sets[k], built.sets[k]
		if a.n != b.n || !reflect.DeepEqual(a.at, b.at) {
			r.fail("%s: population %d kept %d members %v, built from the states %d %v", what, k, a.n, a.at, b.n, b.at)
		}
		for i := 0; i < a.n; i++ {
			if cmpEntry(a.kth(i), b.kth(i)) != 0 {
				r.fail("%s: population %d differs at %d", what, k, i)
			}
		}
	}
	var in []NaiveProfile
	for _, pid := range mapsKeys(r.states) {
		in = append(in, NaiveProfile{ID: pid, Events: r.events[pid], EventTraits: r.evTraits[pid], Profile: r.profs[pid]})
	}
	want := r.p.NaivePopulation(in, now)
	for _, pid := range mapsKeys(r.states) {
		st := r.states[pid]
		if got := r.p.TraitValues(st); !reflect.DeepEqual(got, want[pid].Traits) {
			r.fail("%s: %s traits\n got  %v\n want %v\n%s", what, pid, got, want[pid].Traits, strings.Join(r.log, "\n"))
		}
		for _, s := range r.p.Segments() {
			got, _ := r.p.Member(st, s)
			if got != want[pid].Segments[s] {
				r.fail("%s at %s: %s in %s is %v, naive says %v\n%s", what, now.Format(time.RFC3339Nano), pid, s, got, want[pid].Segments[s], strings.Join(r.log, "\n"))
			}
			if r.reported[pid][s] != got {
				r.fail("%s: %s reported in %s %v, state says %v", what, pid, s, r.reported[pid][s], got)
			}
			node, err := r.p.Explain(st, r.profs[pid], s, now)
			if err != nil || node.Holds != got {
				r.fail("%s: Explain(%s) of %s holds=%v, member=%v (%v)", what, s, pid, node.Holds, got, err)
			}
		}
	}
}

// rankLeaf is a random population-relative condition over a numeric
// trait, among one of pops (or everyone).
func (g *gen) rankLeaf(nums, pops []string) string {
	t := nums[g.r.IntN(len(nums))]
	among := ""
	if len(pops) > 0 && g.r.IntN(2) == 0 {
		among = " among " + pops[g.r.IntN(len(pops))]
	}
	op := g.pick("=", "!=", "<", "<=", ">", ">=")
	switch g.r.IntN(5) {
	case 0:
		return fmt.Sprintf("%s in %s %s%%%s", t, g.pick("top", "bottom"), g.pick("10", "20", "33.3333", "50", "100", "25"), among)
	case 1:
		return fmt.Sprintf("rank of %s%s %s %d", t, among, op, 1+g.r.IntN(4))
	case 2:
		return fmt.Sprintf("percentile of %s%s %s %s", t, among, op, g.pick("0", "25", "50", "66.6667", "100", "12.5"))
	}
	fn := g.pick("quartile", "quintile", "decile")
	return fmt.Sprintf("%s of %s%s %s %d", fn, t, among, op, 1+g.r.IntN(rule.RankTiles[fn]))
}

func (g *gen) rankDefinitions() string {
	src := g.definitions()
	var nums []string
	for _, t := range g.traits {
		if g.kinds[t] == "num" {
			nums = append(nums, t)
		}
	}
	if len(nums) == 0 {
		src += "trait tn = count of \"A\" in last 2 days\n"
		nums = []string{"tn"}
	}
	pops := []string{"st"}
	for i := 0; strings.Contains(src, fmt.Sprintf("segment s%d ", i)); i++ {
		pops = append(pops, fmt.Sprintf("s%d", i))
	}
	var b strings.Builder
	b.WriteString(src)
	for i := 0; i < 2+g.r.IntN(3); i++ {
		c := g.rankLeaf(nums, pops)
		switch g.r.IntN(4) {
		case 0:
			c = "(" + c + " and " + g.leaf(pops) + ")"
		case 1:
			c = "(" + c + " or " + g.rankLeaf(nums, pops) + ")"
		case 2:
			c = "not " + c
		}
		fmt.Fprintf(&b, "segment r%d {\n  %s\n}\n", i, c)
	}
	// A segment that refers to a ranked one.
	b.WriteString("segment rr {\n  in segment r0 and " + g.leaf(pops) + "\n}\n")
	return b.String()
}

// TestPopulationMatchesNaive is the property test of population-relative
// conditions: random definitions with rankings over random numeric traits
// and populations, several profiles with random streams, profile changes,
// deletions and clock moves (each profile advanced at its own due
// instants). After every step every profile's state must equal
// NaivePopulation at the same instant, and every reported change must be
// a real flip.
func TestPopulationMatchesNaive(t *testing.T) {
	seeds := 120
	if testing.Short() {
		seeds = 30
	}
	if n, err := strconv.Atoi(os.Getenv("KILN_PROP_SEEDS")); err == nil {
		seeds = n
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	for seed := 0; seed < seeds; seed++ {
		g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 11)), base: time.Date(2024, 3, 29, 22, 0, 0, 0, london)}
		src := g.rankDefinitions()
		set, err := rule.Parse(src)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, src)
		}
		p, err := Compile(set, Options{Location: london, Currency: "GBP", Rates: propRates})
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, src)
		}
		r := newPopRun(t, p)
		r.fail = func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\ndefinitions:\n%s", seed, fmt.Sprintf(format, args...), src)
		}
		now := g.base
		n := 3 + g.r.IntN(8)
		for i := range n {
			pid := fmt.Sprintf("p%d", i)
			prof := &Profile{Traits: g.profileTraits()}
			if g.r.IntN(2) == 0 {
				prof.Static = []string{"st"}
			}
			r.add(pid, prof, now)
		}
		r.check("init", now)
		next := n
		for step := 0; step < 80; step++ {
			pids := (mapsKeys(r.states))
			pid := pids[g.r.IntN(len(pids))]
			switch k := g.r.IntN(12); {
			case k < 6:
				ev := g.event(now)
				r.events[pid] = append(r.events[pid], ev)
				r.evTraits[pid] = append(r.evTraits[pid], r.profs[pid].Traits)
				r.log = append(r.log, fmt.Sprintf("%s: event %s at %s %v", pid, ev.Name, ev.Timestamp.Format(time.RFC3339), ev.Properties))
				res := p.Apply(r.states[pid], r.profs[pid], ev, now)
				r.after(pid, res, now)
			case k < 9:
				until := now.Add(time.Duration(g.r.IntN(20*60)) * time.Minute)
				r.log = append(r.log, "advance to "+until.Format(time.RFC3339))
				r.advance(until)
				now = until
			case k < 10:
				prof := &Profile{Traits: g.profileTraits(), Rank: r.pop.View(pid)}
				if g.r.IntN(2) == 0 {
					prof.Static = []string{"st"}
				}
				r.profs[pid] = prof
				r.log = append(r.log, fmt.Sprintf("%s: profile static %v", pid, prof.Static))
				res := p.ApplyProfile(r.states[pid], prof, now)
				r.after(pid, res, now)
			case k < 11 && len(pids) > 1:
				r.log = append(r.log, pid+": deleted")
				r.remove(pid, now)
			default:
				pid = fmt.Sprintf("p%d", next)
				next++
				r.log = append(r.log, pid+": new")
				r.add(pid, &Profile{Traits: g.profileTraits()}, now)
			}
			r.check(r.log[len(r.log)-1], now)
		}
	}
}

// TestRankTieRules pins the documented tie rules on one population:
// values 10, 20, 20, 30, and a profile without a value.
func TestRankTieRules(t *testing.T) {
	src := `
trait v = sum(properties.v) of "A" all time
trait n = count of "A" all time
segment buyers { n >= 1 }
segment top1 { rank of v among buyers <= 1 }
segment rank2 { rank of v among buyers = 2 }
segment top50 { v in top 50% among buyers }
segment top25 { v in top 25% among buyers }
segment bottom25 { v in bottom 25% among buyers }
segment p25 { percentile of v among buyers = 25 }
segment above_median { percentile of v among buyers >= 50 }
segment q4 { quartile of v among buyers = 4 }
segment q2 { quartile of v among buyers = 2 }
segment nottop { not rank of v among buyers = 1 }
segment ne { rank of v among buyers != 1 }
`
	set, err := rule.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newPopRun(t, p)
	for i, v := range []float64{10, 20, 20, 30} {
		pid := fmt.Sprintf("p%d", i)
		r.add(pid, &Profile{}, now)
		ev := &kiln.Event{Type: kiln.Track, Name: "A", Timestamp: now, Properties: map[string]any{"v": v}}
		r.events[pid] = []*kiln.Event{ev}
		r.after(pid, p.Apply(r.states[pid], r.profs[pid], ev, now), now)
	}
	r.add("none", &Profile{}, now)
	r.check("tie rules", now)
	want := map[string][]string{
		"p0":   {"buyers", "bottom25", "nottop", "ne"},                     // rank 4, percentile 0, quartile 1
		"p1":   {"buyers", "rank2", "top50", "p25", "q2", "nottop", "ne"},  // rank 2 (ties share), percentile 25
		"p2":   {"buyers", "rank2", "top50", "p25", "q2", "nottop", "ne"},  //
		"p3":   {"buyers", "top1", "top50", "top25", "above_median", "q4"}, // rank 1, percentile 75
		"none": {"nottop"},                                                 // outside the population: no ranking holds, negation does
	}
	for pid, segs := range want {
		got := p.Memberships(r.states[pid])
		slices.Sort(got)
		slices.Sort(segs)
		if !slices.Equal(got, segs) {
			t.Errorf("%s: in %v, want %v", pid, got, segs)
		}
	}
	n, err := p.Explain(r.states["p1"], r.profs["p1"], "top50", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "value 20; rank 2 of 4 (1 below, 1 above), percentile 25; it holds now from 20 to 30"; n.Why != want {
		t.Errorf("explain: %q\nwant %q", n.Why, want)
	}
	n, _ = p.Explain(r.states["none"], r.profs["none"], "top50", now)
	if !strings.Contains(n.Why, "not in the population") {
		t.Errorf("explain outside: %q", n.Why)
	}
	// A fifth buyer at 20 moves the median: percentile of 30 is 80, the
	// two 20s share 20, and top 50% (fewer than 2.5 above) keeps them.
	ev := &kiln.Event{Type: kiln.Track, Name: "A", Timestamp: now, Properties: map[string]any{"v": 20.0}}
	r.events["none"] = []*kiln.Event{ev}
	r.after("none", p.Apply(r.states["none"], r.profs["none"], ev, now), now)
	r.check("fifth", now)
	if in, _ := p.Member(r.states["p1"], "p25"); in {
		t.Errorf("p1 still at percentile 25 of 5")
	}
}

// TestRankSetMatchesSortedSlice puts thousands of members (several
// blocks, splits and emptied blocks) through inserts and removals and
// compares every query with a sorted slice.
func TestRankSetMatchesSortedSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := newRankSet()
	var ref []rentry
	vals := map[string]value{}
	leaves := []*rankLeaf{
		{fn: rule.RankTop, cmp: "<", x4: 200000}, {fn: rule.RankRank, cmp: "<=", c: 7}, {fn: rule.RankPercentile, cmp: "!=", x4: 500000},
		{fn: rule.RankQuintile, tiles: 5, cmp: "=", c: 3}, {fn: rule.RankBottom, cmp: "<", x4: 333333},
	}
	for step := 0; step < 12000; step++ {
		pid := fmt.Sprintf("p%d", r.IntN(4000))
		if old, ok := vals[pid]; ok {
			s.remove(rentry{old, pid})
			i := slices.IndexFunc(ref, func(e rentry) bool { return e.pid == pid })
			ref = slices.Delete(ref, i, i+1)
			delete(vals, pid)
		}
		if r.IntN(4) > 0 {
			n, _ := numFromFloat(float64(r.IntN(300)) / 4)
			v := numV(n)
			s.insert(rentry{v, pid})
			ref = append(ref, rentry{v, pid})
			slices.SortFunc(ref, cmpEntry)
			vals[pid] = v
		}
		if step%500 != 0 {
			continue
		}
		if s.n != len(ref) {
			t.Fatalf("step %d: n %d, want %d", step, s.n, len(ref))
		}
		for i := range ref {
			if cmpEntry(s.kth(i), ref[i]) != 0 {
				t.Fatalf("step %d: kth(%d)", step, i)
			}
		}
		for _, x := range []float64{0, 10.25, 37.5, 74.75, 80} {
			n, _ := numFromFloat(x)
			v := numV(n)
			less, le := 0, 0
			for _, e := range ref {
				if c := cmpNum(e.v.dec(), v.dec()); c < 0 {
					less++
					le++
				} else if c == 0 {
					le++
				}
			}
			if s.countLess(v) != less || s.countLE(v) != le {
				t.Fatalf("step %d: counts at %v: %d %d, want %d %d", step, x, s.countLess(v), s.countLE(v), less, le)
			}
		}
		// satisfying agrees with deciding every member one by one.
		for _, l := range leaves {
			rg := s.satisfying(l)
			for _, e := range ref {
				less := sort.Search(len(ref), func(i int) bool { return cmpNum(ref[i].v.dec(), e.v.dec()) >= 0 })
				greater := len(ref) - sort.Search(len(ref), func(i int) bool { return cmpNum(ref[i].v.dec(), e.v.dec()) > 0 })
				want := l.holds(less, greater, len(ref)) != (l.cmp == "!=")
				got := !rg.empty && cmpNum(rg.lo.dec(), e.v.dec()) <= 0 && cmpNum(e.v.dec(), rg.hi.dec()) <= 0
				if got != want {
					t.Fatalf("step %d: %s %s: member at %s: in range %v, holds %v", step, l.fn, l.cmp, e.v, got, want)
				}
			}
		}
	}
}
