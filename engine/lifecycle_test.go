package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/postgres/pgtest"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// The lifecycle property: a run of the engine that is restarted
// gracefully, crashed, edited and refitted at random points records
// exactly the transitions (profile, segment, direction, instant, version,
// reason) and the actions of a run that was never interrupted, over the
// same events and the same clock. The clock is fake and moves in steps
// from a millisecond to days, so windows expire, scheduled segments
// publish and sequences time out between and across restarts.

// lifeDefs is the definition set both runs start with: windows of several
// lengths, a sequence with a deadline and an open-ended one, the time of
// the last order, a condition on an order's own line items, nested
// profile traits, model traits, a segment published on a schedule, and
// population-relative conditions (ranks among the profiles, moved by
// others' events, expiries, merges and unmerges).
const lifeDefs = `
trait spend_30d = sum(properties.revenue) of "Order Completed" in last 30 days
trait orders_7d = count of "Order Completed" in last 7 days
segment big_spenders { spend_30d >= 100 }
segment frequent { orders_7d >= 2 }
segment abandoners { "Checkout Started" not followed by "Order Completed" within 2 hours in last 3 days }
segment vips { traits.tier = "vip" }
segment valuable { traits.clv_12m > 3000 }
segment loyal { traits.rfm_segment = "Loyal" }
segment daily_buyers { count of "Order Completed" in last 1 days >= 1 }
  freshness every 1 hours
trait last_order_at = last time of "Order Completed"
segment lapsing { last_order_at more than 2 days ago }
segment open_abandoners { "Checkout Started" not followed by "Order Completed" for at least 2 hours in last 3 days }
segment bulk_buyers { count of "Order Completed" where sum(products.quantity) >= 24 in last 7 days >= 1 }
segment trade { traits.company.name exists }
segment buyers_30d { spend_30d > 0 }
segment top_spenders { spend_30d in top 34% among buyers_30d }
segment busiest { rank of orders_7d <= 1 }
segment above_median { percentile of orders_7d >= 50 and in segment big_spenders }
segment top_quintile { quintile of spend_30d among buyers_30d = 5 }
segment not_top_quartile { not quartile of spend_30d = 4 and last_order_at exists }
`

// Edits the scripts apply: one changes a segment that has automations,
// one adds an unrelated segment.
const (
	lifeEditRelated   = "segment big_spenders { spend_30d >= 150 }"
	lifeEditUnrelated = `segment browsers { count of "Page Viewed" in last 1 days >= 1 }`
)

// lifeStep is one step of a script: move the clock, then do one thing.
type lifeStep struct {
	dt     time.Duration
	kind   string // events, related, unrelated, refit, unmerge
	events []kiln.Event
	back   []time.Duration // how long before the clock each event happened
	user   string          // unmerge: the user whose latest merge is undone
}

// lifeScript makes a random script; the same seed gives the same script.
func lifeScript(seed uint64, steps int) []lifeStep {
	rng := rand.New(rand.NewPCG(seed, 7))
	dts := []time.Duration{time.Millisecond, 250 * time.Millisecond, time.Minute, 37 * time.Minute, 2 * time.Hour, 26 * time.Hour, 3 * 24 * time.Hour, 9 * 24 * time.Hour}
	revenues := []float64{20, 50, 99.5, 100, 120, 300}
	var out []lifeStep
	for range steps {
		st := lifeStep{dt: dts[rng.IntN(len(dts))], kind: "events"}
		switch r := rng.IntN(100); {
		case r < 4:
			st.kind = "related"
		case r < 8:
			st.kind = "unrelated"
		case r < 14:
			st.kind = "refit"
		case r < 18:
			st.kind, st.user = "unmerge", fmt.Sprintf("u%d", rng.IntN(6))
		}
		if st.kind == "events" {
			for range 1 + rng.IntN(6) {
				u := rng.IntN(6)
				ev := kiln.Event{Type: kiln.Track, UserID: fmt.Sprintf("u%d", u)}
				// Timestamps: mostly now, some a little late, a few old.
				st.back = append(st.back, []time.Duration{0, 0, 0, time.Second, 10 * time.Minute, 40 * time.Hour}[rng.IntN(6)])
				switch k := rng.IntN(10); {
				case k < 4:
					ev.Name = kiln.OrderCompleted
					ev.Properties = map[string]any{"revenue": revenues[rng.IntN(len(revenues))],
						"products": []any{map[string]any{"quantity": float64(6 * (1 + rng.IntN(4)))}, map[string]any{"quantity": float64(rng.IntN(3))}}}
				case k < 6:
					ev.Name = "Checkout Started"
				case k < 7:
					ev.Name = "Page Viewed"
					ev.Type = kiln.Page
				case k < 8:
					ev.Type = kiln.Identify
					ev.Traits = map[string]any{"tier": []string{"vip", "basic"}[rng.IntN(2)]}
					if rng.IntN(3) == 0 {
						ev.Traits["company"] = map[string]any{"name": "Tea Rooms Ltd"}
					}
				case k < 9:
					// Anonymous browsing, later linked by the next case.
					ev.UserID, ev.AnonymousID = "", fmt.Sprintf("a%d", u)
					ev.Name = "Page Viewed"
					ev.Type = kiln.Page
				default:
					ev.Type = kiln.Identify
					ev.AnonymousID = fmt.Sprintf("a%d", rng.IntN(6))
				}
				st.events = append(st.events, ev)
			}
		}
		out = append(out, st)
	}
	return out
}

// lifeRun is one engine over one SQLite file, restartable.
type lifeRun struct {
	t     *testing.T
	open  func() (store.Store, error)
	clock *atomic.Int64
	st    store.Store
	e     *Engine
	stop  func()
	seq   int
	kills int
	// restarts that began from a snapshot rather than the whole log, and
	// that loaded the identity index from it
	snapped, indexSnapped, preloaded int
}

func newLifeRun(t *testing.T, open func() (store.Store, error)) *lifeRun {
	r := &lifeRun{t: t, open: open, clock: new(atomic.Int64)}
	r.clock.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	r.start()
	ctx := context.Background()
	if err := r.st.CreateDestination(ctx, store.Destination{ID: "d_hook", Name: "hook", Kind: "webhook", Config: []byte(`{"url":"http://127.0.0.1:1/"}`)}); err != nil {
		t.Fatal(err)
	}
	for i, a := range []struct{ seg, on string }{{"big_spenders", "enter"}, {"big_spenders", "exit"}, {"abandoners", "enter"}, {"valuable", "enter"}, {"loyal", "exit"}, {"daily_buyers", "exit"}} {
		if err := r.st.PutAutomation(ctx, store.Automation{ID: fmt.Sprintf("a_%d", i), Name: fmt.Sprintf("auto%d", i), Segment: a.seg, On: a.on, Destination: "d_hook", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	r.restart(false) // the planner reads the automations at start
	if _, err := r.e.ApplyDefinitions(ctx, lifeDefs, false); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *lifeRun) now() time.Time { return time.UnixMilli(r.clock.Load()).UTC() }

func (r *lifeRun) start() {
	t := r.t
	st, err := r.open()
	if err != nil {
		t.Fatal(err)
	}
	planner := action.NewPlanner(st, r.now)
	if err := planner.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: r.now, Poll: 5 * time.Millisecond,
		Refit: -1, Planner: planner, SnapshotEvery: 25,
		ProfileID: func(ev *kiln.Event) string { return fmt.Sprintf("p_%s_%d", ev.Anchor, ev.Seq) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan error, 1)
	go func() { done <- e.Run(ctx, ready) }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	r.st, r.e = st, e
	if e.snapGen != 0 {
		r.snapped++
	}
	if e.indexSnapped {
		r.indexSnapped++
	}
	if e.preloaded {
		r.preloaded++
	}
	checkIndexAgainstStore(t, e, st)
	r.stop = func() {
		cancel()
		<-done
		st.Close()
	}
}

// restart stops the engine and starts a new one on the same file. With
// crash, it is stopped wherever it is (in the middle of a batch, say):
// what it had not committed is gone, as after a SIGKILL.
func (r *lifeRun) restart(crash bool) {
	if crash {
		r.kills++
	} else if err := r.e.Snapshot(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.stop()
	r.start()
}

// send appends events as a client's request would and, unless the run is
// about to crash, waits until they are processed.
func (r *lifeRun) send(evs []kiln.Event, back []time.Duration, wait bool) {
	t := r.t
	now := r.now()
	batch := make([]kiln.Event, len(evs))
	for i, ev := range evs {
		r.seq++
		ev.MessageID = fmt.Sprintf("m%d", r.seq)
		ev.SourceID = "test"
		ev.Timestamp = now.Add(-back[i])
		ev.ReceivedAt = now
		ev.Anchor = identity.Anchor(identity.Extract(&ev))
		batch[i] = ev
	}
	if _, err := r.st.Append(context.Background(), store.Batch{Events: batch}); err != nil {
		t.Fatal(err)
	}
	r.e.Wake()
	if wait {
		r.settle()
	}
}

// settle waits until every stored event is processed and everything time
// did up to the clock is recorded.
func (r *lifeRun) settle() {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last, err := r.st.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.WaitFor(ctx, last); err != nil {
		t.Fatalf("waiting for seq %d: %v", last, err)
	}
	if err := r.e.tick(ctx); err != nil {
		t.Fatal(err)
	}
}

func (r *lifeRun) do(st lifeStep) {
	t := r.t
	ctx := context.Background()
	r.clock.Add(st.dt.Milliseconds())
	r.e.Wake()
	switch st.kind {
	case "events":
		r.send(st.events, st.back, true)
		return
	case "related":
		r.settle()
		if _, err := r.e.ApplyDefinitions(ctx, lifeEditRelated, false); err != nil {
			t.Fatal(err)
		}
	case "unrelated":
		r.settle()
		if _, err := r.e.ApplyDefinitions(ctx, lifeEditUnrelated, false); err != nil {
			t.Fatal(err)
		}
	case "refit":
		r.settle()
		if _, err := r.e.RefitModels(ctx, ModelOptions{Holdout: -1, MinRepeaters: 1}); err != nil {
			t.Fatal(err)
		}
	case "unmerge":
		r.settle()
		pid, err := r.st.ProfileFor(ctx, kiln.Identifier{Kind: kiln.UserID, Value: st.user})
		if store.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ms, err := r.st.Merges(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(ms) - 1; i >= 0; i-- {
			if ms[i].UndoneAt == nil && ms[i].Into == pid {
				if _, err := r.e.Unmerge(ctx, ms[i].ID); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
	}
	r.settle()
}

// record is what the run recorded: transitions and actions, each as a
// line, sorted (the order of changes at one instant is not part of the
// contract).
func (r *lifeRun) record() (transitions, actions []string) {
	t := r.t
	ctx := context.Background()
	for after := int64(0); ; {
		ts, err := r.st.Transitions(ctx, store.TransitionQuery{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 0 {
			break
		}
		for _, tr := range ts {
			transitions = append(transitions, fmt.Sprintf("%s %s %s entered=%t v%d %s", tr.At.UTC().Format("2006-01-02T15:04:05.000"), tr.ProfileID, tr.Segment, tr.Entered, tr.Version, tr.Reason))
			after = tr.ID
		}
	}
	for after := int64(0); ; {
		items, err := r.st.ListOutbox(ctx, store.OutboxQuery{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			actions = append(actions, fmt.Sprintf("%s %s %s", it.Key, it.Automation, it.ProfileID))
			after = max(after, it.ID)
		}
	}
	slices.Sort(transitions)
	slices.Sort(actions)
	return transitions, actions
}

func TestLifecycleMatchesUninterruptedRun(t *testing.T) {
	seeds := 6
	if n, err := strconv.Atoi(os.Getenv("KILN_LIFECYCLE_SEEDS")); err == nil {
		seeds = n // a longer search: KILN_LIFECYCLE_SEEDS=200 go test ./engine -run Lifecycle
	}
	if testing.Short() {
		seeds = 2
	}
	sqliteFile := func(t *testing.T) func() (store.Store, error) {
		path := filepath.Join(t.TempDir(), "k.db")
		return func() (store.Store, error) { return sqlite.Open(path) }
	}
	checkLifecycle(t, seeds, 60, sqliteFile)
}

func TestLifecycleMatchesUninterruptedRunOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := func(t *testing.T) func() (store.Store, error) {
		s := pgtest.Schema(t, dsn)
		return func() (store.Store, error) { return postgres.Open(context.Background(), s) }
	}
	checkLifecycle(t, 2, 40, schema)
}

// checkLifecycle runs seeds scripts of steps each twice, calm and rough,
// on stores that newStore opens, and compares what they recorded.
func checkLifecycle(t *testing.T, seeds, steps int, newStore func(t *testing.T) func() (store.Store, error)) {
	snapped, indexSnapped, preloaded := 0, 0, 0
	moved := map[string]bool{} // segments with a transition in some seed
	defer func() {
		if snapped == 0 && !t.Failed() {
			t.Error("no restart began from a snapshot: the snapshot path was not tested")
		}
		if indexSnapped == 0 && !t.Failed() {
			t.Error("no restart loaded the identity index from a snapshot: that path was not tested")
		}
		if preloaded == 0 && !t.Failed() {
			t.Error("no restart decoded the snapshot's states beside the index: that path was not tested")
		}
		// Every construct of lifeDefs must have been put through the
		// lifecycle, not only parsed.
		for _, seg := range []string{"big_spenders", "frequent", "abandoners", "vips", "lapsing", "open_abandoners", "bulk_buyers", "trade",
			"top_spenders", "busiest", "above_median", "top_quintile", "not_top_quartile"} {
			if !moved[seg] && !t.Failed() {
				t.Errorf("segment %s had no transition in any seed: the script does not exercise it", seg)
			}
		}
	}()
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			script := lifeScript(seed, steps)
			calm := newLifeRun(t, newStore(t))
			for _, st := range script {
				calm.do(st)
			}
			rough := newLifeRun(t, newStore(t))
			rng := rand.New(rand.NewPCG(seed, 99))
			down := false
			for _, st := range script {
				if down {
					// Time went on while the server was down; it starts
					// with the killed batch's events still to process.
					rough.clock.Add(st.dt.Milliseconds())
					rough.start()
					down = false
					st.dt = 0
					rough.do(st)
					continue
				}
				switch r := rng.IntN(10); {
				case r < 2 && st.kind == "events":
					// Killed while the batch may be half processed.
					rough.clock.Add(st.dt.Milliseconds())
					rough.send(st.events, st.back, false)
					rough.restart(true)
					rough.settle()
					continue
				case r < 3 && st.kind == "events":
					// Killed right after the events were acknowledged, and
					// down until the next step.
					rough.clock.Add(st.dt.Milliseconds())
					rough.send(st.events, st.back, false)
					rough.kills++
					rough.stop()
					down = true
					continue
				case r < 4:
					rough.restart(true)
				case r < 5:
					rough.restart(false)
				}
				rough.do(st)
			}
			if down {
				rough.start()
				rough.settle()
			}
			want, wantActs := calm.record()
			got, gotActs := rough.record()
			if len(want) == 0 || len(wantActs) == 0 {
				t.Fatalf("the script recorded %d transitions and %d actions: it tests nothing", len(want), len(wantActs))
			}
			if d := lineDiff(want, got); d != "" {
				t.Errorf("transitions differ from the uninterrupted run (%d kills):\n%s", rough.kills, d)
			}
			if d := lineDiff(wantActs, gotActs); d != "" {
				t.Errorf("actions differ from the uninterrupted run:\n%s", d)
			}
			snapped += rough.snapped
			indexSnapped += rough.indexSnapped
			preloaded += rough.preloaded
			for _, line := range want {
				for _, f := range strings.Fields(line) {
					moved[f] = true
				}
			}
			t.Logf("%d transitions, %d actions, %d kills, %d restarts from a snapshot (%d with the identity index, %d decoded beside it)", len(want), len(wantActs), rough.kills, rough.snapped, rough.indexSnapped, rough.preloaded)
			calm.stop()
			rough.stop()
		})
	}
}

// lineDiff lists lines only in want (-) or only in got (+).
func lineDiff(want, got []string) string {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var b strings.Builder
	for _, l := range slices.Sorted(func(yield func(string) bool) {
		for l := range count {
			if !yield(l) {
				return
			}
		}
	}) {
		switch n := count[l]; {
		case n > 0:
			fmt.Fprintf(&b, "- %s (x%d)\n", l, n)
		case n < 0:
			fmt.Fprintf(&b, "+ %s (x%d)\n", l, -n)
		}
	}
	return b.String()
}

// checkIndexAgainstStore fails unless the engine's identity index holds
// exactly the stored identities, on their stored profiles: whether it was
// loaded from a snapshot and brought up to date, or from the store.
func checkIndexAgainstStore(t *testing.T, e *Engine, st store.Store) {
	t.Helper()
	// The engine is processing already: under its lock, the store and
	// the index it commits with are seen at the same point.
	e.mu.Lock()
	defer e.mu.Unlock()
	ids, profiles := 0, map[string][]string{}
	err := st.ScanIdentities(context.Background(), func(id kiln.Identity) error {
		ids++
		profiles[id.ProfileID] = append(profiles[id.ProfileID], id.Identifier.String())
		if pid, ok := e.res.ProfileOf(id.Identifier); !ok || pid != id.ProfileID {
			return fmt.Errorf("%s: the index says %q (%t), the store %q", id.Identifier, pid, ok, id.ProfileID)
		}
		return nil
	})
	if err != nil {
		ms, _ := st.MergesAfter(context.Background(), 0)
		for _, m := range ms {
			t.Logf("merge %d: %s into %s, identities %v, undone %v", m.ID, m.From, m.Into, m.Identities, m.UndoneAt != nil)
		}
		h, _ := e.snapshotHeader(context.Background())
		t.Logf("snapshot %+v; processed %d", h, e.processed.Load())
		t.Fatalf("identity index after start (from the snapshot: %t): %v", e.indexSnapped, err)
	}
	for pid, want := range profiles {
		var got []string
		for _, id := range e.res.Identities(pid) {
			got = append(got, id.String())
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("profile %s: the index has %v, the store %v", pid, got, want)
		}
	}
	if s := e.res.Stats(); s.Identifiers != ids || s.Profiles != len(profiles) {
		t.Fatalf("identity index after start (from the snapshot: %t): %d identifiers on %d profiles, the store has %d on %d",
			e.indexSnapped, s.Identifiers, s.Profiles, ids, len(profiles))
	}
}
