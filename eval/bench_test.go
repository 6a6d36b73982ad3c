package eval

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/rule/library"
)

// Benchmarks run the shipped library (shop + restaurant: 36 segments, 47
// windowed aggregates) over synthetic events shaped like the demo
// generator's, and over the demo generator's own data (demo_test.go).
//
//	go test ./eval -run '^$' -bench . -benchtime 1x            quick smoke run
//	go test ./eval -run '^$' -bench 'Apply' -benchtime 1000000x -cpu 1
//	go test ./eval -run '^$' -bench 'StateMemory|Recompute' -benchtime 2x -cpu 1
//
// events/cpu-s is events per second of process CPU time, GC included: the
// per-core figure, which other load on a shared machine distorts less
// than wall time. BenchmarkApply interleaves 20,000 profiles in time order
// (every Apply touches a cold state, and does the timer work that passed
// since the profile's last event); BenchmarkStateMemory reports live heap
// per profile at 10 events each, for states built event by event and for
// rebuilt ones; BenchmarkRecompute rebuilds 20,000 profiles from their
// events and projects the time for 1M profiles / 10M events on one core.

var benchApplyProfiles = 20000

var benchBase = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func libraryProgram(tb testing.TB) *Program {
	tb.Helper()
	set, err := rule.Parse(library.All())
	if err != nil {
		tb.Fatal(err)
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Compile(set, Options{Location: london, Schema: rule.DemoSchema})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

type benchProfile struct {
	prof   *Profile
	events []*kiln.Event
}

var categories = []string{"teaware", "glassware", "dinnerware", "serveware"}
var patterns = []string{"willow", "celadon", "rose", "cobalt", "plain", "gold rim"}
var locations = []string{"Glendale", "Pasadena", "Downtown LA"}
var courses = []string{"mezze", "bread", "grill", "mains", "desserts", "wine", "hot drinks"}

// synthProfiles makes n profiles with about perProfile events each over
// the year before benchBase.
func synthProfiles(n, perProfile int, seed uint64) []benchProfile {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]benchProfile, n)
	for i := range out {
		bp := &out[i]
		created := benchBase.Add(-time.Duration(r.IntN(3*365*24)) * time.Hour)
		bp.prof = &Profile{Traits: map[string]any{
			"email":      fmt.Sprintf("c%d@example.com", i),
			"first_name": "Ann",
			"birthday":   fmt.Sprintf("%d-%02d-%02d", 1950+r.IntN(50), 1+r.IntN(12), 1+r.IntN(28)),
			"created_at": created.Format(time.RFC3339),
		}}
		if r.IntN(10) == 0 {
			bp.prof.Traits["company"] = "Acme Ltd"
			bp.prof.Traits["vat_id"] = "GB123"
		}
		restaurant := r.IntN(3) == 0
		for k := 0; k < perProfile; k++ {
			at := benchBase.Add(-time.Duration(r.IntN(365*24*60)) * time.Minute)
			var ev *kiln.Event
			if restaurant {
				ev = restaurantEvent(r, at)
			} else {
				ev = shopEvent(r, at)
			}
			bp.events = append(bp.events, ev)
		}
		sort.SliceStable(bp.events, func(a, b int) bool { return bp.events[a].Timestamp.Before(bp.events[b].Timestamp) })
	}
	return out
}

func shopEvent(r *rand.Rand, at time.Time) *kiln.Event {
	ev := &kiln.Event{Type: kiln.Track, Timestamp: at}
	// Roughly a web shop's mix: browsing and email dominate, orders are
	// a few percent of events.
	switch k := r.IntN(100); {
	case k < 8:
		ev.Name = kiln.OrderCompleted
		var products []any
		revenue := 0.0
		for j := 0; j < 1+r.IntN(3); j++ {
			price := float64(5+r.IntN(80)) + 0.99
			q := float64(1 + r.IntN(4))
			revenue += price * q
			products = append(products, map[string]any{
				"sku": fmt.Sprintf("SKU-%d", r.IntN(300)), "category": categories[r.IntN(len(categories))],
				"pattern": patterns[r.IntN(len(patterns))], "price": price, "quantity": q,
			})
		}
		gift := r.IntN(8) == 0
		ev.Properties = map[string]any{"order_id": fmt.Sprintf("O%d", r.Int()), "revenue": revenue, "currency": "GBP", "gift": gift, "products": products}
	case k < 45:
		ev.Name = kiln.ProductViewed
		ev.Properties = map[string]any{"sku": fmt.Sprintf("SKU-%d", r.IntN(300)), "category": categories[r.IntN(len(categories))]}
	case k < 52:
		ev.Name = kiln.CheckoutStarted
		ev.Properties = map[string]any{"value": 50.0}
	case k < 72:
		ev.Name = kiln.EmailOpened
		ev.Properties = map[string]any{"campaign_id": "c1"}
	case k < 80:
		ev.Name = kiln.EmailLinkClicked
		ev.Properties = map[string]any{"link_url": "https://example.com"}
	default:
		ev.Name = "Page Viewed"
	}
	return ev
}

func restaurantEvent(r *rand.Rand, at time.Time) *kiln.Event {
	ev := &kiln.Event{Type: kiln.Track, Timestamp: at}
	switch k := r.IntN(100); {
	case k < 35:
		ev.Name = kiln.VisitCompleted
		var dishes []any
		for j := 0; j < 2+r.IntN(4); j++ {
			dishes = append(dishes, map[string]any{"sku": fmt.Sprintf("m-%d", r.IntN(40)), "category": courses[r.IntN(len(courses))], "price": 12.0, "quantity": float64(1 + r.IntN(2))})
		}
		ev.Properties = map[string]any{"location": locations[r.IntN(3)], "party_size": float64(1 + r.IntN(10)), "spend": float64(20 + r.IntN(300)), "dishes": dishes}
	case k < 40:
		ev.Name = kiln.EventRSVPed
		ev.Properties = map[string]any{"event_id": "e1"}
	case k < 50:
		ev.Name = kiln.FeedbackGiven
		ev.Properties = map[string]any{"rating": float64(1 + r.IntN(5))}
	case k < 53:
		ev.Name = kiln.LoyaltyMilestone
		ev.Properties = map[string]any{"milestone": 10.0}
	default:
		ev.Name = kiln.EmailOpened
	}
	return ev
}

func TestLibraryFloors(t *testing.T) {
	p := libraryProgram(t)
	st := p.Stats()
	t.Logf("library: %+v", st)
	if st.Segments < 20 || st.WindowedAggregates < 30 {
		t.Fatalf("library too small for the benchmark floors: %+v", st)
	}
}

// BenchmarkApply: events/s through Apply with the shipped library; the
// events of 20k profiles interleaved in time order, now = event time.
type applyItem struct {
	pi int
	ev *kiln.Event
}

var applyFixture = sync.OnceValues(func() ([]benchProfile, []applyItem) {
	profiles := synthProfiles(benchApplyProfiles, 10, 1)
	var all []applyItem
	for i, bp := range profiles {
		for _, ev := range bp.events {
			all = append(all, applyItem{i, ev})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].ev.Timestamp.Before(all[j].ev.Timestamp) })
	return profiles, all
})

func BenchmarkApply(b *testing.B) {
	p := libraryProgram(b)
	profiles, all := applyFixture()
	runtime.GC()
	states := make([]*State, len(profiles))
	for i := range states {
		states[i] = p.NewState()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for n := 0; n < b.N; n++ {
		it := all[n%len(all)]
		if n > 0 && n%len(all) == 0 {
			for i := range states {
				states[i] = p.NewState()
			}
		}
		p.Apply(states[it.pi], profiles[it.pi].prof, it.ev, it.ev.Timestamp)
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	// Per core: events per second of process CPU time (GC included), which
	// other load on a shared machine does not distort.
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStateMemory: resident heap per profile after 10 events each.
func BenchmarkStateMemory(b *testing.B) {
	p := libraryProgram(b)
	const n = 50000
	profiles := synthProfiles(n, 10, 2)
	for k := 0; k < b.N; k++ {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		states := make([]*State, n)
		for i, bp := range profiles {
			st := p.NewState()
			for _, ev := range bp.events {
				p.Apply(st, bp.prof, ev, ev.Timestamp)
			}
			p.Advance(st, bp.prof, benchBase)
			states[i] = st
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		size := 0
		for _, st := range states {
			size += st.Size()
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-bytes/profile")
		b.ReportMetric(float64(size)/n, "state-bytes/profile")
		runtime.KeepAlive(states)
		states = nil

		// The same profiles rebuilt (the recompute path) keep no growth
		// slack.
		runtime.GC()
		runtime.ReadMemStats(&m0)
		rebuilt := make([]*State, n)
		for i, bp := range profiles {
			rebuilt[i], _ = p.Rebuild(bp.events, bp.prof, benchBase)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "rebuilt-heap-bytes/profile")
		runtime.KeepAlive(rebuilt)
	}
}

// BenchmarkRecompute: a full recompute after a definition edit replays
// every profile's events into a fresh state. Reports the projection for
// 1M profiles with 10M events.
func BenchmarkRecompute(b *testing.B) {
	p := libraryProgram(b)
	const n = 20000
	profiles := synthProfiles(n, 10, 3)
	events := 0
	for _, bp := range profiles {
		events += len(bp.events)
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for k := 0; k < b.N; k++ {
		for _, bp := range profiles {
			p.Rebuild(bp.events, bp.prof, benchBase)
		}
	}
	el := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	b.ReportMetric(float64(events*b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
	b.ReportMetric((el * time.Duration(10_000_000/events)).Seconds(), "s-projected-1M-profiles-10M-events")
}

// BenchmarkApplyRanked: BenchmarkApply's stream, in one run, through the
// shipped library without its population-relative segments and with
// them (top_spenders, top_spend_quintile, above_median_visits), the
// populations kept the way the engine keeps them: after every Apply, the
// profile's values go into the Population and the profiles it names are
// reranked.
//
//	go test ./eval -run '^$' -bench 'ApplyRanked' -benchtime 400000x -cpu 1
func BenchmarkApplyRanked(b *testing.B) {
	full := libraryProgram(b)
	var plain rule.Set
	for _, d := range full.Definitions().Defs {
		if d.Cond != nil && condRanks(d.Cond) {
			continue
		}
		plain.Defs = append(plain.Defs, d)
	}
	london, _ := time.LoadLocation("Europe/London")
	without, err := Compile(&plain, Options{Location: london, Schema: rule.DemoSchema})
	if err != nil {
		b.Fatal(err)
	}
	if without.Ranked() || !full.Ranked() {
		b.Fatal("the library's ranked segments were not split off")
	}
	profiles, all := applyFixture()
	for _, c := range []struct {
		name string
		p    *Program
	}{{"without-ranks", without}, {"with-ranks", full}} {
		b.Run(c.name, func(b *testing.B) {
			p := c.p
			var pop *Population
			states := make([]*State, len(profiles))
			profs := make([]*Profile, len(profiles))
			reset := func() {
				pop = p.NewPopulation()
				for i := range states {
					states[i] = p.NewState()
					pr := *profiles[i].prof
					pr.Rank = pop.View(strconv.Itoa(i))
					profs[i] = &pr
				}
			}
			reset()
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			cpu0 := cpuTime()
			reranked := 0
			for n := 0; n < b.N; n++ {
				it := all[n%len(all)]
				if n > 0 && n%len(all) == 0 {
					reset()
				}
				now := it.ev.Timestamp
				p.Apply(states[it.pi], profs[it.pi], it.ev, now)
				if pop != nil {
					for _, o := range pop.Update(strconv.Itoa(it.pi), states[it.pi]) {
						k, _ := strconv.Atoi(o)
						p.Rerank(states[k], profs[k], now)
						reranked++
					}
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
			b.ReportMetric(float64(reranked)/float64(b.N), "reranked/event")
		})
	}
}

func condRanks(c *rule.Cond) bool {
	if c.Op == rule.CRank {
		return true
	}
	for _, a := range c.Args {
		if condRanks(a) {
			return true
		}
	}
	return false
}
