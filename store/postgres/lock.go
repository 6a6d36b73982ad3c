package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln/store"
)

// Lock implements store.Store with a session advisory lock on a connection
// of its own, outside the pool, held until release. The key is per schema,
// like the migration lock, so databases holding several Kiln schemas
// (tests) do not exclude each other. The connection's application_name
// says which process holds it ("kiln pid 1234 on web1"), for the next
// process's error and for pg_stat_activity.
//
// PostgreSQL drops the lock when the session ends, so a process that dies
// releases it. So does a lost connection, silently: the holder does not
// notice (cluster mode, issue 19, will watch it). A pooler in transaction
// mode (PgBouncer) cannot hold a session lock: connect directly.
func (db *DB) Lock(ctx context.Context) (release func(), err error) {
	cfg := db.pool.Config().ConnConfig.Copy()
	host, _ := os.Hostname()
	cfg.RuntimeParams["application_name"] = fmt.Sprintf("kiln pid %d on %s", os.Getpid(), host)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock %s: %w", db.where, err)
	}
	key, schema, ok, err := tryServerLock(ctx, conn)
	if err == nil && !ok {
		err = &store.LockedError{
			Store:  fmt.Sprintf("PostgreSQL database %s (schema %s)", db.where, schema),
			Holder: holder(ctx, conn, key),
		}
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn.Close(ctx) // ending the session drops the lock
		})
	}, nil
}

// tryServerLock tries the schema's server lock without waiting.
func tryServerLock(ctx context.Context, conn *pgx.Conn) (key int64, schema string, ok bool, err error) {
	schema, err = currentSchema(ctx, conn)
	if err != nil {
		return 0, "", false, fmt.Errorf("postgres: lock: %w", err)
	}
	key = lockID("kiln server " + schema)
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		return 0, "", false, fmt.Errorf("postgres: lock schema %s: %w", schema, err)
	}
	return key, schema, ok, nil
}

// holderQuery finds the session holding a bigint advisory lock, which
// pg_locks shows split into its high (classid) and low (objid) halves.
const holderQuery = `
SELECT coalesce(a.application_name, ''), l.pid
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = $1 AND l.objid::bigint = $2
LIMIT 1`

// holder says who holds the lock: the kiln process, as its lock
// connection names it, or at least the PostgreSQL backend; "" if unknown.
func holder(ctx context.Context, conn *pgx.Conn, key int64) string {
	var app string
	var backend int
	k := uint64(key)
	if err := conn.QueryRow(ctx, holderQuery, int64(k>>32), int64(k&0xffffffff)).Scan(&app, &backend); err != nil {
		return ""
	}
	if name, ok := strings.CutPrefix(app, "kiln "); ok {
		return name
	}
	return fmt.Sprintf("PostgreSQL backend pid %d", backend)
}
