package storetest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// RunLock checks Store.Lock. open returns two handles on one new empty
// store, as two processes would open it; RunLock closes them. The two
// handles are in one process, so the holder named in the error is this
// process.
func RunLock(t *testing.T, open func(t *testing.T) (store.Store, store.Store)) {
	a, b := open(t)
	t.Cleanup(func() {
		if err := errors.Join(a.Close(), b.Close()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	releaseA, err := a.Lock(ctx)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	wantLocked(t, b)

	// The lock excludes only other lockers: admin commands read and
	// write beside the server.
	if err := b.CreateSource(ctx, kiln.Source{ID: "src_lock", Name: "pos", Kind: "import", CreatedAt: at(0)}); err != nil {
		t.Fatalf("write beside the holder: %v", err)
	}
	if _, err := a.GetSource(ctx, "pos"); err != nil {
		t.Fatalf("the holder reads what the other wrote: %v", err)
	}

	releaseA()
	releaseA() // idempotent
	releaseB, err := b.Lock(ctx)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	wantLocked(t, a)
	releaseB()
}

// wantLocked checks that s.Lock fails at once, naming this process.
func wantLocked(t *testing.T, s store.Store) {
	t.Helper()
	start := time.Now()
	release, err := s.Lock(ctx)
	if err == nil {
		release()
		t.Fatal("a second Lock succeeded while the first was held")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a second Lock took %v to fail; it must not wait", took)
	}
	var le *store.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second Lock: %v, want a *store.LockedError", err)
	}
	pid := fmt.Sprintf("pid %d", os.Getpid())
	if !strings.Contains(err.Error(), "in use by another kiln process") || !strings.HasPrefix(le.Holder, pid) {
		t.Errorf("second Lock: %q (holder %q), want it in use by %s", err, le.Holder, pid)
	}
}
