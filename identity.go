package kiln

import (
	"strings"
	"time"
)

// IdentifierKind names a kind of customer identifier.
type IdentifierKind string

// Identifier kinds, strongest first: when an event carries several, the
// first kind in this order is its Anchor.
const (
	UserID      IdentifierKind = "user_id"
	Email       IdentifierKind = "email"
	Phone       IdentifierKind = "phone"
	Loyalty     IdentifierKind = "loyalty"
	AnonymousID IdentifierKind = "anonymous_id"
)

// IdentifierKinds lists every kind, strongest first.
var IdentifierKinds = []IdentifierKind{UserID, Email, Phone, Loyalty, AnonymousID}

// Identifier is one normalised identifier value of a given kind.
type Identifier struct {
	Kind  IdentifierKind `json:"kind"`
	Value string         `json:"value"`
}

// String gives the "kind:value" form used as an event Anchor and in the API.
func (i Identifier) String() string { return string(i.Kind) + ":" + i.Value }

// ParseIdentifier reads the "kind:value" form. A value without a known kind
// prefix is taken as a user id.
func ParseIdentifier(s string) Identifier {
	if k, v, ok := strings.Cut(s, ":"); ok {
		for _, kind := range IdentifierKinds {
			if IdentifierKind(k) == kind {
				return Identifier{Kind: kind, Value: v}
			}
		}
	}
	return Identifier{Kind: UserID, Value: s}
}

// Identity is an identifier attached to a profile.
type Identity struct {
	Identifier
	ProfileID string    `json:"profileId"`
	SourceID  string    `json:"sourceId,omitempty"` // source of the event that first carried it
	FirstSeen time.Time `json:"firstSeen"`
}

// Merge records that profile From was merged into profile Into, which
// identities moved, and why. Undoing it moves those identities (and so their
// events) back to a restored From.
type Merge struct {
	ID         int64        `json:"id"`
	Into       string       `json:"into"`
	From       string       `json:"from"`
	Identities []Identifier `json:"identities"`
	EventSeq   int64        `json:"eventSeq,omitempty"` // the event that linked them, 0 if none
	Rule       string       `json:"rule"`               // e.g. "shared-event", "alias", "manual"
	At         time.Time    `json:"at"`
	UndoneAt   *time.Time   `json:"undoneAt,omitempty"`
}
