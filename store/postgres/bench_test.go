package postgres_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/kiln-cdp/kiln/store/storetest"
)

// BenchmarkAppend measures durable ingest: each op is one Append (one
// committed transaction) of a batch the size the journal group-commits.
// Run: KILN_TEST_POSTGRES=postgres://... go test -run '^$' -bench Append -benchtime 40x ./store/postgres/
// KILN_BENCH_PREFILL=1000000 first appends that many events (untimed), to
// measure a log of that size.
func BenchmarkAppend(b *testing.B) {
	dsn := pgtest.DSN(b)
	prefill, _ := strconv.Atoi(os.Getenv("KILN_BENCH_PREFILL"))
	for _, size := range []int{500, 2500} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			db := open(b, dsn)
			defer db.Close()
			ctx := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for n := 0; n < prefill; n += 5000 {
				if _, err := db.Append(ctx, store.Batch{Events: storetest.Events("prefill"+strconv.Itoa(n), 5000, t0)}); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
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
			b.ReportMetric(float64(i*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
