package identity

import (
	"encoding/binary"
	"time"

	"github.com/kiln-cdp/kiln"
)

// DefaultMaxPerKind is the runaway-merge limit used when Config.MaxPerKind
// is nil: no profile gets more identifiers of a kind than this by resolution.
var DefaultMaxPerKind = map[kiln.IdentifierKind]int{
	kiln.UserID:      3,
	kiln.Email:       5,
	kiln.Phone:       5,
	kiln.Loyalty:     3,
	kiln.AnonymousID: 100,
}

// Merge rules recorded in kiln.Merge.Rule.
const (
	RuleSharedEvent = "shared-event" // one event carried identifiers of both profiles
	RuleAlias       = "alias"        // an alias call said previousId and userId are one person
)

// Refusal reasons.
const (
	// ReasonLimit: the link would give a profile more identifiers of
	// Refusal.Kind than Config.MaxPerKind allows.
	ReasonLimit = "limit"
	// ReasonUserID: both sides have a user id and user ids are
	// authoritative (Config.MergeUserIDs is false).
	ReasonUserID = "user_id"
)

// Config configures a Resolver. The zero Config is usable.
type Config struct {
	// Rules are the identifier rules; give ingest the same ones (see
	// Resolver.Extractor) so event anchors never name a blocked identifier.
	Rules
	// MaxPerKind is the runaway-merge limit per profile and kind. nil
	// means DefaultMaxPerKind; a kind missing from a non-nil map, or with a
	// limit <= 0, is unlimited.
	MaxPerKind map[kiln.IdentifierKind]int
	// MergeUserIDs lets a shared event merge two profiles that both have a
	// user id. By default (false) user ids are authoritative, as in most
	// CDPs: two different user ids are two people unless an alias call says
	// otherwise, so a shared email or device does not join two accounts.
	MergeUserIDs bool
	// Suppressed reports identifiers on the suppression list (deleted
	// customers). An unknown suppressed identifier is never linked; an event
	// whose anchor is suppressed is dropped (Outcome.Status Suppressed).
	Suppressed func(kiln.Identifier) bool
	// NewID makes profile ids; default kiln.NewID("p_").
	NewID func() string
	// NewIDFor, if set, makes the id of the profile an event creates
	// instead (tests that compare runs want ids that do not depend on
	// chance).
	NewIDFor func(e *kiln.Event) string
	// Checkpoint, if set, names the checkpoint Pending sets to the Seq of
	// the last event resolved, so the caller persists it atomically.
	Checkpoint string
}

// Status says what became of an event.
type Status uint8

const (
	// Resolved: the event belongs to Outcome.ProfileID.
	Resolved Status = iota
	// Unresolvable: the event has no usable identifier (all were blocked or
	// did not normalise), or its anchor is blocked. It belongs to no
	// profile, links nothing and counts nowhere.
	Unresolvable
	// Suppressed: the event's anchor is suppressed (a deleted customer).
	// Nothing was linked or created; the caller should skip the event.
	Suppressed
)

func (s Status) String() string {
	switch s {
	case Resolved:
		return "resolved"
	case Unresolvable:
		return "unresolvable"
	case Suppressed:
		return "suppressed"
	}
	return "unknown"
}

// Outcome is what Resolve decided for one event.
type Outcome struct {
	Status    Status
	ProfileID string          // the profile the event belongs to ("" unless Resolved)
	Anchor    kiln.Identifier // the identifier the event belongs through
	Created   bool            // ProfileID was created by this event
	// Linked are identifiers this event attached to ProfileID for the first time.
	Linked []kiln.Identifier
	// Merges this event caused, in order (ID 0). Merges of a profile created
	// earlier in the same pending batch appear here but not in Pending: the
	// store never saw that profile.
	Merges []kiln.Merge
	// Refused are links the rules did not make; log and count them.
	Refused []Refusal
}

// Refusal is a link the resolver declined to make.
type Refusal struct {
	Identifier kiln.Identifier // the identifier left unlinked or on its profile
	ProfileID  string          // the profile it stays on, "" if it stays unlinked
	Into       string          // the profile it was not linked to
	Reason     string          // ReasonLimit or ReasonUserID
	Kind       kiln.IdentifierKind
}

// identRec is an identifier's record in the index (see table).
type identRec struct {
	prof  ref    // its profile, none if unlinked (forgotten)
	next  ref    // next identifier of the same profile, none at the end
	first uint32 // first seen, Unix seconds (profile age)
}

const identRecSize = 12

// profRec is a profile's record in the index.
type profRec struct {
	head  ref              // first identifier, none if empty
	first uint32           // earliest identifier first-seen, Unix seconds
	n     [numKinds]uint16 // identifiers per kind (saturating)
	dead  bool             // merged away or deleted
}

const profRecSize = 20

var le = binary.LittleEndian

func (r *Resolver) ident(o ref) identRec {
	b := r.ids.rec(o)
	return identRec{prof: le.Uint32(b), next: le.Uint32(b[4:]), first: le.Uint32(b[8:])}
}

func (r *Resolver) putIdent(o ref, rec identRec) {
	b := r.ids.rec(o)
	le.PutUint32(b, rec.prof)
	le.PutUint32(b[4:], rec.next)
	le.PutUint32(b[8:], rec.first)
}

func (r *Resolver) prof(p ref) profRec {
	b := r.profs.rec(p)
	rec := profRec{head: le.Uint32(b), first: le.Uint32(b[4:]), dead: b[18] != 0}
	for k := range rec.n {
		rec.n[k] = le.Uint16(b[8+2*k:])
	}
	return rec
}

func (r *Resolver) putProf(p ref, rec profRec) {
	b := r.profs.rec(p)
	le.PutUint32(b, rec.head)
	le.PutUint32(b[4:], rec.first)
	for k, n := range rec.n {
		le.PutUint16(b[8+2*k:], n)
	}
	b[18] = 0
	if rec.dead {
		b[18] = 1
	}
}

const numKinds = 5

// Resolver is the in-memory identity index and the resolution rules. It is
// not safe for concurrent use: one processor owns it and feeds it events in
// Seq order.
//
// State machine: Resolve adds to a pending change set; Pending returns it as
// a store.Resolution; after the caller persisted it, Commit; if the write
// failed, Abort puts the index back as it was at the last Commit (the same
// events can then be resolved again). Load, Unmerge and Forget change the
// committed state directly and are refused while changes are pending.
type Resolver struct {
	x            *Extractor
	limits       [numKinds]int
	mergeUserIDs bool
	suppressed   func(kiln.Identifier) bool
	newID        func() string
	newIDFor     func(e *kiln.Event) string
	checkpoint   string

	ids   *table // key: kind rank, value; record: identRec
	profs *table // key: 0, profile id; record: profRec

	// Commit point: entries before these marks existed at the last
	// Commit; changes to them are journaled for Abort.
	cIDs, cProfs mark

	// Linked identifiers and live profiles, now and at the last Commit.
	linked, live   int
	cLinked, cLive int
	journal        []undo
	p              pending

	buf   []kiln.Identifier
	cands []cand
}

type undo struct {
	prof bool
	o    ref
	i    identRec
	p    profRec
}

type cand struct {
	id kiln.Identifier
	o  ref // its index entry, none if not in the index
}

// New makes a Resolver. It fails on invalid Rules or a MaxPerKind entry
// for an unknown kind.
func New(cfg Config) (*Resolver, error) {
	x, err := NewExtractor(cfg.Rules)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		x:            x,
		mergeUserIDs: cfg.MergeUserIDs,
		suppressed:   cfg.Suppressed,
		newID:        cfg.NewID,
		newIDFor:     cfg.NewIDFor,
		checkpoint:   cfg.Checkpoint,
		ids:          newTable(identRecSize),
		profs:        newTable(profRecSize),
	}
	lim := cfg.MaxPerKind
	if lim == nil {
		lim = DefaultMaxPerKind
	}
	for k, v := range lim {
		if rank := kindRank(k); rank < numKinds && v > 0 {
			r.limits[rank] = v
		} else if rank >= numKinds {
			return nil, kiln.Errorf(kiln.EInvalid, "identity: MaxPerKind: unknown identifier kind %q", k)
		}
	}
	if r.newID == nil {
		r.newID = func() string { return kiln.NewID("p_") }
	}
	r.p.init()
	return r, nil
}

// Extractor returns the Extractor for the resolver's Rules, for ingest to
// compute anchors with.
func (r *Resolver) Extractor() *Extractor { return r.x }

// secs turns a time into the index's Unix seconds, clamped to uint32.
func secs(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 || t.IsZero() {
		return 0
	}
	if s > int64(none-1) {
		return none - 1
	}
	return uint32(s)
}

func eventTime(e *kiln.Event) time.Time {
	if e.Timestamp.IsZero() {
		return e.ReceivedAt
	}
	return e.Timestamp
}

// Resolve decides which profile e belongs to, changing the index and adding
// to the pending change set. Events must come in Seq order.
//
// The event belongs to the profile of its anchor (e.Anchor, as ingest set
// it; computed from the identifiers if empty). Each other identifier is
// then linked to that profile: an unknown one is attached, one on another
// profile merges the two (the older survives), unless the link would break
// MaxPerKind or the user id rule, in which case it is refused and reported.
// An unknown anchor joins the first (strongest) known identifier's profile
// that accepts it, else a new profile.
func (r *Resolver) Resolve(e *kiln.Event) Outcome {
	r.p.events++
	if e.Seq > r.p.lastSeq {
		r.p.lastSeq = e.Seq
	}
	ids := r.x.appendIDs(r.buf[:0], e)
	r.buf = ids

	alias := e.Type == kiln.Alias
	if e.PreviousID != "" {
		ids = r.previousAsAnonymous(ids, e)
	}
	var anchor kiln.Identifier
	switch {
	case e.Anchor != "":
		anchor = kiln.ParseIdentifier(e.Anchor)
		found := false
		for _, id := range ids {
			if id == anchor {
				found = true
				break
			}
		}
		if !found {
			// Ingest extracted it under other rules (an older version,
			// another country code). The event belongs through it all
			// the same, unless these rules block it.
			if r.x.Blocked(anchor) || anchor.Value == "" {
				return Outcome{Status: Unresolvable, Anchor: anchor}
			}
			ids = append(ids, anchor)
		}
	case len(ids) == 0:
		return Outcome{Status: Unresolvable}
	default:
		anchor = ids[0]
	}

	// Look identifiers up; drop unknown suppressed ones.
	cands := r.cands[:0]
	ai := -1
	for _, id := range ids {
		o := r.ids.Find(byte(kindRank(id.Kind)), id.Value)
		if r.profOf(o) == none && r.suppressed != nil && r.suppressed(id) {
			if id == anchor {
				r.cands = cands
				return Outcome{Status: Suppressed, Anchor: anchor}
			}
			continue
		}
		if id == anchor {
			ai = len(cands)
		}
		cands = append(cands, cand{id: id, o: o})
	}
	r.cands = cands
	out := Outcome{Status: Resolved, Anchor: anchor}
	rule := RuleSharedEvent
	if alias {
		rule = RuleAlias
	}

	// The anchor's profile.
	t := r.profOf(cands[ai].o)
	if t == none {
		for i, c := range cands {
			if i == ai {
				continue
			}
			if q := r.profOf(c.o); q != none && r.refuseAttach(q, anchor, alias) == "" {
				t = q
				break
			}
		}
		if t == none {
			t = r.newProfile(e)
			out.Created = true
		}
		cands[ai].o = r.attach(t, cands[ai], e)
		out.Linked = append(out.Linked, anchor)
	}

	// Link the others to it.
	for i := range cands {
		c := &cands[i]
		if i == ai {
			continue
		}
		q := r.profOf(c.o)
		switch {
		case q == t:
		case q == none:
			if why := r.refuseAttach(t, c.id, alias); why != "" {
				out.Refused = append(out.Refused, Refusal{Identifier: c.id, Into: r.profileID(t), Reason: why, Kind: c.id.Kind})
				continue
			}
			c.o = r.attach(t, *c, e)
			out.Linked = append(out.Linked, c.id)
		default:
			if why, kind := r.refuseMerge(t, q, alias); why != "" {
				out.Refused = append(out.Refused, Refusal{Identifier: c.id, ProfileID: r.profileID(q), Into: r.profileID(t), Reason: why, Kind: kind})
				continue
			}
			m := r.merge(t, q, e, rule)
			out.Merges = append(out.Merges, m)
			t = r.profOf(c.o)
		}
	}

	d := r.p.delta(t)
	if d.id == "" { // once per profile and batch, not per event
		d.id = r.profileID(t)
	}
	d.record(e)
	out.ProfileID = d.id
	return out
}

// previousAsAnonymous handles an alias whose previousId is an anonymous id
// the index knows (the usual case: alias(previousId: anonymousId, userId)):
// Extract cannot know, so it guessed user id.
func (r *Resolver) previousAsAnonymous(ids []kiln.Identifier, e *kiln.Event) []kiln.Identifier {
	v, ok := normalizeID(e.PreviousID)
	if !ok {
		return ids
	}
	guess := kiln.Identifier{Kind: kiln.UserID, Value: v}
	for i, id := range ids {
		if id != guess {
			continue
		}
		if u, _ := normalizeID(e.UserID); u == v {
			return ids // the user id itself
		}
		if r.profOf(r.ids.Find(byte(kindRank(kiln.UserID)), v)) != none {
			return ids // a known user id
		}
		if r.profOf(r.ids.Find(byte(kindRank(kiln.AnonymousID)), v)) == none {
			return ids
		}
		anon := kiln.Identifier{Kind: kiln.AnonymousID, Value: v}
		if e.Anchor != guess.String() && (e.Anchor != "" || i > 0) {
			ids = append(ids[:i], ids[i+1:]...)
		} // else the guess is the anchor (no usable userId): it stays, and joins the anonymous id's profile
		for _, id := range ids {
			if id == anon {
				return ids
			}
		}
		return append(ids, anon)
	}
	return ids
}

// profOf returns identifier o's profile, none if o is none or unlinked.
func (r *Resolver) profOf(o ref) ref {
	if o == none {
		return none
	}
	return le.Uint32(r.ids.rec(o))
}

func (r *Resolver) identifier(n ref) kiln.Identifier {
	tag, v := r.ids.Key(n)
	return kiln.Identifier{Kind: kiln.IdentifierKinds[tag], Value: v}
}

func (r *Resolver) profileID(p ref) string {
	_, s := r.profs.Key(p)
	return s
}

// refuseAttach says why identifier id may not join profile p, or "".
func (r *Resolver) refuseAttach(p ref, id kiln.Identifier, alias bool) string {
	k := kindRank(id.Kind)
	have := int(r.prof(p).n[k])
	if k == 0 && have > 0 && !alias && !r.mergeUserIDs {
		return ReasonUserID
	}
	if lim := r.limits[k]; lim > 0 && have+1 > lim {
		return ReasonLimit
	}
	return ""
}

// refuseMerge says why profiles a and b may not merge, or "", with the
// identifier kind at fault.
func (r *Resolver) refuseMerge(a, b ref, alias bool) (string, kiln.IdentifierKind) {
	pa, pb := r.prof(a), r.prof(b)
	if pa.n[0] > 0 && pb.n[0] > 0 && !alias && !r.mergeUserIDs {
		return ReasonUserID, kiln.UserID
	}
	for k, lim := range r.limits {
		if lim > 0 && int(pa.n[k])+int(pb.n[k]) > lim {
			return ReasonLimit, kiln.IdentifierKinds[k]
		}
	}
	return "", ""
}

// setIdent and setProf change index records, journaling committed ones.
func (r *Resolver) setIdent(o ref, rec identRec) {
	if o < r.cIDs.end {
		r.journal = append(r.journal, undo{o: o, i: r.ident(o)})
	}
	r.putIdent(o, rec)
}

func (r *Resolver) setProf(p ref, rec profRec) {
	if p < r.cProfs.end {
		r.journal = append(r.journal, undo{prof: true, o: p, p: r.prof(p)})
	}
	r.putProf(p, rec)
}

func (r *Resolver) newProfile(e *kiln.Event) ref {
	var id string
	if r.newIDFor != nil {
		id = r.newIDFor(e)
	} else {
		id = r.newID()
	}
	if r.profs.Find(0, id) != none {
		panic("identity: NewID returned a profile id already in use: " + id)
	}
	p := r.profs.Add(0, id)
	r.putProf(p, profRec{head: none, first: none})
	r.p.created[p] = true
	r.live++
	return p
}

// attach links a candidate identifier to profile p and returns its entry.
func (r *Resolver) attach(p ref, c cand, e *kiln.Event) ref {
	first := secs(eventTime(e))
	n := c.o
	if n == none {
		n = r.ids.Add(byte(kindRank(c.id.Kind)), c.id.Value)
	}
	pr := r.prof(p)
	r.setIdent(n, identRec{prof: p, next: pr.head, first: first})
	r.linked++
	pr.head = n
	pr.first = min(pr.first, first)
	if k := kindRank(c.id.Kind); pr.n[k] < ^uint16(0) {
		pr.n[k]++
	}
	r.setProf(p, pr)
	r.p.touch(n, true, e.SourceID, eventTime(e))
	return n
}

// merge folds the younger of profiles a and b into the older and returns
// the merge; moved identifiers are marked touched.
func (r *Resolver) merge(a, b ref, e *kiln.Event, rule string) kiln.Merge {
	into, from := a, b
	if r.younger(a, b) {
		into, from = b, a
	}
	pi, pf := r.prof(into), r.prof(from)
	m := kiln.Merge{Into: r.profileID(into), From: r.profileID(from), EventSeq: e.Seq, Rule: rule, At: e.ReceivedAt}
	for n := pf.head; n != none; {
		rec := r.ident(n)
		next := rec.next
		m.Identities = append(m.Identities, r.identifier(n))
		rec.prof = into
		if next == none { // splice From's list in front of Into's
			rec.next = pi.head
		}
		r.setIdent(n, rec)
		r.p.touch(n, false, "", time.Time{})
		n = next
	}
	if pf.head != none {
		pi.head = pf.head
	}
	pi.first = min(pi.first, pf.first)
	for k := range pi.n {
		pi.n[k] = uint16(min(int(pi.n[k])+int(pf.n[k]), int(^uint16(0))))
	}
	r.setProf(into, pi)
	r.setProf(from, profRec{head: none, first: none, dead: true})
	r.live--
	r.p.merge(into, from, m)
	return m
}

// younger reports whether profile a is younger than b: first seen later,
// or at the same second with the greater id.
func (r *Resolver) younger(a, b ref) bool {
	fa, fb := r.prof(a).first, r.prof(b).first
	if fa != fb {
		return fa > fb
	}
	return r.profileID(a) > r.profileID(b)
}
