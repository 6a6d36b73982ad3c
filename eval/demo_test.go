package eval

import (
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/rule"
)

// The shipped library over the demo generator's data: the incremental
// evaluator agrees with the naive one for every profile, and the
// library's segments find members (so its event and property names match
// what the demo, like real sources, sends).
func TestLibraryOnDemoData(t *testing.T) {
	if testing.Short() {
		t.Skip("generates demo data")
	}
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	byAnchor := map[string][]*kiln.Event{}
	var order []string
	_, err := demo.Generate(demo.Config{Seed: 7, Shop: true, Restaurant: true, Customers: 400, Guests: 200, End: end, Years: 1}, func(e kiln.Event) error {
		if _, ok := byAnchor[e.Anchor]; !ok {
			order = append(order, e.Anchor)
		}
		ev := e
		byAnchor[e.Anchor] = append(byAnchor[e.Anchor], &ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := libraryProgram(t)
	at := end.Add(24 * time.Hour)
	members := map[string]int{}
	// The demo's shop sells in pounds and its restaurants in dollars, in
	// one workspace (USD): the library states its currencies, so applying
	// it leaves no amount out; a spend that did not would be refused.
	chk := p.NewCurrencyCheck()
	naive, err := rule.Parse(`trait spend = sum(properties.revenue) of "Order Completed" in last 365 days`)
	if err != nil {
		t.Fatal(err)
	}
	np, err := Compile(naive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	nchk := np.NewCurrencyCheck()
	for _, anchor := range order {
		for _, ev := range byAnchor[anchor] {
			chk.Note(ev)
			nchk.Note(ev)
		}
	}
	if err := chk.Err(); err != nil {
		t.Errorf("the library would leave amounts of the demo data out:\n%v", err)
	}
	if err := nchk.Err(); err == nil || !strings.Contains(err.Error(), "hold amounts in GBP") {
		t.Errorf("a spend over the shop's pounds and the restaurants' dollars was not caught: %v", err)
	}
	currencies := map[string]string{} // trait -> currency of its non-zero values
	for _, anchor := range order {
		evs := byAnchor[anchor]
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Timestamp.Before(evs[j].Timestamp) })
		prof := &Profile{Traits: map[string]any{}}
		st := p.NewState()
		for _, ev := range evs {
			for k, v := range ev.Traits {
				if ev.Type == kiln.Identify {
					prof.Traits[k] = v
				}
			}
			p.Apply(st, prof, ev, ev.Timestamp)
		}
		p.Advance(st, prof, at)
		want := p.Naive(evs, prof, at)
		for name, in := range want.Segments {
			if got, _ := p.Member(st, name); got != in {
				t.Fatalf("%s: segment %s incremental %v, naive %v", anchor, name, got, in)
			}
			if in {
				members[name]++
			}
		}
		got := p.TraitValues(st)
		for _, name := range []string{"spend_365d", "dining_spend_365d", "takeaway_spend_365d"} {
			if n, ok := got[name].(Number); ok && n.Text != "0.00" {
				currencies[name] = n.Currency
			}
		}
		for name, v := range want.Traits {
			if f, ok := v.(float64); ok {
				if g, _ := got[name].(float64); g-f > 1e-6*max(1, f) || f-g > 1e-6*max(1, f) {
					t.Fatalf("%s: trait %s incremental %v, naive %v", anchor, name, got[name], v)
				}
			} else if got[name] != v {
				t.Fatalf("%s: trait %s incremental %v, naive %v", anchor, name, got[name], v)
			}
		}
	}
	t.Logf("%d profiles; members per segment: %v", len(order), members)
	if currencies["spend_365d"] != demo.ShopCurrency || currencies["dining_spend_365d"] != demo.RestaurantCurrency || currencies["takeaway_spend_365d"] != demo.RestaurantCurrency {
		t.Errorf("currencies of spend in the demo data: %v", currencies)
	}
	empty := 0
	for _, name := range p.Segments() {
		if members[name] == 0 {
			empty++
			t.Logf("no members: %s", name)
		}
	}
	if empty > len(p.Segments())/4 {
		t.Errorf("%d of %d library segments have no member in the demo data", empty, len(p.Segments()))
	}
}

type demoItem struct {
	prof *Profile
	st   int
	ev   *kiln.Event
}

var demoFixture = sync.OnceValues(func() ([]demoItem, int) {
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	idx := map[string]int{}
	var profs []*Profile
	var items []demoItem
	demo.Generate(demo.Config{Seed: 11, Shop: true, Restaurant: true, Customers: 5000, Guests: 2000, End: end, Years: 1}, func(e kiln.Event) error {
		i, ok := idx[e.Anchor]
		if !ok {
			i = len(profs)
			idx[e.Anchor] = i
			profs = append(profs, &Profile{Traits: map[string]any{}})
		}
		if e.Type == kiln.Identify {
			for k, v := range e.Traits {
				profs[i].Traits[k] = v
			}
		}
		ev := e
		items = append(items, demoItem{profs[i], i, &ev})
		return nil
	})
	sort.SliceStable(items, func(a, b int) bool { return items[a].ev.Timestamp.Before(items[b].ev.Timestamp) })
	return items, len(profs)
})

// BenchmarkApplyDemo: the shipped library over a year of the demo
// generator's shop and restaurant events, in time order across all
// profiles (now = event time, so the timer work is included).
func BenchmarkApplyDemo(b *testing.B) {
	p := libraryProgram(b)
	items, n := demoFixture()
	states := make([]*State, n)
	for i := range states {
		states[i] = p.NewState()
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for k := 0; k < b.N; k++ {
		it := items[k%len(items)]
		if k > 0 && k%len(items) == 0 {
			for i := range states {
				states[i] = p.NewState()
			}
		}
		p.Apply(states[it.st], it.prof, it.ev, it.ev.Timestamp)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
	b.ReportMetric(float64(len(items))/float64(n), "events/profile")
}
