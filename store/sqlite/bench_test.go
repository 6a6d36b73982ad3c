package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
	"github.com/kiln-cdp/kiln/store/storetest"
)

// BenchmarkAppend measures durable ingest: each op is one Append (one
// fsync'd transaction) of a batch the size the journal group-commits.
// Run: go test -run '^$' -bench Append -benchtime 40x ./store/sqlite/
//
// The log starts empty. Random message ids make each event's index entry
// land on its own page once the index is larger than a batch, so the cost
// per event grows with the log; KILN_BENCH_PREFILL=1000000 first appends
// that many events (untimed) to measure a log of that size.
func BenchmarkAppend(b *testing.B) {
	prefill, _ := strconv.Atoi(os.Getenv("KILN_BENCH_PREFILL"))
	for _, size := range []int{500, 2500} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			db, err := sqlite.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for n := 0; n < prefill; n += 5000 {
				if _, err := db.Append(ctx, store.Batch{Events: storetest.Events("prefill"+strconv.Itoa(n), 5000, t0)}); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				b.StopTimer()
				evs := storetest.Events("b"+strconv.Itoa(i), size, t0)
				i++
				b.StartTimer()
				n, err := db.Append(ctx, store.Batch{Events: evs})
				if err != nil {
					b.Fatal(err)
				}
				if n != size {
					b.Fatalf("appended %d of %d", n, size)
				}
			}
			// CPU time per event counts the work, not the waiting: on a
			// shared machine it varies less than events/s. (It includes the
			// untimed event generation.)
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(i*size), "cpu-µs/event")
			b.ReportMetric(float64(i*size)/b.Elapsed().Seconds(), "events/s")
			// The checkpointer should keep the WAL from growing without bound.
			if st, err := os.Stat(path + "-wal"); err == nil {
				b.ReportMetric(float64(st.Size())/(1<<20), "wal-MiB")
			}
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
