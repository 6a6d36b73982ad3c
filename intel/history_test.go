package intel

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func track(ts, name string, props map[string]any) *kiln.Event {
	return &kiln.Event{Type: kiln.Track, Name: name, Timestamp: at(ts), Properties: props}
}

func TestFromEvents(t *testing.T) {
	home := map[string]any{"line1": "1 High St", "city": "York", "postal_code": "YO1 7HH", "country": "GB"}
	evs := []*kiln.Event{
		// Given out of order on purpose.
		track("2025-03-02T10:00:00Z", kiln.OrderCompleted, map[string]any{
			"order_id": "o2", "total": "58.5", "gift_wrap": true,
			"products": []any{map[string]any{"product_id": "p9", "name": "Mug", "category": "teaware", "quantity": json.Number("2"), "price": "9.5"}},
		}),
		{Type: kiln.Identify, Timestamp: at("2025-01-01T00:00:00Z"), Traits: map[string]any{"email": "old@acme.co.uk", "home_location": "Glendale"}},
		{Type: kiln.Identify, Timestamp: at("2025-02-01T00:00:00Z"), Traits: map[string]any{"email": "buyer@acme.co.uk"}},
		{Type: kiln.Group, Timestamp: at("2025-02-01T00:00:01Z"), GroupID: "org-1", Traits: map[string]any{"name": "Acme Hotels", "vat_id": "GB123"}},
		track("2025-03-01T10:00:00Z", kiln.OrderCompleted, map[string]any{
			"order_id": "o1", "revenue": 40.0, "total": 48.0,
			"billing_address": home, "shipping_address": map[string]any{"name": "Ann", "line1": "1 High St", "city": "york ", "postal_code": "YO1 7HH", "country": "GB"},
			"products": []any{map[string]any{"sku": "AB-DP27", "name": "Ararat Blue Dinner Plate", "category": "dinnerware", "pattern": "Ararat Blue", "quantity": 4.0, "price": 23.95}},
		}),
		track("2025-03-03T10:00:00Z", kiln.OrderCompleted, map[string]any{
			"order_id": "o3", "revenue": 10.0, "customer_type": "business",
			"billing_address": home, "shipping_address": map[string]any{"line1": "9 Low Rd", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"},
		}),
		track("2025-03-04T19:00:00Z", kiln.VisitCompleted, map[string]any{
			"visit_id": "v1", "spend": 54.75, "revenue": 50.0, "covers": 3.0,
			"dishes": []any{map[string]any{"product_id": "m-ghapama", "sku": "m-ghapama", "name": "Ghapama", "category": "mains", "price": 29.0, "quantity": 1.0, "season": "autumn"}},
		}),
		track("2025-03-05T19:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "t1", "total": 30.0, "party_size": 2.0, "location": "Pasadena"}),
		track("2025-03-05T20:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "s1", "total": 5.0, "gift": false, "ship_to_other": true}),
		track("2025-03-06T10:00:00Z", kiln.FeedbackGiven, map[string]any{"rating": 6.0}),
		track("2025-03-06T11:00:00Z", kiln.FeedbackGiven, map[string]any{"rating": "4"}),
		track("2025-03-07T10:00:00Z", kiln.EventRSVPed, map[string]any{"response": "no"}),
		track("2025-03-07T11:00:00Z", kiln.EventRSVPed, map[string]any{"response": "maybe"}),
		track("2025-03-08T10:00:00Z", kiln.LoyaltyMilestone, map[string]any{"milestone": 25.0, "milestone_name": "25th visit"}),
		track("2025-03-09T10:00:00Z", kiln.LoyaltyMilestone, map[string]any{"milestone_name": "Gold"}),
		// A partial refund of money alone leaves o1 as it is.
		track("2025-03-10T10:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "o1", "revenue": 5.0}),
		nil,
	}
	evs[0].Store = "york"
	evs[6].Store = "glendale"
	h := FromEvents("c1", evs)
	if h.Customer != "c1" {
		t.Errorf("customer %q", h.Customer)
	}
	wantTraits := map[string]any{"email": "buyer@acme.co.uk", "home_location": "Glendale", "company": "Acme Hotels", "vat_id": "GB123"}
	if !reflect.DeepEqual(h.Traits, wantTraits) {
		t.Errorf("traits %v, want %v", h.Traits, wantTraits)
	}
	want := []Purchase{
		{Time: at("2025-03-01T10:00:00Z"), Amount: 40, OrderID: "o1",
			Lines: []Line{{SKU: "AB-DP27", Name: "Ararat Blue Dinner Plate", Category: "dinnerware", Pattern: "Ararat Blue", Quantity: 4, Price: 23.95}}},
		{Time: at("2025-03-02T10:00:00Z"), Amount: 58.5, OrderID: "o2", Gift: true,
			Lines: []Line{{SKU: "p9", Name: "Mug", Category: "teaware", Quantity: 2, Price: 9.5}}},
		{Time: at("2025-03-03T10:00:00Z"), Amount: 10, OrderID: "o3", Gift: true, Business: true},
		{Time: at("2025-03-04T19:00:00Z"), Amount: 54.75, OrderID: "v1", Visit: true, PartySize: 3, Location: "glendale",
			Lines: []Line{{SKU: "m-ghapama", Name: "Ghapama", Category: "mains", Season: "autumn", Quantity: 1, Price: 29}}},
		{Time: at("2025-03-05T19:00:00Z"), Amount: 30, OrderID: "t1", PartySize: 2, Location: "Pasadena"},
		{Time: at("2025-03-05T20:00:00Z"), Amount: 5, OrderID: "s1", Gift: true},
	}
	if !reflect.DeepEqual(h.Purchases, want) {
		t.Errorf("purchases\n got %+v\nwant %+v", h.Purchases, want)
	}
	if !h.Purchases[4].Restaurant() || h.Purchases[1].Restaurant() {
		t.Errorf("a takeaway order is a restaurant purchase, a shop order is not")
	}
	if !reflect.DeepEqual(h.Ratings, []Rating{{at("2025-03-06T11:00:00Z"), 4}}) {
		t.Errorf("ratings %v: want only the valid 4", h.Ratings)
	}
	if !reflect.DeepEqual(h.RSVPs, []time.Time{at("2025-03-07T11:00:00Z")}) {
		t.Errorf("rsvps %v: want only the maybe", h.RSVPs)
	}
	wantMs := []Milestone{{at("2025-03-08T10:00:00Z"), "25"}, {at("2025-03-09T10:00:00Z"), "Gold"}}
	if !reflect.DeepEqual(h.Milestones, wantMs) {
		t.Errorf("milestones %v, want %v", h.Milestones, wantMs)
	}
}

func TestAddressesDiffer(t *testing.T) {
	a := map[string]any{"city": "York", "postal_code": "YO1 7HH"}
	for _, c := range []struct {
		bill, ship any
		want       bool
	}{
		{a, map[string]any{"city": "YORK", "postal_code": "YO1  7HH", "name": "Bo"}, false},
		{a, map[string]any{"city": "York", "postal_code": "YO10 5DD"}, true},
		{a, nil, false},
		{a, map[string]any{"country": "GB"}, false}, // nothing in common to compare
		{"1 High St, York", "1 High St,  York", false},
		{"1 High St, York", "2 Low Rd, Leeds", true},
	} {
		if got := addressesDiffer(c.bill, c.ship); got != c.want {
			t.Errorf("addressesDiffer(%v, %v) = %v, want %v", c.bill, c.ship, got, c.want)
		}
	}
}

func TestFromEventsRefunds(t *testing.T) {
	prod := func(sku string, q float64) any { return map[string]any{"sku": sku, "quantity": q, "price": 10.0} }
	evs := []*kiln.Event{
		track("2025-03-01T10:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "a", "revenue": 50.0, "products": []any{prod("X", 2), prod("Y", 3)}}),
		track("2025-03-02T10:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "b", "revenue": 20.0, "products": []any{prod("Z", 2)}}),
		track("2025-03-03T10:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "c", "revenue": 30.0, "products": []any{prod("W", 1)}}),
		track("2025-03-04T10:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "a", "revenue": 20.0, "products": []any{prod("X", 2)}}),
		track("2025-03-05T10:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "a", "revenue": 10.0, "products": []any{prod("Y", 1)}}),
		track("2025-03-06T10:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "b", "revenue": 20.0, "products": []any{prod("Z", 2)}}),
		track("2025-03-07T10:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "c", "revenue": 30.0}),
		track("2025-03-07T11:00:00Z", kiln.OrderRefunded, map[string]any{"order_id": "nope", "revenue": 30.0}),
	}
	before := fmt.Sprint(evs[0].Properties)
	h := FromEvents("c", evs)
	want := []Purchase{
		{Time: at("2025-03-01T10:00:00Z"), OrderID: "a", Amount: 20, Lines: []Line{{SKU: "Y", Quantity: 2, Price: 10}}},
		{Time: at("2025-03-02T10:00:00Z"), OrderID: "b"},
		{Time: at("2025-03-03T10:00:00Z"), OrderID: "c"},
	}
	if !reflect.DeepEqual(h.Purchases, want) {
		t.Errorf("after refunds\n got %+v\nwant %+v", h.Purchases, want)
	}
	if fmt.Sprint(evs[0].Properties) != before {
		t.Errorf("FromEvents changed the order's event")
	}
}

// A cancelled order is no purchase, whether the cancellation comes before
// or after it; a visit with the same id is not an order and stays.
func TestFromEventsCancellations(t *testing.T) {
	evs := []*kiln.Event{
		track("2025-03-01T10:12:00Z", kiln.OrderCancelled, map[string]any{"order_id": "a"}),
		track("2025-03-01T10:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "a", "revenue": 168000.0, "gift": true}),
		track("2025-03-02T10:00:00Z", kiln.OrderCompleted, map[string]any{"order_id": "b", "revenue": 20.0}),
		track("2025-03-03T10:00:00Z", kiln.VisitCompleted, map[string]any{"visit_id": "c", "spend": 30.0}),
		track("2025-03-04T10:00:00Z", kiln.OrderCancelled, map[string]any{"order_id": "c"}),
		track("2025-03-04T11:00:00Z", kiln.OrderCancelled, map[string]any{"order_id": "nope"}),
	}
	h := FromEvents("c", evs)
	want := []Purchase{
		{Time: at("2025-03-02T10:00:00Z"), OrderID: "b", Amount: 20},
		{Time: at("2025-03-03T10:00:00Z"), OrderID: "c", Amount: 30, Visit: true},
	}
	if !reflect.DeepEqual(h.Purchases, want) {
		t.Errorf("after cancellations\n got %+v\nwant %+v", h.Purchases, want)
	}
}
