package postgres_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/kiln-cdp/kiln/store/storetest"
)

// BenchmarkTransitions measures writing segment transitions: each op is
// one ApplyResolution (one committed transaction) carrying a burst of
// entries of new profiles into one segment, from the size one event
// causes to a definition change over a large customer base.
// Run: KILN_TEST_POSTGRES=postgres://... go test -run '^$' -bench Transitions -benchtime 3x ./store/postgres/
func BenchmarkTransitions(b *testing.B) {
	dsn := pgtest.DSN(b)
	for _, size := range []int{10, 1000, 100_000} {
		b.Run("burst="+strconv.Itoa(size), func(b *testing.B) {
			db := open(b, dsn)
			defer db.Close()
			ctx := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			i := 0
			for b.Loop() {
				b.StopTimer()
				ts := storetest.Transitions("bench", "b"+strconv.Itoa(i), size, t0)
				i++
				b.StartTimer()
				if err := db.ApplyResolution(ctx, store.Resolution{Transitions: ts}); err != nil {
					b.Fatal(err)
				}
				if ts[size-1].ID == 0 {
					b.Fatal("no ID set")
				}
			}
			b.ReportMetric(float64(i*size)/b.Elapsed().Seconds(), "transitions/s")
		})
	}
}

// BenchmarkMembers measures reading a segment of 100,000 members: a page
// of 100 from a random cursor, and counting them.
// Run: KILN_TEST_POSTGRES=postgres://... go test -run '^$' -bench Members ./store/postgres/
func BenchmarkMembers(b *testing.B) {
	const n = 100_000
	db := open(b, pgtest.DSN(b))
	defer db.Close()
	ctx := context.Background()
	ts := storetest.Transitions("big", "m", n, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := db.ApplyResolution(ctx, store.Resolution{Transitions: ts}); err != nil {
		b.Fatal(err)
	}
	b.Run("page", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			after := ts[rng.IntN(n)].ProfileID
			page, err := db.Members(ctx, "big", after, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 && after < "p_f" {
				b.Fatalf("empty page after %s", after)
			}
		}
	})
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			c, err := db.CountMembers(ctx, "big")
			if err != nil || c != n {
				b.Fatalf("count = %d, %v", c, err)
			}
		}
	})
}
