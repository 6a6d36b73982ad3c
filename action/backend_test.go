package action_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
)

// onBackends runs fn on SQLite, and on PostgreSQL when KILN_TEST_POSTGRES
// is set (a fresh schema, dropped at the end).
func onBackends(t *testing.T, edit func(*action.Config), fn func(t *testing.T, r *rig)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newRig(t, edit)) })
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("KILN_TEST_POSTGRES")
		if dsn == "" {
			t.Skip("KILN_TEST_POSTGRES is not set; set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the outbox on PostgreSQL")
		}
		schemaDSN := freshSchema(t, dsn)
		fn(t, newRigWith(t, edit, func() (store.Store, error) { return postgres.Open(ctx, schemaDSN) }))
	})
}

func freshSchema(t *testing.T, dsn string) string {
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kiln_action_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to KILN_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("KILN_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
