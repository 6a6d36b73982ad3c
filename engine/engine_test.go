package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

type bundle struct {
	st    store.Store
	e     *Engine
	clock *atomic.Int64 // Unix ms; 0 means the real clock
	mu    sync.Mutex
	seen  []kiln.Transition
	stop  func()
	seq   int
}

func (b *bundle) now() time.Time {
	if ms := b.clock.Load(); ms != 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Now()
}

// setup runs an engine on a fresh SQLite file. With fake true its clock
// starts at a fixed instant and moves only when the test says.
func setup(t *testing.T, fake bool) *bundle {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{st: st, clock: new(atomic.Int64)}
	if fake {
		b.clock.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	}
	// Refits happen when a test asks: one in the background would race it.
	e, err := New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: b.now, Poll: 20 * time.Millisecond, Refit: -1,
		OnTransitions: func(ts []kiln.Transition) { b.mu.Lock(); b.seen = append(b.seen, ts...); b.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	b.e = e
	b.start(t)
	t.Cleanup(func() { b.stop(); st.Close() })
	return b
}

func (b *bundle) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan error, 1)
	go func() { done <- b.e.Run(ctx, ready) }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	b.stop = func() { cancel(); <-done }
}

// send appends events for one user and waits until they are processed.
func (b *bundle) send(t *testing.T, user string, evs ...kiln.Event) {
	t.Helper()
	for i := range evs {
		b.seq++
		e := &evs[i]
		e.MessageID = fmt.Sprintf("m%d", b.seq)
		e.SourceID = "test"
		if e.Type == "" {
			e.Type = kiln.Track
		}
		e.UserID = user
		e.Anchor = identity.Anchor(identity.Extract(e))
		if e.ReceivedAt.IsZero() {
			e.ReceivedAt = b.now()
		}
	}
	if _, err := b.st.Append(context.Background(), store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	last, _ := b.st.LastSeq(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.e.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
}

func order(at time.Time, revenue float64) kiln.Event {
	return kiln.Event{Name: kiln.OrderCompleted, Timestamp: at, Properties: map[string]any{"revenue": revenue}}
}

func (b *bundle) transitions() []kiln.Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]kiln.Transition(nil), b.seen...)
}

func (b *bundle) member(t *testing.T, seg, user string) bool {
	t.Helper()
	pid, err := b.st.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.UserID, Value: user})
	if err != nil {
		t.Fatalf("no profile for %s: %v", user, err)
	}
	ms, err := b.st.MembershipsOf(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Segment == seg {
			return true
		}
	}
	return false
}

const recentDefs = `
trait orders_90d = count of "Order Completed" in last 90 days
segment recent_buyers "Ordered in the last 90 days" {
  orders_90d >= 1
}
`

func TestEventEntersAndExpiryExitsAtTheExactInstant(t *testing.T) {
	b := setup(t, true)
	if _, err := b.e.ApplyDefinitions(context.Background(), recentDefs, false); err != nil {
		t.Fatal(err)
	}
	t0 := b.now()
	b.send(t, "ann", order(t0.Add(-10*24*time.Hour), 20))
	if !b.member(t, "recent_buyers", "ann") {
		t.Fatal("ann did not enter recent_buyers")
	}
	ts := b.transitions()
	if len(ts) != 1 || !ts[0].Entered || ts[0].Reason != kiln.ReasonEvent || ts[0].Version != 1 || ts[0].EventSeq == 0 || len(ts[0].Evidence) == 0 {
		t.Fatalf("entry transition: %+v", ts)
	}
	exit := t0.Add(80 * 24 * time.Hour) // the order leaves the 90-day window exactly then
	b.clock.Store(exit.Add(-time.Millisecond).UnixMilli())
	b.e.Wake()
	time.Sleep(100 * time.Millisecond)
	if !b.member(t, "recent_buyers", "ann") {
		t.Fatal("ann left before the window expired")
	}
	b.clock.Store(exit.Add(300 * time.Millisecond).UnixMilli())
	b.e.Wake()
	deadline := time.Now().Add(5 * time.Second)
	for b.member(t, "recent_buyers", "ann") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.member(t, "recent_buyers", "ann") {
		t.Fatal("ann did not leave when the window expired")
	}
	// The store has the exit; the callback follows the commit.
	for len(b.transitions()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ts = b.transitions()
	last := ts[len(ts)-1]
	if last.Entered || last.Reason != kiln.ReasonExpiry || !last.At.Equal(exit) {
		t.Fatalf("exit transition %+v, want an expiry at exactly %s", last, exit)
	}
	stored, err := b.st.Transitions(context.Background(), store.TransitionQuery{Segment: "recent_buyers"})
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored transitions: %v %+v", err, stored)
	}
}

// With the real clock: an order placed so that it leaves a one-minute
// window 1.5 s from now is out within a second of that instant.
func TestRealTimeExpiryLag(t *testing.T) {
	b := setup(t, false)
	defs := `segment last_minute { count of "Order Completed" in last 1 minutes >= 1 }`
	if _, err := b.e.ApplyDefinitions(context.Background(), defs, false); err != nil {
		t.Fatal(err)
	}
	exit := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
	b.send(t, "bob", order(exit.Add(-time.Minute), 5))
	if !b.member(t, "last_minute", "bob") {
		t.Fatal("bob did not enter")
	}
	for b.member(t, "last_minute", "bob") {
		if time.Since(exit) > time.Second {
			t.Fatalf("bob still a member %s after the window expired", time.Since(exit))
		}
		time.Sleep(5 * time.Millisecond)
	}
	lag := time.Since(exit)
	for len(b.transitions()) < 2 && time.Since(exit) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	ts := b.transitions()
	if last := ts[len(ts)-1]; !last.At.Equal(exit) || last.Reason != kiln.ReasonExpiry {
		t.Fatalf("exit %+v, want expiry at %s", last, exit)
	}
	t.Logf("exit recorded within %s of the exact instant", lag)
}

func TestDefinitionChangeBackfillsAndRestartRebuilds(t *testing.T) {
	b := setup(t, true)
	now := b.now()
	b.send(t, "big", order(now.Add(-24*time.Hour), 700), order(now.Add(-48*time.Hour), 400))
	b.send(t, "small", order(now.Add(-24*time.Hour), 30))
	defs := `trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days
segment high_value { spend_365d >= 1000 }
  backfill all`
	res, err := b.e.ApplyDefinitions(context.Background(), defs, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entered["high_value"] != 1 || !b.member(t, "high_value", "big") || b.member(t, "high_value", "small") {
		t.Fatalf("backfill: %+v", res)
	}
	ts := b.transitions()
	if ts[0].Reason != kiln.ReasonDefinitionChange || !ts[0].Act || ts[0].Version != 1 {
		t.Fatalf("backfill transition: %+v", ts[0])
	}
	// Lower the bar: small enters with version 2; applying it again changes nothing.
	defs2 := `trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days
segment high_value { spend_365d >= 20 }
  backfill none`
	res, err = b.e.ApplyDefinitions(context.Background(), defs2, false)
	if err != nil || len(res.Changed) != 1 || res.Entered["high_value"] != 1 {
		t.Fatalf("second apply: %+v %v", res, err)
	}
	ts = b.transitions()
	if l := ts[len(ts)-1]; l.Version != 2 || l.Act {
		t.Fatalf("backfill none should not act: %+v", l)
	}
	if res, _ := b.e.ApplyDefinitions(context.Background(), defs2, false); len(res.Unchanged) != 2 || len(res.Changed) != 0 {
		t.Fatalf("re-apply: %+v", res)
	}
	// Errors carry line and column and change nothing.
	_, err = b.e.ApplyDefinitions(context.Background(), "segment broken {\n  no_such_trait >= 1\n}", false)
	if err == nil || kiln.ErrorCode(err) != kiln.EInvalid || !containsAll(err.Error(), "2:", "no_such_trait") {
		t.Fatalf("bad definition: %v", err)
	}
	// Restart: state is rebuilt from the log and agrees with the store.
	b.stop()
	before := len(b.transitions())
	b.start(t)
	if got := len(b.transitions()); got != before {
		t.Fatalf("restart recorded %d reconciliation transitions, want none", got-before)
	}
	_, segs := b.e.ProfileSegments(mustProfile(t, b, "small"))
	if len(segs) != 1 || segs[0] != "high_value" {
		t.Fatalf("after restart small is in %v", segs)
	}
}

func mustProfile(t *testing.T, b *bundle, user string) string {
	pid, err := b.st.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.UserID, Value: user})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// A segment with a schedule publishes membership changes only when its
// schedule fires; a manual one only on recompute.
func TestScheduledFreshness(t *testing.T) {
	b := setup(t, true)
	defs := `segment buyers_q { count of "Order Completed" in last 30 days >= 1 }
  freshness every 15 minutes
segment buyers_manual { count of "Order Completed" in last 30 days >= 1 }
  freshness manual
segment buyers_now { count of "Order Completed" in last 30 days >= 1 }`
	if _, err := b.e.ApplyDefinitions(context.Background(), defs, false); err != nil {
		t.Fatal(err)
	}
	t0 := b.now()
	b.send(t, "cy", order(t0.Add(-time.Hour), 10))
	if !b.member(t, "buyers_now", "cy") || b.member(t, "buyers_q", "cy") || b.member(t, "buyers_manual", "cy") {
		t.Fatal("only the real-time segment should have the new member yet")
	}
	b.clock.Store(t0.Add(15*time.Minute + time.Second).UnixMilli())
	b.e.Wake()
	deadline := time.Now().Add(5 * time.Second)
	for !b.member(t, "buyers_q", "cy") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !b.member(t, "buyers_q", "cy") {
		t.Fatal("the scheduled segment did not publish when its schedule fired")
	}
	if b.member(t, "buyers_manual", "cy") {
		t.Fatal("the manual segment published without a recompute")
	}
	j, err := b.e.Recompute(context.Background(), "buyers_manual")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if got, _ := b.e.Job(j.ID); got.State != "running" {
			if got.State != "done" || got.Entered != 1 {
				t.Fatalf("recompute job: %+v", got)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !b.member(t, "buyers_manual", "cy") {
		t.Fatal("recompute did not publish the manual segment")
	}
}

// A dry run reports what applying would change, stores nothing, and lets
// events be processed meanwhile (run with -race).
func TestDryRunWhileEventsFlow(t *testing.T) {
	b := setup(t, true)
	now := b.now()
	for i := 0; i < 20; i++ {
		b.send(t, fmt.Sprintf("u%d", i), order(now.Add(-time.Hour), float64(10*i)))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 20; i < 40; i++ {
			b.send(t, fmt.Sprintf("u%d", i), order(now.Add(-time.Hour), 1))
		}
	}()
	res, err := b.e.ApplyDefinitions(context.Background(), `segment big { sum(properties.revenue) of "Order Completed" all time >= 100 }`, true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Entered["big"] != 10 {
		t.Fatalf("dry run: %+v", res)
	}
	if len(b.e.Definitions()) != 0 {
		t.Fatal("a dry run stored definitions")
	}
}

// Traits a track event carries in its context (as Shopify and email tools
// send them) move the profile's segments at once, as an identify would.
func TestContextTraitsOfATrackEventMoveSegments(t *testing.T) {
	b := setup(t, true)
	if _, err := b.e.ApplyDefinitions(context.Background(), `segment trade { traits.plan = "trade" }`, false); err != nil {
		t.Fatal(err)
	}
	b.send(t, "42", kiln.Event{Name: "Page Viewed", Type: kiln.Page, Timestamp: b.now()})
	b.send(t, "42", kiln.Event{Name: "Order Completed", Timestamp: b.now(), Context: map[string]any{"traits": map[string]any{"plan": "trade"}}})
	if !b.member(t, "trade", "42") {
		t.Error("a track event's context traits did not move the profile into the segment")
	}
}

// Events this server was not offered (a bulk import by another process,
// a backlog stored before a restart) count in the lag that readiness and
// the metrics report, not only the batch in hand.
func TestLagCountsABacklogItWasNotOffered(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var e *Engine
	lag := make(chan int64, 1)
	e, err = New(Config{Store: st, BatchSize: 100, Refit: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTransitions: func([]kiln.Transition) {
			select {
			case lag <- e.Lag():
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go e.Run(runCtx, ready)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	if _, err := e.ApplyDefinitions(ctx, `segment buyers { performed "Order Completed" all time }`, false); err != nil {
		t.Fatal(err)
	}
	// Stored without offering them to the engine, as kiln import does.
	var evs []kiln.Event
	for i := range 2000 {
		e := kiln.Event{Type: kiln.Track, Name: kiln.OrderCompleted, UserID: fmt.Sprintf("u%d", i), MessageID: fmt.Sprintf("m%d", i), SourceID: "test",
			Timestamp: time.Now(), ReceivedAt: time.Now()}
		e.Anchor = identity.Anchor(identity.Extract(&e))
		evs = append(evs, e)
	}
	if _, err := st.Append(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	e.Wake()
	if got := <-lag; got < 1800 {
		t.Errorf("lag after the first batch of 100 of 2,000 stored events: %d, want at least 1,800", got)
	}
	if err := e.WaitFor(ctx, 2000); err != nil {
		t.Fatal(err)
	}
	if got := e.Lag(); got != 0 {
		t.Errorf("lag once everything is processed: %d", got)
	}
}
