package kiln

import (
	"encoding/json"
	"time"
)

// Definition is one stored version of a computed trait or segment. The
// store keeps every version; Body is the definition in the rule package's
// JSON form and Text its readable form, so the store need not understand
// the language.
type Definition struct {
	Name      string          `json:"name"`
	Kind      string          `json:"kind"` // "trait" or "segment"
	Version   int64           `json:"version"`
	Text      string          `json:"text"`
	Body      json.RawMessage `json:"body"`
	AppliedAt time.Time       `json:"appliedAt"`
	// DeletedAt is set on the version that removed the definition.
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
}

// Transition reasons.
const (
	ReasonEvent            = "event"             // an event changed the profile's aggregates
	ReasonExpiry           = "expiry"            // time passed a window boundary
	ReasonDefinitionChange = "definition_change" // a new version of the definition was applied
	ReasonRecompute        = "recompute"         // a scheduled or manual recompute
	ReasonManual           = "manual"            // a static segment was edited
	ReasonProfile          = "profile"           // a profile trait changed, or profiles merged or split
	ReasonModelRefit       = "model_refit"       // a refit of the customer models moved a model trait across a condition
	ReasonRank             = "rank"              // other profiles moved the profile's standing in a population (rank of, in top P%)
)

// Transition is one entry into or exit from a segment, with what caused it.
type Transition struct {
	ID        int64     `json:"id"` // assigned by the store, increasing: a cursor
	Segment   string    `json:"segment"`
	ProfileID string    `json:"profileId"`
	Entered   bool      `json:"entered"` // false: exited
	At        time.Time `json:"at"`      // when it became true (an expiry's exact instant)
	Version   int64     `json:"version"` // of the segment definition
	Reason    string    `json:"reason"`
	EventSeq  int64     `json:"eventSeq,omitempty"` // the event that caused it, for reason "event"
	// Evidence is the values of the condition's leaves that made it true
	// or false, as JSON.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	// Act says whether actions should run for it: false for transitions
	// of a backfill whose policy says not to act on them.
	Act bool `json:"act"`
}

// Membership is a profile's current membership of a segment.
type Membership struct {
	Segment   string    `json:"segment"`
	ProfileID string    `json:"profileId"`
	Since     time.Time `json:"since"`
	Version   int64     `json:"version"`
}

// SegmentSize is a segment's size at an instant, kept for charts.
type SegmentSize struct {
	Segment string    `json:"segment"`
	At      time.Time `json:"at"`
	Size    int64     `json:"size"`
}
