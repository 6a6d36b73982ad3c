package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// demoLog is a database of demo events shared by the read benchmarks,
// made once per test binary (KILN_BENCH_CUSTOMERS sets its size; the
// default 8000 shop customers and 2000 restaurant guests make about half a
// million events).
var demoLog struct {
	once sync.Once
	path string
	n    int
	err  error
}

func demoLogDB(b *testing.B) (*sqlite.DB, int) {
	b.Helper()
	demoLog.once.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-scan-bench")
		if err != nil {
			demoLog.err = err
			return
		}
		demoLog.path = filepath.Join(dir, "demo.db")
		db, err := sqlite.Open(demoLog.path)
		if err != nil {
			demoLog.err = err
			return
		}
		defer db.Close()
		customers := 8000
		if s := os.Getenv("KILN_BENCH_CUSTOMERS"); s != "" {
			customers, _ = strconv.Atoi(s)
		}
		ctx := context.Background()
		var batch []kiln.Event
		flush := func() error {
			_, err := db.Append(ctx, store.Batch{Events: batch})
			demoLog.n += len(batch)
			batch = batch[:0]
			return err
		}
		_, err = demo.Generate(demo.Config{Seed: 1, Customers: customers, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
			func(e kiln.Event) error {
				if batch = append(batch, e); len(batch) == 5000 {
					return flush()
				}
				return nil
			})
		if err == nil {
			err = flush()
		}
		demoLog.err = err
	})
	if demoLog.err != nil {
		b.Fatal(demoLog.err)
	}
	db, err := sqlite.Open(demoLog.path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, demoLog.n
}

// BenchmarkScanLog measures reading the whole log of demo events, full
// events with decoded payloads, with fn doing nothing: the store's share of
// a recompute. ReadEvents is the chunked read it replaces.
//
//	go test -run '^$' -bench 'ScanLog|ReadAll' -benchtime 3x ./store/sqlite/
func BenchmarkScanLog(b *testing.B) {
	db, n := demoLogDB(b)
	ctx := context.Background()
	upTo, err := db.LastSeq(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	for b.Loop() {
		got := 0
		if err := db.ScanLog(ctx, 0, upTo, func(evs []kiln.Event) error {
			got += len(evs)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("scanned %d events, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(n*b.N), "cpu-µs/event")
}

func BenchmarkReadAllEvents(b *testing.B) {
	db, n := demoLogDB(b)
	ctx := context.Background()
	cpu0 := cpuTime()
	for b.Loop() {
		got := 0
		for after := int64(0); ; {
			evs, err := db.ReadEvents(ctx, after, 20000)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			got += len(evs)
			after = evs[len(evs)-1].Seq
		}
		if got != n {
			b.Fatalf("read %d events, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(n*b.N), "cpu-µs/event")
}

// TestMain removes the shared benchmark database.
func TestMain(m *testing.M) {
	code := m.Run()
	if demoLog.path != "" {
		os.RemoveAll(filepath.Dir(demoLog.path))
	}
	os.Exit(code)
}
