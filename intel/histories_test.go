package intel

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// traitsBoth computes every customer's traits twice: from FromEvents over
// each customer's events (the refit's former path) and from Histories fed
// the same events one at a time, in the given order; it fails on any
// difference in the population or a customer's traits.
func traitsBoth(t *testing.T, custIDs []string, byCust map[string][]*kiln.Event, order []*kiln.Event, owner map[*kiln.Event]string, asOf time.Time, o TraitOptions) int {
	t.Helper()
	var want []CustomerHistory
	for _, c := range custIDs {
		want = append(want, FromEvents(c, byCust[c]))
	}
	wantPop := LearnPopulationOptions(want, asOf, o)

	hs := NewHistories()
	for _, ev := range order {
		hs.Add(owner[ev], ev)
	}
	gotPop := LearnPopulationSeq(hs.All(), asOf, o)
	wantPop.index, gotPop.index = nil, nil
	if !reflect.DeepEqual(gotPop, wantPop) {
		t.Fatalf("populations differ:\n got %+v\nwant %+v", gotPop, wantPop)
	}
	byID := map[string]map[string]any{}
	for h := range hs.All() {
		byID[h.Customer] = CustomerTraits(*h, gotPop, asOf)
	}
	n := 0
	for _, h := range want {
		w, g := CustomerTraits(h, wantPop, asOf), byID[h.Customer]
		if len(w) == 0 && len(g) == 0 {
			continue
		}
		if !maps.Equal(w, g) {
			t.Fatalf("customer %s:\n got %v\nwant %v", h.Customer, g, w)
		}
		n++
	}
	return n
}

// On the demo data, the compact histories give every customer exactly the
// traits FromEvents gives.
func TestHistoriesMatchFromEventsOnDemo(t *testing.T) {
	d := defaultDemo(t)
	owner := map[*kiln.Event]string{}
	var order []*kiln.Event // log order: the generator's
	for _, c := range d.custIDs {
		for _, ev := range d.byCust[c] {
			owner[ev] = c
		}
	}
	for _, ev := range d.events {
		if _, ok := owner[ev]; ok {
			order = append(order, ev)
		}
	}
	o := DefaultTraitOptions()
	o.Zone, _ = time.LoadLocation("Europe/London")
	if n := traitsBoth(t, d.custIDs, d.byCust, order, owner, d.end, o); n < 5000 {
		t.Errorf("only %d customers with traits compared", n)
	}
}

// Events out of time order, equal timestamps, identify and group calls
// overriding each other, refunds and cancellations before their orders: the compact
// histories still give FromEvents' traits.
func TestHistoriesMatchFromEventsShuffled(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	when := func() time.Time { return t0.Add(time.Duration(r.IntN(40)) * 24 * time.Hour) } // many ties
	pick := func(vs ...any) any { return vs[r.IntN(len(vs))] }
	byCust := map[string][]*kiln.Event{}
	owner := map[*kiln.Event]string{}
	var custIDs []string
	var order []*kiln.Event
	for c := range 200 {
		id := string(rune('a'+c%26)) + string(rune('a'+c/26))
		custIDs = append(custIDs, id)
		for k := range 4 + r.IntN(20) {
			var ev *kiln.Event
			switch r.IntN(10) {
			case 0:
				ev = &kiln.Event{Type: kiln.Identify, Traits: map[string]any{
					"email": pick("ann@gmail.com", "ann@acme.co.uk", nil), "customer_type": pick("business", "consumer"),
					"home_location": pick("Soho", nil, 3.0), "company": pick("Acme", nil, "")}}
				if r.IntN(2) == 0 {
					delete(ev.Traits, "company")
				}
				if r.IntN(3) == 0 {
					ev.Traits["vat_id"] = pick("GB9", nil)
				}
			case 1:
				ev = &kiln.Event{Type: kiln.Group, Traits: map[string]any{"vat_id": pick("GB123", ""), "name": pick("Acme Ltd", "Bolt plc")}}
			case 2:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.OrderRefunded, Properties: map[string]any{
					"order_id": pick("o1", "o2", "o3"), "total": pick(5.0, 500.0, nil),
					"products": pick(nil, []any{map[string]any{"sku": "CUP", "quantity": 1.0}})}}
			case 3:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.FeedbackGiven, Properties: map[string]any{"rating": pick(1.0, 4.5, 5.0, 9.0)}}
			case 4:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.LoyaltyMilestone, Properties: map[string]any{"milestone": pick("10", "25", "")}}
			case 5:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.VisitCompleted, Properties: map[string]any{
					"visit_id": "v", "location": pick("Soho", "Leeds"), "party_size": pick(2.0, 4.0),
					"dishes": []any{map[string]any{"sku": pick("dolma", "khash"), "name": "Dish", "category": "mains", "quantity": 1.0}}}}
			case 6:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.EventRSVPed, Properties: map[string]any{"response": pick("yes", "no")}}
			case 7:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.OrderCancelled, Properties: map[string]any{"order_id": pick("o1", "o2", "o3", "v")}}
			default:
				ev = &kiln.Event{Type: kiln.Track, Name: kiln.OrderCompleted, Properties: map[string]any{
					"order_id": pick("o1", "o2", "o3", "o"+string(rune('0'+k))), "revenue": pick(20.0, 450.0), "gift": pick(true, false),
					"products": []any{
						map[string]any{"sku": pick("CUP", "POT", "PLATE"), "category": pick("teaware", "dinnerware"), "pattern": pick("Ararat", ""), "price": 12.5, "quantity": pick(1.0, 2.0, 24.0)},
						map[string]any{"sku": "CUP", "category": "teaware", "price": 8.0, "quantity": 1.0}}}}
			}
			ev.Timestamp = when()
			byCust[id] = append(byCust[id], ev)
			owner[ev] = id
			order = append(order, ev)
		}
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	// FromEvents takes each customer's events in the order Histories gets them.
	for _, id := range custIDs {
		byCust[id] = byCust[id][:0]
	}
	for _, ev := range order {
		byCust[owner[ev]] = append(byCust[owner[ev]], ev)
	}
	o := DefaultTraitOptions()
	o.MinRepeaters, o.MinDishOrders = 2, 2
	if n := traitsBoth(t, custIDs, byCust, order, owner, t0.AddDate(0, 0, 60), o); n < 150 {
		t.Errorf("only %d customers with traits compared", n)
	}
}
