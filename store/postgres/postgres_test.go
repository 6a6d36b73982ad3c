package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/kiln-cdp/kiln/store/storetest"
)

func open(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), pgtest.Schema(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestConformance(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, dsn) })
}

func TestLockConformance(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.RunLock(t, func(t *testing.T) (store.Store, store.Store) {
		schema := pgtest.Schema(t, dsn)
		ctx := context.Background()
		a, err := postgres.Open(ctx, schema)
		if err != nil {
			t.Fatal(err)
		}
		b, err := postgres.Open(ctx, schema)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

func TestOpenTwiceAndPing(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	ctx := context.Background()
	for range 2 { // the second open finds the schema up to date
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(ctx); err != nil {
			t.Errorf("ping: %v", err)
		}
		db.Close()
	}
	if _, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"); err == nil {
		t.Error("open of an unreachable database succeeded")
	}
	_, err := postgres.Open(ctx, pgtest.WithParam(t, pgtest.DSN(t), "search_path", "kiln_no_such_schema"))
	if err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Errorf("open with a missing schema: %v, want an error about search_path", err)
	}
}
