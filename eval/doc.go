// Package eval evaluates checked definition sets (package rule) for one
// profile at a time: incrementally, event by event, with exact expiry;
// and naively, from all of a profile's events, as the reference and for
// as-of queries. It is pure: no I/O, no goroutines, no clock reads; every
// call takes now.
//
// # Use
//
//	set, err := rule.Parse(src)                       // or rule.ParseJSON
//	prog, err := eval.Compile(set, eval.Options{Location: tz, Schema: schema})
//	st := prog.NewState()                             // one per profile
//	res := prog.Apply(st, &eval.Profile{Traits: traits, Static: lists}, &event, now)
//	res.Changed   // segment entries/exits with evidence (every leaf's value)
//	res.Traits    // computed traits whose value changed (old, new)
//	res.NextDue   // when time alone next changes something; zero if never
//	res = prog.Advance(st, prof, res.NextDue)         // the engine's timer
//	res = prog.ApplyProfile(st, prof, now)            // traits or static lists changed
//	node, _ := prog.Explain(st, prof, "high_value", now)
//	snap := prog.Naive(allEvents, prof, at)           // from scratch, as of at
//	st, res = prog.Rebuild(allEvents, prof, now)      // recompute after a definition edit
//	b, _ := st.MarshalBinary()                        // snapshot; restore with UnmarshalBinary + prog.Adopt
//
// A Program is immutable and safe for concurrent use; a State is not (one
// goroutine per profile at a time). Compile fails exactly when rule.Check
// does; evaluation never fails. Passing a State made by another Program
// panics: that is a wiring bug (decoded snapshots go through Adopt).
//
// Apply takes events in any order: an event is placed by its timestamp,
// so late events update windows and first/last correctly, and an event
// later than now counts from its own time (NextDue covers it). now never
// goes backwards for a state (an earlier now is taken as the last one).
// Times are compared at millisecond precision.
//
// # Boundaries
//
//   - Rolling windows are (now-N, now]: an event at t leaves "last 90
//     days" at exactly t+90d, and NextDue is that instant.
//   - Calendar windows are [period start, now] in Options.Location; they
//     change at the period boundary (midnight, Monday 00:00, the 1st,
//     Jan 1) if they held events.
//   - "A not followed by B within T in last W": true when some A at a in
//     (now-W, now] has a+T <= now and no B in [a, a+T). It becomes true at
//     exactly a+T and false at a+W.
//   - "A not followed by B [for at least G] in last W" (open-ended): true
//     when some A at a in (now-W, now] with a+G <= now has no B in
//     [a, now] (a B at A's millisecond follows it). It becomes true at a+G
//     (a, without G), false when a B at or after a arrives or at a+W.
//     Incrementally: the latest A up to now-G against the latest B up to
//     now (if any A stands unfollowed, the latest one does).
//   - "last time of X" / "first time of X": the latest / earliest
//     matching event's time in the window (RFC 3339, UTC, milliseconds);
//     "DATE more than D ago" and "within last D" on it follow the date
//     trait rules below, with the due instant t+D.
//   - "anniversary of traits.d within next N days": the next anniversary
//     (today included) is one of the N days starting today, in
//     Options.Location; Feb 29 falls on Feb 28 in common years. It changes
//     at local midnight.
//   - "traits.d more than D ago": d+D <= now; "within last D": now-D < d <= now.
//     Date-only values are midnight in Options.Location.
//
// NextDue is never late: nothing changes strictly between now and NextDue,
// and Advance at NextDue gives what Naive gives at that instant (the
// property test checks both over random definitions and streams). It may
// be early in rare cases (a boundary that turns out not to change the
// answer); Advance then changes nothing and returns the next one.
//
// # Numbers
//
// Numbers are exact decimals, never float64: a coefficient and a scale
// (num in num.go), so 0.10 + 0.20 + 0.20 is 0.5 and orders of 386.93 and
// 113.07 total exactly 500. Event properties and profile traits arrive
// as float64 (JSON decoding, in ingest and in the store's payload
// decoding); each converts to the shortest decimal that reads back as
// the same float64 (strconv.FormatFloat(f, 'f', -1, 64)), which is the
// text the sender wrote for any amount with up to 15 significant
// digits, so ingest keeps float64. Literals in definitions convert the
// same way; a json.Number converts from its text.
//
//   - sum, min and max are exact decimals; count and distinct integers.
//   - avg and division keep a quotient that does not end as a fraction
//     (sum over count), so avg >= 120 compares sum >= 120 × count in
//     integers: the average of 100.00 and 140.00 is exactly 120.
//   - Shown values (Value.String, Number, evidence, Explain, JSON) are
//     exact and as short as possible (386.93, 0.5, 500); money is shown
//     with its currency's decimals (500.00 GBP). A quotient that does not
//     end is shown rounded half-even to two more decimals than its
//     exact numerator has (the average of 10, 20 and 20 is 16.67; of
//     1.5, 2 and 2 is 1.833); money to its decimals.
//   - The range is a 64-bit coefficient with up to 18 decimals
//     (±92 quadrillion at two decimals). A value or result outside it
//     (1e300 in an event, a sum beyond it, an average's divisor beyond
//     2^31) is overflow: detected, never wrapped, shown as "overflow",
//     null in Value.Any, and false in comparisons except != and exists.
//     A running all-time sum that overflowed stays overflow; windowed
//     sums recompute. Integers beyond 2^53 in events are not exact
//     (float64 already rounded them).
//
// # Currencies and scope
//
// An aggregate of an amount (rule.IsAmount) is money in one currency,
// fixed at compile time: the one it converts into, the one its scope
// names, or Options.Currency (USD by default); Program.curs holds each
// node's. It reads only amounts in that currency (an implicit scope),
// converted at Options.Rates and rounded half-even to the currency's
// decimals, so currencies are never added. Scope (source, store,
// currency) is part of a feature's key and is checked before the filter
// in Program.values. Arithmetic that adds two currencies does not
// compile; Program.NewCurrencyCheck finds, in events shown to it,
// amounts an aggregate would leave out, for the engine to refuse
// definitions with.
//
// A fresh State starts as the empty profile: count, sum and distinct 0,
// other aggregates null, and the memberships that follows; its first
// Result reports entries into segments an empty profile is in ("did not
// perform ...") and only the traits that differ from the empty values.
//
// # Population-relative conditions
//
// rank of T, percentile of T, quartile/quintile/decile of T and T in
// top/bottom P% (rank.go; tie rules in package rule) compare a profile
// with others. Profile.Rank (a Ranking, from Population.View) answers
// them; nil ranks the profile in a population of itself. The caller keeps
// a Population, one per Program:
//
//	pop := prog.NewPopulation()                      // nil: the program ranks nothing
//	prof.Rank = pop.View(pid)
//	res := prog.Apply(st, prof, ev, now)             // ranks pid at its new value
//	for _, o := range pop.Update(pid, st) {          // record it; who may have crossed a threshold
//		r := prog.Rerank(states[o], profs[o], now)   // same instant; then Update(o) too
//	}
//	snaps := prog.NaivePopulation(profiles, at)      // the reference: counts one by one
//
// A ranked segment is evaluated on a fresh state (as a profile-reading
// one is), never taken from the template. TestPopulationMatchesNaive is
// the property test over several profiles.
//
// # State and speed
//
// Each event is matched against features: one (event name, filter, value
// path) shared by every trait that reads it, so "revenue in 30 days",
// "in 365 days" and "all time" extract the revenue once. Traits over all
// time or fixed dates fold into running values (count, sum, min, max,
// first/last with their time, hash sets for distinct). Traits over rolling
// and calendar windows read a per-profile list of compact records: event
// time in Unix ms, a bitmask of matching features and only the values
// those features need (numbers as a word of coefficient and scale,
// strings interned in the state, distinct values as 64-bit hashes),
// sorted by time and pruned
// beyond the longest window. An event re-evaluates only the traits whose
// features it matched and the segments reading those traits (and the
// segments referring to those); time re-evaluates only the traits whose
// due instant passed.
//
// Conditions on an event's own line items (where sum(products.quantity)
// >= 24, any(...), all(...)) and on lengths and nested paths are part of
// a feature's filter: they are decided once, when the event is
// extracted, and a record keeps only the feature's bit. So "at least 2
// orders in the last year each of 24+ units" costs what any filtered
// count costs, and expires exactly like it. Naive interprets the filters
// from the syntax tree instead (line-item sums as exact rationals), so
// the property test checks the compiled filters as well.
//
// Expressions in filters (properties.shipping_address.name !=
// traits.first_name + " " + traits.last_name) are decided the same way,
// once per event, with the profile's traits as the event arrives (Apply's
// prof): a later identify changes only later events' matches. Naive,
// NaiveAt and Rebuild give each event the traits it saw (replayed from
// the events in log order, or given). Expressions in conditions are a
// leaf evaluated from its nodes' values and the profile's traits
// whenever its segment is, after either changed.
//
// State.MarshalBinary/UnmarshalBinary snapshot a state; Program.Adopt
// checks that a decoded state belongs to the program (same definitions
// and time zone; Program.Fingerprint identifies it). After a definition
// edit, states are rebuilt with Program.Rebuild from each profile's events
// (see BenchmarkRecompute); its Result lists the profile's memberships and
// non-empty traits, so the engine can diff them against the old ones.
//
// # Tests
//
// testdata/*.txt are customer stories (events at times, expected
// memberships, traits and due instants) run by TestScripts; every step is
// also checked against Naive. TestIncrementalMatchesNaive is the property
// test (KILN_PROP_SEEDS=20000 for a longer hunt).
//
// Limits: distinct over all time keeps 8 bytes per distinct value; first
// and last of strings keep the strings; windows are at most ten years, so
// a profile's records are bounded by its events in the longest window.
package eval
