package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// sendFrom appends events of one user from a source (and store) and
// waits until they are processed.
func (b *bundle) sendFrom(t *testing.T, source, user string, evs ...kiln.Event) {
	t.Helper()
	for i := range evs {
		b.seq++
		e := &evs[i]
		e.MessageID, e.SourceID, e.Type, e.UserID = fmt.Sprintf("m%d", b.seq), source, kiln.Track, user
		e.Anchor = identity.Anchor(identity.Extract(e))
		e.ReceivedAt = b.now()
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

// A workspace in pounds with a rate for dollars, on a real SQLite file:
// a definition that would silently read one currency of a mix is refused
// when applied (with its line and column, a dry run too), and scoped or
// converted ones apply and keep segments by source, store and currency.
func TestCurrencyAndScopeWhenApplying(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	rates, err := eval.ParseRates("1 USD = 0.79 GBP")
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{st: st, clock: new(atomic.Int64)}
	b.clock.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	logs := &lockedLog{}
	b.e, err = New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: b.now, Poll: 20 * time.Millisecond, Refit: -1,
		Currency: "GBP", Rates: rates})
	if err != nil {
		t.Fatal(err)
	}
	b.start(t)
	t.Cleanup(func() { b.stop(); st.Close() })
	ctx := context.Background()
	now := b.now()
	ord := func(ago time.Duration, revenue float64, currency, store string) kiln.Event {
		p := map[string]any{"revenue": revenue}
		if currency != "" {
			p["currency"] = currency
		}
		return kiln.Event{Name: kiln.OrderCompleted, Timestamp: now.Add(-ago), Store: store, Properties: p}
	}
	b.sendFrom(t, "webstore", "ann", ord(48*time.Hour, 60, "", ""))
	b.sendFrom(t, "pos", "ann", ord(24*time.Hour, 19.99, "USD", "york"))
	b.sendFrom(t, "webstore", "bob", ord(24*time.Hour, 100, "GBP", ""))

	mixed := "trait orders = count of \"Order Completed\" all time\ntrait spend = sum(properties.revenue) of \"Order Completed\" in last 30 days\n"
	for _, dry := range []bool{true, false} {
		_, err := b.e.ApplyDefinitions(ctx, mixed, dry)
		want := `2:15: sum(properties.revenue) of "Order Completed" in last 30 days reads amounts in GBP, the default currency, but "Order Completed" events received hold amounts in USD (1 event) too`
		if err == nil || kiln.ErrorCode(err) != kiln.EInvalid || !strings.Contains(err.Error(), want) {
			t.Fatalf("dry run %v: applying a sum over pounds and dollars: %v", dry, err)
		}
	}
	if n := len(b.e.Definitions()); n != 0 {
		t.Fatalf("a refused set left %d definitions", n)
	}

	defs := `trait gbp_spend = sum(properties.revenue) of "Order Completed" in currency GBP in last 30 days
trait all_spend = sum(properties.revenue in GBP) of "Order Completed" in last 30 days
segment big { all_spend >= 75.79 }
segment york_buyers { performed "Order Completed" from source "pos" at store "york" all time }
segment web_only { performed "Order Completed" from source "webstore" all time and not in segment york_buyers }
`
	if _, err := b.e.ApplyDefinitions(ctx, defs, false); err != nil {
		t.Fatal(err)
	}
	ann, bob := mustProfile(t, b, "ann"), mustProfile(t, b, "bob")
	// 60.00 + 19.99 x 0.79 (15.7921, 15.79) = 75.79 GBP exactly.
	traits, segs := b.e.ProfileSegments(ann)
	if traits["all_spend"] != (eval.Number{Text: "75.79", Currency: "GBP"}) || traits["gbp_spend"] != (eval.Number{Text: "60.00", Currency: "GBP"}) {
		t.Fatalf("ann's traits %v", traits)
	}
	if !slices.Equal(segs, []string{"big", "york_buyers"}) {
		t.Fatalf("ann is in %v", segs)
	}
	if _, segs := b.e.ProfileSegments(bob); !slices.Equal(segs, []string{"big", "web_only"}) {
		t.Fatalf("bob is in %v", segs)
	}
	if !b.member(t, "york_buyers", "ann") || b.member(t, "york_buyers", "bob") {
		t.Fatal("stored memberships disagree")
	}
	n, in, err := b.e.Explain(ctx, "big", ann)
	if err != nil || !in || n.Why != "value 75.79 GBP; needs >= 75.79 GBP" || n.Currency != "GBP" {
		t.Fatalf("explain: %+v %v %v", n, in, err)
	}

	// Yen arrive, with no rate: they are left out and the engine says so
	// at once; the next apply says which stored definition cannot
	// convert them, and changes nothing.
	if strings.Contains(logs.String(), "amounts left out") {
		t.Fatalf("a warning before any amount was left out:\n%s", logs.String())
	}
	if ws := b.e.Warnings(); len(ws) != 0 {
		t.Fatalf("warnings before any amount was left out: %v", ws)
	}
	b.sendFrom(t, "webstore", "bob", ord(time.Hour, 1000, "JPY", ""))
	if l := logs.String(); !strings.Contains(l, "amounts left out of definitions") || !strings.Contains(l, "no rate from JPY (1 event)") {
		t.Fatalf("no warning for yen left out:\n%s", l)
	}
	if ws := b.e.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "no rate from JPY") {
		t.Fatalf("Warnings (what /readyz shows) = %v, want the yen left out", ws)
	}
	_, err = b.e.ApplyDefinitions(ctx, `segment anyone { performed "Order Completed" all time }`, false)
	want := `trait all_spend: sum(properties.revenue in GBP) of "Order Completed" in last 30 days converts amounts into GBP, but there is no rate from JPY (1 event)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("apply with yen and no rate: %v", err)
	}
	if len(b.e.Definitions()) != 5 {
		t.Fatalf("definitions %v", b.e.Definitions())
	}

	// Restarted (in dollars now, so the state is rebuilt from the log),
	// the engine names at start what the stored definitions leave out:
	// the yen.
	b.stop()
	logs2 := &lockedLog{}
	b.e, err = New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(logs2, nil)), Now: b.now, Poll: 20 * time.Millisecond, Refit: -1,
		Currency: "USD", Rates: rates})
	if err != nil {
		t.Fatal(err)
	}
	b.start(t)
	if l := logs2.String(); !strings.Contains(l, "amounts left out of definitions") || !strings.Contains(l, "trait all_spend: sum(properties.revenue in GBP)") || !strings.Contains(l, "no rate from JPY") {
		t.Fatalf("no warning at start for amounts the definitions leave out:\n%s", l)
	}
	if ws := b.e.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "no rate from JPY") {
		t.Fatalf("Warnings after the restart = %v, want the yen left out", ws)
	}
}

// lockedLog is a log the engine's goroutines write while the test reads.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
