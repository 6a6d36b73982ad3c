package identity

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// model is a plain in-memory store implementing the documented semantics
// of store.Resolution (store/store.go), UndoMerge and DeleteProfile. It
// checks the preconditions a real store would trip on and returns them as
// errors instead of silently doing something.
type model struct {
	profiles   map[string]*modelProfile
	identities map[kiln.Identifier]kiln.Identity
	merges     []modelMerge
	checkpoint store.Checkpoint
}

type modelProfile struct {
	id                  string
	created, updated    time.Time
	firstSeen, lastSeen time.Time
	count               int64
	traits              map[string]any
	consent             map[kiln.Channel]kiln.Consent
}

type modelMerge struct {
	kiln.Merge
	snapshot modelProfile // From as it was
	deleted  bool         // with a profile it names
}

func newModel() *model {
	return &model{profiles: map[string]*modelProfile{}, identities: map[kiln.Identifier]kiln.Identity{}}
}

func (p *modelProfile) clone() modelProfile {
	c := *p
	c.traits = maps.Clone(p.traits)
	c.consent = maps.Clone(p.consent)
	return c
}

func (p *modelProfile) seen(first, last time.Time) {
	if !first.IsZero() && (p.firstSeen.IsZero() || first.Before(p.firstSeen)) {
		p.firstSeen = first
	}
	if !last.IsZero() && last.After(p.lastSeen) {
		p.lastSeen = last
	}
}

func (p *modelProfile) setConsent(c kiln.Consent) {
	if old, ok := p.consent[c.Channel]; ok && old.At.After(c.At) {
		return
	}
	if p.consent == nil {
		p.consent = map[kiln.Channel]kiln.Consent{}
	}
	p.consent[c.Channel] = c
}

// apply writes a Resolution: merges in order, then profiles, identities,
// consent and the checkpoint.
func (m *model) apply(r store.Resolution) error {
	for _, mg := range r.Merges {
		from := m.profiles[mg.From]
		if from == nil {
			return fmt.Errorf("merge %s <- %s: From does not exist", mg.Into, mg.From)
		}
		if mg.Into == mg.From {
			return fmt.Errorf("merge %s into itself", mg.From)
		}
		// Every stored identity of From is listed as moving, and every
		// listed identity the store has is on From.
		listed := map[kiln.Identifier]bool{}
		for _, id := range mg.Identities {
			listed[id] = true
			if s, ok := m.identities[id]; ok && s.ProfileID != mg.From {
				return fmt.Errorf("merge %s <- %s lists %s, which is on %s", mg.Into, mg.From, id, s.ProfileID)
			}
		}
		for id, s := range m.identities {
			if s.ProfileID == mg.From && !listed[id] {
				return fmt.Errorf("merge %s <- %s does not list %s", mg.Into, mg.From, id)
			}
		}
		rec := modelMerge{Merge: mg, snapshot: from.clone()}
		rec.ID = int64(len(m.merges) + 1)
		m.merges = append(m.merges, rec)
		if into := m.profiles[mg.Into]; into != nil {
			into.count += from.count
			into.seen(from.firstSeen, from.lastSeen)
			for k, v := range from.traits {
				if _, ok := into.traits[k]; !ok {
					if into.traits == nil {
						into.traits = map[string]any{}
					}
					into.traits[k] = v
				}
			}
			for _, c := range from.consent {
				into.setConsent(c)
			}
		} else {
			from.id = mg.Into
			m.profiles[mg.Into] = from
		}
		delete(m.profiles, mg.From)
		for id, s := range m.identities {
			if s.ProfileID == mg.From {
				s.ProfileID = mg.Into
				m.identities[id] = s
			}
		}
	}
	for _, pc := range r.Profiles {
		p := m.profiles[pc.ID]
		if p == nil {
			p = &modelProfile{id: pc.ID, created: pc.At}
			m.profiles[pc.ID] = p
		}
		if pc.Replace {
			return fmt.Errorf("profile %s: the resolver never replaces", pc.ID)
		}
		p.updated = pc.At
		p.count += pc.EventCount
		p.seen(pc.FirstSeen, pc.LastSeen)
		for k, v := range pc.Traits {
			if v == nil {
				delete(p.traits, k)
				continue
			}
			if p.traits == nil {
				p.traits = map[string]any{}
			}
			p.traits[k] = v
		}
	}
	for _, id := range r.Identities {
		if m.profiles[id.ProfileID] == nil {
			return fmt.Errorf("identity %s: profile %s does not exist", id.Identifier, id.ProfileID)
		}
		if s, ok := m.identities[id.Identifier]; ok {
			s.ProfileID = id.ProfileID
			m.identities[id.Identifier] = s
		} else {
			if id.FirstSeen.IsZero() {
				return fmt.Errorf("identity %s inserted without FirstSeen", id.Identifier)
			}
			m.identities[id.Identifier] = id
		}
	}
	for _, c := range r.Consent {
		p := m.profiles[c.ProfileID]
		if p == nil {
			return fmt.Errorf("consent for missing profile %s", c.ProfileID)
		}
		p.setConsent(c.Consent)
	}
	if r.Checkpoint.Name != "" {
		if r.Checkpoint.Seq < m.checkpoint.Seq {
			return fmt.Errorf("checkpoint went back from %d to %d", m.checkpoint.Seq, r.Checkpoint.Seq)
		}
		m.checkpoint = r.Checkpoint
	}
	return nil
}

// undoMerge is store.UndoMerge: From is recreated from its snapshot and the
// merge's identities move back to it.
func (m *model) undoMerge(id int64) (kiln.Merge, error) {
	if id < 1 || int(id) > len(m.merges) {
		return kiln.Merge{}, fmt.Errorf("no merge %d", id)
	}
	mg := &m.merges[id-1]
	if mg.deleted {
		return kiln.Merge{}, fmt.Errorf("no merge %d: deleted with its profile", id)
	}
	if mg.UndoneAt != nil {
		return kiln.Merge{}, fmt.Errorf("merge %d already undone", id)
	}
	now := time.Unix(0, 0)
	mg.UndoneAt = &now
	snap := mg.snapshot.clone()
	m.profiles[mg.From] = &snap
	for _, ident := range mg.Identities {
		if s, ok := m.identities[ident]; ok {
			s.ProfileID = mg.From
			m.identities[ident] = s
		}
	}
	return mg.Merge, nil
}

// deleteProfile is store.DeleteProfile (without events).
func (m *model) deleteProfile(id string) []kiln.Identity {
	var out []kiln.Identity
	for ident, s := range m.identities {
		if s.ProfileID == id {
			out = append(out, s)
			delete(m.identities, ident)
		}
	}
	delete(m.profiles, id)
	for i := range m.merges {
		if mg := &m.merges[i]; mg.Into == id || mg.From == id {
			mg.deleted = true
		}
	}
	return out
}

// byProfile groups identities by profile.
func (m *model) byProfile() map[string][]kiln.Identifier {
	out := map[string][]kiln.Identifier{}
	for id, s := range m.identities {
		out[s.ProfileID] = append(out[s.ProfileID], id)
	}
	for _, ids := range out {
		slices.SortFunc(ids, func(a, b kiln.Identifier) int { return cmpIdent(a, b) })
	}
	return out
}

func cmpIdent(a, b kiln.Identifier) int {
	if a.Kind != b.Kind {
		return kindRank(a.Kind) - kindRank(b.Kind)
	}
	if a.Value < b.Value {
		return -1
	}
	if a.Value > b.Value {
		return 1
	}
	return 0
}

// checkIndex compares the resolver's index with the model: the same
// identifier -> profile mapping, in both directions.
func checkIndex(r *Resolver, m *model) error {
	for id, s := range m.identities {
		p, ok := r.ProfileOf(id)
		if !ok || p != s.ProfileID {
			return fmt.Errorf("identifier %s: index says %q (%v), store %q", id, p, ok, s.ProfileID)
		}
	}
	for pid, ids := range m.byProfile() {
		got := r.Identities(pid)
		slices.SortFunc(got, cmpIdent)
		if !slices.Equal(got, ids) {
			return fmt.Errorf("profile %s: index has %v, store %v", pid, got, ids)
		}
	}
	st := r.Stats()
	// The counters Stats keeps agree with a walk of the index.
	linked, live := 0, 0
	r.ids.each(func(o ref) {
		if r.profOf(o) != none {
			linked++
		}
	})
	r.profs.each(func(p ref) {
		if !r.prof(p).dead {
			live++
		}
	})
	if linked != st.Identifiers || live != st.Profiles {
		return fmt.Errorf("Stats says %d identifiers on %d profiles, the index holds %d on %d", st.Identifiers, st.Profiles, linked, live)
	}
	// Profiles without identities (undoing merges out of order can leave
	// one in the store) are unreachable, and not in the index.
	withIDs := len(m.byProfile())
	if st.Identifiers != len(m.identities) || st.Profiles != withIDs {
		return fmt.Errorf("index has %d identifiers on %d profiles, store %d on %d", st.Identifiers, st.Profiles, len(m.identities), withIDs)
	}
	return nil
}
