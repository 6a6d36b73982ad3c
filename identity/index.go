package identity

import (
	"github.com/kiln-cdp/kiln"
)

// errPending refuses direct index changes while resolved changes wait for
// Commit: they would be mixed into the pending Resolution, or lost by Abort.
func errPending(op string) error {
	return kiln.Errorf(kiln.EConflict, "identity: %s with uncommitted resolutions: Commit or Abort first", op)
}

// Load adds one stored identity to the index; pass it to
// store.ScanIdentities at start-up. An identifier loaded twice ends on the
// last profile given. It fails for an unknown kind or with changes pending.
func (r *Resolver) Load(id kiln.Identity) error {
	if r.HasPending() {
		return errPending("Load")
	}
	k := kindRank(id.Kind)
	if k >= numKinds || id.Value == "" || id.ProfileID == "" {
		return kiln.Errorf(kiln.EInvalid, "identity: load %q of profile %q: not a valid identity", id.String(), id.ProfileID)
	}
	p := r.profile(id.ProfileID)
	n := r.ids.Find(byte(k), id.Value)
	if n < 0 {
		n = r.ids.Add(byte(k), id.Value)
		r.irec = append(r.irec, identRec{prof: none, next: none})
	}
	if old := r.irec[n].prof; old == p {
		return nil
	} else if old != none {
		r.unlink(uint32(n))
		r.recount(old)
	}
	first := secs(id.FirstSeen)
	pr := &r.prec[p]
	r.irec[n] = identRec{prof: p, next: pr.head, first: first}
	pr.head = uint32(n)
	pr.first = min(pr.first, first)
	pr.dead = false
	if pr.n[k] < ^uint16(0) {
		pr.n[k]++
	}
	r.cIDs, r.cProfs = len(r.irec), len(r.prec)
	return nil
}

// profile returns the number of the profile with this id, adding it.
func (r *Resolver) profile(id string) uint32 {
	if p := r.profs.Find(0, id); p >= 0 {
		return uint32(p)
	}
	p := uint32(r.profs.Add(0, id))
	r.prec = append(r.prec, profRec{head: none, first: none, dead: true})
	return p
}

// unlink takes identifier n out of its profile's list (not the counts).
func (r *Resolver) unlink(n uint32) {
	rec := &r.irec[n]
	pr := &r.prec[rec.prof]
	if pr.head == n {
		pr.head = rec.next
	} else {
		for m := pr.head; m != none; m = r.irec[m].next {
			if r.irec[m].next == n {
				r.irec[m].next = rec.next
				break
			}
		}
	}
	rec.prof, rec.next = none, none
}

// recount recomputes a profile's counts and age from its identifiers.
func (r *Resolver) recount(p uint32) {
	pr := &r.prec[p]
	pr.n = [numKinds]uint16{}
	pr.first = none
	for n := pr.head; n != none; n = r.irec[n].next {
		tag, _ := r.ids.key(int(n))
		if pr.n[tag] < ^uint16(0) {
			pr.n[tag]++
		}
		pr.first = min(pr.first, r.irec[n].first)
	}
	pr.dead = pr.head == none
}

// Unmerge applies an undone merge to the index: the merge's identities move
// back to its From profile, as store.UndoMerge did in the store (pass the
// merge it returned). Identities the index does not have are added. It
// fails with changes pending.
func (r *Resolver) Unmerge(m kiln.Merge) error {
	if r.HasPending() {
		return errPending("Unmerge")
	}
	if m.From == "" {
		return kiln.Errorf(kiln.EInvalid, "identity: unmerge of merge %d: no From profile", m.ID)
	}
	from := r.profile(m.From)
	touched := map[uint32]bool{from: true}
	for _, id := range m.Identities {
		k := kindRank(id.Kind)
		if k >= numKinds {
			return kiln.Errorf(kiln.EInvalid, "identity: unmerge of merge %d: unknown identifier kind %q", m.ID, id.Kind)
		}
		n := r.ids.Find(byte(k), id.Value)
		if n < 0 {
			n = r.ids.Add(byte(k), id.Value)
			r.irec = append(r.irec, identRec{prof: none, next: none})
		}
		if old := r.irec[n].prof; old != none {
			if old == from {
				continue
			}
			r.unlink(uint32(n))
			touched[old] = true
		}
		r.irec[n].prof, r.irec[n].next = from, r.prec[from].head
		r.prec[from].head = uint32(n)
	}
	for p := range touched {
		r.recount(p)
	}
	r.cIDs, r.cProfs = len(r.irec), len(r.prec)
	return nil
}

// Forget removes identities from the index, as store.DeleteProfile did
// (pass the identities it returned). A forgotten identifier seen again is
// unknown (if not suppressed). It fails with changes pending.
func (r *Resolver) Forget(ids []kiln.Identity) error {
	if r.HasPending() {
		return errPending("Forget")
	}
	touched := map[uint32]bool{}
	for _, id := range ids {
		k := kindRank(id.Kind)
		if k >= numKinds {
			continue
		}
		n := r.ids.Find(byte(k), id.Value)
		if n < 0 || r.irec[n].prof == none {
			continue
		}
		touched[r.irec[n].prof] = true
		r.unlink(uint32(n))
	}
	for p := range touched {
		r.recount(p)
	}
	return nil
}

// ProfileOf returns the profile an identifier belongs to in the index
// (committed or pending), and whether it has one.
func (r *Resolver) ProfileOf(id kiln.Identifier) (string, bool) {
	k := kindRank(id.Kind)
	if k >= numKinds {
		return "", false
	}
	n := r.ids.Find(byte(k), id.Value)
	if n < 0 || r.irec[n].prof == none {
		return "", false
	}
	return r.profileID(r.irec[n].prof), true
}

// Identities returns the identifiers the index holds for a profile.
func (r *Resolver) Identities(profileID string) []kiln.Identifier {
	p := r.profs.Find(0, profileID)
	if p < 0 {
		return nil
	}
	var out []kiln.Identifier
	for n := r.prec[p].head; n != none; n = r.irec[n].next {
		out = append(out, r.identifier(n))
	}
	return out
}

// Stats describes the index's size.
type Stats struct {
	Identifiers int // linked identifiers
	Profiles    int // live profiles
	Bytes       int // memory held by the index (tables and records)
}

// Stats counts the index; it walks every record, so call it for reports,
// not per event.
func (r *Resolver) Stats() Stats {
	s := Stats{Bytes: r.ids.Bytes() + r.profs.Bytes() + cap(r.irec)*12 + cap(r.prec)*20}
	for _, rec := range r.irec {
		if rec.prof != none {
			s.Identifiers++
		}
	}
	for _, pr := range r.prec {
		if !pr.dead {
			s.Profiles++
		}
	}
	return s
}
