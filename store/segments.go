package store

import (
	"context"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Segments keeps what the segment engine needs durably: definition
// versions, current memberships, the transition log, segment sizes over
// time and static segment lists.
//
// Transitions are written through Resolution.Transitions, so they commit
// atomically with the event checkpoint that produced them (and, later,
// with the actions they trigger). Applying a transition updates the
// current memberships: an entry inserts (or replaces) the membership with
// Since = At and the transition's Version; an exit deletes it.
type Segments interface {
	// SaveDefinitions stores new definition versions in one transaction. A
	// Definition with DeletedAt set records that the definition was
	// removed. ErrConflict if a (Name, Version) exists already.
	SaveDefinitions(ctx context.Context, defs []kiln.Definition) error
	// Definitions returns the latest version of every definition that is
	// not deleted, by name.
	Definitions(ctx context.Context) ([]kiln.Definition, error)
	// DefinitionVersions returns every version of one definition, newest
	// first (ErrNotFound if none).
	DefinitionVersions(ctx context.Context, name string) ([]kiln.Definition, error)

	// Members returns a segment's current members with ProfileID > after,
	// by profile id, at most limit (0: 100).
	Members(ctx context.Context, segment, after string, limit int) ([]kiln.Membership, error)
	// CountMembers returns a segment's current size.
	CountMembers(ctx context.Context, segment string) (int64, error)
	// MembershipsOf returns the segments a profile is in now, by segment.
	MembershipsOf(ctx context.Context, profileID string) ([]kiln.Membership, error)
	// ScanMemberships calls fn for every current membership.
	ScanMemberships(ctx context.Context, fn func(kiln.Membership) error) error

	// Transitions returns transitions with ID > q.After, oldest first.
	Transitions(ctx context.Context, q TransitionQuery) ([]kiln.Transition, error)

	// SaveSegmentSizes appends size samples.
	SaveSegmentSizes(ctx context.Context, sizes []kiln.SegmentSize) error
	// SegmentSizes returns a segment's samples at or after since, oldest first.
	SegmentSizes(ctx context.Context, segment string, since time.Time) ([]kiln.SegmentSize, error)

	// SetStaticMembers adds and removes profiles on a static segment's list.
	SetStaticMembers(ctx context.Context, segment string, add, remove []string) error
	// StaticMembers returns a static segment's list, by profile id.
	StaticMembers(ctx context.Context, segment string) ([]string, error)
	// ScanStaticMembers calls fn for every (segment, profile) listed.
	ScanStaticMembers(ctx context.Context, fn func(segment, profileID string) error) error
}

// TransitionQuery selects transitions.
type TransitionQuery struct {
	Segment   string // "" for all
	ProfileID string // "" for all
	After     int64  // cursor: IDs greater than this
	Limit     int    // 0 means 100
}
