package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// Concurrent writers share transactions; each gets back exactly its own
// new events with their Seqs, retries count as old, and the log holds
// every event once.
func TestGroupCommitOnSQLite(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	var committed []kiln.Event
	j := New(st, Options{OnCommit: func(evs []kiln.Event) { mu.Lock(); committed = append(committed, evs...); mu.Unlock() }})
	now := time.Now().UTC()
	const writers, per = 16, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 2; round++ { // the second round is a retry
				evs := make([]kiln.Event, per)
				for i := range evs {
					evs[i] = kiln.Event{MessageID: fmt.Sprintf("w%d-%d", w, i), SourceID: "s", Type: kiln.Track, Name: "x",
						Anchor: "user_id:u", UserID: "u", Timestamp: now, ReceivedAt: now}
				}
				n, err := j.Write(context.Background(), evs, nil)
				if err != nil {
					t.Error(err)
					return
				}
				want := per
				if round == 1 {
					want = 0
				}
				if n != want {
					t.Errorf("writer %d round %d: %d new, want %d", w, round, n, want)
				}
				for _, e := range evs {
					if (e.Seq != 0) != (round == 0) {
						t.Errorf("writer %d round %d: event %s has seq %d", w, round, e.MessageID, e.Seq)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Write(context.Background(), []kiln.Event{{MessageID: "late"}}, nil); err != ErrClosed {
		t.Errorf("write after close: %v", err)
	}
	if n, _ := st.CountEvents(context.Background()); n != writers*per {
		t.Errorf("%d events stored, want %d", n, writers*per)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(committed) != writers*per {
		t.Fatalf("OnCommit saw %d events, want %d", len(committed), writers*per)
	}
	for i := 1; i < len(committed); i++ {
		if committed[i].Seq <= committed[i-1].Seq {
			t.Fatalf("OnCommit out of Seq order at %d", i)
		}
	}
}
