package intel

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// restaurantTraits sets the restaurant traits from visits and restaurant
// orders, ratings, RSVPs and milestones up to asOf.
func restaurantTraits(out map[string]any, h *CustomerHistory, ps []Purchase, pop *Population, o TraitOptions, asOf time.Time, sc *scratch) {
	var rest []*Purchase
	var visitDays []int
	var firstVisit, lastVisit time.Time
	visits, party, partyN := 0, 0.0, 0
	var locVisits map[string]int
	for i := range ps {
		p := &ps[i]
		if !p.Restaurant() {
			continue
		}
		rest = append(rest, p)
		if !p.Visit {
			continue
		}
		if visits == 0 {
			firstVisit = p.Time
		}
		lastVisit = p.Time
		visits++
		visitDays = appendDay(visitDays, dayNumber(p.Time, o.Zone))
		if p.PartySize > 0 {
			party += float64(p.PartySize)
			partyN++
		}
		if p.Location != "" {
			if locVisits == nil {
				locVisits = map[string]int{}
			}
			locVisits[p.Location]++
		}
	}
	if len(rest) == 0 && len(h.Ratings) == 0 && len(h.RSVPs) == 0 && len(h.Milestones) == 0 && h.Traits["home_location"] == nil {
		return // not a restaurant guest
	}

	if visits > 0 {
		out[TraitVisits] = float64(visits)
		span := lastVisit.Sub(firstVisit).Hours() / 24
		out[TraitVisitFrequency] = 30 * float64(visits) / math.Max(30, span)
		since := math.Max(0, asOf.Sub(lastVisit).Hours()/24)
		out[TraitDaysSinceVisit] = math.Floor(since)
		if len(visitDays) >= o.MinBaselineVisits {
			sc.gaps = gaps(visitDays, sc.gaps[:0])
			base := median(sc.gaps)
			ratio := since / base
			out[TraitVisitInterval] = base
			out[TraitLapseRatio] = ratio
			out[TraitLapsed] = ratio > o.LapseRatio
		}
		if partyN > 0 {
			out[TraitAvgPartySize] = party / float64(partyN)
		}
	}

	// Home location: most visited; ties to the declared home, else the
	// most recent of them; no visits: the declared home.
	declared := str(h.Traits["home_location"])
	if len(locVisits) > 0 {
		most := 0
		for _, n := range locVisits {
			most = max(most, n)
		}
		home := ""
		if locVisits[declared] == most {
			home = declared
		} else {
			for i := len(rest) - 1; i >= 0 && home == ""; i-- {
				if l := rest[i].Location; rest[i].Visit && locVisits[l] == most {
					home = l
				}
			}
		}
		out[TraitHomeLocation] = home
	} else if declared != "" {
		out[TraitHomeLocation] = declared
	}

	// Dishes: on how many visits and orders each was, staples aside.
	if len(rest) > 0 {
		dishOn, cuisineOn := map[string]int{}, map[string]int{}
		names := map[string]string{}
		seasonalQty, allQty, seasonalN := 0.0, 0.0, 0
		seen, seenC := map[string]bool{}, map[string]bool{}
		for _, p := range rest {
			clear(seen)
			clear(seenC)
			for _, l := range p.Lines {
				if l.Quantity <= 0 {
					continue
				}
				allQty += l.Quantity
				if l.Season != "" || hasKey(pop.SeasonalDishes, l.SKU) {
					seasonalQty += l.Quantity
					seasonalN++
				}
				if !seen[l.SKU] {
					seen[l.SKU] = true
					dishOn[l.SKU]++
					if names[l.SKU] == "" {
						names[l.SKU] = l.Name
					}
				}
				if l.Category != "" && !seenC[l.Category] {
					seenC[l.Category] = true
					cuisineOn[l.Category]++
				}
			}
		}
		if allQty > 0 {
			out[TraitSeasonalDishShare] = seasonalQty / allQty
			out[TraitSeasonalDishes] = float64(seasonalN)
		}
		type kv struct {
			k string
			n int
		}
		rank := func(m map[string]int, staple map[string]float64) []kv {
			var all, kept []kv
			for k, n := range m {
				all = append(all, kv{k, n})
				if _, s := staple[k]; !s {
					kept = append(kept, kv{k, n})
				}
			}
			if len(kept) == 0 {
				kept = all
			}
			slices.SortFunc(kept, func(a, b kv) int {
				if a.n != b.n {
					return b.n - a.n
				}
				return strings.Compare(a.k, b.k)
			})
			return kept
		}
		if ds := rank(dishOn, pop.StapleDishes); len(ds) > 0 {
			name := func(sku string) string {
				if n := names[sku]; n != "" {
					return n
				}
				return sku
			}
			out[TraitFavouriteDish] = name(ds[0].k)
			out[TraitFavouriteDishCount] = float64(ds[0].n)
			var top3 []string
			for _, d := range ds[:min(3, len(ds))] {
				top3 = append(top3, fmt.Sprintf("%s (%d)", name(d.k), d.n))
			}
			out[TraitFavouriteDishes] = strings.Join(top3, ", ")
		}
		if cs := rank(cuisineOn, pop.StapleCourses); len(cs) > 0 {
			out[TraitFavouriteCuisine] = cs[0].k
			out[TraitFavouriteCuisineN] = float64(cs[0].n)
		}
	}

	// Events and loyalty.
	rsvps := 0
	for _, t := range h.RSVPs {
		if !t.After(asOf) {
			rsvps++
		}
	}
	if rsvps > 0 || len(rest) > 0 {
		out[TraitEventRSVPs] = float64(rsvps)
	}
	ms := 0
	for _, m := range h.Milestones {
		if !m.Time.After(asOf) {
			out[TraitLoyaltyMilestone] = m.Name
			ms++
		}
	}
	if ms > 0 {
		out[TraitLoyaltyMilestones] = float64(ms)
	}

	// Ratings: average, least-squares slope per year, later half minus
	// earlier half.
	var rs []Rating
	for _, r := range h.Ratings {
		if !r.Time.After(asOf) {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return
	}
	slices.SortStableFunc(rs, func(a, b Rating) int { return a.Time.Compare(b.Time) })
	sum := 0.0
	for _, r := range rs {
		sum += r.Value
	}
	out[TraitRatingAvg] = sum / float64(len(rs))
	out[TraitRatingCount] = float64(len(rs))
	if len(rs) < o.MinRatings {
		return
	}
	const year = 365.25 * 24
	t0 := rs[0].Time
	var mx, my float64
	for _, r := range rs {
		mx += r.Time.Sub(t0).Hours() / year
		my += r.Value
	}
	n := float64(len(rs))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for _, r := range rs {
		dx := r.Time.Sub(t0).Hours()/year - mx
		sxy += dx * (r.Value - my)
		sxx += dx * dx
	}
	// Ratings within a month of each other carry no trend over time.
	if rs[len(rs)-1].Time.Sub(t0) >= 30*24*time.Hour && sxx > 0 {
		out[TraitRatingTrend] = sxy / sxx
	}
	half := len(rs) / 2
	var early, late float64
	for i, r := range rs {
		if i < half {
			early += r.Value
		} else if i >= len(rs)-half {
			late += r.Value
		}
	}
	out[TraitRatingChange] = (late - early) / float64(half)
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}
