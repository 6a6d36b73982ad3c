package store

import (
	"context"
	"time"
)

// Sync keeps what each vendor destination acknowledged of a segment's
// membership (issue 12): for every (destination, segment, profile) Kiln
// ever synced, whether the vendor confirmed the profile in or out, and a
// hash of the traits it confirmed with it. The desired state is the
// current membership (Segments); the dispatcher sends only the difference
// between the two, and a full reconciliation corrects the acknowledged
// state from what the vendor lists.
//
// Acknowledged states are written only on the vendor's success: with the
// outcome of the item that carried the change (OutboxResult.Ack, in the
// same transaction as the outcome), or by a reconciliation that read the
// vendor's membership (PutSyncAcks).
type Sync interface {
	// SyncAcks returns the acknowledged states of the given profiles for
	// (destination, segment), by profile id; a profile with none is absent.
	SyncAcks(ctx context.Context, destination, segment string, profiles []string) (map[string]SyncAck, error)
	// ScanSyncAcks calls fn for every acknowledged state of (destination,
	// segment), by profile id. An error from fn stops the scan and is
	// returned.
	ScanSyncAcks(ctx context.Context, destination, segment string, fn func(SyncAck) error) error
	// PutSyncAcks records acknowledged states, replacing those with the
	// same (Destination, Segment, ProfileID) unless the stored one is
	// newer (a later At: a reconciliation's snapshot of the vendor never
	// overwrites what a delivery confirmed after it), in one transaction.
	// FinishOutbox records OutboxResult.Ack the same way.
	PutSyncAcks(ctx context.Context, acks []SyncAck) error
	// ForgetSyncAcks makes the acknowledged states of the given keys
	// (Destination, Segment, ProfileID) unknown, unless the stored one is
	// newer than its At. A dispatcher does it before a call that changes
	// them: if it dies, or the call fails, after the vendor applied the
	// change, nothing claims a state the vendor may no longer have.
	ForgetSyncAcks(ctx context.Context, keys []SyncAck) error
	// EnqueueOutbox writes pending items that no transition caused (a
	// reconciliation's): Transition is ignored and TransitionID is 0. It
	// sets each item's ID, in one transaction.
	EnqueueOutbox(ctx context.Context, items []OutboxItem) error
}

// SyncAck is what a destination acknowledged for one profile and segment.
// Segment is "" for a profile's attributes (upserts).
type SyncAck struct {
	Destination string    `json:"destination"`
	Segment     string    `json:"segment"`
	ProfileID   string    `json:"profileId"`
	In          bool      `json:"in"`                   // the vendor has the profile in the segment's list, tag or audience
	TraitsHash  string    `json:"traitsHash,omitempty"` // of the traits sent with it ("" for none)
	At          time.Time `json:"at"`                   // when the vendor confirmed it
}

// ScanPage is how many acknowledged states a ScanSyncAcks query reads.
const ScanPage = 1000

// ScanSyncAckPages pages ScanSyncAcks by profile id for a backend: page
// reads up to ScanPage states after a profile id, and fn sees each. No
// read stays open while fn runs, so fn may write to the store.
func ScanSyncAckPages(page func(after string) ([]SyncAck, error), fn func(SyncAck) error) error {
	after := ""
	for {
		acks, err := page(after)
		if err != nil {
			return err
		}
		for _, a := range acks {
			if err := fn(a); err != nil {
				return err
			}
		}
		if len(acks) < ScanPage {
			return nil
		}
		after = acks[len(acks)-1].ProfileID
	}
}
