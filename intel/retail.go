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
	var shop []int // positions of shop purchases in ps
	for i := range ps {
		if !ps[i].Restaurant() {
			shop = append(shop, i)
		}
	}

	// Business buyer: what the customer says they are, or how they buy.
	var signals []string
	tr := h.Traits
	if strings.EqualFold(str(tr["customer_type"]), "business") {
		signals = append(signals, "customer_type")
	}
	company, vat := str(tr["company"]) != "", str(tr["vat_id"]) != ""
	orderBusiness, bulkOrders, dozen := false, 0, false
	for _, i := range shop {
		p := &ps[i]
		orderBusiness = orderBusiness || p.Business
		bulk := false
		for _, l := range p.Lines {
			bulk = bulk || l.Quantity >= pop.BulkQuantity
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
	gifts, inSeason := 0, 0
	occasions := map[[2]any]bool{}
	for _, i := range shop {
		p := &ps[i]
		if p.Gift {
			gifts++
		}
		if s, y := GiftSeason(p.Time, o.Zone); s != "" {
			inSeason++
			occasions[[2]any{s, y}] = true
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
	value := map[string]float64{}
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
			value[l.Category] += w
			total += w
		}
	}
	if total > 0 {
		c, v := top(value)
		out[TraitTopCategory] = c
		out[TraitTopCategoryShare] = v / total
	}

	// Replenishment: the earliest due date overall and per level.
	dues := replenishment(ps, pop, o, asOf, sc)
	var firstSKU, firstCat *Due
	for i := range dues {
		switch {
		case dues[i].Level == LevelSKU && firstSKU == nil:
			firstSKU = &dues[i]
		case dues[i].Level == LevelCategory && firstCat == nil:
			firstCat = &dues[i]
		}
	}
	if firstSKU != nil {
		out[TraitReplenishSKUDue] = firstSKU.Due
		out[TraitReplenishSKU] = firstSKU.Item
	}
	if firstCat != nil {
		out[TraitReplenishCatDue] = firstCat.Due
		out[TraitReplenishCategory] = firstCat.Item
	}
	if len(dues) > 0 {
		out[TraitReplenishDue] = dues[0].Due
		out[TraitReplenishItem] = dues[0].Item
		out[TraitReplenishLevel] = dues[0].Level
		out[TraitReplenishInterval] = dues[0].IntervalDays
	}

	// Collections: distinct pieces owned per pattern, gifts aside.
	owned := map[string]map[string]struct{}{}
	for _, i := range shop {
		p := &ps[i]
		if p.Gift {
			continue
		}
		for _, l := range p.Lines {
			if l.Pattern == "" || l.SKU == "" || l.Quantity <= 0 {
				continue
			}
			m := owned[l.Pattern]
			if m == nil {
				m = map[string]struct{}{}
				owned[l.Pattern] = m
			}
			m[l.SKU] = struct{}{}
		}
	}
	pats := make([]string, 0, len(owned))
	for p := range owned {
		pats = append(pats, p)
	}
	slices.Sort(pats)
	bestPat, bestDone, bestOwned, bestPieces := "", -1.0, 0, 0
	for _, pat := range pats {
		pieces := pop.PatternPieces[pat]
		k := len(owned[pat])
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
	return replenishment(upTo(h.Purchases, asOf), &pop, pop.Options.withDefaults(), asOf, newScratch())
}

func replenishment(ps []Purchase, pop *Population, o TraitOptions, asOf time.Time, sc *scratch) []Due {
	sc.itemDays(ps, o.Zone)
	today := dayNumber(asOf, o.Zone)
	var out []Due
	for _, lv := range []struct {
		level   string
		days    map[string][]int
		learned map[string]Interval
	}{{LevelSKU, sc.skuDays, pop.SKUIntervals}, {LevelCategory, sc.catDays, pop.CategoryIntervals}} {
		for item, ds := range lv.days {
			iv, ok := lv.learned[item]
			if !ok || !iv.Replenished {
				continue
			}
			gap, own := iv.Median, false
			if len(ds)-1 >= o.MinOwnIntervals {
				gap, own = medianGap(ds, sc.gaps[:0]), true
			}
			gap = math.Max(1, gap)
			last := ds[len(ds)-1]
			d := last + int(math.Round(gap))
			if float64(today-d) > gap {
				continue
			}
			out = append(out, Due{Level: lv.level, Item: item, Last: dayDate(last), Due: dayDate(d), IntervalDays: gap, Own: own})
		}
	}
	slices.SortFunc(out, func(a, b Due) int {
		if c := strings.Compare(a.Due, b.Due); c != 0 {
			return c
		}
		if c := strings.Compare(b.Level, a.Level); c != 0 {
			return c // sku before category
		}
		return strings.Compare(a.Item, b.Item)
	})
	return out
}
