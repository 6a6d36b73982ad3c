package intel

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Line is one line of a purchase: a product of a shop order or a dish of a
// restaurant visit or takeaway order.
type Line struct {
	SKU, Name, Category string
	// Pattern is the collection a piece belongs to ("Ararat Blue"), "" for
	// unpatterned goods.
	Pattern string
	// Season is set when the source marks the item as seasonal
	// (properties "season"); dishes the source does not mark can still be
	// found seasonal from the data (Population.SeasonalDishes).
	Season          string
	Quantity, Price float64
}

// Purchase is one order or one dine-in visit.
type Purchase struct {
	Time    time.Time
	Amount  float64
	OrderID string
	// Gift: the order set gift, a gift_message, gift_wrap or ship_to_other
	// (as Kiln's Shopify and WooCommerce webhooks map them), or was shipped
	// to an address other than its billing address.
	Gift bool
	// Business: the order says customer_type "business" or carries a
	// company or VAT id.
	Business bool
	Lines    []Line // products[] (orders) or dishes[] (visits)
	// PartySize and Location come from restaurant visits and restaurant
	// takeaway orders (properties party_size and location).
	PartySize int
	Location  string
	// Visit is a "Visit Completed" (dine-in) rather than an order.
	Visit bool
}

// Restaurant reports whether the purchase is a restaurant's: a visit, or
// an order for a party or from a location (takeaway, delivery). Shop
// traits skip these; restaurant traits read only these.
func (p *Purchase) Restaurant() bool { return p.Visit || p.PartySize > 0 || p.Location != "" }

// Rating is one "Feedback Given" score.
type Rating struct {
	Time  time.Time
	Value float64 // 1 to 5
}

// CustomerHistory is what the customer traits are computed from: one
// customer's purchases and engagement, in time order.
type CustomerHistory struct {
	Customer  string
	Purchases []Purchase // in time order
	// Traits are the identify (and group) traits, later calls winning:
	// email, company, vat_id, customer_type, home_location, ...
	Traits     map[string]any
	Ratings    []Rating    // "Feedback Given", in time order
	RSVPs      []time.Time // "Event RSVP" answered yes or maybe, in time order
	Milestones []Milestone // "Loyalty Milestone Reached", in time order
}

// Milestone is one "Loyalty Milestone Reached".
type Milestone struct {
	Time time.Time
	Name string // properties.milestone ("25"), else milestone_name
}

// FromEvents builds a customer's history from their events, in any order,
// reading Kiln's canonical events (see package kiln):
//
//   - identify: traits merged, later calls winning; group: its vat_id and
//     its name (as company) when identify did not set them;
//   - Order Completed: amount from revenue, else total, else subtotal;
//     products[] as lines; gift and business flags as on Purchase;
//     party_size and location for restaurant orders;
//   - Visit Completed: amount from spend, else revenue, else total;
//     dishes[] (else products[]) as lines; party_size (else covers);
//     location, else the event's store;
//   - Feedback Given: rating 1 to 5 (others ignored);
//   - Event RSVP: unless response is "no" or "declined";
//   - Loyalty Milestone Reached: milestone, else milestone_name;
//   - Order Refunded: takes the refunded goods out of their order (see
//     applyRefunds);
//   - Order Cancelled: the order with its order_id is no purchase at all
//     (it counts nowhere, whenever the cancellation arrives).
//
// Other events are ignored. Numbers may be JSON numbers, Go numbers or
// numeric strings, as sources send them. Events with equal timestamps keep
// the order they were given in.
func FromEvents(customer string, evs []*kiln.Event) CustomerHistory {
	sorted := slices.DeleteFunc(slices.Clone(evs), func(ev *kiln.Event) bool { return ev == nil })
	slices.SortStableFunc(sorted, func(a, b *kiln.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	h := CustomerHistory{Customer: customer, Traits: map[string]any{}}
	var group map[string]any
	var refunds []refund
	var cancelled []string
	for _, ev := range sorted {
		switch ev.Type {
		case kiln.Identify:
			for k, v := range ev.Traits {
				h.Traits[k] = v
			}
			continue
		case kiln.Group:
			group = ev.Traits
			continue
		case kiln.Track:
		default:
			continue
		}
		switch ev.Name {
		case kiln.OrderCompleted, kiln.VisitCompleted:
			h.Purchases = append(h.Purchases, purchaseOf(ev))
		case kiln.OrderRefunded:
			if r := refundOf(ev); r.order != "" {
				refunds = append(refunds, r)
			}
		case kiln.OrderCancelled:
			if id := str(ev.Properties["order_id"]); id != "" {
				cancelled = append(cancelled, id)
			}
		case kiln.FeedbackGiven:
			if r, ok := ratingOf(ev); ok {
				h.Ratings = append(h.Ratings, r)
			}
		case kiln.EventRSVPed:
			if rsvpYes(ev) {
				h.RSVPs = append(h.RSVPs, ev.Timestamp)
			}
		case kiln.LoyaltyMilestone:
			if m, ok := milestoneOf(ev); ok {
				h.Milestones = append(h.Milestones, m)
			}
		}
	}
	if len(cancelled) > 0 {
		h.Purchases = slices.DeleteFunc(h.Purchases, func(p Purchase) bool {
			return !p.Visit && p.OrderID != "" && slices.Contains(cancelled, p.OrderID)
		})
	}
	h.Purchases = applyRefunds(h.Purchases, refunds)
	if group != nil {
		if _, ok := h.Traits["vat_id"]; !ok && str(group["vat_id"]) != "" {
			h.Traits["vat_id"] = group["vat_id"]
		}
		if _, ok := h.Traits["company"]; !ok && str(group["name"]) != "" {
			h.Traits["company"] = group["name"]
		}
	}
	return h
}

// purchaseOf reads an Order Completed or a Visit Completed (see
// FromEvents).
func purchaseOf(ev *kiln.Event) Purchase {
	p := ev.Properties
	if ev.Name == kiln.VisitCompleted {
		pu := Purchase{Time: ev.Timestamp, OrderID: str(p["visit_id"]), Visit: true, Location: str(p["location"])}
		pu.Amount, _ = firstNumber(p, "spend", "revenue", "total")
		pu.Lines = lines(p["dishes"])
		if pu.Lines == nil {
			pu.Lines = lines(p["products"])
		}
		if n, ok := firstNumber(p, "party_size", "covers"); ok && n > 0 {
			pu.PartySize = int(math.Round(n))
		}
		if pu.Location == "" {
			pu.Location = ev.Store
		}
		return pu
	}
	pu := Purchase{Time: ev.Timestamp, OrderID: str(p["order_id"]), Lines: lines(p["products"])}
	pu.Amount, _ = firstNumber(p, "revenue", "total", "subtotal")
	pu.Gift = truthy(p["gift"]) || str(p["gift_message"]) != "" || truthy(p["gift_wrap"]) || truthy(p["ship_to_other"]) ||
		addressesDiffer(p["billing_address"], p["shipping_address"])
	pu.Business = strings.EqualFold(str(p["customer_type"]), "business") || str(p["company"]) != "" || str(p["vat_id"]) != ""
	if n, ok := number(p["party_size"]); ok && n > 0 {
		pu.PartySize = int(math.Round(n))
	}
	pu.Location = str(p["location"])
	return pu
}

// refundOf reads an Order Refunded.
func refundOf(ev *kiln.Event) refund {
	p := ev.Properties
	r := refund{order: str(p["order_id"]), lines: lines(p["products"])}
	r.amount, r.hasAmount = firstNumber(p, "revenue", "total", "subtotal")
	return r
}

// ratingOf reads a Feedback Given; ok is false without a rating 1 to 5.
func ratingOf(ev *kiln.Event) (Rating, bool) {
	r, ok := number(ev.Properties["rating"])
	return Rating{Time: ev.Timestamp, Value: r}, ok && r >= 1 && r <= 5
}

// rsvpYes reports whether an Event RSVP was not declined.
func rsvpYes(ev *kiln.Event) bool {
	switch strings.ToLower(str(ev.Properties["response"])) {
	case "no", "declined", "decline", "not_going":
		return false
	}
	return true
}

// milestoneOf reads a Loyalty Milestone Reached; ok is false without a
// milestone.
func milestoneOf(ev *kiln.Event) (Milestone, bool) {
	m := str(ev.Properties["milestone"])
	if m == "" {
		m = str(ev.Properties["milestone_name"])
	}
	return Milestone{Time: ev.Timestamp, Name: m}, m != ""
}

// refund is an "Order Refunded": the refunded lines, or an amount.
type refund struct {
	order     string
	lines     []Line
	amount    float64
	hasAmount bool
}

// applyRefunds takes refunded goods out of their orders: a refund with
// products[] lowers the quantities of the order's lines with the same SKU
// (lines left with none are dropped); a refund without products empties
// the order when its amount is at least the order's (a partial refund of
// money alone says nothing about which goods went back). The order itself
// stays: a returned gift was still bought as a gift. Returned goods are
// neither collected nor replenished.
func applyRefunds(ps []Purchase, refunds []refund) []Purchase {
	if len(refunds) == 0 {
		return ps
	}
	byOrder := map[string]int{}
	for i := range ps {
		if !ps[i].Visit && ps[i].OrderID != "" {
			byOrder[ps[i].OrderID] = i
		}
	}
	for _, r := range refunds {
		i, ok := byOrder[r.order]
		if !ok {
			continue
		}
		p := &ps[i]
		if len(r.lines) == 0 {
			if r.hasAmount && r.amount >= p.Amount {
				p.Lines, p.Amount = nil, 0
			}
			continue
		}
		p.Lines = slices.Clone(p.Lines) // the caller's events are not ours to change
		for _, rl := range r.lines {
			for k := range p.Lines {
				if p.Lines[k].SKU == rl.SKU && p.Lines[k].Quantity > 0 {
					p.Lines[k].Quantity -= rl.Quantity
					break
				}
			}
		}
		p.Lines = slices.DeleteFunc(p.Lines, func(l Line) bool { return l.Quantity <= 0 })
		if len(p.Lines) == 0 {
			p.Lines = nil
		}
		if r.hasAmount {
			p.Amount = math.Max(0, p.Amount-r.amount)
		}
	}
	return ps
}

// lines reads products[] or dishes[].
func lines(v any) []Line {
	items, _ := v.([]any)
	if len(items) == 0 {
		if ms, ok := v.([]map[string]any); ok {
			for _, m := range ms {
				items = append(items, m)
			}
		}
	}
	var out []Line
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		l := Line{SKU: str(m["sku"]), Name: str(m["name"]), Category: str(m["category"]), Pattern: str(m["pattern"]), Season: str(m["season"])}
		if l.SKU == "" {
			l.SKU = str(m["product_id"])
		}
		if l.SKU == "" {
			l.SKU = l.Name
		}
		if truthy(m["seasonal"]) && l.Season == "" {
			l.Season = "seasonal"
		}
		l.Quantity = 1
		if q, ok := number(m["quantity"]); ok {
			l.Quantity = q
		}
		l.Price, _ = number(m["price"])
		out = append(out, l)
	}
	return out
}

// addressesDiffer reports whether both addresses are given and differ in
// a field they both carry (names and phones aside: a billing address
// rarely repeats the buyer's name). String addresses compare whole.
func addressesDiffer(bill, ship any) bool {
	if bs, ok := bill.(string); ok {
		ss, ok := ship.(string)
		return ok && bs != "" && ss != "" && !strings.EqualFold(norm(bs), norm(ss))
	}
	b, ok1 := bill.(map[string]any)
	s, ok2 := ship.(map[string]any)
	if !ok1 || !ok2 || len(b) == 0 || len(s) == 0 {
		return false
	}
	for k, bv := range b {
		switch k {
		case "name", "first_name", "last_name", "phone", "email", "company":
			continue
		}
		sv, ok := s[k]
		if !ok {
			continue
		}
		if !strings.EqualFold(norm(str(bv)), norm(str(sv))) {
			return true
		}
	}
	return false
}

func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// str returns v as a string: strings as they are, numbers formatted
// without a trailing ".0", anything else "".
func str(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case float64, float32, int, int64, int32:
		if n, ok := number(x); ok {
			return strconv.FormatFloat(n, 'f', -1, 64)
		}
	case fmt.Stringer:
		return x.String()
	}
	return ""
}

// number reads a JSON or Go number, or a numeric string.
func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return 0, false
		}
		f = g
	case string:
		g, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		f = g
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func firstNumber(m map[string]any, keys ...string) (float64, bool) {
	for _, k := range keys {
		if v, ok := number(m[k]); ok {
			return v, true
		}
	}
	return 0, false
}

// truthy: true, "true", "yes", "1" or a non-zero number.
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "y", "1":
			return true
		}
		return false
	}
	n, ok := number(v)
	return ok && n != 0
}
