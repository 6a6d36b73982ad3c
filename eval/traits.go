package eval

import "github.com/kiln-cdp/kiln"

// Absorb folds the profile traits an event carries into pr, as identity
// resolution records them on the stored profile: context.traits, then an
// identify's own traits; a null removes a trait. Keys merge at the top
// level only: a nested object (company) is replaced whole, as the
// tracking API's identify replaces it, so traits.company.name never
// mixes two writes. It reports whether
// anything was set. Conditions on traits see the change on the next Apply
// of an identify, or on ApplyProfile.
func (pr *Profile) Absorb(e *kiln.Event) bool {
	changed := false
	set := func(m map[string]any) {
		for k, v := range m {
			if pr.Traits == nil {
				pr.Traits = map[string]any{}
			}
			if v == nil {
				delete(pr.Traits, k)
			} else {
				pr.Traits[k] = v
			}
			changed = true
		}
	}
	if ct, ok := e.Context["traits"].(map[string]any); ok {
		set(ct)
	}
	if e.Type == kiln.Identify {
		set(e.Traits)
	}
	return changed
}
