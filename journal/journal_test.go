package journal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
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

// gate holds every Append until release is closed and records how many
// events each carried, so that a test can queue writes behind a commit in
// flight and see them gathered into one group.
type gate struct {
	Appender
	began   chan struct{} // receives a value as the first Append starts
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func newGate(app Appender) *gate {
	return &gate{Appender: app, began: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gate) Append(ctx context.Context, b store.Batch) (int, error) {
	select {
	case g.began <- struct{}{}:
	default:
	}
	<-g.release
	g.mu.Lock()
	g.sizes = append(g.sizes, len(b.Events))
	g.mu.Unlock()
	return g.Appender.Append(ctx, b)
}

const groupWriters, groupEach = 8, 5

// writeGroup has groupWriters concurrent writers each write one request of
// groupEach events, all gathered into one group commit behind a commit in
// flight; the events of writer bad are spoiled by poison (nil: none). It
// returns each writer's error, the gate's record and the events committed.
func writeGroup(t *testing.T, app Appender, bad int, poison func(*kiln.Event)) ([]error, *gate, []kiln.Event) {
	t.Helper()
	g := newGate(app)
	var mu sync.Mutex
	var committed []kiln.Event
	j := New(g, Options{OnCommit: func(evs []kiln.Event) { mu.Lock(); committed = append(committed, evs...); mu.Unlock() }})
	defer j.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	event := func(id string) kiln.Event {
		return kiln.Event{MessageID: id, SourceID: "s", Type: kiln.Track, Name: "x", Anchor: "user_id:u", UserID: "u", Timestamp: now, ReceivedAt: now}
	}
	go j.Write(context.Background(), []kiln.Event{event("plug")}, nil)
	<-g.began // the plug's commit is in flight: the writes below queue up behind it
	errs := make([]error, groupWriters)
	var wg sync.WaitGroup
	for w := range groupWriters {
		evs := make([]kiln.Event, groupEach)
		for i := range evs {
			evs[i] = event(fmt.Sprintf("w%d-%d", w, i))
			if w == bad && poison != nil {
				poison(&evs[i])
			}
		}
		wg.Go(func() {
			n, err := j.Write(context.Background(), evs, []kiln.Reject{{SourceID: "s", ReceivedAt: now, Reason: fmt.Sprintf("writer %d", w)}})
			errs[w] = err
			if err == nil && n != groupEach {
				t.Errorf("writer %d: %d new events, want %d", w, n, groupEach)
			}
			for _, e := range evs {
				if (e.Seq != 0) != (err == nil) {
					t.Errorf("writer %d: event %s has seq %d after error %v", w, e.MessageID, e.Seq, err)
				}
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); len(j.reqs) < groupWriters; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes queued", len(j.reqs), groupWriters)
		}
	}
	close(g.release)
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(g.sizes) < 2 || g.sizes[1] != groupWriters*groupEach {
		t.Fatalf("appends of %v events: the writes were not gathered into one group", g.sizes)
	}
	return errs, g, committed
}

// A request whose data the store refuses fails alone, with kiln.EInvalid
// naming the event; the requests that shared its group commit are stored
// and acknowledged, with their rejects.
func testBadDataFailsOnlyItsRequest(t *testing.T, st interface {
	Appender
	CountEvents(context.Context) (int64, error)
	ListRejects(context.Context, store.RejectFilter) ([]kiln.Reject, error)
}, poison func(*kiln.Event)) {
	const bad = 3
	errs, g, committed := writeGroup(t, st, bad, poison)
	for w, err := range errs {
		switch {
		case w == bad && kiln.ErrorCode(err) != kiln.EInvalid:
			t.Errorf("the bad request: error %v (code %q), want code %q", err, kiln.ErrorCode(err), kiln.EInvalid)
		case w == bad && !strings.Contains(kiln.ErrorMessage(err), "the events cannot be stored"):
			t.Errorf("the bad request: message %q", kiln.ErrorMessage(err))
		case w != bad && err != nil:
			t.Errorf("writer %d, beside the bad request: %v", w, err)
		}
	}
	want := 1 + (groupWriters-1)*groupEach // the plug and the good writers
	if n, _ := st.CountEvents(context.Background()); n != int64(want) || len(committed) != want {
		t.Errorf("%d events stored, %d committed; want %d", n, len(committed), want)
	}
	if rs, _ := st.ListRejects(context.Background(), store.RejectFilter{}); len(rs) != groupWriters-1 {
		t.Errorf("%d rejects stored, want %d", len(rs), groupWriters-1)
	}
	if len(g.sizes) > 2+2*4 { // the plug, the group, then halves down to the bad one
		t.Errorf("%d appends (%v): more than bisection needs", len(g.sizes), g.sizes)
	}
}

func TestBadDataFailsOnlyItsRequestOnSQLite(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testBadDataFailsOnlyItsRequest(t, st, func(e *kiln.Event) { e.Properties = map[string]any{"revenue": math.NaN()} })
}

func TestBadDataFailsOnlyItsRequestOnPostgres(t *testing.T) {
	st, err := postgres.Open(context.Background(), pgtest.Schema(t, pgtest.DSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// PostgreSQL text holds no NUL: the server refuses the whole INSERT.
	testBadDataFailsOnlyItsRequest(t, st, func(e *kiln.Event) { e.UserID = "u\x00" })
}

// failing refuses every Append with an error that is not the data's fault.
type failing struct{ calls int }

func (f *failing) Append(context.Context, store.Batch) (int, error) {
	f.calls++
	return 0, errors.New("connection reset by peer")
}

// A failure that is not the data's fault fails the whole group, once, as
// retryable: splitting it would only multiply the failing transactions.
func TestTransientFailureFailsTheGroup(t *testing.T) {
	f := &failing{}
	errs, g, _ := writeGroup(t, f, -1, nil)
	for w, err := range errs {
		if kiln.ErrorCode(err) != kiln.EUnavailable || !strings.Contains(kiln.ErrorMessage(err), "retry later") {
			t.Errorf("writer %d: %v, want a retryable error", w, err)
		}
	}
	if len(g.sizes) != 2 || f.calls != 2 {
		t.Errorf("appends of %v events: want the plug and one for the group", g.sizes)
	}
}
