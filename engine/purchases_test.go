package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/ingest"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/journal"
)

var ledgerDay0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func at(day int, minutes int) time.Time {
	return ledgerDay0.AddDate(0, 0, day).Add(time.Duration(minutes) * time.Minute)
}

func ordered(day int, id string, amount float64) kiln.Event {
	p := map[string]any{"revenue": amount}
	if id != "" {
		p["order_id"] = id
	}
	return kiln.Event{Type: kiln.Track, Name: kiln.OrderCompleted, Timestamp: at(day, 0), Properties: p}
}

func cancelled(day int, id string) kiln.Event {
	return kiln.Event{Type: kiln.Track, Name: kiln.OrderCancelled, Timestamp: at(day, 12), Properties: map[string]any{"order_id": id}}
}

func refunded(day int, id string, props map[string]any) kiln.Event {
	p := map[string]any{"order_id": id}
	for k, v := range props {
		p[k] = v
	}
	return kiln.Event{Type: kiln.Track, Name: kiln.OrderRefunded, Timestamp: at(day, 30), Properties: p}
}

// ledgerOf applies events in the given order.
func ledgerOf(t *testing.T, evs []kiln.Event) *purchases {
	t.Helper()
	p := &purchases{}
	for i := range evs {
		e, ok := readPurchase(&evs[i])
		if !ok {
			t.Fatalf("event %d (%s) is not read as a purchase, refund or cancellation", i, evs[i].Name)
		}
		p.apply(e)
	}
	return p
}

func day(d int, amount float64) intel.Day {
	return intel.Day{Day: intel.DayOf(at(d, 0)), Amount: amount}
}

func TestPurchasesRefundsAndCancellations(t *testing.T) {
	for _, c := range []struct {
		name string
		evs  []kiln.Event
		want []intel.Day
	}{
		{"same-day orders are summed", []kiln.Event{ordered(0, "a", 10), ordered(5, "b", 20), ordered(5, "c", 7), ordered(5, "", 3)},
			[]intel.Day{day(0, 10), day(5, 30)}},
		{"late orders before the first and between", []kiln.Event{ordered(5, "", 20), ordered(9, "", 4), ordered(1, "", 10), ordered(7, "", 1), ordered(7, "", 2)},
			[]intel.Day{day(1, 10), day(5, 20), day(7, 3), day(9, 4)}},
		{"a cancelled order counts nowhere", []kiln.Event{ordered(0, "a", 10), ordered(3, "big", 168000), ordered(3, "b", 5), cancelled(3, "big")},
			[]intel.Day{day(0, 10), day(3, 5)}},
		{"a day whose only order is cancelled is no purchase day", []kiln.Event{ordered(0, "a", 10), ordered(3, "big", 168000), cancelled(3, "big")},
			[]intel.Day{day(0, 10)}},
		{"a cancellation before its order", []kiln.Event{cancelled(3, "big"), ordered(0, "a", 10), ordered(3, "big", 168000)},
			[]intel.Day{day(0, 10)}},
		{"a partial refund by amount", []kiln.Event{ordered(0, "a", 10), ordered(2, "b", 100), refunded(9, "b", map[string]any{"total": 40.0})},
			[]intel.Day{day(0, 10), day(2, 60)}},
		{"refunds sent negative, by revenue first", []kiln.Event{ordered(2, "b", 100), refunded(9, "b", map[string]any{"revenue": -25.0, "total": -30.0})},
			[]intel.Day{day(2, 75)}},
		{"a refund of products", []kiln.Event{ordered(2, "b", 100), refunded(4, "b", map[string]any{"products": []any{
			map[string]any{"sku": "X", "price": 15.0, "quantity": 2.0}, map[string]any{"sku": "Y", "price": 5.0}}})},
			[]intel.Day{day(2, 65)}},
		{"a refund without an amount is the whole order", []kiln.Event{ordered(0, "a", 10), ordered(2, "b", 100), refunded(9, "b", nil)},
			[]intel.Day{day(0, 10)}},
		{"refunds adding up to the order refund it in full", []kiln.Event{ordered(0, "a", 10), ordered(2, "b", 100), ordered(2, "c", 50),
			refunded(3, "b", map[string]any{"total": 60.0}), refunded(4, "b", map[string]any{"total": 60.0})},
			[]intel.Day{day(0, 10), day(2, 50)}},
		{"the same refund twice counts once", []kiln.Event{ordered(2, "b", 100),
			refunded(3, "b", map[string]any{"refund_id": "r1", "total": 30.0}), refunded(3, "b", map[string]any{"refund_id": "r1", "total": 30.0}),
			refunded(4, "b", map[string]any{"refund_id": "r2", "total": 30.0})},
			[]intel.Day{day(2, 40)}},
		{"a refund before its order", []kiln.Event{refunded(3, "b", map[string]any{"total": 30.0}), ordered(2, "b", 100)},
			[]intel.Day{day(2, 70)}},
		{"a refund or cancellation of an unknown order changes nothing", []kiln.Event{ordered(2, "b", 100), refunded(3, "zz", nil), cancelled(3, "yy")},
			[]intel.Day{day(2, 100)}},
		{"the same order id counts once", []kiln.Event{ordered(2, "b", 100), ordered(6, "b", 100)},
			[]intel.Day{day(2, 100)}},
		{"a zero-value order is a purchase day", []kiln.Event{ordered(2, "b", 100), ordered(6, "c", 0)},
			[]intel.Day{day(2, 100), day(6, 0)}},
		{"numeric order ids", []kiln.Event{ordered(2, "1001", 100), {Type: kiln.Track, Name: kiln.OrderCancelled, Properties: map[string]any{"order_id": 1001.0}}},
			nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Whatever order the events arrive in, the days are the same.
			r := rand.New(rand.NewPCG(1, uint64(len(c.evs))))
			for range 20 {
				evs := slices.Clone(c.evs)
				r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
				if c.name == "the same order id counts once" {
					evs = c.evs // the first one seen counts
				}
				if got := ledgerOf(t, evs).days(nil); !slices.Equal(got, c.want) {
					t.Fatalf("arriving as %v: days %v, want %v", names(evs), got, c.want)
				}
			}
		})
	}
}

func names(evs []kiln.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Name+" "+idString(ev.Properties["order_id"]))
	}
	return out
}

func idString(v any) string {
	s, _ := v.(string)
	return s
}

// With orders alone, in any arrival order, the ledger's summary is
// intel.Summarize's: what a rescore sees is what the fit sees.
func TestPurchasesSummaryAgreesWithSummarize(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	calEnd := at(200, 0)
	for c := range 300 {
		var evs []kiln.Event
		var txns []intel.Txn
		for range 1 + r.IntN(12) {
			ev := ordered(r.IntN(240)-20, "", float64(r.IntN(20000))/100)
			ev.Timestamp = ev.Timestamp.Add(time.Duration(r.IntN(14*60)) * time.Minute)
			if r.IntN(8) == 0 {
				ev.Properties["revenue"] = -ev.Properties["revenue"].(float64) // a return booked as an order
			}
			evs = append(evs, ev)
			txns = append(txns, intel.Txn{Customer: "c", Time: ev.Timestamp, Amount: ev.Properties["revenue"].(float64)})
		}
		want, err := intel.Summarize(txns, calEnd, 7*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ledgerOf(t, evs).summary(calEnd, 7*24*time.Hour)
		got.Customer = "c"
		if ok != (len(want) == 1) || ok && got != want[0] {
			t.Fatalf("case %d: ledger %+v (ok %v), Summarize %+v", c, got, ok, want)
		}
	}
}

func TestReadPurchaseIgnoresOtherEvents(t *testing.T) {
	for _, ev := range []kiln.Event{
		{Type: kiln.Track, Name: kiln.CheckoutStarted, Properties: map[string]any{"order_id": "a", "revenue": 5.0}},
		{Type: kiln.Track, Name: kiln.OrderRefunded, Properties: map[string]any{"total": 5.0}}, // names no order
		{Type: kiln.Track, Name: kiln.OrderCancelled},
		{Type: kiln.Identify, Name: kiln.OrderCompleted},
	} {
		if e, ok := readPurchase(&ev); ok {
			t.Errorf("%s %v read as %+v", ev.Name, ev.Properties, e)
		}
	}
}

// Refunds and cancellations reach the models through the engine, at a
// refit and on each event between refits: a customer who cancels a huge
// order twelve minutes later does not have the top CLV, and a customer
// whose orders were refunded scores exactly as a twin who only ever bought
// what they kept.
func TestModelsNetRefundsAndCancellations(t *testing.T) {
	b := setup(t, true)
	ctx := context.Background()
	now := b.now()
	ago := func(days int) time.Time { return now.AddDate(0, 0, -days) }
	buy := func(when time.Time, id string, amount float64) kiln.Event {
		return kiln.Event{Name: kiln.OrderCompleted, Timestamp: when, Properties: map[string]any{"order_id": id, "revenue": amount}}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for c := range 80 {
		var evs []kiln.Event
		d := 300 - r.IntN(100)
		mean := 40 * math.Exp(0.8*r.NormFloat64()) // customers differ in what they spend
		for k := range 2 + r.IntN(4) {
			evs = append(evs, buy(ago(d), fmt.Sprintf("c%d-%d", c, k), math.Round(mean*(0.6+0.8*r.Float64()))))
			d -= 10 + r.IntN(60)
		}
		b.send(t, fmt.Sprintf("c%02d", c), evs...)
	}
	// The refunder bought 100, 500 and 500, was refunded 400 of the second
	// order and the whole third (the refund before its order, as a late
	// webhook may); their twin bought 100 and 100 on the same days.
	b.send(t, "refunder",
		buy(ago(200), "r1", 100), buy(ago(100), "r2", 500),
		kiln.Event{Name: kiln.OrderRefunded, Timestamp: ago(40), Properties: map[string]any{"order_id": "r3"}},
		buy(ago(50), "r3", 500),
		kiln.Event{Name: kiln.OrderRefunded, Timestamp: ago(90), Properties: map[string]any{"order_id": "r2", "total": 400.0}})
	b.send(t, "refunder-twin", buy(ago(200), "t1", 100), buy(ago(100), "t2", 100))
	b.send(t, "whale", buy(ago(280), "w1", 30), buy(ago(260), "w2", 25))
	b.send(t, "whale-twin", buy(ago(280), "v1", 30), buy(ago(260), "v2", 25))

	opts := ModelOptions{MinRepeaters: 20}
	if _, err := b.e.RefitModels(ctx, opts); err != nil {
		t.Fatal(err)
	}
	// Rescoring between refits happens as definitions are evaluated.
	if _, err := b.e.ApplyDefinitions(ctx, `segment big_spenders { traits.clv_12m > 10000 }`, false); err != nil {
		t.Fatal(err)
	}
	traits := func(user string) map[string]any {
		pid, ok := b.e.res.ProfileOf(kiln.Identifier{Kind: kiln.UserID, Value: user})
		if !ok {
			t.Fatalf("no profile for %s", user)
		}
		return b.e.ProfileModelTraits(pid)
	}
	same := func(a, b string) {
		t.Helper()
		ta, tb := traits(a), traits(b)
		for _, k := range append(slices.Clone(customerModelTraits), TraitRFMScore) {
			if ta[k] != tb[k] {
				t.Errorf("%s: %s has %v, %s has %v", k, a, ta[k], b, tb[k])
			}
		}
	}
	same("refunder", "refunder-twin")
	if v := traits("refunder")[TraitExpectedValue]; v == nil {
		t.Fatal("no expected_order_value: the Gamma-Gamma fit failed on the test data")
	}
	if m := traits("refunder")[TraitRFMScore].(string)[2]; m == '5' {
		t.Errorf("refunder's RFM monetary quintile is %c: the refunded 800 still counts", m)
	}

	topCLV := func() string {
		best, who := -1.0, ""
		for _, user := range append([]string{"refunder", "refunder-twin", "whale", "whale-twin"}, func() []string {
			var us []string
			for c := range 80 {
				us = append(us, fmt.Sprintf("c%02d", c))
			}
			return us
		}()...) {
			if v, ok := traits(user)[TraitCLV].(float64); ok && v > best {
				best, who = v, user
			}
		}
		return who
	}
	// Live: the order rescores the whale to the top, the cancellation
	// twelve minutes later takes it away again.
	b.clock.Store(now.Add(time.Minute).UnixMilli())
	b.send(t, "whale", buy(now, "w3", 168000))
	if who := topCLV(); who != "whale" || !b.member(t, "big_spenders", "whale") {
		t.Fatalf("after a £168k order the top CLV is %s's", who)
	}
	b.clock.Store(now.Add(13 * time.Minute).UnixMilli())
	b.send(t, "whale", kiln.Event{Name: kiln.OrderCancelled, Timestamp: now.Add(12 * time.Minute), Properties: map[string]any{"order_id": "w3"}})
	if who := topCLV(); who == "whale" || b.member(t, "big_spenders", "whale") {
		t.Error("the cancelled order still gives the whale the top CLV")
	}
	// A newcomer whose only order is cancelled has no model traits left.
	b.send(t, "newcomer", buy(now, "n1", 168000))
	if v := traits("newcomer")[TraitCLV]; v != nil {
		t.Errorf("a one-order newcomer has clv_12m %v before any repeat purchase", v)
	}
	b.send(t, "newcomer", kiln.Event{Name: kiln.OrderCancelled, Timestamp: now.Add(12 * time.Minute), Properties: map[string]any{"order_id": "n1"}})
	if v := traits("newcomer")[TraitProbAlive]; v != nil {
		t.Errorf("the newcomer's only order was cancelled, yet p_alive is %v", v)
	}
	// At the next refit, read from the log, the whale is their twin again.
	if _, err := b.e.RefitModels(ctx, opts); err != nil {
		t.Fatal(err)
	}
	same("whale", "whale-twin")
	same("refunder", "refunder-twin")
	if who := topCLV(); who == "whale" {
		t.Error("after a refit the cancelled order gives the whale the top CLV")
	}
}

// Without definitions nothing is rescored, yet the purchases stay exact
// for when there are, and a merge brings the absorbed profile's purchases
// to the survivor.
func TestPurchasesRecordedWithoutDefinitionsAndMerged(t *testing.T) {
	b := setup(t, true)
	now := b.now()
	b.send(t, "ann", ordered(-30, "a1", 10))
	if _, err := b.e.RefitModels(context.Background(), ModelOptions{}); err != nil {
		t.Fatal(err)
	}
	b.send(t, "ann", ordered(-2, "a2", 20), cancelled(-2, "a1"))
	guest := kiln.Event{Type: kiln.Track, Name: kiln.OrderCompleted, Timestamp: now, AnonymousID: "anon-1",
		Properties: map[string]any{"order_id": "g1", "revenue": 5.0}}
	b.send(t, "", guest)
	link := kiln.Event{Type: kiln.Identify, Timestamp: now, AnonymousID: "anon-1"}
	b.send(t, "ann", link)
	pid, _ := b.e.res.ProfileOf(kiln.Identifier{Kind: kiln.UserID, Value: "ann"})
	b.e.mu.Lock()
	got := b.e.models.cust[pid].days(nil)
	b.e.mu.Unlock()
	want := []intel.Day{day(-2, 20), {Day: intel.DayOf(now), Amount: 5}}
	if !slices.Equal(got, want) {
		t.Errorf("ann's purchase days %v, want %v", got, want)
	}
}

// Signed Shopify webhooks through ingest and the log to the models: an
// order, then the refunds an orders/updated carries, then its
// cancellation.
func TestShopifyRefundsAndCancellationReachTheModels(t *testing.T) {
	b := setup(t, true)
	ctx := context.Background()
	if err := b.st.CreateSource(ctx, kiln.Source{ID: "src_shop", Name: "shop", Kind: ingest.KindShopify, Secret: "hush", CreatedAt: b.now()}); err != nil {
		t.Fatal(err)
	}
	j := journal.New(b.st, journal.Options{})
	defer j.Close()
	h := ingest.NewShopifyHandler(ingest.WebhookConfig{Sink: j, Auth: b.st, Now: b.now, Logger: slog.New(slog.DiscardHandler)})
	post := func(topic, fixture string) {
		t.Helper()
		body, err := os.ReadFile(filepath.Join("..", "ingest", "testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, []byte("hush"))
		mac.Write(body)
		req := httptest.NewRequest("POST", "/webhooks/shopify/shop", bytes.NewReader(body))
		req.Header.Set("X-Shopify-Topic", topic)
		req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", topic, w.Code, w.Body)
		}
		last, _ := b.st.LastSeq(ctx)
		if err := b.e.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.e.RefitModels(ctx, ModelOptions{}); err != nil { // models in place, so purchases are kept
		t.Fatal(err)
	}
	days := func() []intel.Day {
		pid, ok := b.e.res.ProfileOf(kiln.Identifier{Kind: kiln.Email, Value: "jon@example.com"})
		if !ok {
			t.Fatal("no profile for the order's email")
		}
		b.e.mu.Lock()
		defer b.e.mu.Unlock()
		return b.e.models.cust[pid].days(nil)
	}
	placed := intel.DayOf(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC))
	post("orders/create", "shopify_orders_create.json")
	if got := days(); !slices.Equal(got, []intel.Day{{Day: placed, Amount: 388}}) {
		t.Fatalf("after the order: %v", got)
	}
	post("orders/updated", "shopify_orders_updated_refunds.json") // 199 of goods and 5 of money back
	if got := days(); !slices.Equal(got, []intel.Day{{Day: placed, Amount: 184}}) {
		t.Fatalf("after the refunds: %v", got)
	}
	post("orders/cancelled", "shopify_orders_cancelled.json")
	if got := days(); len(got) != 0 {
		t.Fatalf("after the cancellation: %v", got)
	}
}

// Purchases go through a snapshot unchanged.
func TestPurchasesSnapshotRoundTrip(t *testing.T) {
	var p purchases
	p.apply(entry{kind: entryOrder, order: 7, day: 20000, amount: 168000})
	p.apply(entry{kind: entryOrder, order: 8, day: 20001, amount: 12.5})
	p.apply(entry{kind: entryCancel, order: 7})
	p.apply(entry{kind: entryRefund, order: 8, refund: 3, amount: 2.5})
	var q purchases
	if err := q.unmarshalBinary(p.appendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip: %+v, want %+v", q, p)
	}
	var empty, got purchases
	if err := got.unmarshalBinary(empty.appendBinary(nil)); err != nil || len(got.orders) != 0 {
		t.Errorf("empty round trip: %+v, %v", got, err)
	}
	if err := got.unmarshalBinary(p.appendBinary(nil)[:10]); err == nil {
		t.Error("a truncated encoding decoded")
	}
}
