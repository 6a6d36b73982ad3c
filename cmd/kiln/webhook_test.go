package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/api"
)

// A Shopify order webhook, signed with the source's secret, reaches a
// profile through the running server; a bad signature is refused.
func TestShopifyWebhookThroughServer(t *testing.T) {
	setSecretKey(t) // source secrets are sealed with it
	m, admin, _ := testMain(t)
	if _, err := api.CreateSource(context.Background(), m.Store, "shop", "shopify", "", "shpss_test", time.Now()); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../../ingest/testdata/shopify_orders_create.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", m.URL()+"/webhooks/shopify/shop", bytes.NewReader(body))
		req.Header.Set("X-Shopify-Topic", "orders/create")
		req.Header.Set("X-Shopify-Hmac-Sha256", sig)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("bm90IGEgc2lnbmF0dXJl"); s != 401 {
		t.Fatalf("bad signature: %d, want 401", s)
	}
	mac := hmac.New(sha256.New, []byte("shpss_test"))
	mac.Write(body)
	if s := post(base64.StdEncoding.EncodeToString(mac.Sum(nil))); s != 200 {
		t.Fatalf("signed webhook: %d", s)
	}
	settle(t, m)
	var list struct {
		Profiles []struct {
			ID         string
			EventCount int
		}
	}
	call(t, "GET", m.URL()+"/api/v1/profiles", admin, nil, &list)
	if len(list.Profiles) != 1 || list.Profiles[0].EventCount != 1 {
		t.Fatalf("profiles after one order webhook: %+v", list.Profiles)
	}
	var ev struct{ Events []struct{ Event string } }
	call(t, "GET", m.URL()+"/api/v1/profiles/"+list.Profiles[0].ID+"/events", admin, nil, &ev)
	if len(ev.Events) != 1 || ev.Events[0].Event != "Order Completed" {
		t.Fatalf("events: %+v", ev.Events)
	}
}
