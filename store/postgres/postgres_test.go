package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/storetest"
)

// testDSN returns the database to test against, or skips the test.
func testDSN(t testing.TB) string {
	dsn := os.Getenv("KILN_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("KILN_TEST_POSTGRES is not set; set it to a PostgreSQL URL, e.g. " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests")
	}
	return dsn
}

// freshSchema creates an empty schema, dropped when the test ends, and
// returns dsn with that schema as its search_path.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kiln_test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to KILN_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withParam(t, dsn, "search_path", schema)
}

func withParam(t testing.TB, dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("KILN_TEST_POSTGRES: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

func open(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), freshSchema(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestConformance(t *testing.T) {
	dsn := testDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, dsn) })
}

func TestLockConformance(t *testing.T) {
	dsn := testDSN(t)
	storetest.RunLock(t, func(t *testing.T) (store.Store, store.Store) {
		schema := freshSchema(t, dsn)
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
	dsn := freshSchema(t, testDSN(t))
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
	_, err := postgres.Open(ctx, withParam(t, testDSN(t), "search_path", "kiln_no_such_schema"))
	if err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Errorf("open with a missing schema: %v, want an error about search_path", err)
	}
}
