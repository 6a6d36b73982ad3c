package demo

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

// streamHash generates cfg and returns a hash of the JSON of every event in
// order, with the summary.
func streamHash(t testing.TB, cfg Config) (string, Summary) {
	t.Helper()
	h := sha256.New()
	enc := json.NewEncoder(h)
	sum, err := Generate(cfg, func(e kiln.Event) error { return enc.Encode(e) })
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), sum
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	cfg := Config{Seed: 7, Customers: 400, Guests: 150}
	a, sa := streamHash(t, cfg)
	b, sb := streamHash(t, cfg)
	if a != b {
		t.Fatalf("same seed gave different streams: %s and %s", a, b)
	}
	if sa.Events != sb.Events || sa.Revenue != sb.Revenue {
		t.Fatalf("same seed gave different summaries: %+v and %+v", sa, sb)
	}
	cfg.Seed = 8
	c, sc := streamHash(t, cfg)
	if c == a {
		t.Fatal("seeds 7 and 8 gave the same stream")
	}
	if sc.Events == sa.Events && sc.Revenue == sa.Revenue {
		t.Fatalf("seeds 7 and 8 gave the same counts and revenue: %+v", sc)
	}
	if sa.Events < 10000 {
		t.Fatalf("400 customers and 150 guests gave only %d events", sa.Events)
	}
}

// The businesses are generated independently: the shop's events do not
// change when the restaurant is added, except for their message ids.
func TestBusinessesIndependent(t *testing.T) {
	t.Parallel()
	shopOnly := collectNames(t, Config{Seed: 3, Shop: true, Customers: 200})
	both := collectNames(t, Config{Seed: 3, Customers: 200, Guests: 100})
	var shopInBoth []string
	for _, s := range both {
		if !strings.HasPrefix(s, SourceRestaurantWeb) && !strings.HasPrefix(s, "pos-g") && !strings.HasPrefix(s, "pos-p") && !strings.HasPrefix(s, "pos-d") && !strings.Contains(s, "@example.net") && !strings.Contains(s, "@mail.example.net") {
			shopInBoth = append(shopInBoth, s)
		}
	}
	if !slices.Equal(shopOnly, shopInBoth) {
		t.Fatalf("shop events differ when the restaurant is generated too: %d alone, %d alongside", len(shopOnly), len(shopInBoth))
	}
	for _, s := range shopOnly {
		if strings.Contains(s, "@example.net") || strings.HasPrefix(s, "pos-glendale") {
			t.Fatalf("Shop only config produced a restaurant event: %s", s)
		}
	}
	rest := collectNames(t, Config{Seed: 3, Restaurant: true, Guests: 100})
	for _, s := range rest {
		if strings.HasPrefix(s, SourceWebstore) || strings.HasPrefix(s, SourcePOSFlagship) {
			t.Fatalf("Restaurant only config produced a shop event: %s", s)
		}
	}
	if len(rest) == 0 {
		t.Fatal("no restaurant events")
	}
}

func collectNames(t *testing.T, cfg Config) []string {
	var out []string
	_, err := Generate(cfg, func(e kiln.Event) error {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s", e.SourceID, e.Type, e.Name, e.Anchor, e.Timestamp.Format(time.RFC3339Nano)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEmitErrorStops(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk full")
	n := 0
	sum, err := Generate(Config{Seed: 1, Customers: 100, Guests: 50}, func(kiln.Event) error {
		n++
		if n == 1000 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
	if !strings.Contains(err.Error(), "demo-1-1000") {
		t.Errorf("error %q does not name the event", err)
	}
	if n != 1000 || sum.Events != 1000 {
		t.Fatalf("emit called %d times, summary says %d events; want generation to stop at the error (1000)", n, sum.Events)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Years: -1},
		{Years: 21},
		{Years: math.NaN()},
		{Customers: -5},
		{Guests: -1},
	} {
		_, err := Generate(cfg, func(kiln.Event) error { t.Fatal("emitted despite a bad config"); return nil })
		if kiln.ErrorCode(err) != kiln.EInvalid {
			t.Errorf("Generate(%+v) = %v, want an %s error", cfg, err, kiln.EInvalid)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		end        time.Time
		years      float64
		start, lim time.Time // events in [start, lim)
	}{
		{"default", time.Time{}, 0, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(-12 * time.Hour), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"midnight includes the day", time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC), 0.5, time.Date(2023, 12, 30, 0, 0, 0, 0, time.UTC), time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)},
		{"an instant is the last moment", time.Date(2026, 11, 22, 15, 4, 5, 0, time.FixedZone("x", 3600)), 1, time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 14, 4, 5, 1e6, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var first, last time.Time
			sum, err := Generate(Config{Seed: 2, Customers: 300, Guests: 100, End: c.end, Years: c.years}, func(e kiln.Event) error {
				if first.IsZero() {
					first = e.Timestamp
				}
				last = e.Timestamp
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if first.Before(c.start) || !last.Before(c.lim) {
				t.Fatalf("events from %s to %s, want within [%s, %s)", first, last, c.start, c.lim)
			}
			if first.Before(sum.Start) || !last.Before(sum.End) {
				t.Fatalf("events from %s to %s outside the summary's window %s to %s", first, last, sum.Start, sum.End)
			}
			// The data reaches close to both ends.
			if first.Sub(sum.Start) > 7*24*time.Hour || sum.End.Sub(last) > 2*24*time.Hour {
				t.Fatalf("events from %s to %s leave gaps in the window %s to %s", first, last, sum.Start, sum.End)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	ps := Catalog()
	if len(ps) < 200 || len(ps) > 500 {
		t.Fatalf("catalog has %d SKUs, want a few hundred", len(ps))
	}
	ids, skus, cats := map[string]bool{}, map[string]bool{}, map[string]int{}
	for _, p := range ps {
		if ids[p.ID] || skus[p.SKU] {
			t.Fatalf("duplicate product id or SKU: %+v", p)
		}
		ids[p.ID], skus[p.SKU] = true, true
		cats[p.Category]++
		if p.Price < 3 || p.Price > 600 || p.Name == "" {
			t.Errorf("implausible product %+v", p)
		}
	}
	for _, c := range Categories {
		if cats[c] < 6 {
			t.Errorf("category %q has %d products", c, cats[c])
		}
	}
	var ararat []string
	for _, p := range ps {
		if p.Pattern == "Ararat Blue" {
			ararat = append(ararat, p.Name)
		}
	}
	for _, piece := range []string{"Dinner Plate", "Side Plate", "Bowl", "Teacup", "Saucer", "Teapot"} {
		if !slices.ContainsFunc(ararat, func(n string) bool { return strings.Contains(n, piece) }) {
			t.Errorf("Ararat Blue has no %s: %v", piece, ararat)
		}
	}
	ps[0].Name = "changed"
	if Catalog()[0].Name == "changed" {
		t.Error("Catalog returns the package's own slice")
	}
}

func TestMenu(t *testing.T) {
	t.Parallel()
	m := Menu()
	ids := map[string]bool{}
	seasons := map[string]int{}
	names := ""
	for _, d := range m {
		if ids[d.ID] {
			t.Fatalf("duplicate dish id %q", d.ID)
		}
		ids[d.ID] = true
		seasons[d.Season]++
		names += strings.ToLower(d.Name) + "|"
	}
	for _, s := range []string{Spring, Summer, Autumn, Winter} {
		if seasons[s] == 0 {
			t.Errorf("no %s dishes", s)
		}
	}
	for _, want := range []string{"khorovats", "lahmajun", "dolma", "manti", "khachapuri", "ghapama", "gata", "armenian coffee", "areni"} {
		if !strings.Contains(names, want) {
			t.Errorf("menu has no %s", want)
		}
	}
	// Dates are judged in Los Angeles: 06:00 UTC on 1 September is still
	// 31 August there (23:00 PDT).
	gh := m[slices.IndexFunc(m, func(d Dish) bool { return d.ID == "m-ghapama" })]
	if gh.Available(time.Date(2025, 9, 1, 6, 0, 0, 0, time.UTC)) || !gh.Available(time.Date(2025, 9, 1, 9, 0, 0, 0, time.UTC)) {
		t.Error("ghapama's season does not start on 1 September, Los Angeles time")
	}
	if len(Locations()) != 3 {
		t.Fatalf("%d locations, want 3", len(Locations()))
	}
}

// stats aggregates a full default run, keeping only what the checks need.
type stats struct {
	n       int
	last    time.Time
	msgIDs  map[string]bool
	sources map[string]bool
	bad     []string // validation failures, the first few

	// Shop.
	emailUser      map[string]string // from identify calls
	custRevenue    map[string]float64
	custOrders     map[string]int
	custLast       map[string]time.Time
	monthRevenue   map[string]float64
	orderIDs       map[string]time.Time
	orderFirst     time.Time
	orderLast      time.Time
	orders, gifts  int
	peakOrders     int // in November and December
	peakGifts      int
	trade          int
	tradeBadQty    int
	refill         int
	refunds        int
	refundsBad     int
	checkouts      map[string]time.Time // checkout_id -> started
	completed      map[string]time.Time // checkout_id -> order time
	anonFirst      map[string]bool      // anonymous ids seen anchored alone
	anonLinked     int                  // of those, later identified with a user id
	anonUsers      map[string]map[string]bool
	unsubscribed   int
	opens, clicks  int
	restOpens      int
	userIDs        map[string]bool
	totalsBad      int
	giftAddrBad    int
	tillOrders     int
	businessTraits int

	// Restaurant.
	visitsAt       map[string]int
	outOfSeason    []string
	seasonalServed map[string]int
	guestVisits    map[string][]time.Time // by phone
	guestRatings   map[string][]float64   // by phone, in time order
	loyaltyPhone   map[string]string      // from identify calls
	owner          map[string]string      // identifier -> the person who identified with it
	rsvps          map[string]int
	ratings        map[int]int
	milestones     map[string]bool
	milestoneDup   int
	takeaway       int
	partyBad       int
}

func newStats() *stats {
	return &stats{
		msgIDs: map[string]bool{}, sources: map[string]bool{},
		emailUser: map[string]string{}, custRevenue: map[string]float64{}, custOrders: map[string]int{}, custLast: map[string]time.Time{},
		monthRevenue: map[string]float64{}, orderIDs: map[string]time.Time{}, checkouts: map[string]time.Time{},
		completed: map[string]time.Time{}, anonFirst: map[string]bool{}, userIDs: map[string]bool{}, anonUsers: map[string]map[string]bool{},
		visitsAt: map[string]int{}, seasonalServed: map[string]int{}, guestVisits: map[string][]time.Time{},
		guestRatings: map[string][]float64{}, loyaltyPhone: map[string]string{}, owner: map[string]string{},
		rsvps: map[string]int{}, ratings: map[int]int{}, milestones: map[string]bool{},
	}
}

func (s *stats) fail(format string, args ...any) {
	if len(s.bad) < 10 {
		s.bad = append(s.bad, fmt.Sprintf(format, args...))
	}
}

// laMonth is a restaurant season by month, written out independently of
// the generator's SeasonAt.
var laMonth = map[time.Month]string{
	3: Spring, 4: Spring, 5: Spring, 6: Summer, 7: Summer, 8: Summer,
	9: Autumn, 10: Autumn, 11: Autumn, 12: Winter, 1: Winter, 2: Winter,
}

var dishSeason = func() map[string]string {
	m := map[string]string{}
	for _, d := range Menu() {
		m[d.ID] = d.Season
	}
	return m
}()

func (s *stats) add(e kiln.Event) error {
	s.n++
	// Order, validity, identity.
	if e.Timestamp.Before(s.last) {
		s.fail("event %s at %s after one at %s", e.MessageID, e.Timestamp, s.last)
	}
	s.last = e.Timestamp
	if !e.Type.Valid() {
		s.fail("event %s has type %q", e.MessageID, e.Type)
	}
	if e.Type == kiln.Track && e.Name == "" {
		s.fail("track event %s without a name", e.MessageID)
	}
	if want := fmt.Sprintf("demo-1-%d", s.n); e.MessageID != want {
		s.fail("message id %q, want %q", e.MessageID, want)
	}
	if s.msgIDs[e.MessageID] {
		s.fail("duplicate message id %q", e.MessageID)
	}
	s.msgIDs[e.MessageID] = true
	if !s.sources[e.SourceID] {
		s.fail("event %s from unknown source %q", e.MessageID, e.SourceID)
	}
	ids := identity.Extract(&e)
	if len(ids) == 0 {
		s.fail("event %s (%s %s) has no identifier", e.MessageID, e.Type, e.Name)
	}
	if want := identity.Anchor(ids); e.Anchor != want || e.Anchor == "" {
		s.fail("event %s anchor %q, want %q", e.MessageID, e.Anchor, want)
	}
	if !e.ReceivedAt.Equal(e.Timestamp) || e.Timestamp.Location() != time.UTC {
		s.fail("event %s received %s, happened %s", e.MessageID, e.ReceivedAt, e.Timestamp)
	}
	p := e.Properties
	ctxEmail := ""
	if ct, ok := e.Context["traits"].(map[string]any); ok {
		ctxEmail, _ = ct["email"].(string)
	}

	switch e.SourceID {
	case SourcePOSGlendale, SourcePOSPasadena, SourcePOSDowntownLA, SourceRestaurantWeb:
		if !slices.ContainsFunc(locations, func(l Location) bool { return l.Store == e.Store }) {
			s.fail("restaurant event %s has store %q", e.MessageID, e.Store)
		}
	case SourcePOSFlagship:
		if e.Store != FlagshipStore {
			s.fail("flagship event %s has store %q", e.MessageID, e.Store)
		}
	}

	// Identity: anonymous browsing later tied to a customer.
	if strings.HasPrefix(e.Anchor, "anonymous_id:") {
		s.anonFirst[e.AnonymousID] = true
	}
	// No identifier is shared by two people: an identify call's email and
	// phone always come with the same person's strongest identifier.
	if e.Type == kiln.Identify {
		person := e.UserID
		if person == "" {
			person = fmt.Sprint(e.Traits["first_name"], e.Traits["last_name"], e.Traits["phone"], e.Traits["email"])
		}
		for _, k := range []string{"email", "phone", "loyalty_number"} {
			if v, ok := e.Traits[k].(string); ok {
				if p, seen := s.owner[v]; seen && p != person {
					s.fail("%s %s belongs to %s and %s", k, v, p, person)
				}
				s.owner[v] = person
			}
		}
	}
	if l, ok := e.Traits["loyalty_number"].(string); ok && e.Type == kiln.Identify {
		s.loyaltyPhone[l], _ = e.Traits["phone"].(string)
	}
	if e.UserID != "" && e.AnonymousID != "" {
		if s.anonUsers[e.AnonymousID] == nil {
			s.anonUsers[e.AnonymousID] = map[string]bool{}
		}
		s.anonUsers[e.AnonymousID][e.UserID] = true
	}
	if e.Type == kiln.Identify && e.UserID != "" {
		s.userIDs[e.UserID] = true
		if em, _ := e.Traits["email"].(string); em != "" {
			s.emailUser[em] = e.UserID
		}
		if e.AnonymousID != "" && s.anonFirst[e.AnonymousID] {
			s.anonLinked++
			delete(s.anonFirst, e.AnonymousID)
		}
		if e.Traits["company"] != nil && e.Traits["vat_id"] != nil {
			s.businessTraits++
		}
	}

	switch e.Name {
	case kiln.OrderCompleted:
		if e.SourceID == SourceRestaurantWeb {
			s.takeaway++
			s.checkDishes(e, "products")
			if p["currency"] != RestaurantCurrency {
				s.fail("takeaway %s in %v", e.MessageID, p["currency"])
			}
			return nil
		}
		s.shopOrder(e, ctxEmail)
	case kiln.CheckoutStarted:
		s.checkouts[p["checkout_id"].(string)] = e.Timestamp
	case kiln.OrderRefunded:
		s.refunds++
		at, ok := s.orderIDs[p["order_id"].(string)]
		if !ok || !at.Before(e.Timestamp) {
			s.refundsBad++
		}
	case kiln.EmailOpened:
		s.opens++
		if p["brand"] == RestaurantName {
			s.restOpens++
		}
		if p["campaign_name"] == "" || p["campaign_name"] == nil || p["email"] == nil || e.Context != nil {
			s.fail("email open %s without campaign or email", e.MessageID)
		}
	case kiln.EmailLinkClicked:
		s.clicks++
	case kiln.Unsubscribed:
		s.unsubscribed++
	case kiln.VisitCompleted:
		s.visitsAt[p["location"].(string)]++
		// Bills close after lunch or dinner, Los Angeles time, all year.
		if h := e.Timestamp.In(losAngeles).Hour(); h < 12 || h > 23 || h == 16 && p["daypart"] == "dinner" {
			s.fail("visit %s closed at %s in Los Angeles", e.MessageID, e.Timestamp.In(losAngeles))
		}
		s.checkDishes(e, "dishes")
		party, covers := p["party_size"].(float64), p["covers"].(float64)
		if party < 1 || covers < 1 || covers > party || party > 12 {
			s.partyBad++
		}
		key := s.guestKey(e)
		s.guestVisits[key] = append(s.guestVisits[key], e.Timestamp)
	case kiln.EventRSVPed:
		date, err := time.Parse(time.RFC3339, p["event_date"].(string))
		if err != nil || !date.After(e.Timestamp) {
			s.fail("RSVP %s for an event at %v (%v), not after the RSVP", e.MessageID, p["event_date"], err)
		}
		s.rsvps[fmt.Sprintf("%s/%s", p["event_name"], date.Month())]++
	case kiln.FeedbackGiven:
		r := p["rating"].(float64)
		if r != math.Trunc(r) || r < 1 || r > 5 {
			s.fail("rating %v", r)
		}
		s.ratings[int(r)]++
		key := s.guestKey(e)
		s.guestRatings[key] = append(s.guestRatings[key], r)
	case kiln.LoyaltyMilestone:
		k := fmt.Sprint(p["loyalty_number"], "/", p["milestone"])
		if s.milestones[k] {
			s.milestoneDup++
		}
		s.milestones[k] = true
	}
	return nil
}

// guestKey names a restaurant guest by phone: given directly, or through
// the loyalty number their identify call linked to it.
func (s *stats) guestKey(e kiln.Event) string {
	ct, _ := e.Context["traits"].(map[string]any)
	if ph, ok := ct["phone"].(string); ok {
		return ph
	}
	if l, ok := ct["loyalty_number"].(string); ok {
		if ph := s.loyaltyPhone[l]; ph != "" {
			return ph
		}
		s.fail("loyalty number %s on %s before any identify linked it", l, e.MessageID)
	}
	return fmt.Sprint(ct["email"])
}

func (s *stats) shopOrder(e kiln.Event, ctxEmail string) {
	p := e.Properties
	s.orders++
	cust := e.UserID
	if cust == "" {
		s.tillOrders++
		// The York shop opens 9:00 to 18:00, UK time, summer and winter.
		if h := e.Timestamp.In(london).Hour(); h < 9 || h >= 18 {
			s.fail("till order %s at %s in London", e.MessageID, e.Timestamp.In(london))
		}
		cust = s.emailUser[ctxEmail]
		if cust == "" {
			s.fail("till order %s by %q, who never identified", e.MessageID, ctxEmail)
		}
	}
	rev := p["revenue"].(float64)
	s.custRevenue[cust] += rev
	s.custOrders[cust]++
	s.custLast[cust] = e.Timestamp
	s.monthRevenue[e.Timestamp.Format("2006-01")] += rev
	if s.orderFirst.IsZero() {
		s.orderFirst = e.Timestamp
	}
	s.orderLast = e.Timestamp
	id := p["order_id"].(string)
	if _, dup := s.orderIDs[id]; dup {
		s.fail("duplicate order id %s", id)
	}
	s.orderIDs[id] = e.Timestamp
	if cid, ok := p["checkout_id"].(string); ok {
		s.completed[cid] = e.Timestamp
	}
	if p["currency"] != ShopCurrency {
		s.fail("order %s in %v", id, p["currency"])
	}
	// The money adds up: products less discount is revenue plus VAT, and
	// the total adds shipping (and gift wrap).
	gross := 0.0
	for _, x := range p["products"].([]any) {
		pr := x.(map[string]any)
		for _, k := range []string{"product_id", "sku", "name", "category", "price", "quantity"} {
			if pr[k] == nil {
				s.fail("order %s product without %s: %v", id, k, pr)
			}
		}
		q := pr["quantity"].(float64)
		gross += pr["price"].(float64) * q
		if p["customer_type"] == "business" && (q < 12 || q > 120 || math.Mod(q, 12) != 0) {
			s.tradeBadQty++
		}
	}
	net := gross - p["discount"].(float64)
	if math.Abs(net-rev-p["tax"].(float64)) > 0.02 || math.Abs(net-p["subtotal"].(float64)) > 0.02 {
		s.totalsBad++
	}
	wrap := 0.0
	if p["gift_wrap"] == true {
		wrap = 3.5
	}
	if math.Abs(p["total"].(float64)-net-p["shipping"].(float64)-wrap) > 0.02 {
		s.totalsBad++
	}
	peak := e.Timestamp.Month() >= time.November
	if peak {
		s.peakOrders++
	}
	if p["gift"] == true {
		s.gifts++
		if peak {
			s.peakGifts++
		}
		ship, _ := json.Marshal(p["shipping_address"])
		bill, _ := json.Marshal(p["billing_address"])
		if string(ship) == string(bill) || p["gift_message"] == nil {
			s.giftAddrBad++
		}
	}
	if p["customer_type"] == "business" {
		s.trade++
		if p["company"] == nil || p["vat_id"] == nil {
			s.fail("business order %s without company or VAT number", id)
		}
	}
	if p["replenishment"] == true {
		s.refill++
	}
}

var losAngeles, london = zone("America/Los_Angeles"), zone("Europe/London")

func zone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func (s *stats) checkDishes(e kiln.Event, key string) {
	local := e.Timestamp.In(losAngeles)
	season := laMonth[local.Month()]
	ds, _ := e.Properties[key].([]any)
	if len(ds) == 0 {
		s.fail("restaurant event %s without %s", e.MessageID, key)
	}
	for _, x := range ds {
		d := x.(map[string]any)
		id := d["product_id"].(string)
		ds, known := dishSeason[id]
		if !known {
			s.fail("event %s serves %q, not on the menu", e.MessageID, id)
		}
		if ds != "" {
			s.seasonalServed[id]++
			if ds != season && len(s.outOfSeason) < 5 {
				s.outOfSeason = append(s.outOfSeason, fmt.Sprintf("%s (%s) on %s", d["name"], ds, local.Format("2006-01-02 15:04")))
			}
		}
	}
}

// TestDefaultRun generates the default demo (both businesses, 5,000
// customers, 2,000 guests, two years) and checks every event and the
// shape of the data.
func TestDefaultRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the full default run takes a few seconds")
	}
	s := newStats()
	for _, src := range Sources(Config{}) {
		s.sources[src.ID] = true
	}
	start := time.Now()
	sum, err := Generate(Config{Seed: 1}, s.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (in %s)", sum, time.Since(start).Round(time.Millisecond))

	t.Run("valid events in time order", func(t *testing.T) {
		for _, b := range s.bad {
			t.Error(b)
		}
		if sum.Events != s.n || s.n < 100000 || s.n > 400000 {
			t.Errorf("summary says %d events, emitted %d; want 100k to 400k", sum.Events, s.n)
		}
		total := 0
		for _, c := range sum.Counts {
			total += c
		}
		if total != s.n {
			t.Errorf("counts add up to %d, want %d", total, s.n)
		}
	})

	t.Run("shop customers and orders", func(t *testing.T) {
		if len(s.userIDs) != 5000 || sum.Customers != 5000 || len(s.custOrders) != 5000 {
			t.Errorf("%d customers identified, %d with orders, summary says %d; want 5000", len(s.userIDs), len(s.custOrders), sum.Customers)
		}
		if sum.Orders != s.orders || s.orders < 8000 {
			t.Errorf("summary %d orders, counted %d; want at least 8000", sum.Orders, s.orders)
		}
		if span := s.orderLast.Sub(s.orderFirst); span < 700*24*time.Hour {
			t.Errorf("orders span only %s to %s", s.orderFirst, s.orderLast)
		}
		if s.totalsBad > 0 {
			t.Errorf("%d orders whose totals do not add up", s.totalsBad)
		}
		if s.tillOrders < s.orders/50 {
			t.Errorf("%d of %d orders at the flagship's till", s.tillOrders, s.orders)
		}
		if s.refunds < s.orders/100 || s.refundsBad > 0 {
			t.Errorf("%d refunds (%d not after a known order) for %d orders", s.refunds, s.refundsBad, s.orders)
		}
		if s.refill < 100 {
			t.Errorf("%d tea replenishment orders", s.refill)
		}
	})

	t.Run("November and December peak", func(t *testing.T) {
		for _, y := range []string{"2024", "2025"} {
			year, peak := 0.0, 0.0
			for m := 1; m <= 12; m++ {
				v := s.monthRevenue[fmt.Sprintf("%s-%02d", y, m)]
				year += v
				if m >= 11 {
					peak += v
				}
			}
			if avg := year / 12; peak/2 < 1.4*avg {
				t.Errorf("%s: November-December average £%.0f, yearly monthly average £%.0f; want a clear peak", y, peak/2, avg)
			}
		}
	})

	t.Run("heavy tail", func(t *testing.T) {
		var rev []float64
		var orders []int
		total := 0.0
		for c, v := range s.custRevenue {
			rev = append(rev, v)
			orders = append(orders, s.custOrders[c])
			total += v
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(rev)))
		top := 0.0
		for _, v := range rev[:len(rev)/10] {
			top += v
		}
		if share := top / total; share < 0.35 || share > 0.9 {
			t.Errorf("top 10%% of customers bring %.0f%% of revenue, want 35%% to 90%%", 100*share)
		}
		sort.Ints(orders)
		median, p99 := orders[len(orders)/2], orders[len(orders)*99/100]
		if median > 2 || p99 < 8 {
			t.Errorf("orders per buyer: median %d, 99th percentile %d; want a long tail", median, p99)
		}
		t.Logf("top 10%% share %.2f, orders per buyer median %d p99 %d max %d", top/total, median, p99, orders[len(orders)-1])
	})

	t.Run("lapsed customers", func(t *testing.T) {
		cut := sum.End.AddDate(0, -9, 0)
		lapsed, repeat := 0, 0
		for c, n := range s.custOrders {
			if n >= 2 {
				repeat++
				if s.custLast[c].Before(cut) {
					lapsed++
				}
			}
		}
		if lapsed < repeat/10 || lapsed > repeat*3/4 {
			t.Errorf("%d of %d repeat buyers have not ordered in 9 months", lapsed, repeat)
		}
	})

	t.Run("gifts, business buyers, abandoned checkouts", func(t *testing.T) {
		if g := float64(s.gifts) / float64(s.orders); g < 0.05 || g > 0.4 || s.giftAddrBad > 0 {
			t.Errorf("%d gift orders of %d (%d without message or another address)", s.gifts, s.orders, s.giftAddrBad)
		}
		peak := float64(s.peakGifts) / float64(s.peakOrders)
		rest := float64(s.gifts-s.peakGifts) / float64(s.orders-s.peakOrders)
		if peak < 2*rest {
			t.Errorf("gift share %.2f in November-December, %.2f otherwise; want Christmas gifting", peak, rest)
		}
		if s.trade < 100 || s.tradeBadQty > 0 || s.businessTraits < 50 || s.trade != sum.TradeOrders {
			t.Errorf("%d business orders (summary %d), %d lines outside 12-120 by the dozen, %d business identifies",
				s.trade, sum.TradeOrders, s.tradeBadQty, s.businessTraits)
		}
		abandoned := 0
		for id, at := range s.checkouts {
			if done, ok := s.completed[id]; !ok || done.Sub(at) > 6*time.Hour {
				abandoned++
			}
		}
		t.Logf("%d orders: %.1f%% gifts, %.1f%% business, %.1f%% at the till, %d refunds; %d of %d checkouts abandoned",
			s.orders, 100*float64(s.gifts)/float64(s.orders), 100*float64(s.trade)/float64(s.orders),
			100*float64(s.tillOrders)/float64(s.orders), s.refunds, abandoned, len(s.checkouts))
		if a := float64(abandoned) / float64(len(s.checkouts)); a < 0.15 || a > 0.6 {
			t.Errorf("%d of %d checkouts abandoned", abandoned, len(s.checkouts))
		}
		if d := abandoned - sum.Abandoned; d < -50 || d > 50 {
			t.Errorf("summary says %d abandoned checkouts, counted %d", sum.Abandoned, abandoned)
		}
	})

	t.Run("identity and email", func(t *testing.T) {
		t.Logf("%d anonymous ids linked by sign-in, %d never; %d opens, %d clicks, %d unsubscribes",
			s.anonLinked, len(s.anonFirst), s.opens, s.clicks, s.unsubscribed)
		// Couples share a computer: a few anonymous ids carry two user
		// ids. Nobody uses so many devices that resolution would refuse
		// them (identity.DefaultMaxPerKind allows 100 anonymous ids).
		shared := 0
		devices := map[string]int{}
		for _, users := range s.anonUsers {
			if len(users) > 1 {
				shared++
			}
			for u := range users {
				devices[u]++
			}
		}
		most := 0
		for _, n := range devices {
			most = max(most, n)
		}
		t.Logf("%d devices shared by two customers; at most %d devices per customer", shared, most)
		if shared < 20 || shared > 100 || most >= identity.DefaultMaxPerKind[kiln.AnonymousID] {
			t.Errorf("%d devices shared by two customers, at most %d devices per customer", shared, most)
		}
		if s.anonLinked < 3000 {
			t.Errorf("only %d anonymous browsers later identified", s.anonLinked)
		}
		if len(s.anonFirst) < 500 {
			t.Errorf("only %d anonymous ids never identified", len(s.anonFirst))
		}
		if s.opens < 10000 || s.clicks < s.opens/20 || s.clicks > s.opens/2 || s.unsubscribed < 20 {
			t.Errorf("%d opens, %d clicks, %d unsubscribes", s.opens, s.clicks, s.unsubscribed)
		}
	})

	t.Run("restaurant", func(t *testing.T) {
		if sum.Guests != 2000 {
			t.Errorf("%d guests, want 2000", sum.Guests)
		}
		visits := 0
		for _, l := range locations {
			visits += s.visitsAt[l.Name]
		}
		for _, l := range locations {
			if n := s.visitsAt[l.Name]; n < visits/8 {
				t.Errorf("%d of %d visits at %s", n, visits, l.Name)
			}
		}
		if visits != sum.Visits || visits < 10000 || s.partyBad > 0 {
			t.Errorf("%d visits (summary %d), %d with bad party size or covers", visits, sum.Visits, s.partyBad)
		}
		if len(s.outOfSeason) > 0 {
			t.Errorf("seasonal dishes out of season: %v", s.outOfSeason)
		}
		for id, season := range dishSeason {
			if season != "" && s.seasonalServed[id] < 20 {
				t.Errorf("seasonal %s served %d times", id, s.seasonalServed[id])
			}
		}
		for _, want := range []string{"Vardavar Water Festival/July", "New Year's Eve Supper/December", "Areni Wine Night/March"} {
			if s.rsvps[want] == 0 {
				t.Errorf("no RSVPs for %s: %v", want, s.rsvps)
			}
		}
		for r := 1; r <= 5; r++ {
			if s.ratings[r] == 0 {
				t.Errorf("no %d-star ratings: %v", r, s.ratings)
			}
		}
		if len(s.milestones) < 200 || s.milestoneDup > 0 {
			t.Errorf("%d loyalty milestones, %d reached twice", len(s.milestones), s.milestoneDup)
		}
		if s.takeaway < 1000 {
			t.Errorf("%d online orders", s.takeaway)
		}
		if s.restOpens < 2000 {
			t.Errorf("%d restaurant newsletter opens", s.restOpens)
		}
	})

	t.Run("visit rhythms", func(t *testing.T) {
		// Regulars visit weekly; some of them stop: their last visit is
		// far longer ago than their usual gap.
		regulars, lapsed := 0, 0
		for _, ts := range s.guestVisits {
			if len(ts) < 15 {
				continue
			}
			gaps := make([]float64, len(ts)-1)
			for i := 1; i < len(ts); i++ {
				gaps[i-1] = ts[i].Sub(ts[i-1]).Hours() / 24
			}
			sort.Float64s(gaps)
			median := gaps[len(gaps)/2]
			if median > 14 {
				continue
			}
			regulars++
			if sum.End.Sub(ts[len(ts)-1]).Hours()/24 > 6*median+30 {
				lapsed++
			}
		}
		if regulars < 80 || lapsed < 10 || lapsed > regulars/2 {
			t.Errorf("%d weekly regulars, %d of them lapsed", regulars, lapsed)
		}
	})

	t.Run("ratings fall before guests lapse", func(t *testing.T) {
		// Compare the last ratings of guests who stopped coming (no visit
		// in the last 6 months after at least 5) with those still coming.
		var gone, active []float64
		for key, ts := range s.guestVisits {
			rs := s.guestRatings[key]
			if len(ts) < 5 || len(rs) < 3 {
				continue
			}
			last := rs[len(rs)-3:]
			m := (last[0] + last[1] + last[2]) / 3
			switch idle := sum.End.Sub(ts[len(ts)-1]); {
			case idle > 180*24*time.Hour:
				gone = append(gone, m)
			case idle < 45*24*time.Hour:
				active = append(active, m)
			}
		}
		mean := func(xs []float64) float64 {
			t := 0.0
			for _, x := range xs {
				t += x
			}
			return t / float64(len(xs))
		}
		t.Logf("last ratings: %d lapsed guests %.2f, %d active guests %.2f", len(gone), mean(gone), len(active), mean(active))
		if len(gone) < 20 || len(active) < 100 || mean(active)-mean(gone) < 0.4 {
			t.Errorf("last ratings: %d lapsed guests average %.2f, %d active guests %.2f; want lapsed guests clearly lower",
				len(gone), mean(gone), len(active), mean(active))
		}
	})
}

// TestSeedsAndSizes runs many small configurations: none may panic (a
// step scheduling an event before its own time does), all stay in order
// and inside their window.
func TestSeedsAndSizes(t *testing.T) {
	t.Parallel()
	for i := range 16 {
		cfg := Config{
			Seed: int64(i*7919 - 40000), Customers: 20 + i*13, Guests: 10 + i*7,
			Years: []float64{0.02, 0.3, 1, 2.5, 4}[i%5],
			End:   time.Date(2020+i%7, time.Month(1+i%12), 1+i, i, 0, 0, 0, time.UTC),
		}
		var last time.Time
		sum, err := Generate(cfg, func(e kiln.Event) error {
			if e.Timestamp.Before(last) {
				return fmt.Errorf("%s at %s after %s", e.MessageID, e.Timestamp, last)
			}
			last = e.Timestamp
			return nil
		})
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if sum.Events > 0 && (last.Before(sum.Start) || !last.Before(sum.End)) {
			t.Fatalf("%+v: last event at %s outside %s to %s", cfg, last, sum.Start, sum.End)
		}
		if cfg.Years >= 0.3 && (sum.Customers == 0 || sum.Guests == 0) {
			t.Fatalf("%+v: %s", cfg, sum)
		}
	}
}

// TestMemoryBounded checks that generation streams: the live heap stays
// small however many events have gone by, because only each actor's next
// few events are held. (Not parallel, so other tests' data is not counted.)
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("generates the default demo")
	}
	var peak uint64
	var ms runtime.MemStats
	n := 0
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	_, err := Generate(Config{Seed: 1}, func(kiln.Event) error {
		n++
		if n%40000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, live heap at most %.1f MB above the start", n, float64(peak)/(1<<20))
	if peak > 32<<20 {
		t.Fatalf("live heap reached %.0f MB while generating; want streaming (under 32 MB)", float64(peak)/(1<<20))
	}
}

// BenchmarkGenerate generates the default demo (5,000 customers, 2,000
// guests, two years).
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := Generate(Config{Seed: 1}, func(kiln.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "events/op")
	}
}

func TestSummaryString(t *testing.T) {
	t.Parallel()
	s := Summary{
		Events: 293769, Start: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Customers: 5000, Orders: 13593, Revenue: 1132444.49, Guests: 2000, Visits: 27525, RestaurantOrders: 617, RestaurantRevenue: 999.5,
	}
	want := "293,769 events from 2024-01-01 to 2025-12-31; shop: 5,000 customers, 13,593 orders, £1,132,444 revenue; " +
		"restaurants: 2,000 guests, 27,525 visits, 617 online orders, $1,000 revenue"
	if got := s.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 100000: "100,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
