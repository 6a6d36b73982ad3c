package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// BenchmarkGetProfile measures reading one profile with its identities
// and consent, as the dispatcher does for every webhook it sends.
// Run: go test -run '^$' -bench GetProfile ./store/sqlite/
func BenchmarkGetProfile(b *testing.B) {
	const n = 10_000
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	var res store.Resolution
	for i := range n {
		id := "p" + strconv.Itoa(i)
		res.Profiles = append(res.Profiles, store.ProfileChange{ID: id, EventCount: 1, FirstSeen: now, LastSeen: now, At: now})
		res.Identities = append(res.Identities,
			kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.UserID, Value: "u" + strconv.Itoa(i)}, ProfileID: id, FirstSeen: now},
			kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.Email, Value: "u" + strconv.Itoa(i) + "@example.com"}, ProfileID: id, FirstSeen: now})
	}
	if err := db.ApplyResolution(ctx, res); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		p, err := db.GetProfile(ctx, "p"+strconv.Itoa(i*7919%n))
		if err != nil || len(p.Identities) != 2 {
			b.Fatal(p, err)
		}
		i++
	}
}
