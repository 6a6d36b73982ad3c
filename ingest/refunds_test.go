package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// A Shopify order cancelled twelve minutes after it was placed becomes an
// Order Cancelled of that order, at the cancellation, on the customer.
func TestShopifyOrderCancelled(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	if r := b.shopify(t, "orders/cancelled", fixture(t, "shopify_orders_cancelled.json")); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	events, rejects := b.sink.snapshot()
	if len(events) != 1 || len(rejects) != 0 {
		t.Fatalf("events %+v rejects %+v", events, rejects)
	}
	e := events[0]
	if e.Name != kiln.OrderCancelled || e.MessageID != "shopify-order-820982911946154508-cancelled" ||
		e.Anchor != "email:jon@example.com" || e.AnonymousID != "shopify:115310627314723954" {
		t.Errorf("event %+v", e)
	}
	if want := time.Date(2022, 1, 1, 0, 12, 0, 0, time.UTC); !e.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want the cancellation %v", e.Timestamp, want)
	}
	if p := e.Properties; p["order_id"] != "820982911946154508" || p["reason"] != "customer" || p["revenue"] != 388.0 {
		t.Errorf("properties %v", p)
	}
}

// orders/updated carries every refund the order had: those that caused
// the update become Order Refunded events with the customer, an older one
// does not, and a later update (a fulfilment) records none again.
// refunds/create, which has no customer, is acknowledged as a reject that
// says to use orders/updated.
func TestShopifyRefunds(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := fixture(t, "shopify_orders_updated_refunds.json")
	if r := b.shopify(t, "orders/updated", body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	later := []byte(strings.Replace(string(body), `"updated_at": "2022-01-03T10:05:00-05:00"`, `"updated_at": "2022-01-05T08:00:00-05:00"`, 1))
	if string(later) == string(body) {
		t.Fatal("fixture has no updated_at to move")
	}
	b.shopify(t, "orders/updated", later)
	if r := b.shopify(t, "refunds/create", fixture(t, "shopify_refunds_create.json")); r.status != 200 {
		t.Fatalf("refunds/create: %d %s", r.status, r.body)
	}
	events, rejects := b.sink.snapshot()
	if len(events) != 2 || len(rejects) != 1 {
		t.Fatalf("events %d, rejects %+v", len(events), rejects)
	}
	if !strings.Contains(rejects[0].Reason, "orders/updated") || rejects[0].Origin != "shopify:refunds/create" {
		t.Errorf("refunds/create reject %+v", rejects[0])
	}
	for i, want := range []struct {
		id                            string
		at                            time.Time
		revenue, total, tax, shipping float64
		products                      int
	}{
		{"929361464", time.Date(2022, 1, 3, 15, 4, 30, 0, time.UTC), 199, 202.98, 3.98, 0, 1},
		{"929361470", time.Date(2022, 1, 3, 15, 4, 55, 0, time.UTC), 5, 15, 0, 10, 0}, // money alone, partly shipping; a failed transaction left out
	} {
		e := events[i]
		p := e.Properties
		if e.Name != kiln.OrderRefunded || e.MessageID != "shopify-refund-"+want.id || e.Anchor != "email:jon@example.com" || !e.Timestamp.Equal(want.at) {
			t.Errorf("refund %s: event %s %s %s at %v", want.id, e.Name, e.MessageID, e.Anchor, e.Timestamp)
		}
		if p["order_id"] != "820982911946154508" || p["refund_id"] != want.id || p["revenue"] != want.revenue || p["total"] != want.total ||
			p["tax"] != want.tax || p["shipping"] != want.shipping || len(p["products"].([]any)) != want.products {
			t.Errorf("refund %s: properties %v", want.id, p)
		}
	}
	if prod := events[0].Properties["products"].([]any)[0].(map[string]any); prod["sku"] != "IPOD2008PINK" || prod["price"] != 199.0 || prod["quantity"] != 1.0 {
		t.Errorf("refunded product %v", prod)
	}
}

// WooCommerce: a partial refund of a completed order becomes an Order
// Refunded with its refund_id; a refunded or cancelled order's event is
// dated when its status changed.
func TestWooCommerceRefundsAndCancellations(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := string(fixture(t, "woocommerce_order_updated.json"))
	send := func(body string) {
		t.Helper()
		if r := b.send(t, "POST", "/webhooks/woocommerce/woo", []byte(body), "X-WC-Webhook-Topic", "order.updated",
			"X-WC-Webhook-Signature", hmacB64("woo-secret", []byte(body))); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	modified := strings.Replace(body, `"date_modified_gmt": "2017-03-22T19:28:08"`, `"date_modified_gmt": "2017-03-25T10:00:00"`, 1)
	send(strings.Replace(strings.Replace(modified, `"status": "processing"`, `"status": "completed"`, 1),
		`"refunds": []`, `"refunds": [{"id": 730, "reason": "one cup broken", "total": "-3.00"}]`, 1))
	send(strings.Replace(modified, `"status": "processing"`, `"status": "refunded"`, 1))
	send(strings.Replace(modified, `"status": "processing"`, `"status": "cancelled"`, 1))
	events, rejects := b.sink.snapshot()
	if len(events) != 4 || len(rejects) != 0 {
		t.Fatalf("events %d rejects %v", len(events), rejects)
	}
	changed := time.Date(2017, 3, 25, 10, 0, 0, 0, time.UTC)
	for i, want := range []struct {
		name, id string
		at       time.Time
	}{
		{kiln.OrderCompleted, "woocommerce-order-727-completed", time.Date(2017, 3, 22, 19, 28, 8, 0, time.UTC)},
		{kiln.OrderRefunded, "woocommerce-refund-730", changed},
		{kiln.OrderRefunded, "woocommerce-order-727-refunded", changed},
		{kiln.OrderCancelled, "woocommerce-order-727-cancelled", changed},
	} {
		e := events[i]
		if e.Name != want.name || e.MessageID != want.id || !e.Timestamp.Equal(want.at) || e.Anchor != "email:john.doe@example.com" || e.Properties["order_id"] != "727" {
			t.Errorf("event %d: %s %s at %v (%s), want %s %s at %v", i, e.Name, e.MessageID, e.Timestamp, e.Anchor, want.name, want.id, want.at)
		}
	}
	if p := events[1].Properties; p["refund_id"] != "730" || p["total"] != 3.0 || p["reason"] != "one cup broken" {
		t.Errorf("partial refund %v", p)
	}
}
