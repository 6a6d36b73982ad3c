package kiln

import "time"

// EventType is the Segment call type an event arrived as.
type EventType string

// The Segment spec's call types. Commerce webhooks and bulk imports are
// mapped onto these too (an order becomes a track "Order Completed").
const (
	Track    EventType = "track"
	Identify EventType = "identify"
	Alias    EventType = "alias"
	Group    EventType = "group"
	Page     EventType = "page"
	Screen   EventType = "screen"
)

// Valid reports whether t is one of the known call types.
func (t EventType) Valid() bool {
	switch t {
	case Track, Identify, Alias, Group, Page, Screen:
		return true
	}
	return false
}

// Canonical event names from Segment's e-commerce spec v2 and the
// engagement events Kiln maps webhooks onto. Properties follow the spec:
// "Order Completed" carries order_id, revenue (or total), currency and
// products[] with product_id, sku, name, category, price, quantity.
const (
	OrderCompleted   = "Order Completed"
	OrderRefunded    = "Order Refunded"
	OrderCancelled   = "Order Cancelled"
	CheckoutStarted  = "Checkout Started"
	ProductViewed    = "Product Viewed"
	ProductAdded     = "Product Added"
	EmailOpened      = "Email Opened"
	EmailLinkClicked = "Email Link Clicked"
	EmailBounced     = "Email Bounced"
	Unsubscribed     = "Unsubscribed"
	SignedUp         = "Signed Up"
	// Restaurant vocabulary (Kiln's own; Segment has no spec for it).
	VisitCompleted   = "Visit Completed"
	EventRSVPed      = "Event RSVP"
	FeedbackGiven    = "Feedback Given"
	LoyaltyMilestone = "Loyalty Milestone Reached"
)

// Event is one thing that happened to or was done by a customer, in
// canonical (Segment) form. Ingest fills everything but Seq; the store's
// event log assigns Seq when the event becomes durable.
type Event struct {
	// Seq is the event's position in the durable log, assigned on append.
	Seq int64 `json:"seq,omitempty"`
	// MessageID makes delivery idempotent: a second event with the same
	// MessageID from the same source is a retry and is not stored again.
	MessageID string    `json:"messageId"`
	SourceID  string    `json:"sourceId"`
	Type      EventType `json:"type"`
	// Name is the track event name ("Order Completed") or the page/screen name.
	Name        string `json:"event,omitempty"`
	UserID      string `json:"userId,omitempty"`
	AnonymousID string `json:"anonymousId,omitempty"`
	PreviousID  string `json:"previousId,omitempty"` // alias only
	GroupID     string `json:"groupId,omitempty"`    // group only
	// Anchor is the event's strongest identifier ("user_id:42",
	// "email:a@b.c", ...; see Identifier.String). Events belong to the
	// profile their anchor resolves to, so merges and unmerges move events
	// without rewriting them.
	Anchor string `json:"anchor"`
	// Timestamp is when the event happened, after clock-skew correction.
	Timestamp  time.Time      `json:"timestamp"`
	ReceivedAt time.Time      `json:"receivedAt"`
	Store      string         `json:"store,omitempty"` // store or location, if any
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
}
