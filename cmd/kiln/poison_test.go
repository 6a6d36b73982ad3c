package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/store"
)

// poison is a message no store can hold, as the tracking API or a webhook
// receives it, and the reject it must leave.
type poison struct {
	body          string // %s: a marker, to find the reject by its payload
	field, reason string
}

// segmentPoisons are Segment messages, one of each kind a store cannot hold.
var segmentPoisons = []poison{
	{`{"k":"%s","type":"track","userId":"u\u0000","event":"X"}`, "userId", "NUL character"},
	{`{"k":"%s","type":"track","anonymousId":"\u0000a","event":"X"}`, "anonymousId", "NUL character"},
	{`{"k":"%s","type":"track","userId":"u","event":"X\u0000"}`, "event", "NUL character"},
	{`{"k":"%s","type":"track","userId":"u","event":"X","messageId":"m\u0000"}`, "messageId", "NUL character"},
	{`{"k":"%s","type":"identify","userId":"u","context":{"traits":{"email":"a@b.example\u0000"}}}`, "context.traits.email", "NUL character"},
	{`{"k":"%s","type":"track","userId":"u","event":"X","properties":{"revenue":1e400}}`, "properties.revenue", "out of range"},
	{`{"k":"%s","type":"track","userId":"u","event":"X","properties":{"a":` + strings.Repeat("[", 250) + strings.Repeat("]", 250) + `}}`,
		"properties", "nested more than 200 levels deep"},
}

// Several clients at once send valid batches mixed with poison ones (each
// kind a store cannot hold, through the tracking API and signed webhooks)
// to a real server on SQLite: every valid message is stored, acknowledged
// and processed, and each poison message is in the rejects log with its
// reason, batch index and field.
func TestPoisonMessagesHurtNoOneElse(t *testing.T) {
	testPoisonMessages(t, "")
}

// The same on PostgreSQL, whose text and JSON columns refuse NUL.
func TestPoisonMessagesHurtNoOneElseOnPostgres(t *testing.T) {
	testPoisonMessages(t, freshPostgres(t))
}

func testPoisonMessages(t *testing.T, dsn string) {
	setSecretKey(t) // source secrets are sealed with it
	m, _, write := testMainOn(t, dsn)
	ctx := context.Background()
	for _, s := range []struct{ name, kind, secret string }{{"shop", "shopify", "shop-secret"}, {"woo", "woocommerce", "woo-secret"}} {
		if _, err := api.CreateSource(ctx, m.Store, s.name, s.kind, "", s.secret, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	shopOrder, err := os.ReadFile("../../ingest/testdata/shopify_orders_create.json")
	if err != nil {
		t.Fatal(err)
	}
	wooOrder, err := os.ReadFile("../../ingest/testdata/woocommerce_order_updated.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, body []byte, hdr ...string) int {
		req, _ := http.NewRequest("POST", m.URL()+path, bytes.NewReader(body))
		req.SetBasicAuth(write, "")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	shopify := func(body []byte) int {
		return post("/webhooks/shopify/shop", body, "X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", sign("shop-secret", body))
	}
	woo := func(body []byte) int {
		return post("/webhooks/woocommerce/woo", body, "X-WC-Webhook-Topic", "order.created", "X-WC-Webhook-Signature", sign("woo-secret", body))
	}

	const clients, rounds, good = 6, 3, 4
	var mu sync.Mutex
	wantStored := map[string]bool{} // message ids
	type wantReject struct {
		origin string
		index  int
		poison
	}
	wantRejects := map[string]wantReject{} // by marker
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for r := range rounds {
				id := func(i int) string { return fmt.Sprintf("c%d-r%d-%d", c, r, i) }
				goodMsg := func(i int) string {
					return fmt.Sprintf(`{"type":"track","userId":"user-%d","event":"Product Viewed","messageId":%q,"properties":{"price":1.5}}`, c, id(i))
				}
				// A valid batch, and one with every kind of poison between
				// valid messages.
				var valid, mixed []string
				for i := range good {
					valid = append(valid, goodMsg(i))
				}
				n := good
				for i, p := range segmentPoisons {
					marker := fmt.Sprintf("%s-poison-%d", id(0), i)
					mixed = append(mixed, goodMsg(n), fmt.Sprintf(p.body, marker))
					mu.Lock()
					wantStored[id(n)] = true
					wantRejects[marker] = wantReject{"batch", len(mixed) - 1, p}
					mu.Unlock()
					n++
				}
				mu.Lock()
				for i := range good {
					wantStored[id(i)] = true
				}
				mu.Unlock()
				// Order ids unique per client and round: each good order is new.
				order := fmt.Sprintf("%d%02d", c+1, r)
				shopGood := bytes.Replace(shopOrder, []byte(`"id": 820982911946154508`), []byte(`"id": `+order), 1)
				shopNaN := bytes.Replace(shopGood, []byte(`"total_price": "403.00"`), []byte(`"total_price": "NaN", "k": "`+id(0)+`-shop"`), 1)
				wooGood := bytes.Replace(wooOrder, []byte(`"id": 727`), []byte(`"id": `+order), 1)
				wooInf := bytes.Replace(wooGood, []byte(`"total": "29.35"`), []byte(`"total": "Infinity", "k": "`+id(0)+`-woo"`), 1)
				mu.Lock()
				wantStored["shopify-order-"+order+"-created"] = true
				wantStored["woocommerce-order-"+order+"-completed"] = true
				wantRejects[id(0)+"-shop"] = wantReject{"shopify:orders/create", 0, poison{field: "properties.total", reason: "NaN"}}
				wantRejects[id(0)+"-woo"] = wantReject{"woocommerce:order.created", 0, poison{field: "properties.", reason: "out of range"}}
				mu.Unlock()
				for what, status := range map[string]int{
					"valid batch":       post("/v1/batch", []byte(`{"batch":[`+strings.Join(valid, ",")+`]}`)),
					"mixed batch":       post("/v1/batch", []byte(`{"batch":[`+strings.Join(mixed, ",")+`]}`)),
					"shopify NaN":       shopify(shopNaN),
					"shopify order":     shopify(shopGood),
					"woo Infinity":      woo(wooInf),
					"woocommerce order": woo(wooGood),
				} {
					if status != 200 {
						t.Errorf("client %d round %d: %s: status %d, want 200", c, r, what, status)
					}
				}
			}
		})
	}
	wg.Wait()

	stored := map[string]bool{}
	if err := m.Store.ScanLog(ctx, 0, 1<<62, func(evs []kiln.Event) error {
		for _, e := range evs {
			stored[e.MessageID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := range wantStored {
		if !stored[id] {
			t.Errorf("valid message %s was not stored", id)
		}
	}
	if len(stored) != len(wantStored) {
		t.Errorf("%d events stored, want the %d valid ones", len(stored), len(wantStored))
	}
	rejects := listAllRejects(t, m.Store)
	found := 0
	for _, rj := range rejects {
		marker := markerOf(rj.Payload)
		w, ok := wantRejects[marker]
		if !ok {
			t.Errorf("unexpected reject %+v", rj)
			continue
		}
		found++
		if rj.Origin != w.origin || rj.Index != w.index || !strings.HasPrefix(rj.Field, w.field) || !strings.Contains(rj.Reason, w.reason) {
			t.Errorf("reject of %s: origin %s index %d field %q reason %q; want %s, %d, %q, %q",
				marker, rj.Origin, rj.Index, rj.Field, rj.Reason, w.origin, w.index, w.field, w.reason)
		}
	}
	if found != len(wantRejects) {
		t.Errorf("%d of %d poison messages are in the rejects log", found, len(wantRejects))
	}
	settle(t, m) // and the engine processed every stored event
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func listAllRejects(t *testing.T, st store.Store) []kiln.Reject {
	t.Helper()
	var all []kiln.Reject
	for {
		page, err := st.ListRejects(context.Background(), store.RejectFilter{After: lastID(all), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

func lastID(rs []kiln.Reject) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].ID
}

// markerOf finds the "k" marker a poison message carries.
func markerOf(payload []byte) string {
	_, rest, ok := bytes.Cut(payload, []byte(`"k":`))
	if !ok {
		return ""
	}
	_, rest, _ = bytes.Cut(rest, []byte(`"`))
	marker, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(marker)
}
