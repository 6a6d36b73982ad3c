package intel

import (
	"iter"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Histories collects every customer's history from a stream of events,
// in any order, keeping only what the customer traits read, reduced to
// numbers, small slices and interned strings: a purchase takes 56 bytes
// and each of its lines 24, where a copy of its event takes several
// kilobytes. It is how a refit reads the whole log without holding it.
//
// Each customer's history, as All yields it, is what FromEvents returns
// for the same events given in the order they were added, except that
// Traits holds only the traits the customer traits read (email,
// customer_type, company, vat_id, home_location, each as a string) and
// OrderID is a key of the order id rather than the id itself. A Histories
// is not safe for concurrent use.
type Histories struct {
	ids      map[string]int32 // customer -> index in cust
	cust     []history
	names    []string          // interned strings; 0 is ""
	index    map[string]uint32 // string -> its index in names
	products []product         // interned products
	prodIdx  map[product]uint32
	lines    [][]cLine // every purchase's lines, in chunks
}

// product is what a line says of the item, its strings interned.
type product struct{ sku, name, category, pattern, season uint32 }

// lineChunk is the size of the chunks holding purchases' lines: large
// enough to be few, small enough that growing one never copies much.
const lineChunk = 1 << 14

// NewHistories returns an empty collection.
func NewHistories() *Histories {
	return &Histories{ids: map[string]int32{}, names: []string{""}, index: map[string]uint32{"": 0}, prodIdx: map[product]uint32{}}
}

// history is one customer's events, compacted.
type history struct {
	id        string
	purchases []cPurchase // in the order added
	ratings   []Rating
	rsvps     []cTime
	miles     []cMilestone
	refunds   []cRefund
	cancelled []uint64 // keys of cancelled orders
	traits    *cTraits // nil until an identify or group call
}

// cTime is a time.Time without its location (24 bytes to 16).
type cTime struct {
	sec  int64
	nsec int32
}

func compactTime(t time.Time) cTime { return cTime{t.Unix(), int32(t.Nanosecond())} }

func (c cTime) time() time.Time { return time.Unix(c.sec, int64(c.nsec)).UTC() }

func (c cTime) before(d cTime) bool { return c.sec < d.sec || c.sec == d.sec && c.nsec < d.nsec }

type cPurchase struct {
	at           cTime
	amount       float64
	order        uint64 // key of the order id; 0: none
	party        int32
	location     uint32 // interned
	chunk, line0 uint32 // its lines: Histories.lines[chunk][line0:line0+nLine]
	nLine        uint32
	flags        uint8
}

const (
	purchaseGift uint8 = 1 << iota
	purchaseBusiness
	purchaseVisit
)

type cLine struct {
	quantity, price float64
	product         uint32 // interned
}

type cMilestone struct {
	at   cTime
	name uint32 // interned
}

type cRefund struct {
	at        cTime
	order     uint64
	lines     []cLine
	amount    float64
	hasAmount bool
}

// The traits the customer traits read, and their slots in cTraits.
var readTraits = [...]string{"email", "customer_type", "company", "vat_id", "home_location"}

const (
	traitVAT     = 3
	traitCompany = 2
	traitHome    = 4
)

// cTraits holds, per read trait, the value of the latest identify call
// that carried it, and the latest group call's vat_id and name.
type cTraits struct {
	vals  [len(readTraits)]cTrait
	group struct {
		vat, name string
		at        cTime
		set       bool
	}
}

type cTrait struct {
	s      string // str of the value
	at     cTime
	set    bool // some identify call carried the trait
	nonNil bool // and the latest one's value is not nil
}

func (hs *Histories) intern(s string) uint32 {
	if k, ok := hs.index[s]; ok {
		return k
	}
	k := uint32(len(hs.names))
	hs.names = append(hs.names, s)
	hs.index[s] = k
	return k
}

// Len is the number of customers with at least one event read.
func (hs *Histories) Len() int { return len(hs.cust) }

func (hs *Histories) history(customer string) *history {
	k, ok := hs.ids[customer]
	if !ok {
		k = int32(len(hs.cust))
		hs.ids[customer] = k
		hs.cust = append(hs.cust, history{id: customer})
	}
	return &hs.cust[k]
}

// Add reads one of the customer's events (FromEvents says which count;
// others are ignored). Events with equal timestamps keep the order they
// were added in.
func (hs *Histories) Add(customer string, ev *kiln.Event) {
	switch ev.Type {
	case kiln.Identify:
		hs.addTraits(hs.history(customer), ev)
		return
	case kiln.Group:
		h := hs.history(customer)
		if h.traits == nil {
			h.traits = &cTraits{}
		}
		g, at := &h.traits.group, compactTime(ev.Timestamp)
		if !g.set || !at.before(g.at) {
			g.vat, g.name, g.at, g.set = str(ev.Traits["vat_id"]), str(ev.Traits["name"]), at, true
		}
		return
	case kiln.Track:
	default:
		return
	}
	switch ev.Name {
	case kiln.OrderCompleted, kiln.VisitCompleted:
		h := hs.history(customer)
		p := purchaseOf(ev)
		c := cPurchase{at: compactTime(p.Time), amount: p.Amount, order: orderKey(p.OrderID), party: int32(p.PartySize),
			location: hs.intern(p.Location), nLine: uint32(len(p.Lines))}
		c.chunk, c.line0 = hs.storeLines(p.Lines)
		for _, f := range []struct {
			on   bool
			flag uint8
		}{{p.Gift, purchaseGift}, {p.Business, purchaseBusiness}, {p.Visit, purchaseVisit}} {
			if f.on {
				c.flags |= f.flag
			}
		}
		h.purchases = append(h.purchases, c)
	case kiln.OrderRefunded:
		if r := refundOf(ev); r.order != "" {
			h := hs.history(customer)
			h.refunds = append(h.refunds, cRefund{at: compactTime(ev.Timestamp), order: orderKey(r.order),
				lines: hs.appendLines(nil, r.lines), amount: r.amount, hasAmount: r.hasAmount})
		}
	case kiln.OrderCancelled:
		if id := str(ev.Properties["order_id"]); id != "" {
			h := hs.history(customer)
			h.cancelled = append(h.cancelled, orderKey(id))
		}
	case kiln.FeedbackGiven:
		if r, ok := ratingOf(ev); ok {
			h := hs.history(customer)
			h.ratings = append(h.ratings, r)
		}
	case kiln.EventRSVPed:
		if rsvpYes(ev) {
			h := hs.history(customer)
			h.rsvps = append(h.rsvps, compactTime(ev.Timestamp))
		}
	case kiln.LoyaltyMilestone:
		if m, ok := milestoneOf(ev); ok {
			h := hs.history(customer)
			h.miles = append(h.miles, cMilestone{compactTime(m.Time), hs.intern(m.Name)})
		}
	}
}

func (hs *Histories) addTraits(h *history, ev *kiln.Event) {
	at := compactTime(ev.Timestamp)
	for i, k := range readTraits {
		v, ok := ev.Traits[k]
		if !ok {
			continue
		}
		if h.traits == nil {
			h.traits = &cTraits{}
		}
		t := &h.traits.vals[i]
		if t.set && at.before(t.at) {
			continue // a later call (by timestamp) set it already
		}
		*t = cTrait{s: str(v), at: at, set: true, nonNil: v != nil}
	}
}

func (hs *Histories) appendLines(dst []cLine, ls []Line) []cLine {
	for _, l := range ls {
		pr := product{hs.intern(l.SKU), hs.intern(l.Name), hs.intern(l.Category), hs.intern(l.Pattern), hs.intern(l.Season)}
		k, ok := hs.prodIdx[pr]
		if !ok {
			k = uint32(len(hs.products))
			hs.products = append(hs.products, pr)
			hs.prodIdx[pr] = k
		}
		dst = append(dst, cLine{l.Quantity, l.Price, k})
	}
	return dst
}

// storeLines keeps a purchase's lines together in the current chunk, or
// a new one; it returns where they start.
func (hs *Histories) storeLines(ls []Line) (chunk, at uint32) {
	if len(ls) == 0 {
		return 0, 0
	}
	if n := len(hs.lines); n == 0 || len(hs.lines[n-1])+len(ls) > cap(hs.lines[n-1]) {
		hs.lines = append(hs.lines, make([]cLine, 0, max(lineChunk, len(ls))))
	}
	k := len(hs.lines) - 1
	at = uint32(len(hs.lines[k]))
	hs.lines[k] = hs.appendLines(hs.lines[k], ls)
	return uint32(k), at
}

// orderKey is the key purchases and refunds are matched by. It is kept
// as a number, not the id: ids are unique, so interning them would save
// nothing.
func orderKey(id string) uint64 {
	if id == "" {
		return 0
	}
	return max(1, stringHash(id))
}

// stringHash is 64-bit FNV-1a.
func stringHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// All yields every customer's history in turn, by customer id. The
// history and everything in it is reused for the next customer: use it
// before the next iteration, and copy what must be kept.
func (hs *Histories) All() iter.Seq[*CustomerHistory] {
	return func(yield func(*CustomerHistory) bool) {
		var m materializer
		for _, id := range slices.Sorted(maps.Keys(hs.ids)) {
			if !yield(m.history(hs, &hs.cust[hs.ids[id]])) {
				return
			}
		}
	}
}

// materializer turns compact histories into CustomerHistory values,
// reusing its buffers.
type materializer struct {
	h     CustomerHistory
	lines []Line
	refs  []refund
}

func (m *materializer) history(hs *Histories, c *history) *CustomerHistory {
	h := &m.h
	if h.Traits == nil {
		h.Traits = map[string]any{}
	}
	clear(h.Traits)
	*h = CustomerHistory{Customer: c.id, Traits: h.Traits, Purchases: h.Purchases[:0], Ratings: h.Ratings[:0],
		RSVPs: h.RSVPs[:0], Milestones: h.Milestones[:0]}
	m.lines = m.lines[:0]
	withOrders := len(c.refunds) > 0 // only refunds read order ids
	for i := range c.purchases {
		p := &c.purchases[i]
		if p.flags&purchaseVisit == 0 && p.order != 0 && slices.Contains(c.cancelled, p.order) {
			continue
		}
		pu := Purchase{Time: p.at.time(), Amount: p.amount, PartySize: int(p.party), Location: hs.names[p.location],
			Gift: p.flags&purchaseGift != 0, Business: p.flags&purchaseBusiness != 0, Visit: p.flags&purchaseVisit != 0}
		if p.nLine > 0 {
			start := len(m.lines)
			for _, l := range hs.lines[p.chunk][p.line0 : p.line0+p.nLine] {
				m.lines = append(m.lines, hs.line(&l))
			}
			pu.Lines = m.lines[start:len(m.lines):len(m.lines)]
		}
		if withOrders && p.order != 0 {
			pu.OrderID = strconv.FormatUint(p.order, 36)
		}
		h.Purchases = append(h.Purchases, pu)
	}
	slices.SortStableFunc(h.Purchases, func(a, b Purchase) int { return a.Time.Compare(b.Time) })
	if withOrders {
		m.refs = m.refs[:0]
		for i := range c.refunds {
			r := &c.refunds[i]
			ref := refund{order: strconv.FormatUint(r.order, 36), amount: r.amount, hasAmount: r.hasAmount}
			for j := range r.lines {
				ref.lines = append(ref.lines, hs.line(&r.lines[j]))
			}
			m.refs = append(m.refs, ref)
		}
		order := make([]int, len(c.refunds)) // refunds apply in time order, as FromEvents applies them
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return c.refunds[a].at.time().Compare(c.refunds[b].at.time()) })
		sorted := make([]refund, len(order))
		for i, k := range order {
			sorted[i] = m.refs[k]
		}
		h.Purchases = applyRefunds(h.Purchases, sorted)
	}
	h.Ratings = append(h.Ratings, c.ratings...)
	slices.SortStableFunc(h.Ratings, func(a, b Rating) int { return a.Time.Compare(b.Time) })
	for _, t := range c.rsvps {
		h.RSVPs = append(h.RSVPs, t.time())
	}
	slices.SortStableFunc(h.RSVPs, func(a, b time.Time) int { return a.Compare(b) })
	for _, ms := range c.miles {
		h.Milestones = append(h.Milestones, Milestone{Time: ms.at.time(), Name: hs.names[ms.name]})
	}
	slices.SortStableFunc(h.Milestones, func(a, b Milestone) int { return a.Time.Compare(b.Time) })
	if t := c.traits; t != nil {
		for i, k := range readTraits {
			if v := t.vals[i]; v.set && (v.nonNil || i != traitHome) {
				h.Traits[k] = v.s
			}
		}
		if g := t.group; g.set {
			if !t.vals[traitVAT].set && g.vat != "" {
				h.Traits["vat_id"] = g.vat
			}
			if !t.vals[traitCompany].set && g.name != "" {
				h.Traits["company"] = g.name
			}
		}
	}
	return h
}

func (hs *Histories) line(l *cLine) Line {
	n, p := hs.names, &hs.products[l.product]
	return Line{SKU: n[p.sku], Name: n[p.name], Category: n[p.category], Pattern: n[p.pattern], Season: n[p.season], Quantity: l.quantity, Price: l.price}
}
