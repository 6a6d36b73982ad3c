package store

import (
	"time"

	"github.com/kiln-cdp/kiln"
)

// The profile arithmetic every backend applies in the same way, kept here
// so the backends cannot drift apart.

// Change applies a ProfileChange's deltas (or replacement values) to p.
func (pc ProfileChange) Change(p *kiln.Profile) {
	if pc.Replace {
		p.FirstSeen, p.LastSeen, p.EventCount = pc.FirstSeen, pc.LastSeen, pc.EventCount
		p.Traits = nil
	} else {
		p.FirstSeen = MinTime(p.FirstSeen, pc.FirstSeen)
		p.LastSeen = MaxTime(p.LastSeen, pc.LastSeen)
		p.EventCount += pc.EventCount
	}
	for k, v := range pc.Traits {
		if v == nil {
			delete(p.Traits, k)
			continue
		}
		if p.Traits == nil {
			p.Traits = map[string]any{}
		}
		p.Traits[k] = v
	}
	if !pc.At.IsZero() {
		p.UpdatedAt = pc.At
	}
}

// FoldProfile adds from to into, as a merge does: counts add up, seen times
// widen, into's traits win over from's.
func FoldProfile(into, from *kiln.Profile, at time.Time) {
	into.EventCount += from.EventCount
	into.FirstSeen = MinTime(into.FirstSeen, from.FirstSeen)
	into.LastSeen = MaxTime(into.LastSeen, from.LastSeen)
	into.CreatedAt = MinTime(into.CreatedAt, from.CreatedAt)
	into.UpdatedAt = MaxTime(into.UpdatedAt, at)
	for k, v := range from.Traits {
		if _, ok := into.Traits[k]; !ok {
			if into.Traits == nil {
				into.Traits = map[string]any{}
			}
			into.Traits[k] = v
		}
	}
}

// MinTime is the earlier of a and b, ignoring zero times.
func MinTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// MaxTime is the later of a and b.
func MaxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
