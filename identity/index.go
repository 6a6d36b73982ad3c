package identity

import (
	"cmp"
	"slices"
	"strings"

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
	n := r.identEntry(k, id.Value)
	if old := r.profOf(n); old == p {
		return nil
	} else if old != none {
		r.unlink(n)
		r.recount(old)
	}
	r.link(n, p, secs(id.FirstSeen))
	r.committed()
	return nil
}

// identEntry returns the entry of an identifier, adding it unlinked.
func (r *Resolver) identEntry(k int, v string) ref {
	n := r.ids.Find(byte(k), v)
	if n == none {
		n = r.ids.Add(byte(k), v)
		r.putIdent(n, identRec{prof: none, next: none})
	}
	return n
}

// profile returns the entry of the profile with this id, adding it.
func (r *Resolver) profile(id string) ref {
	if p := r.profs.Find(0, id); p != none {
		return p
	}
	p := r.profs.Add(0, id)
	r.putProf(p, profRec{head: none, first: none, dead: true})
	return p
}

// link puts unlinked identifier n on profile p, unjournaled (committed
// state only: Load, Unmerge).
func (r *Resolver) link(n, p ref, first uint32) {
	pr := r.prof(p)
	r.putIdent(n, identRec{prof: p, next: pr.head, first: first})
	pr.head = n
	pr.first = min(pr.first, first)
	if pr.dead {
		pr.dead = false
		r.live++
	}
	r.linked++
	if tag := r.ids.Tag(n); pr.n[tag] < ^uint16(0) {
		pr.n[tag]++
	}
	r.putProf(p, pr)
}

// unlink takes identifier n out of its profile's list (not the counts).
func (r *Resolver) unlink(n ref) {
	rec := r.ident(n)
	pr := r.prof(rec.prof)
	if pr.head == n {
		pr.head = rec.next
		r.putProf(rec.prof, pr)
	} else {
		for m := pr.head; m != none; {
			mr := r.ident(m)
			if mr.next == n {
				mr.next = rec.next
				r.putIdent(m, mr)
				break
			}
			m = mr.next
		}
	}
	rec.prof, rec.next = none, none
	r.putIdent(n, rec)
	r.linked--
}

// recount recomputes a profile's counts and age from its identifiers.
func (r *Resolver) recount(p ref) {
	pr := r.prof(p)
	pr.n = [numKinds]uint16{}
	pr.first = none
	for n := pr.head; n != none; {
		rec := r.ident(n)
		if tag := r.ids.Tag(n); pr.n[tag] < ^uint16(0) {
			pr.n[tag]++
		}
		pr.first = min(pr.first, rec.first)
		n = rec.next
	}
	if dead := pr.head == none; dead != pr.dead {
		pr.dead = dead
		if dead {
			r.live--
		} else {
			r.live++
		}
	}
	r.putProf(p, pr)
}

// Unmerge applies an undone merge to the index: the merge's identities move
// back to its From profile, as store.UndoMerge did in the store (pass the
// merge it returned). Identities deleted since (not in the index) stay
// deleted. It fails with changes pending.
func (r *Resolver) Unmerge(m kiln.Merge) error {
	if r.HasPending() {
		return errPending("Unmerge")
	}
	if m.From == "" {
		return kiln.Errorf(kiln.EInvalid, "identity: unmerge of merge %d: no From profile", m.ID)
	}
	for _, id := range m.Identities {
		if kindRank(id.Kind) >= numKinds {
			return kiln.Errorf(kiln.EInvalid, "identity: unmerge of merge %d: unknown identifier kind %q", m.ID, id.Kind)
		}
	}
	from := r.profile(m.From)
	touched := map[ref]bool{}
	for _, id := range m.Identities {
		n := r.ids.Find(byte(kindRank(id.Kind)), id.Value)
		old := r.profOf(n)
		if old == none || old == from {
			continue
		}
		first := r.ident(n).first
		r.unlink(n)
		touched[old] = true
		r.link(n, from, first)
	}
	for p := range touched {
		r.recount(p)
	}
	r.recount(from)
	r.committed()
	return nil
}

// Forget removes identities from the index, as store.DeleteProfile did
// (pass the identities it returned). A forgotten identifier seen again is
// unknown (if not suppressed). It fails with changes pending.
func (r *Resolver) Forget(ids []kiln.Identity) error {
	if r.HasPending() {
		return errPending("Forget")
	}
	touched := map[ref]bool{}
	for _, id := range ids {
		k := kindRank(id.Kind)
		if k >= numKinds {
			continue
		}
		n := r.ids.Find(byte(k), id.Value)
		if p := r.profOf(n); p != none {
			touched[p] = true
			r.unlink(n)
		}
	}
	for p := range touched {
		r.recount(p)
	}
	r.committed()
	return nil
}

// ProfileOf returns the profile an identifier belongs to in the index
// (committed or pending), and whether it has one.
func (r *Resolver) ProfileOf(id kiln.Identifier) (string, bool) {
	k := kindRank(id.Kind)
	if k >= numKinds {
		return "", false
	}
	p := r.profOf(r.ids.Find(byte(k), id.Value))
	if p == none {
		return "", false
	}
	return r.profileID(p), true
}

// Identities returns the identifiers the index holds for a profile,
// strongest kind first.
func (r *Resolver) Identities(profileID string) []kiln.Identifier {
	p := r.profs.Find(0, profileID)
	if p == none {
		return nil
	}
	var out []kiln.Identifier
	for n := r.prof(p).head; n != none; n = r.ident(n).next {
		out = append(out, r.identifier(n))
	}
	slices.SortFunc(out, func(a, b kiln.Identifier) int {
		if c := cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// Stats describes the index's size.
type Stats struct {
	Identifiers int // linked identifiers
	Profiles    int // live profiles
	Bytes       int // memory held by the index
}

// Stats describes the index; it is cheap enough to call after every batch.
func (r *Resolver) Stats() Stats {
	return Stats{Identifiers: r.linked, Profiles: r.live, Bytes: r.ids.Bytes() + r.profs.Bytes()}
}
