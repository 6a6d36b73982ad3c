package store

import "context"

// EngineState is what the engine keeps beside the log so that a restart
// or a rebuild continues exactly where it was: state that events alone do
// not determine (the fitted customer models and the traits they set), and
// snapshots of its in-memory state, so that a restart replays only the
// log written after the last one.
type EngineState interface {
	// GetBlob returns the named blob (see Resolution.Blobs), nil if none.
	GetBlob(ctx context.Context, name string) ([]byte, error)
	// ScanModelTraits calls fn with every profile's model traits.
	ScanModelTraits(ctx context.Context, fn func(profileID string, traits map[string]any) error) error
	// ModelTraitsOf returns the model traits of the given profiles; a
	// profile without any is absent from the map.
	ModelTraitsOf(ctx context.Context, profileIDs []string) (map[string]map[string]any, error)
	// PutSnapshotPart stores part number part of snapshot generation gen.
	// A generation is made current by a blob written in a Resolution
	// (the engine's snapshot header), so a half-written one is never read.
	PutSnapshotPart(ctx context.Context, gen, part int64, data []byte) error
	// ScanSnapshot calls fn with every part of generation gen in order.
	// fn must not keep data after it returns.
	ScanSnapshot(ctx context.Context, gen int64, fn func(data []byte) error) error
	// DropSnapshots deletes the parts of every generation but keep.
	DropSnapshots(ctx context.Context, keep int64) error
}

// Blob is a named piece of engine state, replaced whole.
type Blob struct {
	Name string
	Data []byte
}

// ModelTraits are the traits the customer models set on a profile,
// replacing those stored before; nil Traits deletes them.
type ModelTraits struct {
	ProfileID string
	Traits    map[string]any
}
