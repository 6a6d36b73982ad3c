package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/pressly/goose/v3"
)

// TestSourceSecretMigration upgrades a database written by the schema
// before sealed source secrets (version 5) with a plaintext secret in it:
// the migration keeps the row and its secret readable, and
// SealSourceSecrets then seals it.
func TestSourceSecretMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, raw, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO sources (id, name, kind, store, secret, created_at) VALUES ('src_old', 'shop', 'shopify', '', 'shpss_old', 1)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(path)
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
	if err := db.r.QueryRowContext(ctx, `SELECT secret, secret_sealed FROM sources WHERE id = 'src_old'`).Scan(&secret, &sealed); err != nil {
		t.Fatal(err)
	}
	if secret != "" || string(sealed) != "sealed(shpss_old)" {
		t.Fatalf("stored secret %q, sealed %q", secret, sealed)
	}
}
