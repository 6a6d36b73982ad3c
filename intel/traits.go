package intel

import (
	"iter"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Customer traits set on profiles by CustomerTraits (see the package
// documentation, "Customer traits", for each one's definition). Dates are
// "YYYY-MM-DD" strings, counts and measures float64.
const (
	// Retail.
	TraitGiftBuyer         = "gift_buyer"
	TraitGiftOrders        = "gift_orders"
	TraitGiftOrderShare    = "gift_order_share"
	TraitGiftSeasonShare   = "gift_season_share"
	TraitSeasonalGifter    = "seasonal_gifter"
	TraitBusinessBuyer     = "business_buyer"
	TraitBusinessSignals   = "business_signals"
	TraitBusinessEmail     = "business_email"
	TraitBulkOrders        = "bulk_orders"
	TraitTopCategory       = "top_category"
	TraitTopCategoryShare  = "top_category_share"
	TraitReplenishDue      = "replenishment_due"
	TraitReplenishItem     = "replenishment_item"
	TraitReplenishLevel    = "replenishment_level"
	TraitReplenishInterval = "replenishment_interval_days"
	TraitReplenishSKUDue   = "replenishment_sku_due"
	TraitReplenishSKU      = "replenishment_sku"
	TraitReplenishCatDue   = "replenishment_category_due"
	TraitReplenishCategory = "replenishment_category"
	TraitCollection        = "collection_pattern"
	TraitCollectionDone    = "collection_completion"
	TraitCollectionOwned   = "collection_owned"
	TraitCollectionMissing = "collection_missing"
	// Restaurant.
	TraitVisits             = "visits"
	TraitVisitFrequency     = "visit_frequency_30d"
	TraitDaysSinceVisit     = "days_since_last_visit"
	TraitVisitInterval      = "visit_interval_days"
	TraitLapseRatio         = "lapse_ratio"
	TraitLapsed             = "lapsed"
	TraitFavouriteDish      = "favourite_dish"
	TraitFavouriteDishCount = "favourite_dish_count"
	TraitFavouriteDishes    = "favourite_dishes"
	TraitFavouriteCuisine   = "favourite_cuisine"
	TraitFavouriteCuisineN  = "favourite_cuisine_count"
	TraitSeasonalDishShare  = "seasonal_dish_share"
	TraitSeasonalDishes     = "seasonal_dishes"
	TraitEventRSVPs         = "event_rsvps"
	TraitAvgPartySize       = "avg_party_size"
	TraitRatingAvg          = "rating_avg"
	TraitRatingCount        = "rating_count"
	TraitRatingTrend        = "rating_trend"
	TraitRatingChange       = "rating_change"
	TraitHomeLocation       = "usual_location" // not home_location: a refit must not overwrite what the guest declared
	TraitLoyaltyMilestone   = "loyalty_milestone"
	TraitLoyaltyMilestones  = "loyalty_milestones"
)

// TraitOptions are the thresholds of the customer traits. The zero value
// of a field means its default (DefaultTraitOptions).
type TraitOptions struct {
	// Zone is the business's time zone: it dates purchases (gifting
	// seasons, purchase days, dish months) and due dates. Default UTC.
	Zone *time.Location
	// MinBulkQuantity is the least line quantity that can count as bulk,
	// whatever the data (default 12, a dozen).
	MinBulkQuantity float64
	// BulkPercentile of shop line quantities from which a line is bulk
	// (default 0.95: above what nearly all lines are, yet reached by a
	// wholesaler's ordinary orders, not only their largest).
	BulkPercentile float64
	// MinRepeaters is how many customers must have bought an item (SKU or
	// category) again on a later day before its interval is learned
	// (default 20).
	MinRepeaters int
	// MinRepeatShare is the share of an item's buyers who bought it again
	// on a later day for it to count as replenished (default 0.1).
	MinRepeatShare float64
	// MinOwnIntervals is how many intervals of their own a customer needs
	// before their own median replaces the population's (default 3).
	MinOwnIntervals int
	// LapseRatio: a guest is lapsed when the days since their last visit
	// exceed this many of their own median intervals (default 2.5).
	LapseRatio float64
	// MinBaselineVisits is how many visit days a guest needs for a visit
	// baseline (default 4, three intervals).
	MinBaselineVisits int
	// MinRatings for a rating trend (default 4).
	MinRatings int
	// MinDishOrders is how many restaurant purchases must include a dish
	// before it can be judged seasonal or staple (default 30).
	MinDishOrders int
	// SeasonalShare of a dish's orders that must fall in its busiest four
	// consecutive calendar months for it to be seasonal (default 0.9).
	SeasonalShare float64
	// StapleShare: a dish or course on at least this share of all
	// restaurant purchases (the bread basket) says nothing about a guest's
	// taste and is not a favourite (default 0.8).
	StapleShare float64
}

// DefaultTraitOptions returns the default thresholds.
func DefaultTraitOptions() TraitOptions {
	return TraitOptions{
		Zone: time.UTC, MinBulkQuantity: 12, BulkPercentile: 0.95, MinRepeaters: 20, MinRepeatShare: 0.1,
		MinOwnIntervals: 3, LapseRatio: 2.5, MinBaselineVisits: 4, MinRatings: 4, MinDishOrders: 30,
		SeasonalShare: 0.9, StapleShare: 0.8,
	}
}

func (o TraitOptions) withDefaults() TraitOptions {
	d := DefaultTraitOptions()
	if o.Zone == nil {
		o.Zone = d.Zone
	}
	if o.MinBulkQuantity <= 0 {
		o.MinBulkQuantity = d.MinBulkQuantity
	}
	if o.BulkPercentile <= 0 || o.BulkPercentile >= 1 {
		o.BulkPercentile = d.BulkPercentile
	}
	if o.MinRepeaters <= 0 {
		o.MinRepeaters = d.MinRepeaters
	}
	if o.MinRepeatShare <= 0 {
		o.MinRepeatShare = d.MinRepeatShare
	}
	if o.MinOwnIntervals <= 0 {
		o.MinOwnIntervals = d.MinOwnIntervals
	}
	if o.LapseRatio <= 0 {
		o.LapseRatio = d.LapseRatio
	}
	if o.MinBaselineVisits < 2 {
		o.MinBaselineVisits = d.MinBaselineVisits
	}
	if o.MinRatings < 2 {
		o.MinRatings = d.MinRatings
	}
	if o.MinDishOrders <= 0 {
		o.MinDishOrders = d.MinDishOrders
	}
	if o.SeasonalShare <= 0 || o.SeasonalShare > 1 {
		o.SeasonalShare = d.SeasonalShare
	}
	if o.StapleShare <= 0 || o.StapleShare > 1 {
		o.StapleShare = d.StapleShare
	}
	return o
}

// Interval is an item's learned time between repeat purchases.
type Interval struct {
	// Median is the median over repeat buyers of each one's median
	// interval between purchase days of the item, in days.
	Median float64 `json:"medianDays"`
	// Buyers bought the item (outside gift orders); Repeaters bought it on
	// at least two days; Intervals counts all their intervals.
	Buyers    int `json:"buyers"`
	Repeaters int `json:"repeaters"`
	Intervals int `json:"intervals"`
	// Replenished: Repeaters/Buyers is at least MinRepeatShare, so due
	// dates are given for the item.
	Replenished bool `json:"replenished"`
}

// RepeatShare is the share of buyers who bought the item again.
func (iv Interval) RepeatShare() float64 {
	if iv.Buyers == 0 {
		return 0
	}
	return float64(iv.Repeaters) / float64(iv.Buyers)
}

// SeasonalDish is a dish found seasonal from the data.
type SeasonalDish struct {
	Name    string       `json:"name"`
	Months  []time.Month `json:"months"`  // the four-month window holding most of its orders
	Share   float64      `json:"share"`   // of its orders in those months
	Orders  int          `json:"orders"`  // restaurant purchases including it
	ByMonth [12]int      `json:"byMonth"` // of those, January first
}

// Population is what the customer traits learn across all customers.
// Every map holds only what the data supported; a report can print them.
type Population struct {
	AsOf      time.Time    `json:"asOf"`
	Options   TraitOptions `json:"-"`
	Customers int          `json:"customers"`
	// BulkQuantity is the line quantity from which a shop line is bulk:
	// the BulkPercentile of all shop line quantities, at least
	// MinBulkQuantity. LineQuantityPercentile is that percentile alone.
	BulkQuantity           float64 `json:"bulkQuantity"`
	LineQuantityPercentile float64 `json:"lineQuantityPercentile"`
	ShopLines              int     `json:"shopLines"`
	// SKUIntervals and CategoryIntervals hold the items with at least
	// MinRepeaters repeat buyers.
	SKUIntervals      map[string]Interval `json:"skuIntervals"`
	CategoryIntervals map[string]Interval `json:"categoryIntervals"`
	// PatternPieces is the number of distinct SKUs bought in each pattern.
	PatternPieces map[string]int `json:"patternPieces"`
	// SeasonalDishes are dishes (by SKU) whose orders cluster in four
	// calendar months, judged only when the restaurant data covers all
	// twelve months.
	SeasonalDishes map[string]SeasonalDish `json:"seasonalDishes"`
	// StapleDishes and StapleCourses are on at least StapleShare of all
	// restaurant purchases (value: that share).
	StapleDishes  map[string]float64 `json:"stapleDishes"`
	StapleCourses map[string]float64 `json:"stapleCourses"`
	// RestaurantPurchases counts the visits and restaurant orders seen.
	RestaurantPurchases int `json:"restaurantPurchases"`

	index *itemIndex // built from the intervals on first use
}

// items returns the population's item index, building it when the
// Population did not come from LearnPopulation (e.g. it was decoded).
func (pop *Population) items() *itemIndex {
	if pop.index != nil {
		return pop.index
	}
	return newItemIndex(pop)
}

// LearnPopulation learns the population figures the customer traits use
// from every customer's history up to asOf, with the default options.
func LearnPopulation(hs []CustomerHistory, asOf time.Time) Population {
	return LearnPopulationOptions(hs, asOf, TraitOptions{})
}

// LearnPopulationOptions is LearnPopulation with chosen thresholds.
func LearnPopulationOptions(hs []CustomerHistory, asOf time.Time, o TraitOptions) Population {
	return LearnPopulationSeq(func(yield func(*CustomerHistory) bool) {
		for i := range hs {
			if !yield(&hs[i]) {
				return
			}
		}
	}, asOf, o)
}

// LearnPopulationSeq is LearnPopulationOptions over a sequence of
// histories read once, such as Histories.All: the histories need not all
// be in memory at once.
func LearnPopulationSeq(hs iter.Seq[*CustomerHistory], asOf time.Time, o TraitOptions) Population {
	o = o.withDefaults()
	pop := Population{AsOf: asOf, Options: o,
		SKUIntervals: map[string]Interval{}, CategoryIntervals: map[string]Interval{}, PatternPieces: map[string]int{},
		SeasonalDishes: map[string]SeasonalDish{}, StapleDishes: map[string]float64{}, StapleCourses: map[string]float64{}}

	var qtys []float64
	type acc struct {
		level                        uint8
		name                         string
		buyers, repeaters, intervals int
		medians                      []float64
	}
	var accs []acc
	accIDs := [2]map[string]int32{{}, {}}
	accID := func(level uint8, name string) int32 {
		k, ok := accIDs[level][name]
		if !ok {
			k = int32(len(accs))
			accIDs[level][name] = k
			accs = append(accs, acc{level: level, name: name})
		}
		return k
	}
	patternSKUs := map[string]map[string]struct{}{}
	type dishAcc struct {
		name   string
		orders int
		months [12]int
	}
	dishes, courses := map[string]*dishAcc{}, map[string]int{}
	var monthsSeen [12]int
	sc := newScratch()
	for h := range hs {
		pop.Customers++
		ps := upTo(h.Purchases, asOf)
		for j := range ps {
			p := &ps[j]
			if p.Restaurant() {
				pop.RestaurantPurchases++
				mon := p.Time.In(o.Zone).Month() - 1
				monthsSeen[mon]++
				clear(sc.seen)
				clear(sc.seenCat)
				for _, l := range p.Lines {
					if _, ok := sc.seen[l.SKU]; !ok {
						sc.seen[l.SKU] = struct{}{}
						d := dishes[l.SKU]
						if d == nil {
							d = &dishAcc{name: l.Name}
							dishes[l.SKU] = d
						}
						d.orders++
						d.months[mon]++
					}
					if _, ok := sc.seenCat[l.Category]; !ok && l.Category != "" {
						sc.seenCat[l.Category] = struct{}{}
						courses[l.Category]++
					}
				}
				continue
			}
			for _, l := range p.Lines {
				if l.Quantity > 0 {
					qtys = append(qtys, l.Quantity)
				}
				if l.Pattern != "" && l.SKU != "" {
					m := patternSKUs[l.Pattern]
					if m == nil {
						m = map[string]struct{}{}
						patternSKUs[l.Pattern] = m
					}
					m[l.SKU] = struct{}{}
				}
			}
		}
		sc.itemDays(ps, o.Zone, accID, func(id int32, ds []int) {
			a := &accs[id]
			a.buyers++
			if len(ds) < 2 {
				return
			}
			a.repeaters++
			a.intervals += len(ds) - 1
			sc.gaps = gaps(ds, sc.gaps[:0])
			a.medians = append(a.medians, median(sc.gaps))
		})
	}
	sc.release()

	pop.ShopLines = len(qtys)
	if len(qtys) > 0 {
		pop.LineQuantityPercentile = quantile(qtys, o.BulkPercentile)
	}
	pop.BulkQuantity = math.Max(o.MinBulkQuantity, pop.LineQuantityPercentile)
	for i := range accs {
		a := &accs[i]
		if a.repeaters < o.MinRepeaters {
			continue
		}
		iv := Interval{Median: median(a.medians), Buyers: a.buyers, Repeaters: a.repeaters, Intervals: a.intervals}
		iv.Replenished = iv.RepeatShare() >= o.MinRepeatShare
		if a.level == skuLevel {
			pop.SKUIntervals[a.name] = iv
		} else {
			pop.CategoryIntervals[a.name] = iv
		}
	}
	pop.index = newItemIndex(&pop)
	for pat, m := range patternSKUs {
		pop.PatternPieces[pat] = len(m)
	}

	allMonths := true
	for _, n := range monthsSeen {
		allMonths = allMonths && n > 0
	}
	if pop.RestaurantPurchases > 0 {
		n := float64(pop.RestaurantPurchases)
		for sku, d := range dishes {
			if d.orders < o.MinDishOrders {
				continue
			}
			if share := float64(d.orders) / n; share >= o.StapleShare {
				pop.StapleDishes[sku] = share
			}
			if !allMonths {
				continue
			}
			best, bestAt := -1, 0
			for m := 0; m < 12; m++ {
				s := d.months[m] + d.months[(m+1)%12] + d.months[(m+2)%12] + d.months[(m+3)%12]
				if s > best {
					best, bestAt = s, m
				}
			}
			if share := float64(best) / float64(d.orders); share >= o.SeasonalShare {
				sd := SeasonalDish{Name: d.name, Share: share, Orders: d.orders, ByMonth: d.months}
				// The window's edge months with under 5% of the orders
				// are spill-over (a late dinner dated the next month in
				// zone), not the season.
				lo, hi := 0, 3
				for lo < hi && float64(d.months[(bestAt+lo)%12]) < 0.05*float64(d.orders) {
					lo++
				}
				for hi > lo && float64(d.months[(bestAt+hi)%12]) < 0.05*float64(d.orders) {
					hi--
				}
				for k := lo; k <= hi; k++ {
					sd.Months = append(sd.Months, time.Month((bestAt+k)%12+1))
				}
				pop.SeasonalDishes[sku] = sd
			}
		}
		for c, k := range courses {
			if k >= o.MinDishOrders && float64(k)/n >= o.StapleShare {
				pop.StapleCourses[c] = float64(k) / n
			}
		}
	}
	return pop
}

// CustomerTraits computes a customer's traits from their history up to
// asOf and the population figures. Traits without the data to support them
// are left out rather than set to a default.
func CustomerTraits(h CustomerHistory, pop Population, asOf time.Time) map[string]any {
	o := pop.Options.withDefaults()
	out := make(map[string]any, 32)
	ps := upTo(h.Purchases, asOf)
	sc := newScratch()
	retailTraits(out, &h, ps, &pop, o, asOf, sc)
	restaurantTraits(out, &h, ps, &pop, o, asOf, sc)
	sc.release()
	return out
}

// upTo returns the purchases at or before asOf, in time order (a sorted
// copy if they were given out of order).
func upTo(ps []Purchase, asOf time.Time) []Purchase {
	if !slices.IsSortedFunc(ps, func(a, b Purchase) int { return a.Time.Compare(b.Time) }) {
		ps = slices.Clone(ps)
		slices.SortStableFunc(ps, func(a, b Purchase) int { return a.Time.Compare(b.Time) })
	}
	n := sort.Search(len(ps), func(i int) bool { return ps[i].Time.After(asOf) })
	return ps[:n]
}

// scratch holds per-customer working buffers, reused across customers
// (a refit computes traits for every profile; maps per customer would
// dominate its time).
type scratch struct {
	seen, seenCat map[string]struct{}
	keys          []int64
	idx           []int
	pairs         [][2]string
	days          []int
	gaps          []float64
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{seen: map[string]struct{}{}, seenCat: map[string]struct{}{}}
}}

func newScratch() *scratch { return scratchPool.Get().(*scratch) }

func (sc *scratch) release() { scratchPool.Put(sc) }

// Item levels, for itemDays.
const (
	skuLevel uint8 = iota
	categoryLevel
)

// itemDays collects the distinct purchase days (in zone) of each SKU and
// category of the customer's shop purchases outside gift orders, and calls
// fn for each item with its days ascending (fn must not keep days). Items
// are numbered by id (a negative id skips the item), so that sorting them
// compares numbers, not strings.
func (sc *scratch) itemDays(ps []Purchase, zone *time.Location, id func(level uint8, name string) int32, fn func(id int32, days []int)) {
	sc.keys = sc.keys[:0]
	for i := range ps {
		p := &ps[i]
		if p.Gift || p.Restaurant() {
			continue
		}
		d := int64(dayNumber(p.Time, zone)) & 0xffffffff
		for _, l := range p.Lines {
			if l.Quantity <= 0 {
				continue
			}
			if l.SKU != "" {
				if k := id(skuLevel, l.SKU); k >= 0 {
					sc.keys = append(sc.keys, int64(k)<<32|d)
				}
			}
			if l.Category != "" {
				if k := id(categoryLevel, l.Category); k >= 0 {
					sc.keys = append(sc.keys, int64(k)<<32|d)
				}
			}
		}
	}
	slices.Sort(sc.keys)
	for i := 0; i < len(sc.keys); {
		k := sc.keys[i] >> 32
		sc.days = sc.days[:0]
		for ; i < len(sc.keys) && sc.keys[i]>>32 == k; i++ {
			sc.days = appendDay(sc.days, int(int32(sc.keys[i]&0xffffffff)))
		}
		fn(int32(k), sc.days)
	}
}

// itemIndex numbers the items with a replenished interval, for
// CustomerTraits.
type itemIndex struct {
	ids   [2]map[string]int32 // by level
	items []indexedItem
}

type indexedItem struct {
	level uint8
	name  string
	iv    Interval
}

func newItemIndex(pop *Population) *itemIndex {
	x := &itemIndex{ids: [2]map[string]int32{{}, {}}}
	for level, m := range []map[string]Interval{pop.SKUIntervals, pop.CategoryIntervals} {
		names := make([]string, 0, len(m))
		for name, iv := range m {
			if iv.Replenished {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			x.ids[level][name] = int32(len(x.items))
			x.items = append(x.items, indexedItem{uint8(level), name, m[name]})
		}
	}
	return x
}

func (x *itemIndex) id(level uint8, name string) int32 {
	if k, ok := x.ids[level][name]; ok {
		return k
	}
	return -1
}

func appendDay(ds []int, d int) []int {
	if n := len(ds); n > 0 && ds[n-1] == d {
		return ds
	}
	return append(ds, d)
}

// dayNumber is t's calendar day in zone, counted from 1970-01-01.
func dayNumber(t time.Time, zone *time.Location) int {
	y, m, d := t.In(zone).Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func dayDate(n int) string { return time.Unix(int64(n)*86400, 0).UTC().Format(time.DateOnly) }

// gaps appends the gaps between consecutive ascending days to buf.
func gaps(ds []int, buf []float64) []float64 {
	for i := 1; i < len(ds); i++ {
		buf = append(buf, float64(ds[i]-ds[i-1]))
	}
	return buf
}

// median of xs (reordered in place); 0 for none.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	slices.Sort(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// quantile is the q-quantile of xs (reordered in place) by linear
// interpolation between order statistics (type 7, as numpy and R).
func quantile(xs []float64, q float64) float64 {
	slices.Sort(xs)
	h := q * float64(len(xs)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[lo] + (h-float64(lo))*(xs[lo+1]-xs[lo])
}
