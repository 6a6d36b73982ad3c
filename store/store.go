// Package store is the storage seam: the interface every backend
// implements, its parameter types and its sentinel errors. The backends are
// store/sqlite (the embedded default) and store/postgres; store/storetest is
// the conformance suite both pass.
//
// Times cross this boundary in UTC. Backends never read the clock: callers
// pass the time to record.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Sentinel errors. Backends translate their database errors into these, so
// callers can test with errors.Is whatever the backend.
var (
	ErrNotFound = &kiln.Error{Code: kiln.ENotFound, Message: "not found"}
	ErrConflict = &kiln.Error{Code: kiln.EConflict, Message: "already exists"}
)

// IsNotFound reports whether err is or wraps ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// LockedError is Lock's error when another process holds the store.
type LockedError struct {
	Store  string // what is held: the SQLite file, or the PostgreSQL database and schema
	Holder string // who holds it, when known: "pid 1234", "pid 1234 on web1"
}

func (e *LockedError) Error() string {
	if e.Holder == "" {
		return e.Store + " is in use by another kiln process"
	}
	return e.Store + " is in use by another kiln process (" + e.Holder + ")"
}

// Store is everything Kiln keeps. Implementations are safe for concurrent use.
type Store interface {
	Log
	Profiles
	Keys
	Checkpoints
	Segments
	Outbox
	Sync
	EngineState
	// Lock takes the store for this process alone, until release is called
	// or the process ends, however it ends: the operating system or the
	// database server drops the lock with the process or its connection.
	// It excludes only other callers of Lock; short-lived admin commands
	// read and write beside the holder. If another process holds the store,
	// Lock fails at once with a *LockedError. A process that runs the
	// engine or delivers actions takes it before anything writes (see
	// cmd/kiln); cluster mode (issue 19) will replace it with its own
	// coordination. Call it once per store; release is idempotent.
	Lock(ctx context.Context) (release func(), err error)
	// Close releases the database. Callers stop using the store first.
	Close() error
}

// Batch is what one durable append writes: events and the rejects found
// beside them, in one transaction.
type Batch struct {
	Events  []kiln.Event
	Rejects []kiln.Reject
}

// Log is the durable, append-only event log and the rejects log.
type Log interface {
	// Append writes b in one transaction and returns once it is durable.
	// An event whose (SourceID, MessageID) is already stored is a retry and
	// is skipped: for all time on PostgreSQL (a unique index), within the
	// dedup window on SQLite (at least 24 hours of message ids, as
	// Segment's own service keeps). Append sets Seq on every new event (in b.Events order,
	// increasing) and leaves it 0 on skipped ones; it returns the number of
	// new events. When b holds a value the store cannot hold (NaN, a time
	// out of range, a NUL in a PostgreSQL text column) the error has code
	// kiln.EInvalid: the data's fault, so the same batch fails again, where
	// any other error may pass on a retry. A reject's text never fails it.
	Append(ctx context.Context, b Batch) (int, error)
	// ReadEvents returns up to limit events with Seq > after, by Seq.
	ReadEvents(ctx context.Context, after int64, limit int) ([]kiln.Event, error)
	// ScanLog calls fn with consecutive chunks of events with after < Seq <= upTo, in Seq order.
	// fn must not keep the slice after it returns. An error from fn stops the scan.
	ScanLog(ctx context.Context, after, upTo int64, fn func([]kiln.Event) error) error
	// LastSeq returns the highest Seq in the log, 0 when empty.
	LastSeq(ctx context.Context) (int64, error)
	// EventsByAnchor returns the events whose Anchor is one of anchors,
	// newest first by Timestamp (then Seq), at most limit (0: all).
	EventsByAnchor(ctx context.Context, anchors []string, limit int) ([]kiln.Event, error)
	// CountEvents returns how many events the log holds.
	CountEvents(ctx context.Context) (int64, error)
	// ListRejects returns rejects with ID > after, oldest first, at most
	// limit, optionally only for one source.
	ListRejects(ctx context.Context, f RejectFilter) ([]kiln.Reject, error)
}

// RejectFilter selects rejects.
type RejectFilter struct {
	SourceID string // "" for all sources
	After    int64  // return IDs greater than this
	Limit    int    // 0 means 100
}

// Resolution is what resolving a run of events changed, written atomically
// with the checkpoint of the last event it covers. The store applies it in
// this order: Merges (each in order), then Profiles, Identities, Consent,
// Transitions, and last the checkpoint.
type Resolution struct {
	// Merges fold profile From into Into: if Into exists, From's counts,
	// first/last seen, traits (Into's keys win) and consent (newest wins)
	// are added to it and From is deleted; if Into does not exist yet, From
	// is renamed to Into. The store records each merge with a snapshot of
	// From as it was, for UndoMerge. The Merge's ID is assigned by the store.
	Merges []kiln.Merge
	// Profiles are created or updated with the deltas in ProfileChange.
	Profiles []ProfileChange
	// Identities are inserted, or moved to the given ProfileID if present.
	Identities []kiln.Identity
	// Consent sets the latest consent for (profile, channel) unless the
	// stored one is newer.
	Consent []ConsentChange
	// Transitions are segment entries and exits, applied after everything
	// above: each is appended to the transition log (the store sets its ID
	// in this slice) and updates the current memberships (see Segments).
	Transitions []kiln.Transition
	// Actions are outbox items for Transitions (see Outbox), written after
	// them; the store sets each one's ID and TransitionID in this slice.
	Actions []OutboxItem
	// Checkpoint names a checkpoint set to Seq in the same transaction
	// (Name "" for none).
	Checkpoint Checkpoint
	// Checkpoints are further positions set in the same transaction (the
	// engine's clock, which must move exactly with what it recorded).
	Checkpoints []Checkpoint
	// Definitions are new definition versions (see SaveDefinitions),
	// saved with the transitions their change caused.
	Definitions []kiln.Definition
	// ModelTraits replace profiles' model traits, and Blobs named blobs
	// (the fitted models, the snapshot header), with what they caused.
	ModelTraits []ModelTraits
	Blobs       []Blob
	// IndexUpTo says every event up to this Seq has been processed. A
	// backend may build secondary indexes of the log here rather than in
	// Append, off the ingest path (SQLite builds its anchor index); queries
	// must still see every event either way. 0: nothing to index.
	IndexUpTo int64
	// Derived says everything in the Resolution can be derived again from
	// the log (the engine's processing of events and expiries): a backend
	// may commit it without waiting for the disk, since after a power cut
	// it is derived again, the same. Writes a user is told succeeded
	// (definition edits, unmerges, deletions) leave it false.
	Derived bool
}

// ProfileChange creates a profile or updates it.
type ProfileChange struct {
	ID string
	// When set, the stored profile's counts, seen times and traits are
	// replaced by the values below instead of combined with them (used
	// after an unmerge recomputes a profile from its events).
	Replace bool
	// Seen: FirstSeen lowers the stored first-seen, LastSeen raises the
	// stored last-seen; zero times are ignored.
	FirstSeen time.Time
	LastSeen  time.Time
	// EventCount is added to the stored count.
	EventCount int64
	// Traits are set key by key over the stored traits; a nil value
	// removes the key.
	Traits map[string]any
	At     time.Time // CreatedAt on insert, UpdatedAt always
}

// ConsentChange sets one channel's consent on a profile.
type ConsentChange struct {
	ProfileID string
	kiln.Consent
}

// Checkpoint is a named position in the event log (or any other counter a
// consumer needs to keep durably).
type Checkpoint struct {
	Name string
	Seq  int64
}

// ProfileQuery selects profiles for listing.
type ProfileQuery struct {
	// Search matches an identifier value prefix (case-insensitive) or an
	// exact profile id; "" matches all.
	Search string
	After  string // return profiles with ID greater than this (cursor)
	Limit  int    // 0 means 50
}

// Profiles holds profiles, their identities, merges, consent and the
// suppression list.
type Profiles interface {
	// ApplyResolution writes r atomically.
	ApplyResolution(ctx context.Context, r Resolution) error
	// ScanIdentities calls fn for every identity, in no particular order;
	// the resolver loads its index with it at start-up. An error from fn
	// stops the scan and is returned.
	ScanIdentities(ctx context.Context, fn func(kiln.Identity) error) error
	// GetProfile returns a profile with its identities and consent, or ErrNotFound.
	GetProfile(ctx context.Context, id string) (*kiln.Profile, error)
	// ProfileFor returns the id of the profile holding the identifier, or ErrNotFound.
	ProfileFor(ctx context.Context, id kiln.Identifier) (string, error)
	// ListProfiles returns profiles by ID, with identities (no consent), and
	// the cursor for the next page ("" on the last page).
	ListProfiles(ctx context.Context, q ProfileQuery) ([]kiln.Profile, string, error)
	// CountProfiles returns how many profiles there are.
	CountProfiles(ctx context.Context) (int64, error)
	// DeleteProfile removes the profile, its identities, its events (by
	// anchor), consent and merge records, and with suppress adds its
	// identifiers to the suppression list, all in one transaction. It
	// returns the identities it removed, or ErrNotFound.
	DeleteProfile(ctx context.Context, id string, suppress bool, reason string, at time.Time) ([]kiln.Identity, error)
	// SetConsent sets one channel's consent (an API call or engagement
	// webhook); an older At than the stored one changes nothing. ErrNotFound
	// if the profile does not exist.
	SetConsent(ctx context.Context, c ConsentChange) error
	// Merges returns the merges into or from the profile, newest first.
	Merges(ctx context.Context, profileID string) ([]kiln.Merge, error)
	// MergesAfter returns every merge with ID > after, by ID.
	MergesAfter(ctx context.Context, after int64) ([]kiln.Merge, error)
	// GetMerge returns one merge, or ErrNotFound.
	GetMerge(ctx context.Context, id int64) (*kiln.Merge, error)
	// UndoMerge moves the merge's identities back to its From profile,
	// recreating From from the snapshot taken at merge time, and marks the
	// merge undone at the given time. ErrConflict if already undone.
	// Callers then recompute both profiles from their events.
	UndoMerge(ctx context.Context, id int64, at time.Time) (*kiln.Merge, error)
	// Suppressed returns which of ids are on the suppression list.
	Suppressed(ctx context.Context, ids []kiln.Identifier) ([]kiln.Identifier, error)
	// ListSuppressions returns the whole suppression list.
	ListSuppressions(ctx context.Context) ([]kiln.Suppression, error)
	// AddSuppressions adds identifiers to the suppression list (existing ones are kept).
	AddSuppressions(ctx context.Context, s []kiln.Suppression) error
}

// Keys holds sources and API keys.
type Keys interface {
	// CreateSource stores a new source; ErrConflict if the ID or name exists.
	CreateSource(ctx context.Context, s kiln.Source) error
	// GetSource returns a source by ID or name, or ErrNotFound.
	GetSource(ctx context.Context, idOrName string) (*kiln.Source, error)
	ListSources(ctx context.Context) ([]kiln.Source, error)
	// SealSourceSecrets replaces every plaintext Secret with seal's result
	// (stored as SealedSecret) and returns how many it sealed: the step
	// that seals rows written before secrets were sealed at rest, run by a
	// server that has the key. Stores never encrypt themselves; they keep
	// what they are given.
	SealSourceSecrets(ctx context.Context, seal func(kiln.Source) ([]byte, error)) (int, error)
	// CreateKey stores a key (its Hash, never the token); ErrConflict if the ID exists.
	CreateKey(ctx context.Context, k kiln.Key) error
	// KeyByHash returns the key with that token hash, revoked or not, or ErrNotFound.
	KeyByHash(ctx context.Context, hash string) (*kiln.Key, error)
	ListKeys(ctx context.Context) ([]kiln.Key, error)
	// RevokeKey marks a key revoked by ID or prefix; ErrNotFound if none.
	RevokeKey(ctx context.Context, idOrPrefix string, at time.Time) error
}

// Checkpoints keeps named positions durably.
type Checkpoints interface {
	// GetCheckpoint returns the named position, 0 if never set.
	GetCheckpoint(ctx context.Context, name string) (int64, error)
	SetCheckpoint(ctx context.Context, c Checkpoint) error
}
