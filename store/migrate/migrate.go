// Package migrate applies a backend's embedded, versioned SQL migrations
// with goose. Each backend (store/sqlite, store/postgres) embeds its own
// migrations/*.sql and calls Up when it opens the database, so a binary
// always runs against the schema it was built for.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Up applies every migration in fsys (files named NNNNN_what.sql at its
// root) that db has not had yet. With locker set, concurrent starts of
// several processes against one database take turns.
func Up(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, locker lock.SessionLocker) error {
	opts := []goose.ProviderOption{
		// Only the SQL files: never Go migrations registered by other packages.
		goose.WithDisableGlobalRegistry(true),
	}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	return nil
}
