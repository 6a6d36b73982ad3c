package intel

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestGiftSeason(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	for _, c := range []struct {
		at   string
		zone *time.Location
		want string
	}{
		{"2025-11-14T12:00:00Z", nil, ""},
		{"2025-11-15T00:00:00Z", nil, SeasonChristmas},
		{"2025-12-24T23:59:00Z", nil, SeasonChristmas},
		{"2025-12-25T00:00:00Z", nil, ""},
		{"2025-11-15T05:00:00Z", la, ""}, // still the 14th in Los Angeles
		{"2025-02-01T00:00:00Z", nil, SeasonValentines},
		{"2025-02-14T20:00:00Z", nil, SeasonValentines},
		{"2025-02-15T00:00:00Z", nil, ""},
		// 2025: Easter 20 April, Mothering Sunday 30 March.
		{"2025-03-16T12:00:00Z", nil, ""},
		{"2025-03-17T12:00:00Z", nil, SeasonMothersUK},
		{"2025-03-30T12:00:00Z", nil, SeasonMothersUK},
		{"2025-03-31T12:00:00Z", nil, ""},
		// 2024: Easter 31 March, Mothering Sunday 10 March.
		{"2024-03-10T12:00:00Z", nil, SeasonMothersUK},
		{"2024-03-11T12:00:00Z", nil, ""},
		// US Mother's Day 11 May 2025, Father's Day 15 June 2025.
		{"2025-04-27T12:00:00Z", nil, ""},
		{"2025-04-28T12:00:00Z", nil, SeasonMothersDay},
		{"2025-05-11T12:00:00Z", nil, SeasonMothersDay},
		{"2025-05-12T12:00:00Z", nil, ""},
		{"2025-06-02T12:00:00Z", nil, SeasonFathersDay},
		{"2025-06-15T12:00:00Z", nil, SeasonFathersDay},
		{"2025-06-16T12:00:00Z", nil, ""},
		{"2025-08-01T12:00:00Z", nil, ""},
	} {
		got, y := GiftSeason(at(c.at), c.zone)
		if got != c.want || got != "" && y != at(c.at).Year() {
			t.Errorf("GiftSeason(%s, %v) = %q %d, want %q", c.at, c.zone, got, y, c.want)
		}
	}
}

func TestBusinessEmail(t *testing.T) {
	for _, c := range []struct {
		email   string
		biz, ok bool
	}{
		{"ann@gmail.com", false, true},
		{"ann@GoogleMail.com", false, true},
		{"ann@yahoo.co.uk", false, true},
		{"ann@hotmail.fr", false, true},
		{"ann@btinternet.com", false, true},
		{"orders@acme-hotels.co.uk", true, true},
		{"ann@example.com", false, true},
		{"ann@mail.example.com", false, true},
		{"ann@shop.example", false, true},
		{"nobody", false, false},
		{"ann@localhost", false, false},
		{"", false, false},
	} {
		biz, ok := BusinessEmail(c.email)
		if biz != c.biz || ok != c.ok {
			t.Errorf("BusinessEmail(%q) = %v, %v; want %v, %v", c.email, biz, ok, c.biz, c.ok)
		}
	}
}

func day(d int) time.Time { return time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, d) }

func order(d int, lines ...Line) Purchase { return Purchase{Time: day(d), Lines: lines} }

func item(sku, cat, pat string, qty, price float64) Line {
	return Line{SKU: sku, Name: sku, Category: cat, Pattern: pat, Quantity: qty, Price: price}
}

// retailPopulation: 25 tea drinkers buying TEA every 30 days, and plate
// buyers who between them bought all six pieces of the Blue pattern.
func retailPopulation() []CustomerHistory {
	var hs []CustomerHistory
	for i := 0; i < 25; i++ {
		hs = append(hs, CustomerHistory{Customer: fmt.Sprintf("tea%d", i), Purchases: []Purchase{
			order(i, item("TEA", "tea", "", 1, 8)), order(i+30, item("TEA", "tea", "", 1, 8)), order(i+60, item("TEA", "tea", "", 2, 8)),
		}})
	}
	for i := 0; i < 6; i++ {
		hs = append(hs, CustomerHistory{Customer: fmt.Sprintf("plate%d", i), Purchases: []Purchase{
			order(i, item(fmt.Sprintf("BL-%d", i), "dinnerware", "Blue", 2, 20)),
		}})
	}
	return hs
}

func TestRetailTraits(t *testing.T) {
	hs := retailPopulation()
	asOf := day(200)
	// X buys tea every 10 days (own interval: gaps 10, 10, 9), plates of Blue and a full
	// 2-piece Red set, a gift in between that must not count.
	x := CustomerHistory{Customer: "x", Traits: map[string]any{"email": "x@gmail.com"}, Purchases: []Purchase{
		order(170, item("TEA", "tea", "", 1, 8), item("BL-0", "dinnerware", "Blue", 1, 20), item("RD-0", "dinnerware", "Red", 1, 20)),
		order(180, item("TEA", "tea", "", 1, 8), item("BL-1", "dinnerware", "Blue", 1, 20), item("RD-1", "dinnerware", "Red", 1, 20)),
		{Time: day(185), Gift: true, Lines: []Line{item("BL-2", "dinnerware", "Blue", 1, 20), item("TEA", "tea", "", 5, 8), item("GIFT", "gift sets", "", 1, 500)}},
		order(190, item("TEA", "tea", "", 1, 8), item("BL-3", "dinnerware", "Blue", 1, 20)),
		order(199, item("TEA", "tea", "", 1, 8)),
	}}
	// Y bought tea once, 20 days ago: due on the population's 30 days.
	y := CustomerHistory{Customer: "y", Purchases: []Purchase{order(180, item("TEA", "tea", "", 1, 8))}}
	// Z bought tea once, 100 days ago: long past due, no due date.
	z := CustomerHistory{Customer: "z", Purchases: []Purchase{order(100, item("TEA", "tea", "", 1, 8))}}
	// B orders by the hundred twice: a bulk buyer.
	b := CustomerHistory{Customer: "b", Purchases: []Purchase{order(10, item("MUG", "teaware", "", 100, 2)), order(40, item("MUG", "teaware", "", 100, 2))}}
	hs = append(hs, x, y, z, b)
	pop := LearnPopulation(hs, asOf)

	tea := pop.SKUIntervals["TEA"]
	if tea.Median != 30 || tea.Repeaters != 26 || !tea.Replenished {
		t.Fatalf("TEA interval %+v, want a 30-day median over 26 repeat buyers (25 tea drinkers and x)", tea)
	}
	if pop.PatternPieces["Blue"] != 6 || pop.PatternPieces["Red"] != 2 {
		t.Errorf("pattern pieces %v, want Blue 6 and Red 2", pop.PatternPieces)
	}
	if pop.BulkQuantity != 12 {
		t.Errorf("bulk quantity %v: the 95th percentile of these quantities is below a dozen", pop.BulkQuantity)
	}

	tr := CustomerTraits(x, pop, asOf)
	want := map[string]any{
		TraitReplenishDue: "2025-07-29", TraitReplenishItem: "TEA", TraitReplenishLevel: "sku", TraitReplenishInterval: 10.0,
		TraitReplenishSKUDue: "2025-07-29", TraitReplenishSKU: "TEA", TraitReplenishCatDue: "2025-07-29", TraitReplenishCategory: "tea",
		TraitCollection: "Blue", TraitCollectionOwned: 3.0, TraitCollectionMissing: 3.0, TraitCollectionDone: 0.5,
		TraitGiftBuyer: true, TraitGiftOrders: 1.0, TraitGiftOrderShare: 0.2, TraitSeasonalGifter: false,
		TraitBusinessBuyer: false, TraitBusinessEmail: false, TraitBulkOrders: 0.0, TraitTopCategory: "dinnerware",
	}
	for k, v := range want {
		if tr[k] != v {
			t.Errorf("x: %s = %v (%T), want %v; all %v", k, tr[k], tr[k], v, tr)
		}
	}
	// Gifts aside: 5 plates at 20 against 4 teas at 8.
	if s := tr[TraitTopCategoryShare].(float64); math.Abs(s-100.0/132) > 1e-12 {
		t.Errorf("x: top category share %v, want 100/132", s)
	}
	if d := CustomerTraits(y, pop, asOf)[TraitReplenishDue]; d != "2025-07-30" {
		t.Errorf("y: due %v, want 30 days after 2025-06-30", d)
	}
	if d, ok := CustomerTraits(z, pop, asOf)[TraitReplenishDue]; ok {
		t.Errorf("z: due %v for tea last bought 100 days ago (overdue by more than the interval)", d)
	}
	if tb := CustomerTraits(b, pop, asOf); tb[TraitBusinessBuyer] != true || tb[TraitBusinessSignals] != "bulk" || tb[TraitBulkOrders] != 2.0 {
		t.Errorf("b: %v, want a business buyer by bulk", tb)
	}
	// As of an earlier day, later purchases do not exist.
	if d := CustomerTraits(x, pop, day(182))[TraitReplenishDue]; d != "2025-07-30" {
		t.Errorf("x as of day 182: due %v, want day 180 + 30", d)
	}
	dues := ReplenishmentDue(x, pop, asOf)
	if len(dues) != 2 || dues[0] != (Due{Level: LevelSKU, Item: "TEA", Last: "2025-07-19", Due: "2025-07-29", IntervalDays: 10, Own: true}) ||
		dues[1] != (Due{Level: LevelCategory, Item: "tea", Last: "2025-07-19", Due: "2025-07-29", IntervalDays: 10, Own: true}) {
		t.Errorf("x: dues %+v", dues)
	}

	// Declared business, and the seasons.
	for _, c := range []struct {
		name    string
		h       CustomerHistory
		signals string
		gifter  bool
	}{
		{"vat", CustomerHistory{Traits: map[string]any{"vat_id": "GB1"}, Purchases: []Purchase{order(1, item("A", "c", "", 1, 1))}}, "vat_id", false},
		{"email and a dozen", CustomerHistory{Traits: map[string]any{"email": "a@acme.com"}, Purchases: []Purchase{order(1, item("A", "c", "", 12, 1)), order(2, item("A", "c", "", 1, 1)), order(3, item("A", "c", "", 1, 1))}}, "business_email", false},
		{"email alone", CustomerHistory{Traits: map[string]any{"email": "a@acme.com"}, Purchases: []Purchase{order(1, item("A", "c", "", 2, 1))}}, "", false},
		{"two Christmases", CustomerHistory{Purchases: []Purchase{
			{Time: at("2024-12-10T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}},
			{Time: at("2025-12-01T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}}}}, "", true},
		{"one Christmas", CustomerHistory{Purchases: []Purchase{
			{Time: at("2024-12-10T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}},
			{Time: at("2024-12-12T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}}}}, "", false},
		{"Christmas and Valentine's, then July", CustomerHistory{Purchases: []Purchase{
			{Time: at("2024-12-10T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}},
			{Time: at("2025-02-10T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}},
			{Time: at("2025-07-10T10:00:00Z"), Lines: []Line{item("A", "c", "", 1, 1)}}}}, "", false},
	} {
		tr := CustomerTraits(c.h, pop, at("2026-01-01T00:00:00Z"))
		if tr[TraitBusinessSignals] != c.signals || tr[TraitBusinessBuyer] != (c.signals != "") {
			t.Errorf("%s: business %v signals %q, want %q", c.name, tr[TraitBusinessBuyer], tr[TraitBusinessSignals], c.signals)
		}
		if tr[TraitSeasonalGifter] != c.gifter || tr[TraitGiftBuyer] != c.gifter {
			t.Errorf("%s: seasonal gifter %v gift buyer %v, want %v", c.name, tr[TraitSeasonalGifter], tr[TraitGiftBuyer], c.gifter)
		}
	}
}

func visit(ts time.Time, loc string, party int, lines ...Line) Purchase {
	return Purchase{Time: ts, Visit: true, Location: loc, PartySize: party, Lines: lines}
}

func TestRestaurantTraits(t *testing.T) {
	bread := item("bread", "bread", "", 1, 4)
	lamb := item("lamb", "grill", "", 1, 30)
	manti := item("manti", "mains", "", 1, 22)
	pumpkin := Line{SKU: "pumpkin", Name: "Pumpkin Manti", Category: "mains", Quantity: 2, Price: 23, Season: "autumn"}
	g := CustomerHistory{Customer: "g", Traits: map[string]any{"home_location": "Pasadena"}}
	for i := 0; i < 6; i++ {
		g.Purchases = append(g.Purchases, visit(day(7*i), "Glendale", 2+i%2, bread, lamb))
	}
	g.Purchases[2].Lines = append(g.Purchases[2].Lines, manti, pumpkin)
	g.Purchases = append(g.Purchases, visit(day(35).Add(time.Hour), "Pasadena", 4, bread, manti)) // same day as the 6th
	for k := 0; k < 5; k++ {
		g.Ratings = append(g.Ratings, Rating{day(0).AddDate(0, 3*k-12, 0), float64(5 - k)})
	}
	g.Ratings = append(g.Ratings, Rating{day(100), 5}) // after asOf
	g.RSVPs = []time.Time{day(3), day(10), day(400)}
	g.Milestones = []Milestone{{day(7), "5"}, {day(30), "10"}, {day(500), "25"}}
	asOf := day(35 + 21)
	hs := []CustomerHistory{g}
	for i := 0; i < 10; i++ {
		hs = append(hs, CustomerHistory{Purchases: []Purchase{visit(day(i), "Glendale", 2, bread, item("trout", "fish", "", 1, 30))}})
	}
	pop := LearnPopulationOptions(hs, asOf, TraitOptions{MinDishOrders: 5})
	if _, ok := pop.StapleDishes["bread"]; !ok {
		t.Fatalf("bread, on every visit, is not a staple: %v", pop.StapleDishes)
	}
	if len(pop.SeasonalDishes) != 0 {
		t.Errorf("seasonal dishes %v judged from six weeks of data", pop.SeasonalDishes)
	}
	tr := CustomerTraits(g, pop, asOf)
	want := map[string]any{
		TraitVisits: 7.0, TraitDaysSinceVisit: 20.0, TraitVisitInterval: 7.0,
		TraitLapsed: true, TraitAvgPartySize: (2 + 3 + 2 + 3 + 2 + 3 + 4) / 7.0,
		TraitFavouriteDish: "lamb", TraitFavouriteDishCount: 6.0, TraitFavouriteDishes: "lamb (6), manti (2), Pumpkin Manti (1)",
		TraitFavouriteCuisine: "grill", TraitFavouriteCuisineN: 6.0, TraitSeasonalDishes: 1.0,
		TraitEventRSVPs: 2.0, TraitLoyaltyMilestone: "10", TraitLoyaltyMilestones: 2.0,
		TraitHomeLocation: "Glendale", TraitRatingCount: 5.0, TraitRatingAvg: 3.0, TraitRatingChange: -3.0,
	}
	for k, v := range want {
		if tr[k] != v {
			t.Errorf("%s = %v, want %v", k, tr[k], v)
		}
	}
	if f := tr[TraitVisitFrequency].(float64); math.Abs(f-30*7/(35+1.0/24)) > 1e-9 {
		t.Errorf("visit frequency %v, want 7 visits in 35 days and an hour, per 30 days", f)
	}
	if r := tr[TraitLapseRatio].(float64); math.Abs(r-(20+23.0/24)/7) > 1e-9 {
		t.Errorf("lapse ratio %v, want days since last visit / 7", r)
	}
	// 2 pumpkin manti of 7+6+1+1+2 dishes.
	if s := tr[TraitSeasonalDishShare].(float64); math.Abs(s-2.0/17) > 1e-12 {
		t.Errorf("seasonal dish share %v, want 2/17", s)
	}
	// Ratings fall a point a quarter: 4 a year (the quarters are not
	// equal, so allow for calendar months).
	if s := tr[TraitRatingTrend].(float64); math.Abs(s+4) > 0.05 {
		t.Errorf("rating trend %v a year, want about -4", s)
	}
	// Not lapsed two weeks after: 14/7 = 2 < 2.5; too few visits: no baseline.
	if l := CustomerTraits(g, pop, day(35+14))[TraitLapsed]; l != false {
		t.Errorf("lapsed %v two intervals after the last visit", l)
	}
	short := CustomerHistory{Purchases: g.Purchases[:3]}
	if l, ok := CustomerTraits(short, pop, asOf)[TraitLapsed]; ok {
		t.Errorf("lapsed %v with 3 visits: no baseline", l)
	}
	// A tie between locations goes to the declared home.
	tie := CustomerHistory{Traits: g.Traits, Purchases: []Purchase{visit(day(1), "Glendale", 2), visit(day(2), "Pasadena", 2)}}
	if h := CustomerTraits(tie, pop, asOf)[TraitHomeLocation]; h != "Pasadena" {
		t.Errorf("home location %v, want the declared Pasadena on a tie", h)
	}
}

// A dish ordered only from September to November, in a year of visits,
// is seasonal; one ordered all year is not.
func TestSeasonalDishesLearned(t *testing.T) {
	var hs []CustomerHistory
	for i := 0; i < 400; i++ {
		ts := time.Date(2024, 1, 1, 19, 0, 0, 0, time.UTC).AddDate(0, 0, i*365/400)
		ls := []Line{item("lamb", "grill", "", 1, 30)}
		if m := ts.Month(); m >= time.September && m <= time.November {
			ls = append(ls, item("ghapama", "mains", "", 1, 29))
		}
		hs = append(hs, CustomerHistory{Customer: fmt.Sprint(i), Purchases: []Purchase{visit(ts, "A", 2, ls...)}})
	}
	pop := LearnPopulation(hs, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	sd, ok := pop.SeasonalDishes["ghapama"]
	if !ok || len(pop.SeasonalDishes) != 1 {
		t.Fatalf("seasonal dishes %v, want ghapama alone", pop.SeasonalDishes)
	}
	if fmt.Sprint(sd.Months) != "[September October November]" || sd.Share != 1 {
		t.Errorf("ghapama %+v, want September to November, all its orders", sd)
	}
	tr := CustomerTraits(hs[300], pop, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if tr[TraitSeasonalDishShare] != 0.5 {
		t.Errorf("a guest with lamb and ghapama: seasonal share %v, want 0.5", tr[TraitSeasonalDishShare])
	}
}

// CustomerTraits only reads the Population: concurrent calls give the
// sequential results, and a Population decoded from JSON (without the
// item index LearnPopulation builds) gives the same traits.
func TestCustomerTraitsConcurrentAndDecoded(t *testing.T) {
	hs := retailPopulation()
	asOf := day(80)
	pop := LearnPopulation(hs, asOf)
	want := make([]map[string]any, len(hs))
	for i, h := range hs {
		want[i] = CustomerTraits(h, pop, asOf)
	}
	b, err := json.Marshal(pop)
	if err != nil {
		t.Fatal(err)
	}
	var decoded Population
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	got := make([]map[string]any, len(hs))
	var wg sync.WaitGroup
	for i := range hs {
		wg.Go(func() { got[i] = CustomerTraits(hs[i], pop, asOf) })
	}
	wg.Wait()
	for i := range hs {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: concurrent %v, sequential %v", hs[i].Customer, got[i], want[i])
		}
		if d := CustomerTraits(hs[i], decoded, asOf); !reflect.DeepEqual(d, want[i]) {
			t.Errorf("%s: from the decoded population %v, want %v", hs[i].Customer, d, want[i])
		}
	}
	if want[0][TraitReplenishDue] == nil {
		t.Errorf("the tea drinkers have no due date: %v", want[0])
	}
}

// Without a learned population the thresholds' floors still hold: a
// household order is not bulk, and nothing is due.
func TestCustomerTraitsZeroPopulation(t *testing.T) {
	h := CustomerHistory{Purchases: []Purchase{order(1, item("A", "c", "", 2, 5)), order(2, item("A", "c", "", 3, 5))}}
	tr := CustomerTraits(h, Population{}, day(10))
	if tr[TraitBusinessBuyer] != false || tr[TraitBulkOrders] != 0.0 {
		t.Errorf("zero population: %v", tr)
	}
	if _, ok := tr[TraitReplenishDue]; ok {
		t.Errorf("a due date without learned intervals: %v", tr)
	}
}
