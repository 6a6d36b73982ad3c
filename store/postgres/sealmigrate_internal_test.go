package postgres

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/pressly/goose/v3"
)

// TestSourceSecretMigration upgrades a schema at the version before sealed
// source secrets (4) holding a plaintext secret: the migration keeps the
// row and its secret, and SealSourceSecrets then seals it.
func TestSourceSecretMigration(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	raw := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectPostgres, raw, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO sources (id, name, kind, store, secret) VALUES ('src_old', 'shop', 'shopify', '', 'shpss_old')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	pool.Close()

	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := db.GetSource(ctx, "shop")
	if err != nil || s.Secret != "shpss_old" || len(s.SealedSecret) != 0 {
		t.Fatalf("after the migration: %+v, %v", s, err)
	}
	n, err := db.SealSourceSecrets(ctx, func(s kiln.Source) ([]byte, error) { return []byte("sealed(" + s.Secret + ")"), nil })
	if err != nil || n != 1 {
		t.Fatalf("SealSourceSecrets = %d, %v", n, err)
	}
	var secret string
	var sealed []byte
	if err := db.pool.QueryRow(ctx, `SELECT secret, secret_sealed FROM sources WHERE id = 'src_old'`).Scan(&secret, &sealed); err != nil {
		t.Fatal(err)
	}
	if secret != "" || string(sealed) != "sealed(shpss_old)" {
		t.Fatalf("stored secret %q, sealed %q", secret, sealed)
	}
}
