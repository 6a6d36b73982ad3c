// Package postgres is Kiln's production storage backend: PostgreSQL
// through pgx (pgxpool), implementing store.Store.
//
// Open applies the embedded migrations (goose) under a session advisory
// lock, so several Kiln processes can start against one database. Times are
// timestamptz, so they keep microsecond precision; they come back in UTC.
// Append serialises appenders with a transaction advisory lock: Seqs then
// become visible in increasing order, and a consumer that tails the log by
// Seq never steps over an event whose transaction is still committing.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/migrate"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a Kiln store in a PostgreSQL database (the schema first on the
// connection's search_path). It is safe for concurrent use.
type DB struct {
	pool  *pgxpool.Pool
	where string // host:port/database, for errors
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgx accepts; pool_max_conns and the like work too) and brings
// its schema up to date.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return OpenConfig(ctx, cfg)
}

// OpenConfig is Open with a pgxpool configuration built by the caller.
func OpenConfig(ctx context.Context, cfg *pgxpool.Config) (*DB, error) {
	db, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Connect connects to the database at dsn without changing it: a server
// takes Lock before Migrate, so that a second server fails before it
// changes anything. Open is Connect and Migrate.
func Connect(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return connect(ctx, cfg)
}

func connect(ctx context.Context, cfg *pgxpool.Config) (*DB, error) {
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	return &DB{pool: pool, where: where}, nil
}

// Migrate brings the schema up to date: what Open does after Connect.
func (db *DB) Migrate(ctx context.Context) error {
	if err := migrateUp(ctx, db.pool); err != nil {
		return fmt.Errorf("postgres: open %s: %w", db.where, err)
	}
	return nil
}

func migrateUp(ctx context.Context, pool *pgxpool.Pool) error {
	// The migration lock is per schema, so that databases holding several
	// Kiln schemas (tests) do not wait on each other.
	schema, err := currentSchema(ctx, pool)
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID("kiln migrations "+schema)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrate.Up(ctx, db, goose.DialectPostgres, sub, locker)
}

// currentSchema is the schema Kiln's tables are in: the first on the
// search_path that exists.
func currentSchema(ctx context.Context, q querier) (string, error) {
	var schema pgtype.Text
	if err := q.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", err
	}
	if !schema.Valid {
		return "", errors.New("no schema on the search_path exists: create it, or fix search_path")
	}
	return schema.String, nil
}

// lockID makes an advisory lock key from a name.
func lockID(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// appendLock is the transaction advisory lock that serialises Append.
var appendLock = lockID("kiln events append")

// Close closes the connection pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// querier is what pgxpool.Pool, pgx.Tx and pgx.Conn offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn in one transaction and commits it.
func (db *DB) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, fn)
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// dataError gives err the code kiln.EInvalid when PostgreSQL refused a
// value: SQLSTATE class 22 (data exception: a NUL in text, a time out of
// range) or 54000 (a value over a limit, such as an index entry). Retrying
// the same data fails again; see store.Log.Append.
func dataError(err error) error {
	var e *pgconn.PgError
	if errors.As(err, &e) && (strings.HasPrefix(e.Code, "22") || e.Code == "54000") {
		return errors.Join(kiln.Errorf(kiln.EInvalid, "PostgreSQL cannot store a value: %s (SQLSTATE %s)", e.Message, e.Code), err)
	}
	return err
}

// Times: the zero time is NULL.

func tval(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func tget(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

func tgetp(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
