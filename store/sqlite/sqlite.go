// Package sqlite is Kiln's embedded storage backend: one SQLite file in WAL
// mode through modernc.org/sqlite (pure Go, no cgo), implementing
// store.Store.
//
// Durability: the file runs with synchronous=FULL, so a committed Append
// survives a power cut or SIGKILL. SQLite allows one writer at a time, so
// every write goes through a dedicated one-connection pool (transactions
// begin IMMEDIATE, taking the write lock up front instead of upgrading
// later and failing with SQLITE_BUSY); reads use a separate pool of
// read-only connections and never wait behind a write.
//
// Times are stored as INTEGER unix nanoseconds in UTC (NULL for the zero
// time), so ordering by a time column is ordering by time; event times
// must lie between the years 1678 and 2261.
//
// Append throughput (BenchmarkAppend) is bounded by SQLite's page writes
// more than by CPU: every commit writes each page it changed to the WAL,
// and later copies it into the file at a checkpoint. New rows go to the
// end of the events table, but their entries in the (source_id,
// message_id) dedup index and the (anchor, ts) index land at random places
// once those indexes are larger than a batch (message ids are random
// UUIDs, anchors are many customers), so a large log costs about one
// 4 KiB page per index per event.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/migrate"
	"github.com/pressly/goose/v3"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a Kiln store in one SQLite file. It is safe for concurrent use.
type DB struct {
	path   string
	w      *sql.DB // the single writer connection
	r      *sql.DB // read-only connections
	opened bool    // Migrate succeeded: Close checkpoints
	amu    sync.Mutex
	dedup  *dedup // recent message ids, guarded by amu
	// The initial load of dedup (see Migrate).
	loading  sync.WaitGroup
	stopLoad context.CancelFunc
}

// Options tune a database.
type Options struct {
	// DedupWindow is how long message ids are remembered to recognise
	// retries (default DefaultDedupWindow).
	DedupWindow time.Duration
}

var _ store.Store = (*DB)(nil)

// Connection settings. busy_timeout makes a connection wait for a lock
// (another process, or a checkpoint) instead of failing at once.
//
// The writer checkpoints (copies the WAL back into the database file) every
// 8192 pages (32 MiB) rather than SQLite's default 1000: hot pages (index
// interiors) are copied once per checkpoint, so fewer, larger checkpoints
// write less. (Measured: a background checkpointer on its own connection
// gained nothing over this.) journal_size_limit trims the WAL file after
// a burst.
const (
	writeParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(0)&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(8192)" +
		"&_pragma=journal_size_limit(67108864)&_txlock=immediate"
	readParams = "_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-16384)"
)

// Open opens (creating if needed) the SQLite database at path and brings
// its schema up to date, with default Options.
func Open(path string) (*DB, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, o Options) (*DB, error) {
	db, err := Connect(path, o)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Connect returns a DB for path without touching the file: nothing is
// created, connected or written until Migrate. A server takes Lock in
// between, so that a second server fails before it changes anything.
// Open is Connect and Migrate.
func Connect(path string, o Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty database path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %s: the path must not contain '?'", path)
	}
	// sql.Open only prepares the pools; connections are made on first use.
	w, err := sql.Open("sqlite", path+"?"+writeParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", path+"?"+readParams)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{path: path, w: w, r: r, dedup: newDedup(o.DedupWindow)}, nil
}

// Migrate creates the file if needed, switches it to WAL, brings its
// schema up to date and loads the recent message ids: what Open does after
// Connect. Call it once, before any other method but Lock and Close.
func (db *DB) Migrate(ctx context.Context) error {
	// The first statement creates the file and switches it to WAL, before
	// any reader connects.
	var mode string
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, want wal (is the file on a filesystem without shared memory?)", db.path, mode)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	if err := migrate.Up(ctx, db.w, goose.DialectSQLite3, sub, nil); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s for reading: %w", db.path, err)
	}
	var last int64
	if err := db.w.QueryRowContext(ctx, logLastSeq).Scan(&last); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	// The window of recent message ids (a million of them take seconds to
	// read) loads in the background, holding the append lock: appends wait
	// for it, everything else goes on, and a server opens its port at once.
	// Should it fail, the first append reads what is missing itself.
	loadCtx, cancel := context.WithCancel(context.Background())
	db.stopLoad = cancel
	db.amu.Lock()
	db.loading.Go(func() {
		defer db.amu.Unlock()
		if err := db.dedup.catchUp(loadCtx, db.r, last); err != nil && loadCtx.Err() == nil {
			slog.Warn("sqlite: loading recent message ids; the first append reads them", "db", db.path, "err", err)
		}
	})
	db.opened = true
	return nil
}

// Close checkpoints the whole WAL, so that the file is complete on its
// own, and closes the connection pools. A DB that Migrate has not opened
// (only connected, or Migrate failed) is closed without touching the
// file: it may belong to another process.
func (db *DB) Close() error {
	if db.stopLoad != nil {
		db.stopLoad()
		db.loading.Wait()
	}
	errs := []error{db.r.Close()}
	if db.opened {
		if _, err := db.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("sqlite: close %s: checkpoint: %w", db.path, err))
		}
	}
	return errors.Join(append(errs, db.w.Close())...)
}

// Ping checks that the database answers on both pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", db.path, err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", db.path, err)
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write runs fn in one write transaction and commits it.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Times are unix nanoseconds; the zero time is NULL.

func tval(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func tget(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func tgetp(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

// eventTime checks that t fits in int64 nanoseconds, so that a wild client
// timestamp is refused instead of silently wrapping around.
func eventTime(t time.Time, what string, e *kiln.Event) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return nil, kiln.Errorf(kiln.EInvalid, "event %q from source %q: %s %s is outside the years 1678-2261",
			e.MessageID, e.SourceID, what, t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}
