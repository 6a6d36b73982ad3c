package identity

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// The benchmarks share one resolver loaded with benchProfiles profiles of
// three identifiers each (user id, email, anonymous id), as at start-up
// from store.ScanIdentities. Run with:
//
//	go test ./identity -run '^$' -bench . -benchtime 2s
const benchProfiles = 1_000_000

func benchIdentity(i, k int) kiln.Identifier {
	switch k {
	case 0:
		return kiln.Identifier{Kind: kiln.UserID, Value: fmt.Sprintf("cust-%08d", i)}
	case 1:
		return kiln.Identifier{Kind: kiln.Email, Value: fmt.Sprintf("firstname.lastname%d@example.com", i)}
	default:
		return kiln.Identifier{Kind: kiln.AnonymousID, Value: fmt.Sprintf("%08x-9c4e-4f1a-b2d3-%012x", i, uint64(i)*2654435761)}
	}
}

var bench struct {
	once     sync.Once
	r        *Resolver
	heap     uint64 // bytes of heap the loaded resolver holds
	loadTime time.Duration
}

func loadedResolver(b *testing.B) *Resolver {
	bench.once.Do(func() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		r, err := New(Config{Checkpoint: "identity"})
		if err != nil {
			b.Fatal(err)
		}
		at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		// Identities come in a scattered order (j*prime mod total is a
		// permutation), as a store scan by identifier would give them, and
		// are made on the fly so only the index stays on the heap.
		const total = 3 * benchProfiles
		var elapsed time.Duration
		for j := range total {
			k := j * 1_000_003 % total
			i := k / 3
			id := kiln.Identity{Identifier: benchIdentity(i, k%3), ProfileID: fmt.Sprintf("p_%020x", i), FirstSeen: at.Add(time.Duration(i) * time.Second)}
			start := time.Now()
			if err := r.Load(id); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
		}
		bench.loadTime = elapsed
		runtime.GC()
		runtime.ReadMemStats(&m1)
		bench.r, bench.heap = r, m1.HeapAlloc-m0.HeapAlloc
	})
	return bench.r
}

// BenchmarkLoad reports the start-up cost and the memory of a loaded index.
func BenchmarkLoad(b *testing.B) {
	r := loadedResolver(b)
	for b.Loop() {
		// The load happened once, above; report it.
	}
	st := r.Stats()
	b.ReportMetric(float64(bench.heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(bench.heap)/float64(st.Identifiers), "heap-B/identifier")
	b.ReportMetric(float64(st.Bytes)/(1<<20), "index-MiB")
	b.ReportMetric(float64(st.Identifiers)/bench.loadTime.Seconds(), "loaded-identities/s")
	b.ReportMetric(0, "ns/op")
}

// knownEvents makes events of loaded customers: mostly tracks with user id
// and anonymous id, some page views with the anonymous id only, some
// identifies with traits.
func knownEvents(n int) []kiln.Event {
	rng := rand.New(rand.NewPCG(3, 4))
	evs := make([]kiln.Event, n)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for j := range evs {
		i := rng.IntN(benchProfiles)
		e := kiln.Event{Seq: int64(j + 1), SourceID: "src_web", Timestamp: at.Add(time.Duration(j) * time.Millisecond), ReceivedAt: at}
		switch x := rng.IntN(10); {
		case x < 6:
			e.Type, e.Name = kiln.Track, kiln.ProductViewed
			e.UserID, e.AnonymousID = benchIdentity(i, 0).Value, benchIdentity(i, 2).Value
			e.Properties = map[string]any{"product_id": "sku-1", "price": 12.5}
		case x < 9:
			e.Type, e.Name = kiln.Page, "Home"
			e.AnonymousID = benchIdentity(i, 2).Value
		default:
			e.Type = kiln.Identify
			e.UserID = benchIdentity(i, 0).Value
			e.Traits = map[string]any{"email": benchIdentity(i, 1).Value, "plan": "pro", "email_consent": true}
		}
		e.Anchor = Anchor(Extract(&e))
		evs[j] = e
	}
	return evs
}

// BenchmarkResolveKnown is the steady state: events of known customers,
// with the pending change set turned into a Resolution and committed every
// 1,000 events as the processor does.
func BenchmarkResolveKnown(b *testing.B) {
	r := loadedResolver(b)
	evs := knownEvents(1 << 16)
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		o := r.Resolve(&evs[i&(len(evs)-1)])
		if o.Status != Resolved || o.Created || len(o.Merges) > 0 {
			b.Fatalf("event %d: %+v", i, o)
		}
		i++
		if i%1000 == 0 {
			_ = r.Pending()
			r.Commit()
		}
	}
	r.Commit()
	reportRate(b, cpu)
}

var benchNew int

// BenchmarkResolveNew resolves events of new customers (each creates a
// profile and links two identifiers), on top of the loaded index.
func BenchmarkResolveNew(b *testing.B) {
	r := loadedResolver(b)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		benchNew++ // new customers in every run, even with -count
		n := benchProfiles + 10_000_000 + benchNew
		e := kiln.Event{Seq: int64(i), Type: kiln.Identify, SourceID: "src_web", Timestamp: at, ReceivedAt: at,
			UserID: benchIdentity(n, 0).Value, AnonymousID: benchIdentity(n, 2).Value}
		e.Anchor = "user_id:" + e.UserID
		if o := r.Resolve(&e); !o.Created {
			b.Fatalf("%+v", o)
		}
		i++
		if i%1000 == 0 {
			_ = r.Pending()
			r.Commit()
		}
	}
	r.Commit()
	reportRate(b, cpu)
}

func BenchmarkExtract(b *testing.B) {
	evs := knownEvents(1 << 10)
	x, _ := NewExtractor(Rules{CountryCode: "+44"})
	var buf []kiln.Identifier
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = x.appendIDs(buf[:0], &evs[i&(len(evs)-1)])
		i++
	}
}

// reportRate reports events per wall second and per CPU second.
func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}
