package engine

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/intel"
)

// Purchase accounting for the customer models. Each customer's orders are
// kept compactly (an order-id hash, a day and an amount: 24 bytes each),
// with the refunds and cancellations that name them, so that the models'
// inputs are exact whatever order events arrive in:
//
//   - Every order counts. Orders on the same UTC day make one purchase day
//     whose amount is their sum: BG/NBD counts purchase days, Gamma-Gamma
//     averages the repeat days' totals, as the published CDNOW analyses
//     (Fader and Hardie; lifetimes' summary_data_from_transaction_data) do.
//     A purchase arriving late, before the first day or between others,
//     lands on its own day like any other.
//   - "Order Cancelled" (Segment e-commerce spec v2) removes the order with
//     its order_id: it counts nowhere, and its day is no purchase day if it
//     was that day's only order.
//   - "Order Refunded" lowers its order's amount by the refund (revenue,
//     else total, else the refunded products' price × quantity); one with
//     no amount at all refunds the whole order. An order refunded in full
//     counts as a cancelled one: no amount and no purchase day. The goods
//     came back, so it is no purchase to learn spend from, and counting it
//     as a repeat purchase would make customers who return a lot look the
//     most loyal.
//   - Refunds and cancellations may arrive before their order: they are
//     kept and apply when it arrives. One whose order never arrives (or
//     that names no order_id) changes nothing. The same refund (by
//     refund_id) counts once, and so does the same order_id: a
//     WooCommerce order completed days after it was paid is sent twice.
//   - An order with a negative amount (a return booked as an order) is no
//     purchase day of its own but lowers its day's amount, as
//     intel.Summarize treats negative transactions.
//
// The summary of a customer's orders is intel.SummarizeDays, the function
// the fit uses, so rescoring between refits and the refit agree exactly.

// purchases is one customer's orders and the adjustments naming them.
type purchases struct {
	orders []orderRec   // by day; within a day in arrival order
	adj    []adjustment // refunds and cancellations; nil for most customers
}

// orderRec is one purchase: Order Completed or Visit Completed.
type orderRec struct {
	id     uint64 // hash of properties.order_id; 0: none (nothing can name it)
	day    int32  // intel.DayOf the event's timestamp
	amount float64
}

// adjustment is one refund or cancellation of the order with hash order.
type adjustment struct {
	order  uint64
	refund uint64 // hash of properties.refund_id; 0: none
	amount float64
	kind   entryKind
}

type entryKind uint8

const (
	entryOrder       entryKind = iota
	entryCancel                // the whole order, gone
	entryRefund                // amount refunded
	entryRefundWhole           // a refund without an amount: the whole order
)

// entry is what one event does to its customer's purchases.
type entry struct {
	kind   entryKind
	order  uint64
	refund uint64
	day    int32
	amount float64
}

// readPurchase reads what ev does to the purchases: a purchase (one of
// PurchaseEvents), a refund or a cancellation of a named order. ok is
// false for any other event.
func readPurchase(ev *kiln.Event) (e entry, ok bool) {
	if ev.Type != kiln.Track {
		return e, false
	}
	p := ev.Properties
	e.order = idHash(p["order_id"])
	switch {
	case slices.Contains(PurchaseEvents, ev.Name):
		e.kind, e.day = entryOrder, intel.DayOf(ev.Timestamp)
		e.amount, _ = amountOf(p)
		return e, true
	case e.order == 0:
		return e, false // a refund or cancellation that names no order
	case ev.Name == kiln.OrderCancelled:
		e.kind = entryCancel
		return e, true
	case ev.Name == kiln.OrderRefunded:
		e.kind, e.refund = entryRefund, idHash(p["refund_id"])
		amount, ok := amountOf(p)
		if !ok {
			amount, ok = productsAmount(p["products"])
		}
		if !ok {
			e.kind = entryRefundWhole
		}
		e.amount = math.Abs(amount) // some sources send refunds negative
		return e, true
	}
	return e, false
}

// amountOf reads the first of PurchaseAmounts that is a number.
func amountOf(p map[string]any) (float64, bool) {
	for _, k := range PurchaseAmounts {
		if v, ok := p[k].(float64); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	return 0, false
}

// productsAmount is the sum of price × quantity (1 if absent) over
// products[]; ok is false when no product has a price.
func productsAmount(v any) (float64, bool) {
	items, _ := v.([]any)
	sum, ok := 0.0, false
	for _, it := range items {
		m, _ := it.(map[string]any)
		price, priced := m["price"].(float64)
		if !priced || math.IsNaN(price) || math.IsInf(price, 0) {
			continue
		}
		q, has := m["quantity"].(float64)
		if !has || math.IsNaN(q) || math.IsInf(q, 0) {
			q = 1
		}
		sum, ok = sum+price*q, true
	}
	return sum, ok
}

// idSeed keys the order-id hashes; they live only in this process.
var idSeed = maphash.MakeSeed()

// idHash hashes an order or refund id (a string, or a number as sources
// also send them); 0 means none. 64 bits keep a collision between two of
// one customer's orders out of reach.
func idHash(v any) uint64 {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	}
	if s == "" {
		return 0
	}
	return max(1, maphash.String(idSeed, s))
}

// apply records one event's entry.
func (p *purchases) apply(e entry) {
	if e.kind == entryOrder {
		p.addOrder(orderRec{id: e.order, day: e.day, amount: e.amount})
		return
	}
	a := adjustment{order: e.order, refund: e.refund, amount: e.amount, kind: e.kind}
	if a.refund != 0 && slices.ContainsFunc(p.adj, func(x adjustment) bool { return x.order == a.order && x.refund == a.refund }) {
		return // the same refund delivered again
	}
	p.adj = append(p.adj, a)
}

func (p *purchases) addOrder(o orderRec) {
	if o.id != 0 && slices.ContainsFunc(p.orders, func(x orderRec) bool { return x.id == o.id }) {
		return // the same order again: it counts once, as first seen
	}
	i := sort.Search(len(p.orders), func(i int) bool { return p.orders[i].day > o.day })
	p.orders = slices.Insert(p.orders, i, o)
}

// net is what an order adds to its day: its amount less refunds, and
// whether it makes the day a purchase day.
func (p *purchases) net(o *orderRec) (amount float64, purchase bool) {
	refunded, whole := 0.0, false
	if o.id != 0 {
		for i := range p.adj {
			a := &p.adj[i]
			if a.order != o.id {
				continue
			}
			switch a.kind {
			case entryCancel:
				return 0, false
			case entryRefundWhole:
				whole = true
			case entryRefund:
				refunded += a.amount
			}
		}
	}
	switch {
	case o.amount < 0:
		return o.amount, false
	case whole || o.amount > 0 && refunded >= o.amount:
		return 0, false
	}
	return o.amount - refunded, true
}

// days appends the customer's purchase days, ascending, to buf.
func (p *purchases) days(buf []intel.Day) []intel.Day {
	for i := 0; i < len(p.orders); {
		d, purchase := intel.Day{Day: p.orders[i].day}, false
		for ; i < len(p.orders) && p.orders[i].day == d.Day; i++ {
			amt, buys := p.net(&p.orders[i])
			d.Amount += amt
			purchase = purchase || buys
		}
		if purchase {
			buf = append(buf, d)
		}
	}
	return buf
}

// summary is the customer's history as of asOf, in the models' unit; ok
// is false when they have no purchase day up to then.
func (p *purchases) summary(asOf time.Time, unit time.Duration) (intel.Summary, bool) {
	return intel.SummarizeDays("", p.days(nil), asOf, time.Time{}, unit)
}

// dropAfter forgets the orders after day (those the refit read only for
// its holdout check).
func (p *purchases) dropAfter(day int32) {
	p.orders = slices.DeleteFunc(p.orders, func(o orderRec) bool { return o.day > day })
}

// rfm is the customer's RFM input as of day, given their summary s as
// of day: days since the last purchase day, purchase days, total spend.
func (p *purchases) rfm(s intel.Summary, day int32) intel.RFMInput {
	last := day
	for _, d := range p.days(nil) {
		if d.Day <= day {
			last = d.Day
		}
	}
	return intel.RFMInput{Recency: float64(day - last), Frequency: float64(s.Frequency + 1), Monetary: s.Total}
}

// ledger is every customer's purchases as a refit reads them from the log.
type ledger struct {
	cust      map[string]*purchases
	orders    int       // purchases read
	firstSeen time.Time // the earliest purchase's timestamp
}

func (l *ledger) add(pid string, at time.Time, e entry) {
	purchasesIn(l.cust, pid).apply(e)
	if e.kind == entryOrder {
		if l.orders == 0 || at.Before(l.firstSeen) {
			l.firstSeen = at
		}
		l.orders++
	}
}

// summaries summarises each customer with a purchase day up to calEnd's,
// by customer id, with holdout figures up to holdEnd unless it is zero.
func (l *ledger) summaries(calEnd, holdEnd time.Time, unit time.Duration) []intel.Summary {
	ids := make([]string, 0, len(l.cust))
	for id := range l.cust {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]intel.Summary, 0, len(ids))
	var days []intel.Day
	for _, id := range ids {
		days = l.cust[id].days(days[:0])
		if s, ok := intel.SummarizeDays(id, days, calEnd, holdEnd, unit); ok {
			out = append(out, s)
		}
	}
	return out
}

// notePurchases keeps the models' purchases exact for what rescore does
// not see: merged profiles' purchases move to the survivor, and events of
// profiles absorbed in the batch (or all events, when there are no
// definitions and so no rescoring) are recorded without scoring.
func (e *Engine) notePurchases(evs []kiln.Event, pids []string, merged map[string]string, all bool) {
	m := e.models
	if m == nil {
		return
	}
	survivor := func(pid string) string {
		for n := 0; merged[pid] != "" && n < len(merged); n++ {
			pid = merged[pid]
		}
		return pid
	}
	for from := range merged {
		if into := survivor(from); into != from {
			m.mergePurchases(from, into)
		}
	}
	for i := range evs {
		pid := pids[i]
		if _, absorbed := merged[pid]; pid == "" || !all && !absorbed {
			continue
		}
		if en, ok := readPurchase(&evs[i]); ok {
			m.purchasesOf(survivor(pid)).apply(en)
		}
	}
}

func (m *models) purchasesOf(pid string) *purchases { return purchasesIn(m.cust, pid) }

// purchasesIn returns pid's purchases in cust, adding them if new.
func purchasesIn(cust map[string]*purchases, pid string) *purchases {
	p := cust[pid]
	if p == nil {
		p = &purchases{}
		cust[pid] = p
	}
	return p
}

// mergePurchases moves from's purchases to into: the ledger of their
// union, since it does not depend on the order entries arrive in.
func (m *models) mergePurchases(from, into string) {
	pf := m.cust[from]
	if pf == nil {
		return
	}
	pi := m.purchasesOf(into)
	for _, o := range pf.orders {
		pi.addOrder(o)
	}
	for _, a := range pf.adj {
		pi.apply(entry{kind: a.kind, order: a.order, refund: a.refund, amount: a.amount})
	}
	delete(m.cust, from)
}

// appendBinary encodes the purchases for a snapshot: the orders, then the
// adjustments, each field fixed-width.
func (p *purchases) appendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.orders)))
	for _, o := range p.orders {
		b = binary.LittleEndian.AppendUint64(b, o.id)
		b = binary.LittleEndian.AppendUint32(b, uint32(o.day))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.amount))
	}
	b = binary.AppendUvarint(b, uint64(len(p.adj)))
	for _, a := range p.adj {
		b = binary.LittleEndian.AppendUint64(b, a.order)
		b = binary.LittleEndian.AppendUint64(b, a.refund)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(a.amount))
		b = append(b, byte(a.kind))
	}
	return b
}

var errShortPurchases = errors.New("truncated purchases in snapshot")

func (p *purchases) unmarshalBinary(b []byte) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k)/20 < n {
		return errShortPurchases
	}
	b = b[k:]
	p.orders = make([]orderRec, n)
	for i := range p.orders {
		p.orders[i] = orderRec{id: binary.LittleEndian.Uint64(b), day: int32(binary.LittleEndian.Uint32(b[8:])),
			amount: math.Float64frombits(binary.LittleEndian.Uint64(b[12:]))}
		b = b[20:]
	}
	n, k = binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) != 25*n {
		return errShortPurchases
	}
	b = b[k:]
	if n > 0 {
		p.adj = make([]adjustment, n)
	}
	for i := range p.adj {
		p.adj[i] = adjustment{order: binary.LittleEndian.Uint64(b), refund: binary.LittleEndian.Uint64(b[8:]),
			amount: math.Float64frombits(binary.LittleEndian.Uint64(b[16:])), kind: entryKind(b[24])}
		b = b[25:]
	}
	return nil
}
