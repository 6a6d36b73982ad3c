package identity

import (
	"slices"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// Fold summarises one profile's events, as resolution would have recorded
// them, into a replacing ProfileChange and its consent. The engine uses it
// after an unmerge, when each side is recomputed from its own events.
// Events may come in any order; they are folded by Seq.
func Fold(profileID string, events []kiln.Event) (store.ProfileChange, []store.ConsentChange) {
	evs := slices.Clone(events)
	slices.SortFunc(evs, func(a, b kiln.Event) int { return int(a.Seq - b.Seq) })
	var p pending
	p.init()
	for i := range evs {
		p.delta(0).record(&evs[i])
	}
	d := p.delta(0)
	pc := store.ProfileChange{ID: profileID, Replace: true, FirstSeen: d.first, LastSeen: d.last, EventCount: d.count, At: d.at}
	pc.Traits = make(map[string]any, len(d.traits))
	for k, v := range d.traits {
		pc.Traits[k] = v.v
	}
	var cs []store.ConsentChange
	for _, c := range d.consent {
		cs = append(cs, store.ConsentChange{ProfileID: profileID, Consent: c.c})
	}
	slices.SortFunc(cs, func(a, b store.ConsentChange) int {
		if a.Channel < b.Channel {
			return -1
		}
		if a.Channel > b.Channel {
			return 1
		}
		return 0
	})
	return pc, cs
}
