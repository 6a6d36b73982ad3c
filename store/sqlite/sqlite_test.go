package sqlite_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
	"github.com/kiln-cdp/kiln/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := sqlite.Open(filepath.Join(t.TempDir(), "kiln.db"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestLockConformance(t *testing.T) {
	storetest.RunLock(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "kiln.db")
		return open(t, path), open(t, path)
	})
}

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A second process connects, finds the lock held and closes without
// touching the database: no file is created, and an existing one (with
// its WAL) is left byte for byte as it was.
func TestRefusedLockTouchesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"new.db", "live.db"} {
		path := filepath.Join(dir, name)
		var holder *sqlite.DB
		if name == "live.db" {
			holder = open(t, path)
			defer holder.Close()
		} else {
			var err error
			if holder, err = sqlite.Connect(path, sqlite.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		release, err := holder.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		before := files(t, path)
		second, err := sqlite.Connect(path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := second.Lock(ctx); err == nil || !strings.Contains(err.Error(), path+" is in use by another kiln process (pid ") {
			t.Errorf("%s: second lock: %v", name, err)
		}
		if err := second.Close(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
		if after := files(t, path); after != before {
			t.Errorf("%s: the refused process changed the files:\n%s\nwant\n%s", name, after, before)
		}
	}
}

// files describes the database's files: name, size and content hash.
func files(t *testing.T, path string) string {
	t.Helper()
	var b strings.Builder
	for _, suffix := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(path + suffix)
		if os.IsNotExist(err) {
			fmt.Fprintf(&b, "%s: none\n", filepath.Base(path+suffix))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %d bytes %x\n", filepath.Base(path+suffix), len(data), sha256.Sum256(data))
	}
	return b.String()
}
