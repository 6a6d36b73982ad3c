package identity

import (
	"slices"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// pending is the change set since the last Commit.
type pending struct {
	events  int
	lastSeq int64
	merges  []kiln.Merge
	deltas  map[ref]*delta // by live profile
	porder  []ref          // profiles in the order their delta was made
	idents  map[ref]identNote
	iorder  []ref
	created map[ref]bool // profiles made in this batch
	// exists overrides "exists in the store" for profiles whose existence
	// changes while the store applies this batch's merges (renamed, folded).
	exists map[ref]bool
}

type delta struct {
	id          string // the profile's id, once known
	first, last time.Time
	count       int64
	at          time.Time
	traits      map[string]traitVal
	consent     map[kiln.Channel]consentVal
}

type traitVal struct {
	v   any
	seq int64
}

type consentVal struct {
	c   kiln.Consent
	seq int64
}

type identNote struct {
	isNew  bool
	source string
	first  time.Time
}

func (p *pending) init() {
	*p = pending{
		deltas:  map[ref]*delta{},
		idents:  map[ref]identNote{},
		created: map[ref]bool{},
		exists:  map[ref]bool{},
		merges:  p.merges[:0],
		porder:  p.porder[:0],
		iorder:  p.iorder[:0],
	}
}

func (p *pending) touch(n ref, isNew bool, source string, first time.Time) {
	if _, ok := p.idents[n]; ok {
		return // a new identifier stays new (with its source) when it moves
	}
	p.idents[n] = identNote{isNew: isNew, source: source, first: first}
	p.iorder = append(p.iorder, n)
}

func (p *pending) delta(prof ref) *delta {
	d := p.deltas[prof]
	if d == nil {
		d = &delta{}
		p.deltas[prof] = d
		p.porder = append(p.porder, prof)
	}
	return d
}

// storeHas reports whether profile prof exists in the store at this point
// of applying the pending merges.
func (p *pending) storeHas(prof ref) bool {
	if v, ok := p.exists[prof]; ok {
		return v
	}
	return !p.created[prof]
}

// merge records a merge made in the index. The store can only fold a From
// it has: a From made in this batch is folded here, in the deltas, and no
// merge is recorded. An Into the store does not have yet is fine: the
// store renames From to it.
func (p *pending) merge(into, from ref, m kiln.Merge) {
	if p.storeHas(from) {
		p.merges = append(p.merges, m)
		p.exists[into] = true
		p.exists[from] = false
	}
	df := p.deltas[from]
	if df == nil {
		return
	}
	delete(p.deltas, from)
	p.delta(into).fold(df)
}

// fold adds o's changes to d: counts add, seen times widen, the later event
// wins per trait key and the newer consent per channel.
func (d *delta) fold(o *delta) {
	d.count += o.count
	d.seen(o.first)
	d.seen(o.last)
	if o.at.After(d.at) {
		d.at = o.at
	}
	for k, v := range o.traits {
		d.setTrait(k, v.v, v.seq)
	}
	for _, c := range o.consent {
		d.setConsent(c.c, c.seq)
	}
}

func (d *delta) seen(t time.Time) {
	if t.IsZero() {
		return
	}
	if d.first.IsZero() || t.Before(d.first) {
		d.first = t
	}
	if t.After(d.last) {
		d.last = t
	}
}

func (d *delta) setTrait(k string, v any, seq int64) {
	if d.traits == nil {
		d.traits = map[string]traitVal{}
	}
	if old, ok := d.traits[k]; ok && old.seq > seq {
		return
	}
	d.traits[k] = traitVal{v: v, seq: seq}
}

// setConsent keeps the newest consent per channel; at the same time the
// later event wins, as the store does when it applies changes in order.
func (d *delta) setConsent(c kiln.Consent, seq int64) {
	if d.consent == nil {
		d.consent = map[kiln.Channel]consentVal{}
	}
	if old, ok := d.consent[c.Channel]; ok && (old.c.At.After(c.At) || old.c.At.Equal(c.At) && old.seq > seq) {
		return
	}
	d.consent[c.Channel] = consentVal{c: c, seq: seq}
}

// record counts event e, with its traits and consent.
func (d *delta) record(e *kiln.Event) {
	d.count++
	d.seen(eventTime(e))
	if e.ReceivedAt.After(d.at) {
		d.at = e.ReceivedAt
	}
	ctxTraits, _ := e.Context["traits"].(map[string]any)
	for k, v := range ctxTraits {
		d.setTrait(k, v, e.Seq)
	}
	if e.Type == kiln.Identify {
		for k, v := range e.Traits { // over context.traits: the call's own say
			d.setTrait(k, v, e.Seq)
		}
	}
	consentOf(e, func(c kiln.Consent) { d.setConsent(c, e.Seq) })
}

// Pending returns the changes since the last Commit as a store.Resolution:
// merges in the order made (each From existing in the store when the store
// reaches it), one ProfileChange per live profile the batch touched, the
// final profile of every identifier that is new or moved, consent per
// profile and channel, and the checkpoint (if Config.Checkpoint is set).
// It does not change the resolver; call Commit after persisting it.
func (r *Resolver) Pending() store.Resolution {
	p := &r.p
	var res store.Resolution
	res.Merges = slices.Clone(p.merges)
	res.Profiles = make([]store.ProfileChange, 0, len(p.deltas))
	res.Identities = make([]kiln.Identity, 0, len(p.iorder))
	for _, prof := range p.porder {
		d := p.deltas[prof]
		if d == nil || r.prof(prof).dead {
			continue
		}
		id := r.profileID(prof)
		pc := store.ProfileChange{ID: id, FirstSeen: d.first, LastSeen: d.last, EventCount: d.count, At: d.at}
		if len(d.traits) > 0 {
			pc.Traits = make(map[string]any, len(d.traits))
			for k, v := range d.traits {
				pc.Traits[k] = v.v
			}
		}
		res.Profiles = append(res.Profiles, pc)
		chans := make([]kiln.Channel, 0, len(d.consent))
		for ch := range d.consent {
			chans = append(chans, ch)
		}
		slices.Sort(chans)
		for _, ch := range chans {
			res.Consent = append(res.Consent, store.ConsentChange{ProfileID: id, Consent: d.consent[ch].c})
		}
	}
	for _, n := range p.iorder {
		note := p.idents[n]
		idn := kiln.Identity{Identifier: r.identifier(n), ProfileID: r.profileID(r.profOf(n))}
		if note.isNew {
			idn.SourceID, idn.FirstSeen = note.source, note.first
		}
		res.Identities = append(res.Identities, idn)
	}
	if r.checkpoint != "" && p.events > 0 {
		res.Checkpoint = store.Checkpoint{Name: r.checkpoint, Seq: p.lastSeq}
	}
	return res
}

// Commit makes the pending changes the resolver's committed state. Call it
// after the Resolution from Pending was persisted.
func (r *Resolver) Commit() {
	r.committed()
	r.journal = r.journal[:0]
	r.p.init()
}

// Abort undoes everything since the last Commit: the index is as it was
// then, and the same events can be resolved again. Call it when persisting
// Pending failed.
func (r *Resolver) Abort() {
	for i := len(r.journal) - 1; i >= 0; i-- {
		u := r.journal[i]
		if u.prof {
			r.putProf(u.o, u.p)
		} else {
			r.putIdent(u.o, u.i)
		}
	}
	r.journal = r.journal[:0]
	r.ids.Truncate(r.cIDs)
	r.profs.Truncate(r.cProfs)
	r.linked, r.live = r.cLinked, r.cLive
	r.p.init()
}

// committed makes the current index state the commit point.
func (r *Resolver) committed() {
	r.cIDs, r.cProfs = r.ids.Mark(), r.profs.Mark()
	r.cLinked, r.cLive = r.linked, r.live
}

// HasPending reports whether anything was resolved since the last Commit.
func (r *Resolver) HasPending() bool { return r.p.events > 0 }
