package identity

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// stream is a random event stream over a pool of people whose identifiers
// overlap: people share devices and emails, aliases join user ids, blocked
// values and suppressed identifiers turn up.
type stream struct {
	// Config variations: user ids not authoritative; the default limits.
	mergeUserIDs, defaultLimits bool

	events     []kiln.Event
	suppressed map[kiln.Identifier]bool
	aliases    bool
}

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func genStream(rng *rand.Rand, n int, aliases bool) stream {
	people := 20 + rng.IntN(40)
	type person struct{ uid, email, phone, loyalty, anon string }
	ps := make([]person, people)
	for i := range ps {
		ps[i] = person{
			uid:     fmt.Sprintf("u%d", i),
			email:   fmt.Sprintf("p%d@example.com", i),
			phone:   fmt.Sprintf("+4477009%05d", i),
			loyalty: fmt.Sprintf("L%d", i),
			anon:    fmt.Sprintf("anon-%d-%d", i, rng.IntN(3)),
		}
		if i%2 == 0 { // UUIDs and hex ids are stored packed
			ps[i].anon = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, rng.IntN(3))
			ps[i].uid = fmt.Sprintf("%024x", i)
		}
	}
	s := stream{suppressed: map[kiln.Identifier]bool{}, aliases: aliases, mergeUserIDs: rng.IntN(4) == 0, defaultLimits: rng.IntN(3) == 0}
	for i := 0; i < people/10; i++ {
		s.suppressed[kiln.Identifier{Kind: kiln.Email, Value: ps[rng.IntN(people)].email}] = true
	}
	// Unique, shuffled event times: arrival order is not event order.
	times := rng.Perm(n)
	other := func() person { return ps[rng.IntN(people)] }
	for i := 0; i < n; i++ {
		p := ps[rng.IntN(people)]
		e := kiln.Event{
			Seq:        int64(i + 1),
			MessageID:  fmt.Sprint(i),
			SourceID:   "src_" + fmt.Sprint(rng.IntN(3)),
			Timestamp:  base.Add(time.Duration(times[i]) * time.Minute),
			ReceivedAt: base.Add(time.Duration(i) * time.Second),
			Context:    map[string]any{},
		}
		traits := map[string]any{}
		pick := func(v string, prob float64) string {
			if rng.Float64() < prob {
				return v
			}
			return ""
		}
		switch x := rng.Float64(); {
		case aliases && x < 0.08:
			e.Type = kiln.Alias
			e.UserID = p.uid
			switch rng.IntN(3) {
			case 0:
				e.PreviousID = other().uid
			case 1:
				e.PreviousID = p.anon
			default:
				e.PreviousID = other().anon
			}
		case x < 0.4:
			e.Type = kiln.Identify
			e.UserID = pick(p.uid, 0.6)
			e.AnonymousID = pick(p.anon, 0.7)
			traits["email"] = pick(p.email, 0.6)
			traits["phone"] = pick(p.phone, 0.3)
			traits["loyalty_number"] = pick(p.loyalty, 0.2)
			traits["plan"] = []string{"free", "pro", "team"}[rng.IntN(3)]
			traits["name"] = fmt.Sprintf("name-%d-%d", i, rng.IntN(5))
			if rng.IntN(4) == 0 {
				traits["email_consent"] = rng.IntN(2) == 0
			}
			if rng.IntN(10) == 0 {
				traits["plan"] = nil // unset
			}
		default:
			e.Type = kiln.Track
			e.Name = "Product Viewed"
			if rng.IntN(15) == 0 {
				e.Name = kiln.Unsubscribed
				e.Properties = map[string]any{"channel": []string{"email", "sms"}[rng.IntN(2)]}
			}
			e.UserID = pick(p.uid, 0.4)
			e.AnonymousID = p.anon
			if rng.IntN(5) == 0 {
				e.Context["traits"] = map[string]any{"email": pick(p.email, 0.8), "tier": rng.IntN(3)}
			}
		}
		// Cross-links: a shared device, a mistyped or shared email, junk.
		switch rng.IntN(12) {
		case 0:
			e.AnonymousID = other().anon
		case 1:
			traits["email"] = other().email
		case 2:
			e.AnonymousID = "tablet-1" // blocklisted
		case 3:
			e.UserID = "null"
		case 4:
			if e.Properties == nil {
				e.Properties = map[string]any{}
			}
			e.Properties["email"] = "test@test.com"
		}
		if e.Type == kiln.Identify {
			e.Traits = traits
		}
		if e.UserID == "" && e.AnonymousID == "" && e.PreviousID == "" && rng.IntN(2) == 0 {
			e.AnonymousID = p.anon
		}
		s.events = append(s.events, e)
	}
	return s
}

// run resolves the stream, persisting into a model store. With batches,
// it commits at random points, sometimes aborts and resolves again, and
// sometimes restarts the resolver from the store.
type runResult struct {
	m        *model
	outcomes []Outcome
	merges   int // merges in outcomes
}

func testConfig(s stream, seq *int64) Config {
	limits := map[kiln.IdentifierKind]int{kiln.UserID: 2, kiln.Email: 2, kiln.Phone: 2, kiln.Loyalty: 1, kiln.AnonymousID: 4}
	if s.defaultLimits {
		limits = DefaultMaxPerKind
	}
	return Config{
		MergeUserIDs: s.mergeUserIDs,
		Rules: Rules{
			CountryCode: "+44",
			Blocklist:   []kiln.Identifier{{Kind: kiln.AnonymousID, Value: "tablet-1"}},
		},
		MaxPerKind: limits,
		Suppressed: func(id kiln.Identifier) bool { return s.suppressed[id] },
		// Deterministic ids, whatever the batching: one profile at most per event.
		NewID:      func() string { return fmt.Sprintf("p%06d", *seq) },
		Checkpoint: "identity",
	}
}

func run(t *testing.T, s stream, rng *rand.Rand) runResult {
	return runWith(t, s, rng, false)
}

// runWith with chaos also undoes random merges and deletes random profiles
// (suppressing their identifiers) between batches, as the admin API does.
func runWith(t *testing.T, s stream, rng *rand.Rand, chaos bool) runResult {
	t.Helper()
	if chaos {
		s.suppressed = maps.Clone(s.suppressed)
	}
	var seq int64
	cfg := testConfig(s, &seq)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := r.Extractor()
	m := newModel()
	res := runResult{m: m, outcomes: make([]Outcome, len(s.events))}
	committed := 0
	flush := func(upTo int) {
		if err := m.apply(r.Pending()); err != nil {
			t.Fatalf("applying the resolution of events %d..%d: %v", committed+1, upTo, err)
		}
		r.Commit()
		committed = upTo
		if r.HasPending() || len(r.Pending().Identities) != 0 {
			t.Fatal("pending changes after Commit")
		}
	}
	for i := 0; i < len(s.events); i++ {
		e := s.events[i]
		// Ingest sets the anchor (with the same rules), mostly.
		if rng == nil || rng.IntN(10) > 0 {
			e.Anchor = Anchor(x.Extract(&e))
		}
		seq = e.Seq
		res.outcomes[i] = r.Resolve(&e)
		if rng == nil {
			continue
		}
		switch k := rng.IntN(40); {
		case k < 3:
			flush(i + 1)
		case k == 3:
			// The write failed: roll back and resolve those events again.
			r.Abort()
			i = committed - 1
		case k == 5 && chaos:
			flush(i + 1)
			if open := undoable(m); len(open) > 0 && rng.IntN(2) == 0 {
				mg, err := m.undoMerge(open[rng.IntN(len(open))])
				if err != nil {
					t.Fatal(err)
				}
				if debugChaos {
					fmt.Printf("undo %+v\n", mg)
				}
				if err := r.Unmerge(mg); err != nil {
					t.Fatal(err)
				}
			} else if len(m.profiles) > 0 {
				pids := slices.Sorted(maps.Keys(m.profiles))
				gone := m.deleteProfile(pids[rng.IntN(len(pids))])
				if debugChaos {
					fmt.Printf("delete %v\n", gone)
				}
				for _, id := range gone {
					s.suppressed[id.Identifier] = true
				}
				if err := r.Forget(gone); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkIndex(r, m); err != nil {
				t.Fatalf("after an undo or delete at event %d: %v", i+1, err)
			}
		case k == 6:
			flush(i + 1)
			// Restart from a snapshot of the index instead of the store.
			snap, err := r.AppendSnapshot(nil)
			if err != nil {
				t.Fatal(err)
			}
			if r, err = New(cfg); err != nil {
				t.Fatal(err)
			}
			if err := r.LoadSnapshot(snap); err != nil {
				t.Fatal(err)
			}
			if err := checkIndex(r, m); err != nil {
				t.Fatalf("after restart from a snapshot: %v", err)
			}
		case k == 4:
			flush(i + 1)
			// Restart: a new resolver loaded from the store.
			if r, err = New(cfg); err != nil {
				t.Fatal(err)
			}
			ids := make([]kiln.Identity, 0, len(m.identities))
			for _, id := range m.identities {
				ids = append(ids, id)
			}
			rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids {
				if err := r.Load(id); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkIndex(r, m); err != nil {
				t.Fatalf("after restart: %v", err)
			}
		}
	}
	flush(len(s.events))
	if err := checkIndex(r, m); err != nil {
		t.Fatal(err)
	}
	if m.checkpoint.Seq != int64(len(s.events)) {
		t.Errorf("checkpoint %d, want %d", m.checkpoint.Seq, len(s.events))
	}
	for _, o := range res.outcomes {
		res.merges += len(o.Merges)
	}
	return res
}

// undoable lists the merges that can still be undone: not undone, not
// deleted with a profile, and with an identity left to move back (else the
// store would restore an empty profile).
func undoable(m *model) []int64 {
	var out []int64
	for _, mg := range m.merges {
		if mg.UndoneAt != nil || mg.deleted {
			continue
		}
		for _, id := range mg.Identities {
			if _, ok := m.identities[id]; ok {
				out = append(out, mg.ID)
				break
			}
		}
	}
	return out
}

var debugChaos = false

// soakSeeds is n, or KILN_IDENTITY_SEEDS for a longer hunt for rare cases.
func soakSeeds(n int) int {
	if v, err := strconv.Atoi(os.Getenv("KILN_IDENTITY_SEEDS")); err == nil && v > 0 {
		return v
	}
	return n
}

// TestResolverUndoAndDelete interleaves undone merges and deleted profiles
// with resolution: the index must always match the store.
func TestResolverUndoAndDelete(t *testing.T) {
	t.Parallel()
	seeds := soakSeeds(30)
	if testing.Short() {
		seeds = 5
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 9))
		s := genStream(rng, 300+rng.IntN(300), true)
		runWith(t, s, rand.New(rand.NewPCG(uint64(seed), 10)), true)
	}
}

func TestResolverProperties(t *testing.T) {
	t.Parallel()
	seeds := soakSeeds(60)
	if testing.Short() {
		seeds = 10
	}
	var totals struct{ merges, refused, unresolvable, suppressed, created int }
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		s := genStream(rng, 200+rng.IntN(400), seed%3 != 0)
		one := run(t, s, nil)
		checkInvariants(t, seed, s, one)
		batched := run(t, s, rand.New(rand.NewPCG(uint64(seed), 8)))
		compareRuns(t, seed, s, one, batched)
		for _, o := range one.outcomes {
			totals.merges += len(o.Merges)
			totals.refused += len(o.Refused)
			switch o.Status {
			case Unresolvable:
				totals.unresolvable++
			case Suppressed:
				totals.suppressed++
			}
			if o.Created {
				totals.created++
			}
		}
	}
	// The generator must actually exercise the rules.
	if totals.merges == 0 || totals.refused == 0 || totals.unresolvable == 0 || totals.suppressed == 0 {
		t.Errorf("stream did not exercise every path: %+v", totals)
	}
	t.Logf("%+v", totals)
}

func checkInvariants(t *testing.T, seed int, s stream, res runResult) {
	t.Helper()
	m := res.m
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	// Every profile has identities; every identity names a live profile.
	byProf := m.byProfile()
	for pid := range m.profiles {
		if len(byProf[pid]) == 0 {
			fail("profile %s has no identities", pid)
		}
	}
	for id, s := range m.identities {
		if m.profiles[s.ProfileID] == nil {
			fail("identity %s on missing profile %s", id, s.ProfileID)
		}
	}
	// Events follow their anchors: each profile's count is the number of
	// resolved events whose anchor identity it now holds, and the counts
	// add up to the resolved events.
	want := map[string]int64{}
	resolved := int64(0)
	for i, o := range res.outcomes {
		if o.Status != Resolved {
			if o.ProfileID != "" || o.Linked != nil || o.Merges != nil {
				fail("event %d %s but changed things: %+v", i+1, o.Status, o)
			}
			continue
		}
		resolved++
		a, ok := m.identities[o.Anchor]
		if !ok {
			fail("event %d: anchor %s not stored", i+1, o.Anchor)
		}
		want[a.ProfileID]++
		// Identifiers that met in the event and were not refused share a
		// profile (merges only ever join, so this holds at the end too).
		refused := map[kiln.Identifier]bool{}
		for _, rf := range o.Refused {
			refused[rf.Identifier] = true
		}
		x, _ := NewExtractor(testConfig(s, new(int64)).Rules)
		for _, id := range x.Extract(&s.events[i]) {
			if refused[id] || s.suppressed[id] {
				continue
			}
			if s.events[i].Type == kiln.Alias && refused[kiln.Identifier{Kind: kiln.AnonymousID, Value: id.Value}] {
				continue // the previousId, matched as a known anonymous id, refused
			}
			got, ok := m.identities[id]
			if e := s.events[i]; e.Type == kiln.Alias && id.Kind == kiln.UserID && id.Value == e.PreviousID && (!ok || got.ProfileID != a.ProfileID) {
				// The alias's previousId was matched as a known anonymous id.
				got, ok = m.identities[kiln.Identifier{Kind: kiln.AnonymousID, Value: id.Value}]
			}
			if !ok || got.ProfileID != a.ProfileID {
				fail("event %d: %s is on %q, its anchor %s on %s (outcome %+v)", i+1, id, got.ProfileID, o.Anchor, a.ProfileID, o)
			}
		}
	}
	total := int64(0)
	for pid, p := range m.profiles {
		total += p.count
		if p.count != want[pid] {
			fail("profile %s counts %d events, its anchors %d", pid, p.count, want[pid])
		}
	}
	if total != resolved {
		fail("profiles count %d events, %d resolved", total, resolved)
	}
	// Limits hold, and without aliases a profile has one user id at most.
	limits := testConfig(s, new(int64)).MaxPerKind
	for pid, ids := range byProf {
		n := map[kiln.IdentifierKind]int{}
		for _, id := range ids {
			n[id.Kind]++
		}
		for k, c := range n {
			if c > limits[k] {
				fail("profile %s has %d identifiers of kind %s, limit %d", pid, c, k, limits[k])
			}
		}
		if !s.aliases && !s.mergeUserIDs && n[kiln.UserID] > 1 {
			fail("profile %s has user ids %v without an alias", pid, ids)
		}
	}
	// Merge records: each stored merge was reported by its event, with the
	// event's rule.
	for _, mg := range m.merges {
		e := s.events[mg.EventSeq-1]
		wantRule := RuleSharedEvent
		if e.Type == kiln.Alias {
			wantRule = RuleAlias
		}
		if mg.Rule != wantRule || !mg.At.Equal(e.ReceivedAt) {
			fail("merge %+v: rule/time do not match event %d", mg.Merge, e.Seq)
		}
		found := false
		for _, om := range res.outcomes[mg.EventSeq-1].Merges {
			found = found || om.Into == mg.Into && om.From == mg.From
		}
		if !found {
			fail("merge %s <- %s not reported by event %d", mg.Into, mg.From, mg.EventSeq)
		}
	}
}

// compareRuns checks that committing in random batches, aborting and
// restarting gives what one big batch gives.
func compareRuns(t *testing.T, seed int, s stream, one, batched runResult) {
	t.Helper()
	for i := range one.outcomes {
		a, b := one.outcomes[i], batched.outcomes[i]
		if a.Status != b.Status || a.ProfileID != b.ProfileID || a.Anchor != b.Anchor || len(a.Merges) != len(b.Merges) || len(a.Refused) != len(b.Refused) {
			t.Fatalf("seed %d event %d: one batch %+v, batched %+v", seed, i+1, a, b)
		}
	}
	ma, mb := one.m, batched.m
	if len(ma.identities) != len(mb.identities) || len(ma.profiles) != len(mb.profiles) {
		t.Fatalf("seed %d: one batch %d identities on %d profiles, batched %d on %d", seed, len(ma.identities), len(ma.profiles), len(mb.identities), len(mb.profiles))
	}
	for id, x := range ma.identities {
		if y := mb.identities[id]; x != y {
			t.Fatalf("seed %d: identity %+v vs %+v", seed, x, y)
		}
	}
	mergedInto := map[string]bool{}
	for _, mm := range []*model{ma, mb} {
		for _, mg := range mm.merges {
			mergedInto[mg.Into] = true
		}
	}
	// Merges of profiles made in the same batch are folded without a
	// record, so the batched run may only have more merge records.
	if len(mb.merges) < len(ma.merges) {
		t.Fatalf("seed %d: %d merge records batched, %d in one batch", seed, len(mb.merges), len(ma.merges))
	}
	for pid, x := range ma.profiles {
		y := mb.profiles[pid]
		if y == nil || x.count != y.count || !x.firstSeen.Equal(y.firstSeen) || !x.lastSeen.Equal(y.lastSeen) {
			t.Fatalf("seed %d: profile %+v vs %+v", seed, x, y)
		}
		if !mapsEqual(x.consent, y.consent) {
			t.Fatalf("seed %d: profile %s consent %v vs %v", seed, pid, x.consent, y.consent)
		}
		// Traits of merged profiles depend on where the batches fell (the
		// store's fold keeps Into's keys; a batch keeps the later event's).
		if !mergedInto[pid] && !mapsEqual(x.traits, y.traits) {
			t.Fatalf("seed %d: profile %s traits %v vs %v", seed, pid, x.traits, y.traits)
		}
	}
	_ = s
}

func mapsEqual[K comparable, V any](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || fmt.Sprint(v) != fmt.Sprint(w) {
			return false
		}
	}
	return true
}
