package intel_test

import (
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/intel"
)

// Customer traits from events: one guest's visits, learned against a
// population (here just the guest), as of a day three weeks after the
// last visit.
func ExampleCustomerTraits() {
	var evs []*kiln.Event
	start := time.Date(2025, 3, 7, 19, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		evs = append(evs, &kiln.Event{Type: kiln.Track, Name: kiln.VisitCompleted, Timestamp: start.AddDate(0, 0, 7*i),
			Properties: map[string]any{"location": "Glendale", "party_size": 2.0, "spend": 61.5, "dishes": []any{
				map[string]any{"sku": "m-lule", "name": "Lule Kebab", "category": "grill", "price": 23.0, "quantity": 2.0},
			}}})
	}
	h := intel.FromEvents("guest-1", evs)
	asOf := start.AddDate(0, 0, 7*5+21)
	pop := intel.LearnPopulation([]intel.CustomerHistory{h}, asOf)
	tr := intel.CustomerTraits(h, pop, asOf)
	for _, k := range []string{intel.TraitVisits, intel.TraitVisitInterval, intel.TraitLapseRatio, intel.TraitLapsed,
		intel.TraitFavouriteDish, intel.TraitFavouriteDishCount, intel.TraitHomeLocation} {
		fmt.Printf("%s: %v\n", k, tr[k])
	}
	// Output:
	// visits: 6
	// visit_interval_days: 7
	// lapse_ratio: 3
	// lapsed: true
	// favourite_dish: Lule Kebab
	// favourite_dish_count: 6
	// usual_location: Glendale
}
