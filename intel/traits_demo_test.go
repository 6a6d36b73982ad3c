package intel

import (
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
)

// demoData is the demo generator's output grouped into customers the way
// identity resolution groups them: events sharing a user id, email, phone
// or loyalty number belong to one customer (anonymous ids are left out: the
// demo's couples share a computer).
type demoData struct {
	cfg     demo.Config
	end     time.Time // the last instant of data
	events  []*kiln.Event
	byCust  map[string][]*kiln.Event
	custIDs []string
}

func generateDemo(tb testing.TB, cfg demo.Config) *demoData {
	tb.Helper()
	d := &demoData{cfg: cfg, byCust: map[string][]*kiln.Event{}}
	sum, err := demo.Generate(cfg, func(e kiln.Event) error {
		d.events = append(d.events, &e)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	d.end = sum.End.Add(-time.Millisecond)
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok || p == x {
			parent[x] = x
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	ids := make([][]string, len(d.events))
	for i, ev := range d.events {
		var ks []string
		if ev.UserID != "" {
			ks = append(ks, "u:"+ev.UserID)
		}
		ctx, _ := ev.Context["traits"].(map[string]any)
		for _, m := range []map[string]any{ev.Traits, ctx, ev.Properties} {
			for _, k := range []string{"email", "phone", "loyalty_number"} {
				if v, _ := m[k].(string); v != "" {
					ks = append(ks, k+":"+v)
				}
			}
		}
		for _, k := range ks[min(1, len(ks)):] {
			parent[find(k)] = find(ks[0])
		}
		ids[i] = ks
	}
	for i, ev := range d.events {
		if len(ids[i]) == 0 {
			continue
		}
		c := find(ids[i][0])
		if _, ok := d.byCust[c]; !ok {
			d.custIDs = append(d.custIDs, c)
		}
		d.byCust[c] = append(d.byCust[c], ev)
	}
	sort.Strings(d.custIDs)
	return d
}

func (d *demoData) histories(edit func(*kiln.Event) *kiln.Event) []CustomerHistory {
	hs := make([]CustomerHistory, 0, len(d.custIDs))
	for _, c := range d.custIDs {
		evs := d.byCust[c]
		if edit != nil {
			evs = slices.Clone(evs)
			for i := range evs {
				evs[i] = edit(evs[i])
			}
		}
		hs = append(hs, FromEvents(c, evs))
	}
	return hs
}

// prf is precision and recall of a detector against the truth.
type prf struct{ tp, fp, fn, tn int }

func (c *prf) add(got, want bool) {
	switch {
	case got && want:
		c.tp++
	case got:
		c.fp++
	case want:
		c.fn++
	default:
		c.tn++
	}
}
func (c prf) precision() float64 { return float64(c.tp) / float64(max(1, c.tp+c.fp)) }
func (c prf) recall() float64    { return float64(c.tp) / float64(max(1, c.tp+c.fn)) }

var (
	demoOnce    sync.Once
	demoDefault *demoData
)

// defaultDemo is the demo at its default size (5,000 shop customers,
// 2,000 guests, two years), generated once for all tests.
func defaultDemo(tb testing.TB) *demoData {
	demoOnce.Do(func() { demoDefault = generateDemo(tb, demo.Config{Seed: 1}) })
	return demoDefault
}

// shopTruth is what the generator knows of a shop customer: whether any
// order was sent as a gift, and whether they are a business buyer.
func shopTruth(evs []*kiln.Event) (shop, gift, business bool) {
	for _, ev := range evs {
		if ev.Type == kiln.Identify && ev.Traits["customer_type"] == "business" {
			business = true
		}
		if ev.Name == kiln.OrderCompleted && ev.SourceID != demo.SourceRestaurantWeb {
			shop = true
			gift = gift || ev.Properties["gift"] == true
		}
	}
	return shop, gift, business
}

// withoutProps returns an edit that removes properties from orders and
// traits from identify and group calls.
func without(props, traits []string) func(*kiln.Event) *kiln.Event {
	return func(ev *kiln.Event) *kiln.Event {
		e := *ev
		if ev.Name == kiln.OrderCompleted {
			e.Properties = maps.Clone(ev.Properties)
			for _, k := range props {
				delete(e.Properties, k)
			}
		}
		if ev.Type == kiln.Identify || ev.Type == kiln.Group {
			e.Traits = maps.Clone(ev.Traits)
			for _, k := range traits {
				delete(e.Traits, k)
			}
		}
		return &e
	}
}

// The demo marks gift orders (gift, gift_message, gift_wrap and a
// different shipping address) and business buyers (company, VAT id,
// customer_type, orders by the dozen). The traits must find them from the
// flags, and still from what is left when the flags are removed.
func TestDemoGiftAndBusinessBuyers(t *testing.T) {
	d := defaultDemo(t)
	type run struct {
		name               string
		edit               func(*kiln.Event) *kiln.Event
		minGiftP, minGiftR float64
		minBizP, minBizR   float64
	}
	runs := []run{
		{"all signals", nil, 1, 1, 1, 1},
		// Gift flags gone: the shipping address still differs from billing.
		// Business traits gone: only the quantities are left.
		{"addresses and quantities only", without([]string{"gift", "gift_message", "gift_wrap", "customer_type", "company", "vat_id"},
			[]string{"customer_type", "company", "vat_id", "name"}), 0.99, 0.99, 0.95, 0.95},
	}
	for _, r := range runs {
		hs := d.histories(r.edit)
		pop := LearnPopulation(hs, d.end)
		var gift, giftOrders, biz, seasonal prf
		for i, h := range hs {
			shop, wantGift, wantBiz := shopTruth(d.byCust[d.custIDs[i]])
			if !shop {
				continue
			}
			tr := CustomerTraits(h, pop, d.end)
			gift.add(tr[TraitGiftBuyer] == true, wantGift)
			n, _ := tr[TraitGiftOrders].(float64) // absent when every order went back
			giftOrders.add(n > 0, wantGift)
			biz.add(tr[TraitBusinessBuyer] == true, wantBiz)
			seasonal.add(tr[TraitSeasonalGifter] == true, wantGift)
		}
		t.Logf("%s: bulk from quantity %.0f; gift orders found: precision %.3f recall %.3f; gift_buyer precision %.3f recall %.3f (%d true); business_buyer precision %.3f recall %.3f (%d true); seasonal_gifter alone precision %.3f recall %.3f",
			r.name, pop.BulkQuantity, giftOrders.precision(), giftOrders.recall(), gift.precision(), gift.recall(), gift.tp+gift.fn, biz.precision(), biz.recall(), biz.tp+biz.fn, seasonal.precision(), seasonal.recall())
		if gift.tp+gift.fn < 100 || biz.tp+biz.fn < 50 {
			t.Fatalf("%s: the demo has too few gift (%d) or business (%d) buyers to judge", r.name, gift.tp+gift.fn, biz.tp+biz.fn)
		}
		if giftOrders.precision() < r.minGiftP || giftOrders.recall() < r.minGiftR {
			t.Errorf("%s: customers with gift orders: precision %.3f recall %.3f, want at least %.2f and %.2f", r.name, giftOrders.precision(), giftOrders.recall(), r.minGiftP, r.minGiftR)
		}
		// gift_buyer adds the customers who buy only in gifting seasons,
		// some of whom never flagged a gift: a little precision is spent.
		if gift.precision() < 0.95 || gift.recall() < r.minGiftR {
			t.Errorf("%s: gift_buyer precision %.3f recall %.3f, want at least %.2f and %.2f", r.name, gift.precision(), gift.recall(), 0.95, r.minGiftR)
		}
		if biz.precision() < r.minBizP || biz.recall() < r.minBizR {
			t.Errorf("%s: business_buyer precision %.3f recall %.3f, want at least %.2f and %.2f", r.name, biz.precision(), biz.recall(), r.minBizP, r.minBizR)
		}
		// Buying only in gifting seasons is weaker evidence than a gift
		// flag, but it must beat guessing: its precision above the base rate.
		base := float64(gift.tp+gift.fn) / float64(gift.tp+gift.fn+gift.fp+gift.tn)
		if seasonal.precision() <= base {
			t.Errorf("%s: seasonal_gifter precision %.3f is not above the gift buyers' base rate %.3f", r.name, seasonal.precision(), base)
		}
	}
}

// Intervals and collections are learned from the demo's purchases: tea
// drinkers re-order about every 55 days (the generator's refill rhythm),
// and every pattern is sold in the catalog's pieces.
func TestDemoReplenishmentAndCollections(t *testing.T) {
	d := defaultDemo(t)
	hs := d.histories(nil)
	pop := LearnPopulation(hs, d.end)
	tea, ok := pop.CategoryIntervals[demo.Teaware]
	if !ok {
		t.Fatalf("no interval learned for %s; learned %v", demo.Teaware, pop.CategoryIntervals)
	}
	t.Logf("teaware: median %.1f days over %d repeat buyers of %d (%d intervals)", tea.Median, tea.Repeaters, tea.Buyers, tea.Intervals)
	if tea.Median < 45 || tea.Median > 70 {
		t.Errorf("teaware median repeat interval %.1f days, want near the generator's 55-day refills (45-70)", tea.Median)
	}
	for sku, iv := range pop.SKUIntervals {
		if iv.Repeaters < pop.Options.MinRepeaters || iv.Median < 1 {
			t.Errorf("%s: interval %+v learned from too few repeaters or below a day", sku, iv)
		}
	}
	// Each customer's due date is their last purchase day of the item
	// plus the interval used.
	due := 0
	for _, h := range hs {
		tr := CustomerTraits(h, pop, d.end)
		s, ok := tr[TraitReplenishDue].(string)
		if !ok {
			continue
		}
		due++
		item, level := tr[TraitReplenishItem].(string), tr[TraitReplenishLevel].(string)
		last := ""
		for _, p := range h.Purchases {
			if p.Gift || p.Restaurant() {
				continue
			}
			for _, l := range p.Lines {
				if level == "sku" && l.SKU == item || level == "category" && l.Category == item {
					last = p.Time.UTC().Format(time.DateOnly)
				}
			}
		}
		lt, _ := time.Parse(time.DateOnly, last)
		want := lt.AddDate(0, 0, int(math.Round(tr[TraitReplenishInterval].(float64)))).Format(time.DateOnly)
		if s != want {
			t.Fatalf("%s: replenishment_due %s for %s %s, want last purchase %s + %.1f days = %s", h.Customer, s, level, item, last, tr[TraitReplenishInterval], want)
		}
	}
	if due < 500 {
		t.Errorf("only %d customers have a replenishment due date", due)
	}

	pieces := map[string]int{}
	for _, p := range demo.Catalog() {
		if p.Pattern != "" {
			pieces[p.Pattern]++
		}
	}
	exact := 0
	for pat, n := range pop.PatternPieces {
		if n > pieces[pat] || n < pieces[pat]-3 {
			t.Errorf("pattern %s: learned %d pieces, the catalog has %d", pat, n, pieces[pat])
		}
		if n == pieces[pat] {
			exact++
		}
	}
	t.Logf("patterns: %d of %d learned with exactly the catalog's piece count", exact, len(pieces))
	if len(pop.PatternPieces) != len(pieces) || exact < len(pieces)/2 {
		t.Errorf("learned %d patterns (%d exact), catalog has %d", len(pop.PatternPieces), exact, len(pieces))
	}
}

// The demo's menu marks seasonal dishes; the events do not carry the
// mark, so the traits must find them from when they are ordered. Guests'
// lapse is checked against what they did next.
func TestDemoRestaurantTraits(t *testing.T) {
	d := defaultDemo(t)
	hs := d.histories(nil)
	pop := LearnPopulation(hs, d.end)
	var found prf
	seasonOf := map[string]string{}
	for _, dish := range demo.Menu() {
		_, got := pop.SeasonalDishes[dish.ID]
		found.add(got, dish.Season != "")
		seasonOf[dish.ID] = dish.Season
	}
	t.Logf("seasonal dishes: precision %.2f recall %.2f (%d on the menu)", found.precision(), found.recall(), found.tp+found.fn)
	if found.precision() != 1 || found.recall() != 1 {
		t.Errorf("seasonal dishes found %v; menu's seasonal dishes: precision %.2f recall %.2f", pop.SeasonalDishes, found.precision(), found.recall())
	}
	if _, ok := pop.StapleDishes["m-lavash"]; !ok {
		t.Errorf("the lavash basket (on every table) is not a staple: %v", pop.StapleDishes)
	}

	homeAgree, homeN, guests := 0, 0, 0
	for _, h := range hs {
		tr := CustomerTraits(h, pop, d.end)
		if _, ok := tr[TraitVisits]; !ok {
			continue
		}
		guests++
		// The seasonal share against the menu's own marks.
		var sq, aq float64
		for _, p := range h.Purchases {
			if !p.Restaurant() {
				continue
			}
			for _, l := range p.Lines {
				aq += l.Quantity
				if seasonOf[l.SKU] != "" {
					sq += l.Quantity
				}
			}
		}
		if got := tr[TraitSeasonalDishShare].(float64); math.Abs(got-sq/aq) > 1e-9 {
			t.Fatalf("%s: seasonal_dish_share %.4f, the menu says %.4f", h.Customer, got, sq/aq)
		}
		if tr[TraitVisits].(float64) >= 3 && h.Traits["home_location"] != nil {
			homeN++
			if tr[TraitHomeLocation] == h.Traits["home_location"] {
				homeAgree++
			}
		}
	}
	t.Logf("home location: most visited agrees with the declared one for %d of %d guests with 3+ visits", homeAgree, homeN)
	if homeN < 200 || float64(homeAgree) < 0.9*float64(homeN) {
		t.Errorf("home location agrees for %d of %d guests", homeAgree, homeN)
	}

	// Lapse, judged half a year before the end of the data: guests flagged
	// lapsed must mostly not come back in that half year, and far less
	// often than the guests not flagged. A fixed 60-day rule is shown
	// for comparison.
	asOf := d.end.AddDate(0, -6, 0)
	popThen := LearnPopulation(hs, asOf)
	var lapsedBack, lapsedN, keptBack, keptN, fixedBack, fixedN int
	var trendLapsed, trendKept []float64
	for _, h := range hs {
		tr := CustomerTraits(h, popThen, asOf)
		l, ok := tr[TraitLapsed].(bool)
		if !ok {
			continue
		}
		back := false
		for _, p := range h.Purchases {
			back = back || p.Visit && p.Time.After(asOf)
		}
		if l {
			lapsedN++
			if back {
				lapsedBack++
			}
		} else {
			keptN++
			if back {
				keptBack++
			}
		}
		if tr[TraitDaysSinceVisit].(float64) > 60 {
			fixedN++
			if back {
				fixedBack++
			}
		}
		if tr, ok := CustomerTraits(h, pop, d.end)[TraitRatingTrend].(float64); ok {
			if CustomerTraits(h, pop, d.end)[TraitLapsed] == true {
				trendLapsed = append(trendLapsed, tr)
			} else {
				trendKept = append(trendKept, tr)
			}
		}
	}
	rate := func(a, b int) float64 { return float64(a) / float64(max(1, b)) }
	t.Logf("lapse as of %s: %d lapsed, %.1f%% came back within 6 months; %d not lapsed, %.1f%% came back; 60-days-absent rule: %d flagged, %.1f%% came back",
		asOf.Format(time.DateOnly), lapsedN, 100*rate(lapsedBack, lapsedN), keptN, 100*rate(keptBack, keptN), fixedN, 100*rate(fixedBack, fixedN))
	if lapsedN < 50 || keptN < 200 {
		t.Fatalf("too few guests with a baseline: %d lapsed, %d not", lapsedN, keptN)
	}
	// Lapsed is not gone for good (a slow guest comes back late), but
	// the guest's own rhythm must separate far better than a fixed number
	// of days does.
	if rate(lapsedBack, lapsedN) > 0.5*rate(keptBack, keptN) || rate(lapsedBack, lapsedN) >= rate(fixedBack, fixedN)-0.15 {
		t.Errorf("lapsed guests came back at %.2f against %.2f for the rest and %.2f for the 60-day rule",
			rate(lapsedBack, lapsedN), rate(keptBack, keptN), rate(fixedBack, fixedN))
	}
	ml, mk := mean(trendLapsed), mean(trendKept)
	t.Logf("rating trend (points a year): lapsed guests %.2f (n=%d), others %.2f (n=%d)", ml, len(trendLapsed), mk, len(trendKept))
	if len(trendLapsed) < 20 || ml >= mk {
		t.Errorf("lapsed guests' ratings should fall faster (the generator lowers them before guests leave): %.2f against %.2f", ml, mk)
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(max(1, len(xs)))
}
