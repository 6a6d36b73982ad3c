// Package identity decides which customer profile each event belongs to.
// It is pure: no I/O, no clock. It normalises identifiers, extracts them
// from events, picks an event's anchor, and keeps the in-memory index of
// identifier -> profile that resolution runs on.
//
// # Identifiers and anchors
//
// Extract (or Extractor.Extract, for non-default Rules) returns an event's
// normalised identifiers, strongest kind first; Anchor picks the strongest.
// Ingest stores that anchor with the event, and the event belongs to
// whichever profile holds its anchor identity, so merges and unmerges move
// events without rewriting them. Ingest and the Resolver must therefore use
// the same Rules (country code, blocklist, blocked values): the Resolver
// honours the stored anchor, and an event anchored on an identifier it
// considers blocked is unresolvable.
//
// NormalizeEmail lower-cases and validates; NormalizePhone produces E.164
// using a configurable default country code; user and anonymous ids are only
// trimmed (they are case-sensitive); loyalty numbers are upper-cased with
// spaces and dashes removed.
//
// # Resolution rules
//
// The Resolver takes events in Seq order. For each event:
//
//   - Values that do not normalise, blocked values (DefaultBlockedValues:
//     "null", "undefined", "test@test.com", "noreply@*", ...) and blocklisted
//     identifiers (a shop's shared tablet) are not identifiers at all. An
//     event left with none is Unresolvable: it links nothing, counts on no
//     profile, and the caller may log it.
//   - An identifier on the suppression list (Config.Suppressed: a deleted
//     customer) that the index does not know is ignored; if it is the
//     anchor, the event is dropped with Status Suppressed.
//   - The event belongs to its anchor's profile. An unknown anchor joins the
//     profile of the strongest known identifier that accepts it, else a new
//     profile is created.
//   - Every other identifier of the event is linked to that profile: an
//     unknown one is attached; one on another profile merges the two. The
//     survivor (Merge.Into) is the older profile: the one whose identifiers
//     were first seen earliest (to the second; ties go to the smaller id).
//     That age is computable from the stored identities alone, so a
//     restarted resolver decides exactly as the running one would have.
//   - A link is refused (and reported in Outcome.Refused, nothing else
//     changes) if it would give a profile more identifiers of a kind than
//     Config.MaxPerKind, or if both sides have a user id: user ids are
//     authoritative, and two different ones only merge through an alias
//     (Config.MergeUserIDs turns this off). The event still counts on its
//     anchor's profile.
//   - An alias (userId + previousId) merges with rule "alias"; its previousId
//     is matched against known anonymous ids when it is not a known user id.
//   - Traits of identify events and context.traits of any event are set on
//     the profile key by key, the later event winning. Consent comes from
//     consent traits (email_consent, unsubscribed, accepts_marketing, ...)
//     and track "Unsubscribed" events.
//
// # Batches
//
// Resolve changes the index at once and accumulates a pending change set.
// Pending returns it as a store.Resolution in the form store.ApplyResolution
// documents: merges in order (only those whose From the store has: a profile
// created and merged away within one batch is folded into its survivor's
// change without a record; if the survivor is the one the store does not
// have yet, the store renames From to it), one ProfileChange of deltas per
// live touched profile, the final profile of every new or moved identity,
// consent per profile and channel, and the checkpoint. The caller writes it
// in one transaction, then calls Commit; if the write fails, Abort restores
// the index to the last Commit and the events can be resolved again.
//
// Batching does not change decisions: committing after every event or once
// at the end gives the same profiles, identities, counts and consent. Only
// traits of merged profiles can differ, because the store folds a merged
// profile's traits with the survivor's keys winning, while within one batch
// the later event wins.
//
// # Memory
//
// The index keeps identifiers and profile ids in pointer-free byte arenas
// with an open-addressing hash table of integers, so a few million
// identifiers cost the garbage collector nothing to scan; lower-case UUIDs
// and hex ids are stored as bytes. Entries of merged-away profiles and
// forgotten identifiers stay until the next start-up, which loads only live
// ones. See the package benchmarks for measured size and throughput (about
// 72 bytes per identifier with 1M profiles of 3 identifiers each, and
// several hundred thousand events of known customers per CPU second).
package identity
