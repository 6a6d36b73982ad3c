package identity

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// bundle is a resolver with a model store behind it.
type bundle struct {
	t   *testing.T
	r   *Resolver
	m   *model
	seq int64
	ids int
}

func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	b := &bundle{t: t, m: newModel()}
	cfg.NewID = func() string { b.ids++; return fmt.Sprintf("p%d", b.ids) }
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.r = r
	return b
}

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// resolve resolves e at minute min (event time), setting Seq and Anchor as
// the log and ingest would.
func (b *bundle) resolve(min int, e kiln.Event) Outcome {
	b.seq++
	e.Seq = b.seq
	e.MessageID = fmt.Sprint(b.seq)
	if e.Type == "" {
		e.Type = kiln.Track
	}
	e.Timestamp = t0.Add(time.Duration(min) * time.Minute)
	e.ReceivedAt = t0.Add(time.Duration(b.seq) * time.Hour)
	if e.Anchor == "" {
		e.Anchor = Anchor(b.r.Extractor().Extract(&e))
	}
	return b.r.Resolve(&e)
}

// flush persists the pending resolution into the model and commits.
func (b *bundle) flush() store.Resolution {
	b.t.Helper()
	res := b.r.Pending()
	if err := b.m.apply(res); err != nil {
		b.t.Fatalf("apply: %v\n%+v", err, res)
	}
	b.r.Commit()
	if err := checkIndex(b.r, b.m); err != nil {
		b.t.Fatal(err)
	}
	return res
}

func (b *bundle) profileOf(kind kiln.IdentifierKind, v string) string {
	p, _ := b.r.ProfileOf(kiln.Identifier{Kind: kind, Value: v})
	return p
}

func ident(k kiln.IdentifierKind, v string) kiln.Identifier {
	return kiln.Identifier{Kind: k, Value: v}
}

func TestAttachAndCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	o := b.resolve(0, kiln.Event{AnonymousID: "a1", SourceID: "web"})
	if o.Status != Resolved || o.ProfileID != "p1" || !o.Created || !slices.Equal(o.Linked, []kiln.Identifier{ident(kiln.AnonymousID, "a1")}) {
		t.Fatalf("first event: %+v", o)
	}
	o = b.resolve(5, kiln.Event{Type: kiln.Identify, SourceID: "web", UserID: "42", AnonymousID: "a1", Traits: map[string]any{"email": "Ann@Example.com", "name": "Ann"}})
	if o.ProfileID != "p1" || o.Created || len(o.Linked) != 2 || o.Anchor != ident(kiln.UserID, "42") {
		t.Fatalf("identify: %+v", o)
	}
	res := b.flush()
	if len(res.Merges) != 0 || len(res.Profiles) != 1 || len(res.Identities) != 3 {
		t.Fatalf("resolution: %+v", res)
	}
	pc := res.Profiles[0]
	if pc.EventCount != 2 || !pc.FirstSeen.Equal(t0) || !pc.LastSeen.Equal(t0.Add(5*time.Minute)) || pc.Traits["name"] != "Ann" {
		t.Errorf("profile change: %+v", pc)
	}
	for _, id := range res.Identities {
		if id.SourceID != "web" || id.FirstSeen.IsZero() || id.ProfileID != "p1" {
			t.Errorf("identity %+v: want source web, first seen set, on p1", id)
		}
	}
	// A known customer: nothing new to write but the count.
	o = b.resolve(9, kiln.Event{UserID: "42"})
	if o.ProfileID != "p1" || o.Linked != nil || o.Merges != nil || o.Refused != nil {
		t.Fatalf("known customer: %+v", o)
	}
	if res := b.flush(); len(res.Identities) != 0 || len(res.Profiles) != 1 || res.Profiles[0].EventCount != 1 {
		t.Errorf("known customer resolution: %+v", res)
	}
	if got := b.m.profiles["p1"]; got.count != 3 || got.traits["email"] != "Ann@Example.com" {
		t.Errorf("stored profile: %+v", got)
	}
}

func TestSharedEventMergeAcrossBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(60, kiln.Event{AnonymousID: "a1"})                                                    // p1, seen 11:00
	b.resolve(0, kiln.Event{AnonymousID: "a2", Properties: map[string]any{"email": "e@x.example"}}) // p2, seen 10:00
	b.flush()
	o := b.resolve(90, kiln.Event{AnonymousID: "a1", Context: map[string]any{"traits": map[string]any{"email": "E@X.example"}}})
	// The anchor is the email (stronger than the anonymous id): the event
	// belongs to p2, and p1 (younger) is folded into it.
	if o.ProfileID != "p2" || len(o.Merges) != 1 {
		t.Fatalf("outcome: %+v", o)
	}
	m := o.Merges[0]
	if m.Into != "p2" || m.From != "p1" || m.Rule != RuleSharedEvent || m.EventSeq != 3 || !m.At.Equal(t0.Add(3*time.Hour)) ||
		!slices.Equal(m.Identities, []kiln.Identifier{ident(kiln.AnonymousID, "a1")}) {
		t.Errorf("merge: %+v", m)
	}
	res := b.flush()
	if len(res.Merges) != 1 || len(res.Identities) != 1 || res.Identities[0].ProfileID != "p2" {
		t.Errorf("resolution: %+v", res)
	}
	if len(b.m.profiles) != 1 || b.m.profiles["p2"].count != 3 || !b.m.profiles["p2"].firstSeen.Equal(t0) {
		t.Errorf("store after merge: %+v", b.m.profiles)
	}
}

func TestMergeWithinOneBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{AnonymousID: "a1"}) // p1, committed
	b.flush()
	b.resolve(10, kiln.Event{AnonymousID: "a2"})                                 // p2, new in this batch
	b.resolve(20, kiln.Event{AnonymousID: "a3"})                                 // p3, new
	o1 := b.resolve(30, kiln.Event{UserID: "u", AnonymousID: "a2"})              // u joins p2
	o2 := b.resolve(40, kiln.Event{UserID: "u", Traits: nil, AnonymousID: "a3"}) // p3 folds into p2
	o3 := b.resolve(50, kiln.Event{UserID: "u", AnonymousID: "a1"})              // p2 folds into p1 (older)
	if o1.ProfileID != "p2" || len(o2.Merges) != 1 || o2.Merges[0].From != "p3" || len(o3.Merges) != 1 || o3.Merges[0].Into != "p1" || o3.Merges[0].From != "p2" {
		t.Fatalf("outcomes: %+v\n%+v\n%+v", o1, o2, o3)
	}
	if got := o3.Merges[0].Identities; len(got) != 3 {
		t.Errorf("p2 -> p1 moved %v, want a2, u and a3", got)
	}
	// The store never had p2 or p3: no merge record, their events land on p1.
	res := b.flush()
	if len(res.Merges) != 0 || len(res.Profiles) != 1 || res.Profiles[0].ID != "p1" || res.Profiles[0].EventCount != 5 {
		t.Errorf("resolution: %+v", res)
	}
}

func TestRenameMergeIntoNewOlderProfile(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(60, kiln.Event{AnonymousID: "a1", Type: kiln.Identify, Traits: map[string]any{"name": "old"}}) // p1 stored
	b.flush()
	b.resolve(0, kiln.Event{AnonymousID: "a2"}) // p2: new, but seen earlier (a late, offline event)
	o := b.resolve(70, kiln.Event{UserID: "u", AnonymousID: "a1"})
	o = b.resolve(80, kiln.Event{UserID: "u", AnonymousID: "a2"})
	if len(o.Merges) != 1 || o.Merges[0].Into != "p2" || o.Merges[0].From != "p1" {
		t.Fatalf("outcome: %+v", o)
	}
	// The store renames p1 to p2, then applies p2's changes.
	res := b.flush()
	if len(res.Merges) != 1 {
		t.Fatalf("resolution: %+v", res)
	}
	p := b.m.profiles["p2"]
	if len(b.m.profiles) != 1 || p == nil || p.count != 4 || p.traits["name"] != "old" || !p.firstSeen.Equal(t0) {
		t.Errorf("store: %+v", b.m.profiles)
	}
}

func TestSurvivorTieBreak(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{AnonymousID: "b"}) // p1
	b.resolve(0, kiln.Event{AnonymousID: "a"}) // p2, same time
	b.flush()
	o := b.resolve(1, kiln.Event{AnonymousID: "a", Properties: map[string]any{"email": "x@y.example"}})
	o = b.resolve(2, kiln.Event{AnonymousID: "b", Properties: map[string]any{"email": "x@y.example"}})
	if len(o.Merges) != 1 || o.Merges[0].Into != "p1" || o.Merges[0].From != "p2" {
		t.Fatalf("tie: want p2 folded into p1 (smaller id): %+v", o)
	}
	b.flush()
}

func TestUserIDsAreAuthoritative(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{Type: kiln.Identify, UserID: "u1", Traits: map[string]any{"email": "family@x.example"}}) // p1
	b.resolve(1, kiln.Event{Type: kiln.Identify, UserID: "u2"})                                                      // p2
	b.flush()
	// u2 signs in with the shared family email: no merge.
	o := b.resolve(2, kiln.Event{Type: kiln.Identify, UserID: "u2", Traits: map[string]any{"email": "family@x.example"}})
	if o.ProfileID != "p2" || len(o.Merges) != 0 || len(o.Refused) != 1 {
		t.Fatalf("outcome: %+v", o)
	}
	if rf := o.Refused[0]; rf.Reason != ReasonUserID || rf.ProfileID != "p1" || rf.Into != "p2" || rf.Identifier != ident(kiln.Email, "family@x.example") {
		t.Errorf("refusal: %+v", rf)
	}
	// A new user id with a known email that belongs to another user id
	// gets its own profile.
	o = b.resolve(3, kiln.Event{Type: kiln.Identify, UserID: "u3", Traits: map[string]any{"email": "family@x.example"}})
	if o.ProfileID != "p3" || !o.Created || len(o.Refused) != 1 || o.Refused[0].Reason != ReasonUserID {
		t.Fatalf("new user id: %+v", o)
	}
	b.flush()
	if b.profileOf(kiln.Email, "family@x.example") != "p1" {
		t.Error("the email moved")
	}

	// With MergeUserIDs the shared email joins them.
	b = setup(t, Config{MergeUserIDs: true})
	b.resolve(0, kiln.Event{Type: kiln.Identify, UserID: "u1", Traits: map[string]any{"email": "family@x.example"}})
	b.resolve(1, kiln.Event{Type: kiln.Identify, UserID: "u2"})
	o = b.resolve(2, kiln.Event{Type: kiln.Identify, UserID: "u2", Traits: map[string]any{"email": "family@x.example"}})
	if o.ProfileID != "p1" || len(o.Merges) != 1 {
		t.Fatalf("MergeUserIDs: %+v", o)
	}
	b.flush()
}

func TestAlias(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{UserID: "old-7"})                   // p1
	b.resolve(1, kiln.Event{UserID: "new-9", AnonymousID: "x"}) // p2
	b.resolve(2, kiln.Event{AnonymousID: "anon-3"})             // p3
	b.flush()
	o := b.resolve(3, kiln.Event{Type: kiln.Alias, UserID: "new-9", PreviousID: "old-7"})
	if o.ProfileID != "p1" || len(o.Merges) != 1 || o.Merges[0].Rule != RuleAlias || o.Merges[0].From != "p2" {
		t.Fatalf("alias of user ids: %+v", o)
	}
	// previousId naming a known anonymous id links that, not a new user id.
	o = b.resolve(4, kiln.Event{Type: kiln.Alias, UserID: "new-9", PreviousID: "anon-3"})
	if o.ProfileID != "p1" || len(o.Merges) != 1 || o.Merges[0].From != "p3" {
		t.Fatalf("alias of an anonymous id: %+v", o)
	}
	if _, ok := b.r.ProfileOf(ident(kiln.UserID, "anon-3")); ok {
		t.Error("anon-3 became a user id")
	}
	// An unknown previousId is taken as a user id.
	o = b.resolve(5, kiln.Event{Type: kiln.Alias, UserID: "new-9", PreviousID: "legacy-1"})
	if o.ProfileID != "p1" || !slices.Equal(o.Linked, []kiln.Identifier{ident(kiln.UserID, "legacy-1")}) {
		t.Fatalf("alias of an unknown id: %+v", o)
	}
	res := b.flush()
	if len(res.Merges) != 2 || res.Merges[0].Rule != RuleAlias {
		t.Errorf("resolution merges: %+v", res.Merges)
	}
	if n := len(b.m.byProfile()["p1"]); n != 5 {
		t.Errorf("p1 has %d identities, want 5 (old-7, new-9, x, anon-3, legacy-1)", n)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxPerKind: map[kiln.IdentifierKind]int{kiln.Email: 2, kiln.AnonymousID: 3}})
	em := func(s string) map[string]any { return map[string]any{"email": s} }
	b.resolve(0, kiln.Event{UserID: "u", Properties: em("1@x.example")})
	b.resolve(1, kiln.Event{UserID: "u", Properties: em("2@x.example")})
	o := b.resolve(2, kiln.Event{UserID: "u", Properties: em("3@x.example")})
	if o.ProfileID != "p1" || len(o.Linked) != 0 || len(o.Refused) != 1 || o.Refused[0].Reason != ReasonLimit || o.Refused[0].Kind != kiln.Email || o.Refused[0].ProfileID != "" {
		t.Fatalf("third email: %+v", o)
	}
	if _, ok := b.r.ProfileOf(ident(kiln.Email, "3@x.example")); ok {
		t.Error("the refused email was linked")
	}
	// A shared tablet: the fourth anonymous id would break the limit, so the
	// merge that would bring it is refused and the event stays on its anchor.
	for i := range 3 {
		b.resolve(3+i, kiln.Event{Properties: em("1@x.example"), AnonymousID: fmt.Sprint("d", i)})
	}
	b.resolve(10, kiln.Event{AnonymousID: "d9"}) // p2
	o = b.resolve(11, kiln.Event{AnonymousID: "d9", Properties: em("1@x.example")})
	if o.ProfileID != "p1" || len(o.Merges) != 0 || len(o.Refused) != 1 || o.Refused[0].Kind != kiln.AnonymousID || o.Refused[0].ProfileID != "p2" {
		t.Fatalf("merge over the limit: %+v", o)
	}
	b.flush()
	if got := b.profileOf(kiln.AnonymousID, "d9"); got != "p2" {
		t.Errorf("d9 on %q", got)
	}
}

func TestBlockedAndUnresolvable(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rules: Rules{Blocklist: []kiln.Identifier{ident(kiln.AnonymousID, "tablet-1")}}})
	for _, e := range []kiln.Event{
		{UserID: "null"},
		{AnonymousID: "tablet-1"},
		{UserID: "undefined", AnonymousID: "tablet-1", Properties: map[string]any{"email": "test@test.com"}},
		{},
		// Ingest with other rules anchored on a value blocked here.
		{AnonymousID: "tablet-1", Anchor: "anonymous_id:tablet-1"},
	} {
		if o := b.resolve(0, e); o.Status != Unresolvable || o.ProfileID != "" {
			t.Errorf("%+v: %+v", e, o)
		}
	}
	// Blocked values beside a real identifier are ignored.
	o := b.resolve(0, kiln.Event{UserID: "null", AnonymousID: "tablet-1", Properties: map[string]any{"email": "real@x.example"}})
	if o.Status != Resolved || !slices.Equal(o.Linked, []kiln.Identifier{ident(kiln.Email, "real@x.example")}) {
		t.Errorf("mixed: %+v", o)
	}
	res := b.flush()
	if len(res.Identities) != 1 || res.Profiles[0].EventCount != 1 {
		t.Errorf("resolution: %+v", res)
	}
}

func TestSuppressed(t *testing.T) {
	t.Parallel()
	gone := ident(kiln.Email, "gone@x.example")
	b := setup(t, Config{Suppressed: func(id kiln.Identifier) bool { return id == gone }})
	o := b.resolve(0, kiln.Event{AnonymousID: "a", Properties: map[string]any{"email": "gone@x.example"}})
	if o.Status != Suppressed || o.ProfileID != "" || o.Anchor != gone {
		t.Fatalf("suppressed anchor: %+v", o)
	}
	o = b.resolve(0, kiln.Event{UserID: "u", Properties: map[string]any{"email": "gone@x.example"}})
	if o.Status != Resolved || !slices.Equal(o.Linked, []kiln.Identifier{ident(kiln.UserID, "u")}) {
		t.Fatalf("suppressed non-anchor: %+v", o)
	}
	res := b.flush()
	if len(res.Identities) != 1 || len(res.Profiles) != 1 {
		t.Errorf("resolution: %+v", res)
	}
}

func TestTraitsAndConsent(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Checkpoint: "identity"})
	b.resolve(0, kiln.Event{Type: kiln.Identify, UserID: "u", SourceID: "web", Traits: map[string]any{"plan": "free", "city": "Leeds", "email_consent": true}})
	b.flush()
	b.resolve(5, kiln.Event{Type: kiln.Identify, UserID: "u", Traits: map[string]any{"plan": "pro", "city": nil}})
	b.resolve(6, kiln.Event{UserID: "u", Context: map[string]any{"traits": map[string]any{"plan": "team", "tier": "gold"}}})
	// An older unsubscribe arriving later does not override newer consent...
	b.resolve(-10, kiln.Event{Name: kiln.Unsubscribed, UserID: "u", Properties: map[string]any{"source": "mailchimp"}})
	// ...a newer one does.
	b.resolve(7, kiln.Event{Name: kiln.Unsubscribed, UserID: "u", SourceID: "esp", Properties: map[string]any{"channel": "sms"}})
	res := b.flush()
	if res.Checkpoint != (store.Checkpoint{Name: "identity", Seq: 5}) {
		t.Errorf("checkpoint: %+v", res.Checkpoint)
	}
	p := b.m.profiles["p1"]
	if p.traits["plan"] != "team" || p.traits["tier"] != "gold" || p.traits["city"] != nil || len(p.traits) != 3 {
		t.Errorf("traits: %v", p.traits)
	}
	email, sms := p.consent[kiln.ChannelEmail], p.consent[kiln.ChannelSMS]
	if !email.Granted || email.Source != "web" || sms.Granted || sms.Source != "esp" {
		t.Errorf("consent: %+v", p.consent)
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{UserID: "u1", AnonymousID: "a1"})
	b.resolve(1, kiln.Event{UserID: "u2", AnonymousID: "a2"})
	b.flush()
	before := b.r.Stats()
	for i := range 2000 { // enough to grow the tables and the arena
		b.resolve(2+i, kiln.Event{AnonymousID: fmt.Sprint("n", i), Properties: map[string]any{"email": fmt.Sprintf("%d@x.example", i%500)}})
	}
	b.resolve(3, kiln.Event{AnonymousID: "a1", Properties: map[string]any{"email": "1@x.example"}}) // merge into a stored profile
	b.r.Abort()
	if after := b.r.Stats(); b.r.HasPending() || after.Identifiers != before.Identifiers || after.Profiles != before.Profiles {
		t.Fatalf("after Abort: %+v, before %+v", b.r.Stats(), before)
	}
	if err := checkIndex(b.r, b.m); err != nil {
		t.Fatal(err)
	}
	o := b.resolve(4, kiln.Event{AnonymousID: "a1", Properties: map[string]any{"email": "1@x.example"}})
	if o.ProfileID != "p1" || len(o.Linked) != 1 {
		t.Fatalf("after Abort: %+v", o)
	}
	b.flush()
}

func TestUnmergeAndForget(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.resolve(0, kiln.Event{UserID: "u1", AnonymousID: "a1"})                                       // p1
	b.resolve(1, kiln.Event{AnonymousID: "a2", Properties: map[string]any{"email": "e@x.example"}}) // p2
	b.flush()
	b.resolve(2, kiln.Event{UserID: "u1", Properties: map[string]any{"email": "e@x.example"}}) // p2 -> p1
	b.resolve(3, kiln.Event{AnonymousID: "a2", Context: map[string]any{"traits": map[string]any{"phone": "+447700900123"}}})
	b.flush()
	if b.profileOf(kiln.Email, "e@x.example") != "p1" || len(b.m.merges) != 1 {
		t.Fatal("setup did not merge")
	}
	if err := b.r.Unmerge(kiln.Merge{}); err == nil {
		t.Error("Unmerge without From accepted")
	}
	m, err := b.m.undoMerge(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.r.Unmerge(m); err != nil {
		t.Fatal(err)
	}
	if err := checkIndex(b.r, b.m); err != nil {
		t.Fatalf("after unmerge: %v", err)
	}
	// The phone joined p1 after the merge, through a2: it stays.
	if b.profileOf(kiln.AnonymousID, "a2") != "p2" || b.profileOf(kiln.Phone, "+447700900123") != "p1" {
		t.Errorf("unmerge moved the wrong identities: p1 %v, p2 %v", b.r.Identities("p1"), b.r.Identities("p2"))
	}
	if o := b.resolve(4, kiln.Event{Properties: map[string]any{"email": "e@x.example"}}); o.ProfileID != "p2" {
		t.Errorf("after unmerge the email resolves to %s", o.ProfileID)
	}
	b.flush()

	// Delete p2; its identifiers are unknown again.
	if err := b.r.Forget(b.m.deleteProfile("p2")); err != nil {
		t.Fatal(err)
	}
	if err := checkIndex(b.r, b.m); err != nil {
		t.Fatalf("after forget: %v", err)
	}
	o := b.resolve(5, kiln.Event{AnonymousID: "a2"})
	if !o.Created || o.ProfileID == "p2" {
		t.Errorf("forgotten identifier: %+v", o)
	}
	// Direct changes are refused while resolutions are pending.
	if err := b.r.Forget(nil); kiln.ErrorCode(err) != kiln.EConflict {
		t.Errorf("Forget with pending: %v", err)
	}
	if err := b.r.Load(kiln.Identity{Identifier: ident(kiln.UserID, "x"), ProfileID: "p9"}); kiln.ErrorCode(err) != kiln.EConflict {
		t.Errorf("Load with pending: %v", err)
	}
	b.flush()
}

func TestLoad(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	load := func(k kiln.IdentifierKind, v, p string, min int) {
		t.Helper()
		id := kiln.Identity{Identifier: ident(k, v), ProfileID: p, FirstSeen: t0.Add(time.Duration(min) * time.Minute)}
		if err := b.r.Load(id); err != nil {
			t.Fatal(err)
		}
		b.m.identities[id.Identifier] = id
		b.m.profiles[p] = &modelProfile{id: p}
	}
	load(kiln.UserID, "u1", "p_old", 0)
	load(kiln.AnonymousID, "a1", "p_old", 5)
	load(kiln.Email, "e@x.example", "p_young", 30)
	if err := checkIndex(b.r, b.m); err != nil {
		t.Fatal(err)
	}
	if err := b.r.Load(kiln.Identity{Identifier: ident("device", "d"), ProfileID: "p"}); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("unknown kind: %v", err)
	}
	o := b.resolve(60, kiln.Event{AnonymousID: "a1", Properties: map[string]any{"email": "e@x.example"}})
	if len(o.Merges) != 1 || o.Merges[0].Into != "p_old" {
		t.Fatalf("merge after load: %+v", o)
	}
	b.flush()
}

// A snapshot of the index loads into an index that answers the same, and
// goes on resolving the same; a damaged one is an error, not a panic.
func TestSnapshot(t *testing.T) {
	b := setup(t, Config{})
	// New profile ids by event, so both resolvers name them alike.
	b.r.newID = func() string { return fmt.Sprintf("p%d", b.seq) }
	for i := range 3000 {
		b.resolve(i, kiln.Event{UserID: fmt.Sprintf("u%d", i%1000), AnonymousID: fmt.Sprintf("a%d", i%1700),
			Traits: map[string]any{"email": fmt.Sprintf("c%d@example.com", i%1300)}})
		if i%500 == 0 {
			b.flush()
		}
	}
	b.flush()
	snap, err := b.r.AppendSnapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{NewID: b.r.newID})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if err := checkIndex(r, b.m); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Stats(), b.r.Stats(); got.Identifiers != want.Identifiers || got.Profiles != want.Profiles {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	// Both go on the same way.
	old := b.r
	for i := range 200 {
		e := kiln.Event{UserID: fmt.Sprintf("u%d", 900+i), Traits: map[string]any{"email": fmt.Sprintf("c%d@example.com", i*7)}}
		b.r = old
		o1 := b.resolve(5000+i, e)
		b.seq--
		b.r = r
		o2 := b.resolve(5000+i, e)
		if o1.ProfileID != o2.ProfileID || len(o1.Merges) != len(o2.Merges) {
			t.Fatalf("event %d: %+v from the original, %+v from the snapshot", i, o1, o2)
		}
	}
	r.Abort()
	for _, n := range []int{1, len(snap) / 3, len(snap) - 1} {
		if err := r.LoadSnapshot(snap[:n]); err == nil {
			t.Errorf("a snapshot cut to %d of %d bytes loaded", n, len(snap))
		}
	}
	if err := r.LoadSnapshot(append([]byte{9}, snap[1:]...)); err == nil {
		t.Error("a snapshot of another version loaded")
	}
}
