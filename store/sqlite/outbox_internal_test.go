package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store"
)

// Claims and outcomes commit relaxed; the writer must be back to FULL
// afterwards, or the event log would lose its durability.
func TestOutboxLeavesTheWriterFullySynchronous(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ClaimOutbox(ctx, time.Now(), time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishOutbox(ctx, []store.OutboxResult{{ID: 1, State: store.OutboxDelivered, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	var level int
	if err := db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != 2 {
		t.Fatalf("writer synchronous = %d after outbox writes, want 2 (FULL)", level)
	}
}
