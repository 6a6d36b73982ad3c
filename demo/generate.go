package demo

import (
	"container/heap"
	"fmt"
	"math"
	"strconv"
	"time"
	_ "time/tzdata" // fixed zone rules: the same output on every host

	"github.com/kiln-cdp/kiln"
)

// Names of the demo businesses.
const (
	ShopName       = "Hearth & Glaze"
	RestaurantName = "Lavash & Vine"
)

// Source ids of the generated events.
const (
	SourceWebstore      = "webstore"
	SourcePOSFlagship   = "pos-flagship"
	SourceEmail         = "email"
	SourceRestaurantWeb = "restaurant-web"
	SourcePOSGlendale   = "pos-glendale"
	SourcePOSPasadena   = "pos-pasadena"
	SourcePOSDowntownLA = "pos-downtown-la"
)

// Currencies of the two businesses.
const (
	ShopCurrency       = "GBP"
	RestaurantCurrency = "USD"
)

// FlagshipStore is Event.Store of the shop's POS orders.
const FlagshipStore = "york"

// DefaultEnd is the end of the data when Config.End is zero, fixed so that
// default output is the same every day.
var DefaultEnd = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)

// Config says what to generate. The zero value (with neither business
// chosen) generates both businesses at their default sizes.
type Config struct {
	Seed       int64
	Shop       bool // generate the chinaware shop
	Restaurant bool // generate the restaurant group
	// Customers is the number of shop customers, 0 meaning 5000: people
	// who order at least once in the window (some signed up before it).
	// About a quarter as many anonymous visitors who never sign up come on
	// top.
	Customers int
	// Guests is the number of restaurant guests; 0 means 2000.
	Guests int
	// End is where the data stops: a time at midnight UTC names the last
	// day of data (the whole day is included); any other time is the last
	// instant (pass time.Now() for a live demo). Zero means DefaultEnd.
	End time.Time
	// Years is how far back the data goes from End; 0 means 2.
	Years float64
}

// Summary counts what Generate produced.
type Summary struct {
	Events int `json:"events"`
	// Counts is events per name: the track event name, or the call type
	// for identify and group calls and "page" for page views.
	Counts map[string]int `json:"counts"`
	Start  time.Time      `json:"start"` // the window's start
	End    time.Time      `json:"end"`   // the window's end (exclusive)

	Customers   int     `json:"customers"`   // shop customers with at least one event
	Visitors    int     `json:"visitors"`    // anonymous-only shop visitors
	Orders      int     `json:"orders"`      // shop orders completed
	Revenue     float64 `json:"revenue"`     // shop: sum of orders' revenue (GBP, ex VAT and shipping)
	Refunds     int     `json:"refunds"`     // shop orders refunded (wholly or partly)
	GiftOrders  int     `json:"giftOrders"`  // shop orders sent as gifts
	TradeOrders int     `json:"tradeOrders"` // shop orders from business buyers
	Abandoned   int     `json:"abandoned"`   // shop checkouts started without an order following

	Guests            int     `json:"guests"`            // restaurant guests with at least one event
	Visits            int     `json:"visits"`            // dine-in visits
	Covers            int     `json:"covers"`            // diners served over all visits
	RestaurantOrders  int     `json:"restaurantOrders"`  // online takeaway and delivery orders
	RestaurantRevenue float64 `json:"restaurantRevenue"` // visits and orders before tax and tip (USD)

	checkouts, webOrders int
}

// String is the one-line summary the CLI prints.
func (s Summary) String() string {
	out := fmt.Sprintf("%s events from %s to %s", thousands(s.Events), s.Start.Format("2006-01-02"), s.End.Add(-time.Millisecond).Format("2006-01-02"))
	if s.Customers > 0 {
		out += fmt.Sprintf("; shop: %s customers, %s orders, £%s revenue", thousands(s.Customers), thousands(s.Orders), thousands(int(math.Round(s.Revenue))))
	}
	if s.Guests > 0 {
		out += fmt.Sprintf("; restaurants: %s guests, %s visits, %s online orders, $%s revenue",
			thousands(s.Guests), thousands(s.Visits), thousands(s.RestaurantOrders), thousands(int(math.Round(s.RestaurantRevenue))))
	}
	return out
}

// thousands writes n with comma separators: 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Sources describes the sources the generated events come from, so a
// caller can create them (and their write keys) before loading the events.
func Sources(cfg Config) []kiln.Source {
	shop, rest := cfg.businesses()
	var ss []kiln.Source
	if shop {
		ss = append(ss,
			kiln.Source{ID: SourceWebstore, Name: ShopName + " webstore", Kind: "segment"},
			kiln.Source{ID: SourcePOSFlagship, Name: ShopName + " York flagship till", Kind: "segment", Store: FlagshipStore},
		)
	}
	ss = append(ss, kiln.Source{ID: SourceEmail, Name: "Email provider", Kind: "sendgrid"})
	if rest {
		ss = append(ss, kiln.Source{ID: SourceRestaurantWeb, Name: RestaurantName + " online ordering and RSVPs", Kind: "segment"})
		for _, l := range locations {
			ss = append(ss, kiln.Source{ID: l.SourceID, Name: RestaurantName + " " + l.Name + " POS", Kind: "segment", Store: l.Store})
		}
	}
	return ss
}

func (c Config) businesses() (shop, restaurant bool) {
	if !c.Shop && !c.Restaurant {
		return true, true
	}
	return c.Shop, c.Restaurant
}

// window returns the data's time window [start, end) in Unix milliseconds.
func (c Config) window() (start, end int64, err error) {
	e := c.End
	if e.IsZero() {
		e = DefaultEnd
	}
	e = e.UTC()
	if e.Equal(e.Truncate(24 * time.Hour)) {
		e = e.Add(24 * time.Hour)
	} else {
		e = e.Add(time.Millisecond) // the instant itself is included
	}
	years := c.Years
	if years == 0 {
		years = 2
	}
	if years < 0 || years > 20 || math.IsNaN(years) {
		return 0, 0, kiln.Errorf(kiln.EInvalid, "demo: Years is %v: want more than 0 and at most 20", c.Years)
	}
	span := time.Duration(years * 365.25 * float64(24*time.Hour)).Truncate(time.Second)
	return e.Add(-span).UnixMilli(), e.UnixMilli(), nil
}

// Generate produces the demo events of cfg in timestamp order, calling emit
// for each, and returns what it produced. An error from emit stops
// generation and is returned, wrapped.
func Generate(cfg Config, emit func(kiln.Event) error) (Summary, error) {
	start, end, err := cfg.window()
	if err != nil {
		return Summary{}, err
	}
	if cfg.Customers < 0 || cfg.Guests < 0 {
		return Summary{}, kiln.Errorf(kiln.EInvalid, "demo: Customers is %d and Guests %d: want 0 (the default) or more", cfg.Customers, cfg.Guests)
	}
	if cfg.Customers > 1_000_000 || cfg.Guests > 1_000_000 {
		return Summary{}, kiln.Errorf(kiln.EInvalid, "demo: Customers is %d and Guests %d: want at most 1000000 each", cfg.Customers, cfg.Guests)
	}
	shop, rest := cfg.businesses()
	w := &world{seed: cfg.Seed, start: start, end: end}
	var actors []actor
	if shop {
		n := cfg.Customers
		if n == 0 {
			n = 5000
		}
		actors = append(actors, newShop(w, n)...)
	}
	if rest {
		n := cfg.Guests
		if n == 0 {
			n = 2000
		}
		actors = append(actors, newRestaurant(w, n)...)
	}

	sum := Summary{Counts: map[string]int{}, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()}
	// The actor heap is keyed by each actor's next step or queued event,
	// whichever is sooner. A step runs only when its actor reaches the top,
	// so events are built just in time: what is held at once is the
	// in-progress sessions and the few events scheduled ahead (refunds,
	// feedback, RSVPs), not a session per actor.
	h := make(actorHeap, 0, len(actors))
	for i, a := range actors {
		tl := a.timeline()
		tl.id = i
		if tl.due() {
			h = append(h, entry{tl, a})
		}
	}
	heap.Init(&h)
	prefix := "demo-" + strconv.FormatInt(cfg.Seed, 10) + "-"
	for len(h) > 0 {
		a, tl := h[0].a, h[0].tl
		if tl.next < tl.end && (len(tl.q) == 0 || tl.next <= tl.q[0].at) {
			prev := tl.next
			tl.now = prev
			a.step()
			if tl.next < prev {
				panic(fmt.Sprintf("demo: actor %d went back from %d to %d", tl.id, prev, tl.next))
			}
			if tl.due() {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
			continue
		}
		ev := tl.pop()
		sum.Events++
		ev.MessageID = prefix + strconv.Itoa(sum.Events)
		ev.ReceivedAt = ev.Timestamp
		ev.Anchor = anchor(&ev)
		if !tl.emitted {
			tl.emitted = true
			switch tl.kind {
			case kindCustomer:
				sum.Customers++
			case kindVisitor:
				sum.Visitors++
			case kindGuest:
				sum.Guests++
			}
		}
		sum.count(&ev)
		if err := emit(ev); err != nil {
			return sum, fmt.Errorf("demo: emit event %s (%s %q at %s): %w", ev.MessageID, ev.Type, ev.Name, ev.Timestamp.Format(time.RFC3339), err)
		}
		if tl.due() {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	sum.Abandoned = max(0, sum.checkouts-sum.webOrders)
	sum.Revenue = round2(sum.Revenue)
	sum.RestaurantRevenue = round2(sum.RestaurantRevenue)
	return sum, nil
}

func (s *Summary) count(ev *kiln.Event) {
	switch ev.Type {
	case kiln.Track:
		s.Counts[ev.Name]++
	default:
		s.Counts[string(ev.Type)]++
		return
	}
	p := ev.Properties
	switch ev.Name {
	case kiln.OrderCompleted:
		rev, _ := p["revenue"].(float64)
		if ev.SourceID == SourceRestaurantWeb {
			s.RestaurantOrders++
			s.RestaurantRevenue += rev
			return
		}
		s.Orders++
		s.Revenue += rev
		if ev.SourceID == SourceWebstore {
			s.webOrders++
		}
		if p["gift"] == true {
			s.GiftOrders++
		}
		if p["customer_type"] == "business" {
			s.TradeOrders++
		}
	case kiln.OrderRefunded:
		s.Refunds++
	case kiln.CheckoutStarted:
		s.checkouts++
	case kiln.VisitCompleted:
		s.Visits++
		c, _ := p["covers"].(float64)
		s.Covers += int(c)
		rev, _ := p["revenue"].(float64)
		s.RestaurantRevenue += rev
	}
}

// anchor returns the String() of ev's strongest identifier, looking where
// Kiln's ingest looks (see package identity): user id, then email, phone and
// loyalty number in identify traits, context.traits or (email and loyalty
// number) properties, then anonymous id. The generator writes identifiers
// already normalised.
func anchor(ev *kiln.Event) string {
	if ev.UserID != "" {
		return kiln.Identifier{Kind: kiln.UserID, Value: ev.UserID}.String()
	}
	var traits map[string]any
	if ev.Type == kiln.Identify {
		traits = ev.Traits
	}
	ctx, _ := ev.Context["traits"].(map[string]any)
	for _, k := range []struct {
		key   string
		kind  kiln.IdentifierKind
		props bool
	}{{"email", kiln.Email, true}, {"phone", kiln.Phone, false}, {"loyalty_number", kiln.Loyalty, true}} {
		var props map[string]any
		if k.props {
			props = ev.Properties
		}
		for _, m := range []map[string]any{traits, ctx, props} {
			if v, _ := m[k.key].(string); v != "" {
				return kiln.Identifier{Kind: k.kind, Value: v}.String()
			}
		}
	}
	if ev.AnonymousID != "" {
		return kiln.Identifier{Kind: kiln.AnonymousID, Value: ev.AnonymousID}.String()
	}
	return ""
}

// world is what all actors share: the window and read-only schedules.
type world struct {
	seed       int64
	start, end int64 // Unix ms, end exclusive
	shop       *shopIndex
	menu       *menuIndex
	campaigns  []campaign // shop newsletters, by time
	rcampaigns []campaign // restaurant newsletters, by time
	events     []restEvent
}

// actor is a customer (or guest, or anonymous visitor) whose events are
// produced lazily: step generates the activity due at timeline().next,
// pushing events no earlier than it, and sets the next step's time.
type actor interface {
	timeline() *timeline
	step()
}

type actorKind uint8

const (
	kindCustomer actorKind = iota
	kindVisitor
	kindGuest
)

// never is a step time that never comes.
const never = math.MaxInt64

// timeline holds an actor's generated but not yet emitted events (a small
// min-heap by time, then generation order) and the time of its next step.
type timeline struct {
	id      int   // position in the actor list, breaking ties between actors
	key     int64 // the time of the actor's next step or event, for the actor heap
	next    int64 // when step must run next (Unix ms), or never
	now     int64 // the time of the step running now: no event may be earlier
	end     int64 // events at or after end are dropped
	seq     int64
	q       []pending
	kind    actorKind
	emitted bool
}

// pending holds its event by pointer, and a drained queue is released:
// thousands of actors each keeping a grown array of events would hold more
// memory than the events in flight.
type pending struct {
	at, seq int64
	ev      *kiln.Event
}

func (tl *timeline) less(i, j int) bool {
	a, b := &tl.q[i], &tl.q[j]
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

// push queues ev at time at (Unix ms). Events past the window are dropped.
func (tl *timeline) push(at int64, ev kiln.Event) {
	if at < tl.now {
		// A step producing an event before its own time would break the
		// merge order; that is a bug in the generator, not bad input.
		panic(fmt.Sprintf("demo: event %q at %d before its step at %d", ev.Name, at, tl.now))
	}
	if at >= tl.end {
		return
	}
	ev.Timestamp = time.UnixMilli(at).UTC()
	tl.seq++
	tl.q = append(tl.q, pending{at, tl.seq, &ev})
	for i := len(tl.q) - 1; i > 0; {
		p := (i - 1) / 2
		if !tl.less(i, p) {
			break
		}
		tl.q[i], tl.q[p] = tl.q[p], tl.q[i]
		i = p
	}
}

func (tl *timeline) pop() kiln.Event {
	ev := *tl.q[0].ev
	n := len(tl.q) - 1
	if n == 0 {
		tl.q = nil
		return ev
	}
	tl.q[0] = tl.q[n]
	tl.q[n] = pending{}
	tl.q = tl.q[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && tl.less(l, m) {
			m = l
		}
		if r < n && tl.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		tl.q[i], tl.q[m] = tl.q[m], tl.q[i]
		i = m
	}
	return ev
}

// due sets key to the time of the actor's next step or queued event,
// whichever comes first, and reports whether there is either.
func (tl *timeline) due() bool {
	tl.key = never
	if tl.next < tl.end {
		tl.key = tl.next
	}
	if len(tl.q) > 0 && tl.q[0].at < tl.key {
		tl.key = tl.q[0].at
	}
	return tl.key != never
}

// actorHeap orders actors by key, then position. Entries keep the
// timeline pointer beside the actor to spare an interface call per compare.
type actorHeap []entry

type entry struct {
	tl *timeline
	a  actor
}

func (h actorHeap) Len() int { return len(h) }
func (h actorHeap) Less(i, j int) bool {
	a, b := h[i].tl, h[j].tl
	return a.key < b.key || a.key == b.key && a.id < b.id
}
func (h actorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *actorHeap) Push(x any)   { *h = append(*h, x.(entry)) }
func (h *actorHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

// Time helpers. Internally times are Unix milliseconds.

const (
	minute = int64(60 * 1000)
	hour   = 60 * minute
	day    = 24 * hour
	year   = int64(365.25 * float64(day))
)

// days converts a duration in days to milliseconds. Durations beyond a
// few centuries (a customer whose rate is all but zero) are capped so the
// arithmetic cannot overflow.
func days(d float64) int64 {
	if !(d < 1e5) {
		d = 1e5
	}
	return int64(d * float64(day))
}

func toTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// The businesses' clocks. The time zone database is embedded (time/tzdata)
// so that output does not depend on the host's.
var (
	shopZone       = mustZone("Europe/London")
	restaurantZone = mustZone("America/Los_Angeles")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("demo: time zone " + name + ": " + err.Error()) // cannot happen with time/tzdata linked in
	}
	return loc
}

// clock returns the instant (Unix ms) at wall-clock time h (hours, with a
// fraction) in loc, on the day holding ms there plus addDays. Building the
// wall-clock time (rather than adding hours to midnight) keeps opening
// hours right on the 23- and 25-hour days of clock changes.
func clock(ms int64, loc *time.Location, h float64, addDays int) int64 {
	y, m, d := time.UnixMilli(ms).In(loc).Date()
	return clockOn(y, m, d+addDays, loc, h)
}

func clockOn(y int, m time.Month, d int, loc *time.Location, h float64) int64 {
	ns := int(h * float64(time.Hour))
	return time.Date(y, m, d, 0, 0, 0, ns, loc).UnixMilli()
}

// local returns ms as a time in loc.
func local(ms int64, loc *time.Location) time.Time { return time.UnixMilli(ms).In(loc) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// ctxTraits builds a context carrying identifiers in context.traits.
func ctxTraits(kv ...string) map[string]any {
	t := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			t[kv[i]] = kv[i+1]
		}
	}
	return map[string]any{"traits": t}
}
