package action_test

import (
	"testing"

	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
)

// onBackends runs fn on SQLite, and on PostgreSQL when KILN_TEST_POSTGRES
// is set (a fresh schema, dropped at the end).
func onBackends(t *testing.T, edit func(*action.Config), fn func(t *testing.T, r *rig)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newRig(t, edit)) })
	t.Run("postgres", func(t *testing.T) {
		schemaDSN := pgtest.Schema(t, pgtest.DSN(t))
		fn(t, newRigWith(t, edit, func() (store.Store, error) { return postgres.Open(ctx, schemaDSN) }))
	})
}
