package intel

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Gifting seasons: the weeks before the days people buy presents for.
const (
	SeasonChristmas  = "christmas"      // 15 November to 24 December
	SeasonValentines = "valentines"     // 1 to 14 February
	SeasonMothersUK  = "mothers_day_uk" // the 14 days up to Mothering Sunday (Easter - 21 days)
	SeasonMothersDay = "mothers_day"    // the 14 days up to the second Sunday of May
	SeasonFathersDay = "fathers_day"    // the 14 days up to the third Sunday of June
)

// GiftSeason returns the gifting season t falls in (judged by its date in
// zone), and that season's year; "" when t is in none.
func GiftSeason(t time.Time, zone *time.Location) (string, int) {
	if zone == nil {
		zone = time.UTC
	}
	lt := t.In(zone)
	y, m, d := lt.Date()
	date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	in := func(end time.Time, days int) bool {
		return !date.After(end) && date.After(end.AddDate(0, 0, -days))
	}
	switch {
	case m == time.November && d >= 15, m == time.December && d <= 24:
		return SeasonChristmas, y
	case m == time.February && d <= 14:
		return SeasonValentines, y
	case m >= time.February && m <= time.April && in(easterSunday(y).AddDate(0, 0, -21), 14):
		return SeasonMothersUK, y
	case (m == time.April || m == time.May) && in(nthSunday(y, time.May, 2), 14):
		return SeasonMothersDay, y
	case (m == time.May || m == time.June) && in(nthSunday(y, time.June, 3), 14):
		return SeasonFathersDay, y
	}
	return "", 0
}

// easterSunday is Western Easter (the anonymous Gregorian algorithm).
func easterSunday(y int) time.Time {
	a, b, c := y%19, y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	mm := (a + 11*h + 22*l) / 451
	month := (h + l - 7*mm + 114) / 31
	day := (h+l-7*mm+114)%31 + 1
	return time.Date(y, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

func nthSunday(y int, m time.Month, n int) time.Time {
	t := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	for t.Weekday() != time.Sunday {
		t = t.AddDate(0, 0, 1)
	}
	return t.AddDate(0, 0, 7*(n-1))
}

// FreemailDomains are common free email providers: an address there says
// nothing about an employer. Country variants of the big providers
// (yahoo.*, hotmail.*, live.*, outlook.*, gmx.*, yandex.*, aol.*) are
// matched by their first label too.
var FreemailDomains = []string{
	"gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "rocketmail.com", "hotmail.com", "outlook.com",
	"live.com", "msn.com", "passport.com", "aol.com", "aim.com", "icloud.com", "me.com", "mac.com",
	"protonmail.com", "protonmail.ch", "proton.me", "pm.me", "tutanota.com", "tuta.io", "fastmail.com", "fastmail.fm",
	"hey.com", "zoho.com", "zohomail.com", "mail.com", "email.com", "gmx.com", "gmx.net", "gmx.de", "web.de",
	"t-online.de", "freenet.de", "yandex.com", "yandex.ru", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru",
	"rambler.ru", "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sohu.com", "naver.com", "daum.net",
	"hanmail.net", "rediffmail.com", "btinternet.com", "btopenworld.com", "sky.com", "virginmedia.com",
	"blueyonder.co.uk", "ntlworld.com", "talktalk.net", "tiscali.co.uk", "orange.fr", "wanadoo.fr", "free.fr",
	"laposte.net", "sfr.fr", "libero.it", "virgilio.it", "tiscali.it", "alice.it", "comcast.net", "verizon.net",
	"att.net", "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net", "earthlink.net", "juno.com",
	"optonline.net", "shaw.ca", "rogers.com", "sympatico.ca", "bigpond.com", "optusnet.com.au", "xtra.co.nz",
	"seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "bol.com.br", "uol.com.br", "terra.com.br",
}

var freemail = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range FreemailDomains {
		m[d] = true
	}
	return m
}()

// BusinessEmail reports whether an address is at a domain that can be an
// organisation's: not a free provider and not a name reserved for examples
// and tests (RFC 2606: example.com/.net/.org, *.example, *.test,
// *.invalid, *.localhost). ok is false when email has no domain.
func BusinessEmail(email string) (business, ok bool) {
	at := strings.LastIndexByte(email, '@')
	if at < 0 || at == len(email)-1 {
		return false, false
	}
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(email[at+1:])), ".")
	if d == "" || !strings.Contains(d, ".") {
		return false, false
	}
	if freemail[d] {
		return false, true
	}
	first := d[:strings.IndexByte(d, '.')]
	switch first {
	case "yahoo", "hotmail", "live", "outlook", "gmx", "yandex", "aol", "windowslive":
		return false, true
	}
	for _, r := range []string{"example.com", "example.net", "example.org"} {
		if d == r || strings.HasSuffix(d, "."+r) {
			return false, true
		}
	}
	for _, tld := range []string{".example", ".test", ".invalid", ".localhost"} {
		if strings.HasSuffix(d, tld) {
			return false, true
		}
	}
	return true, true
}

// retailTraits sets the shop traits from the purchases that are not a
// restaurant's.
func retailTraits(out map[string]any, h *CustomerHistory, ps []Purchase, pop *Population, o TraitOptions, asOf time.Time, sc *scratch) {
	shop := sc.idx[:0] // positions of shop purchases in ps
	for i := range ps {
		if !ps[i].Restaurant() {
			shop = append(shop, i)
		}
	}
	sc.idx = shop

	// Business buyer: what the customer says they are, or how they buy.
	var signals []string
	tr := h.Traits
	if strings.EqualFold(str(tr["customer_type"]), "business") {
		signals = append(signals, "customer_type")
	}
	company, vat := str(tr["company"]) != "", str(tr["vat_id"]) != ""
	orderBusiness, bulkOrders, dozen := false, 0, false
	bulkQty := math.Max(pop.BulkQuantity, o.MinBulkQuantity) // also for a Population not learned
	for _, i := range shop {
		p := &ps[i]
		orderBusiness = orderBusiness || p.Business
		bulk := false
		for _, l := range p.Lines {
			bulk = bulk || l.Quantity >= bulkQty
			dozen = dozen || l.Quantity >= o.MinBulkQuantity
		}
		if bulk {
			bulkOrders++
		}
	}
	if company {
		signals = append(signals, "company")
	}
	if vat {
		signals = append(signals, "vat_id")
	}
	if orderBusiness {
		signals = append(signals, "business_order")
	}
	if bulkOrders > 0 && (bulkOrders >= 2 || 2*bulkOrders >= len(shop)) {
		signals = append(signals, "bulk")
	}
	if email := str(tr["email"]); email != "" {
		if biz, ok := BusinessEmail(email); ok {
			out[TraitBusinessEmail] = biz
			if biz && dozen {
				signals = append(signals, "business_email")
			}
		}
	}
	if len(shop) == 0 && len(signals) == 0 {
		return
	}
	out[TraitBusinessBuyer] = len(signals) > 0
	out[TraitBusinessSignals] = strings.Join(signals, ",")
	if len(shop) == 0 {
		return
	}
	out[TraitBulkOrders] = float64(bulkOrders)

	// Gifts.
	type occasion struct {
		season string
		year   int
	}
	gifts, inSeason := 0, 0
	var occasions []occasion
	for _, i := range shop {
		p := &ps[i]
		if p.Gift {
			gifts++
		}
		if s, y := GiftSeason(p.Time, o.Zone); s != "" {
			inSeason++
			if !slices.Contains(occasions, occasion{s, y}) {
				occasions = append(occasions, occasion{s, y})
			}
		}
	}
	n := float64(len(shop))
	seasonal := len(shop) >= 2 && inSeason == len(shop) && len(occasions) >= 2
	out[TraitGiftOrders] = float64(gifts)
	out[TraitGiftOrderShare] = float64(gifts) / n
	out[TraitGiftSeasonShare] = float64(inSeason) / n
	out[TraitSeasonalGifter] = seasonal
	out[TraitGiftBuyer] = gifts > 0 || seasonal

	// Category affinity, gifts aside: by value, or quantity without prices.
	type catValue struct {
		cat   string
		value float64
	}
	var value []catValue
	total := 0.0
	for _, i := range shop {
		p := &ps[i]
		if p.Gift {
			continue
		}
		for _, l := range p.Lines {
			if l.Category == "" || l.Quantity <= 0 {
				continue
			}
			w := l.Quantity
			if l.Price > 0 {
				w *= l.Price
			}
			k := slices.IndexFunc(value, func(c catValue) bool { return c.cat == l.Category })
			if k < 0 {
				k = len(value)
				value = append(value, catValue{cat: l.Category})
			}
			value[k].value += w
			total += w
		}
	}
	if total > 0 {
		best := value[0]
		for _, c := range value[1:] {
			if c.value > best.value || c.value == best.value && c.cat < best.cat {
				best = c
			}
		}
		out[TraitTopCategory] = best.cat
		out[TraitTopCategoryShare] = best.value / total
	}

	// Replenishment: the earliest due date overall and per level.
	var firstSKU, firstCat *dueDay
	for _, d := range replenishment(ps, pop, o, asOf, sc) {
		switch {
		case d.level == 0 && (firstSKU == nil || d.before(firstSKU)):
			firstSKU = &d
		case d.level == 1 && (firstCat == nil || d.before(firstCat)):
			firstCat = &d
		}
	}
	if firstSKU != nil {
		out[TraitReplenishSKUDue] = dayDate(firstSKU.due)
		out[TraitReplenishSKU] = firstSKU.item
	}
	if firstCat != nil {
		out[TraitReplenishCatDue] = dayDate(firstCat.due)
		out[TraitReplenishCategory] = firstCat.item
	}
	if first := firstSKU; first != nil || firstCat != nil {
		if first == nil || firstCat != nil && firstCat.due < first.due {
			first = firstCat
		}
		out[TraitReplenishDue] = dayDate(first.due)
		out[TraitReplenishItem] = first.item
		out[TraitReplenishLevel] = first.levelName()
		out[TraitReplenishInterval] = first.gap
	}

	// Collections: distinct pieces owned per pattern, gifts aside.
	sc.pairs = sc.pairs[:0]
	for _, i := range shop {
		p := &ps[i]
		if p.Gift {
			continue
		}
		for _, l := range p.Lines {
			if l.Pattern != "" && l.SKU != "" && l.Quantity > 0 {
				sc.pairs = append(sc.pairs, [2]string{l.Pattern, l.SKU})
			}
		}
	}
	slices.SortFunc(sc.pairs, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	sc.pairs = slices.Compact(sc.pairs)
	bestPat, bestDone, bestOwned, bestPieces := "", -1.0, 0, 0
	for i := 0; i < len(sc.pairs); {
		pat, k := sc.pairs[i][0], 0
		for ; i < len(sc.pairs) && sc.pairs[i][0] == pat; i++ {
			k++
		}
		pieces := pop.PatternPieces[pat]
		if pieces < 2 || k >= pieces {
			continue
		}
		if done := float64(k) / float64(pieces); done > bestDone {
			bestPat, bestDone, bestOwned, bestPieces = pat, done, k, pieces
		}
	}
	if bestPat != "" {
		out[TraitCollection] = bestPat
		out[TraitCollectionDone] = bestDone
		out[TraitCollectionOwned] = float64(bestOwned)
		out[TraitCollectionMissing] = float64(bestPieces - bestOwned)
	}
}

// Replenishment levels.
const (
	LevelSKU      = "sku"
	LevelCategory = "category"
)

// Due is when a customer is due to buy an item again.
type Due struct {
	Level string // LevelSKU or LevelCategory
	Item  string // the SKU or category
	Last  string // the last purchase day of the item, YYYY-MM-DD
	Due   string // Last plus IntervalDays, YYYY-MM-DD
	// IntervalDays is the customer's own median interval when they have
	// MinOwnIntervals of them, else the population's (Own tells which).
	IntervalDays float64
	Own          bool
}

// ReplenishmentDue lists the customer's due dates as of asOf for every
// item (SKU or category) with a learned, replenished interval that they
// bought outside gift orders, earliest first (ties by level, then item).
// Items overdue by more than their interval are left out: the customer has
// stopped buying them, or buys them elsewhere.
func ReplenishmentDue(h CustomerHistory, pop Population, asOf time.Time) []Due {
	sc := newScratch()
	defer sc.release()
	ds := replenishment(upTo(h.Purchases, asOf), &pop, pop.Options.withDefaults(), asOf, sc)
	slices.SortFunc(ds, func(a, b dueDay) int {
		if a.before(&b) {
			return -1
		}
		if b.before(&a) {
			return 1
		}
		return 0
	})
	out := make([]Due, len(ds))
	for i, d := range ds {
		out[i] = Due{Level: d.levelName(), Item: d.item, Last: dayDate(d.last), Due: dayDate(d.due), IntervalDays: d.gap, Own: d.own}
	}
	return out
}

// dueDay is a Due with days as numbers.
type dueDay struct {
	level     uint8
	item      string
	last, due int
	gap       float64
	own       bool
}

// before orders by due day, then SKU before category, then item.
func (d *dueDay) before(e *dueDay) bool {
	if d.due != e.due {
		return d.due < e.due
	}
	if d.level != e.level {
		return d.level < e.level
	}
	return d.item < e.item
}

func (d *dueDay) levelName() string {
	if d.level == 1 {
		return LevelCategory
	}
	return LevelSKU
}

// replenishment returns the customer's due items, in no order.
func replenishment(ps []Purchase, pop *Population, o TraitOptions, asOf time.Time, sc *scratch) []dueDay {
	today := dayNumber(asOf, o.Zone)
	var out []dueDay
	x := pop.items()
	sc.itemDays(ps, o.Zone, x.id, func(id int32, ds []int) {
		it := &x.items[id]
		level, item, iv := it.level, it.name, it.iv
		gap, own := iv.Median, false
		if len(ds)-1 >= o.MinOwnIntervals {
			sc.gaps = gaps(ds, sc.gaps[:0])
			gap, own = median(sc.gaps), true
		}
		gap = math.Max(1, gap)
		last := ds[len(ds)-1]
		d := last + int(math.Round(gap))
		// Overdue by more than a whole interval: they have stopped buying
		// it, or buy it elsewhere; a due date would only be noise.
		if float64(today-d) > gap {
			return
		}
		out = append(out, dueDay{level, item, last, d, gap, own})
	})
	return out
}
