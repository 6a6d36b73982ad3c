package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/storetest"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kiln.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestPragmas(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	var mode string
	var sync int
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Errorf("writer runs journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	if _, err := db.r.ExecContext(ctx, "INSERT INTO checkpoints (name, seq) VALUES ('x', 1)"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// A long write transaction must not hold up readers.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if _, err := db.Append(ctx, store.Batch{Events: storetest.Events("a", 3, time.Now().UTC())}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM events"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	evs, err := db.ReadEvents(rctx, 0, 10)
	if err != nil {
		t.Fatalf("read during a write transaction: %v", err)
	}
	if len(evs) != 3 {
		t.Errorf("read %d events during the write, want the 3 committed ones", len(evs))
	}
}

func TestReopenKeepsData(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	b := store.Batch{Events: storetest.Events("a", 10, time.Now().UTC())}
	if _, err := db.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	db2, err := Open(path) // migrations already applied: a no-op
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if last, err := db2.LastSeq(ctx); err != nil || last != b.Events[9].Seq {
		t.Errorf("after reopen LastSeq = %d, %v; want %d", last, err, b.Events[9].Seq)
	}
	if err := db2.Ping(ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("open of an empty path succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "kiln.db")); err == nil {
		t.Error("open in a missing directory succeeded")
	}
}

func TestEventTimeOutOfRange(t *testing.T) {
	db, _ := openTemp(t)
	evs := storetest.Events("a", 2, time.Now().UTC())
	evs[1].Timestamp = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := db.Append(context.Background(), store.Batch{Events: evs})
	if kiln.ErrorCode(err) != kiln.EInvalid || !strings.Contains(err.Error(), evs[1].MessageID) {
		t.Errorf("append of a year-3000 event: %v; want an invalid error naming the message", err)
	}
}

// An acknowledged Append survives the process being killed: the child
// appends, reports the Seqs and SIGKILLs itself without closing the store.
func TestAppendSurvivesKill(t *testing.T) {
	if path := os.Getenv("KILN_SQLITE_KILL_CHILD"); path != "" {
		db, err := Open(path)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		b := store.Batch{Events: storetest.Events("killed", 1000, time.Now().UTC())}
		if _, err := db.Append(context.Background(), b); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("appended", b.Events[999].Seq)
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	path := filepath.Join(t.TempDir(), "kiln.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendSurvivesKill$")
	cmd.Env = append(os.Environ(), "KILN_SQLITE_KILL_CHILD="+path)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, output %q; want it killed", err, out)
	}
	var last int64
	if _, err := fmt.Sscanf(string(out), "appended %d", &last); err != nil {
		t.Fatalf("child said %q", out)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if n, err := db.CountEvents(ctx); err != nil || n != 1000 {
		t.Errorf("after the kill %d events, %v; want 1000", n, err)
	}
	if got, _ := db.LastSeq(ctx); got != last {
		t.Errorf("after the kill LastSeq = %d, want %d", got, last)
	}
}

// A derived write commits at synchronous=NORMAL and hands the writer back
// at FULL, which every acknowledged append relies on; a write a user is
// told about stays at FULL throughout.
func TestDerivedWritesLeaveTheWriterAtFull(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	level := func(tx interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		var n int
		if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var inside int
	if err := db.writeDerived(ctx, func(tx *sql.Tx) error { inside = level(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != 1 {
		t.Errorf("inside a derived write synchronous = %d, want 1 (NORMAL)", inside)
	}
	if got := level(db.w); got != 2 {
		t.Errorf("after a derived write synchronous = %d, want 2 (FULL)", got)
	}
	// A failing derived write also restores FULL.
	if err := db.writeDerived(ctx, func(tx *sql.Tx) error { return errors.New("refused") }); err == nil {
		t.Fatal("want the error back")
	}
	if got := level(db.w); got != 2 {
		t.Errorf("after a failed derived write synchronous = %d, want 2 (FULL)", got)
	}
	if err := db.write(ctx, func(tx *sql.Tx) error { inside = level(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != 2 {
		t.Errorf("inside a plain write synchronous = %d, want 2 (FULL)", inside)
	}
	// Through the store interface: the engine's resolutions say Derived.
	if err := db.ApplyResolution(ctx, store.Resolution{Derived: true, Checkpoint: store.Checkpoint{Name: "x", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := level(db.w); got != 2 {
		t.Errorf("after a derived resolution synchronous = %d, want 2 (FULL)", got)
	}
}
