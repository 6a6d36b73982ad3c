package store

import (
	"context"
	"encoding/json"
	"time"
)

// Outbox keeps what Kiln does about segment transitions: the actions
// waiting to be delivered (the outbox), the destinations they go to and
// the automations that create them.
//
// Actions are written through Resolution.Actions, in the same transaction
// as the transitions that cause them, so an action is durable exactly when
// its transition is. A delivery worker then claims due items, delivers
// them and records the outcome with FinishOutbox.
//
// Order: items of one lane (ProfileID, Destination) are delivered in the
// order of (Due, ID); ClaimOutbox only hands out the first unfinished item
// of a lane, so one lane has at most one item in flight and an item
// waiting for a retry holds back the items after it.
type Outbox interface {
	// ClaimOutbox leases up to limit items that are pending, due at or
	// before now, not leased (or whose lease ended) and first in their
	// lane, until now+lease, and returns them oldest due first. A worker
	// that dies leaves its items to be claimed again when the lease ends.
	ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxItem, error)
	// ClaimDestinations is ClaimOutbox for each destination on its own,
	// with its own limit, in one transaction: a destination with a large
	// backlog it cannot deliver (a hung vendor) costs the others nothing,
	// since each claim seeks its destination's pending items by index
	// rather than walking past everyone else's.
	ClaimDestinations(ctx context.Context, now time.Time, lease time.Duration, want []DestinationClaim) ([]OutboxItem, error)
	// ExtendOutbox renews the leases of items still leased (pending and
	// claimed_until after now) to until, and returns the IDs it renewed.
	// An item whose lease had already ended may belong to another worker
	// by now, so it is left alone: its holder must not send it.
	ExtendOutbox(ctx context.Context, ids []int64, now, until time.Time) ([]int64, error)
	// OutboxBacklog sums up the pending items of every destination that
	// has any: how many, how many are due at now, and the oldest due time
	// among those due.
	OutboxBacklog(ctx context.Context, now time.Time) ([]Backlog, error)
	// FinishOutbox records the outcome of claimed items and ends their
	// leases, in one transaction. Results for unknown IDs are ignored.
	FinishOutbox(ctx context.Context, results []OutboxResult) error
	// NextOutboxDue returns the earliest NextAt after after among pending
	// items, the zero time if there is none: when a worker that found
	// nothing to claim should look again.
	NextOutboxDue(ctx context.Context, after time.Time) (time.Time, error)
	// ListOutbox returns items by ID, oldest first.
	ListOutbox(ctx context.Context, q OutboxQuery) ([]OutboxItem, error)
	// ReplayOutbox makes dead items pending again, due at now with no
	// attempts, and returns how many it changed. Empty ids: every dead item.
	ReplayOutbox(ctx context.Context, ids []int64, now time.Time) (int, error)
	// LaneHead reports whether the item is the first unfinished item of
	// its lane (false also when it is finished or unknown): a worker that
	// got an item without ClaimOutbox checks this before sending it.
	LaneHead(ctx context.Context, id int64) (bool, error)
	// LaneAhead returns how many pending items are ahead of the item in
	// its lane (0: it heads the lane), or -1 when it is finished or
	// unknown. A worker that holds several items of one lane sends them
	// together only when they are all the lane has up to the last of them.
	LaneAhead(ctx context.Context, id int64) (int, error)
	// CountDelivered returns how many items of automations counted by the
	// frequency cap (Capped) were delivered to the profile at or after
	// since, leaving out those delivered without an attempt (superseded).
	CountDelivered(ctx context.Context, profileID string, since time.Time) (int, error)

	// CreateDestination stores a new destination; ErrConflict if the ID or
	// name exists.
	CreateDestination(ctx context.Context, d Destination) error
	// GetDestination returns a destination by ID or name, or ErrNotFound.
	GetDestination(ctx context.Context, idOrName string) (*Destination, error)
	// ListDestinations returns every destination, by name.
	ListDestinations(ctx context.Context) ([]Destination, error)
	// DeleteDestination removes a destination and its acknowledged
	// states (Sync); ErrNotFound if none.
	DeleteDestination(ctx context.Context, id string) error

	// PutAutomation creates an automation or replaces the one with its ID.
	// ErrConflict if another automation has its name.
	PutAutomation(ctx context.Context, a Automation) error
	// GetAutomation returns an automation by ID or name, or ErrNotFound.
	GetAutomation(ctx context.Context, idOrName string) (*Automation, error)
	// ListAutomations returns every automation, by name.
	ListAutomations(ctx context.Context) ([]Automation, error)
	// DeleteAutomation removes an automation; ErrNotFound if none.
	DeleteAutomation(ctx context.Context, id string) error
}

// DestinationClaim asks ClaimDestinations for up to Limit items of one
// destination.
type DestinationClaim struct {
	Destination string
	Limit       int
	// Runs claims, besides lane heads, the items behind them that are due
	// and not leased up to the first that is not: a batching worker sends
	// a lane's run in one call (only the last change per segment, when
	// they coalesce). Where the limit cuts a run, or another claimer took
	// its start, an item may be claimed without the items ahead of it: the
	// worker checks with LaneAhead and hands such items back.
	Runs bool
}

// Backlog is one destination's pending items (see OutboxBacklog).
type Backlog struct {
	Destination string
	Pending     int       // pending items, due or not
	Due         int       // pending items due now (waiting for a worker or a lane)
	OldestDue   time.Time // the earliest Due among the due ones; zero if none
}

// Outbox item states.
const (
	OutboxPending   = "pending"   // waiting to be delivered (or retried)
	OutboxDelivered = "delivered" // the destination accepted it
	OutboxDead      = "dead"      // failed permanently or too often: a dead letter
	OutboxSkipped   = "skipped"   // not sent on purpose (consent, suppression, cap, recheck)
)

// OutboxItem is one action for one transition.
type OutboxItem struct {
	ID int64 `json:"id"` // assigned by the store
	// Transition is the index in Resolution.Transitions of the transition
	// that caused the item, when written through a Resolution; the store
	// sets TransitionID from it in the same transaction.
	Transition   int    `json:"-"`
	TransitionID int64  `json:"transitionId"`
	ProfileID    string `json:"profileId"`
	Destination  string `json:"destination"` // destination ID
	Automation   string `json:"automation"`  // automation ID
	// Key is the idempotency key, the same on every attempt (the
	// webhook-id header, the connector's idempotency key).
	Key string `json:"key"`
	// Payload is what the action needs at delivery: the transition as the
	// action package encodes it.
	Payload  json.RawMessage `json:"payload"`
	State    string          `json:"state"`
	Attempts int             `json:"attempts"`
	// Due orders the lane and never changes; NextAt is when the next
	// attempt may run (Due at first, later after a backoff).
	Due        time.Time `json:"due"`
	NextAt     time.Time `json:"nextAt"`
	CreatedAt  time.Time `json:"createdAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// ClaimedUntil, when set on an item written through a Resolution,
	// writes it already leased to the process that planned it, which then
	// delivers it without claiming it (see LaneHead).
	ClaimedUntil time.Time `json:"-"`
	LastError    string    `json:"lastError,omitempty"`
	Capped       bool      `json:"capped,omitempty"` // counts toward the frequency cap
}

// OutboxResult is the outcome of one attempt at a claimed item.
type OutboxResult struct {
	ID    int64
	State string // OutboxPending (retry or postpone), OutboxDelivered, OutboxDead or OutboxSkipped
	// Attempted says the item was sent (Attempts grows by one); false for a
	// postponement (quiet hours) or a skip decided before sending.
	Attempted bool
	NextAt    time.Time // for OutboxPending
	At        time.Time // when the outcome was decided
	Error     string
	// Ack, with State OutboxDelivered, is what the destination now
	// acknowledges (see Sync), recorded in the same transaction.
	Ack *SyncAck
}

// OutboxQuery selects outbox items.
type OutboxQuery struct {
	State string // "" for all
	After int64  // IDs greater than this
	Limit int    // 0 means 100
}

// Destination is where actions go: a webhook, an SMTP server or a vendor
// connector. Secrets are sealed (connector.Seal) with the ID as associated
// data; the store never sees them in the clear.
type Destination struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Kind      string          `json:"kind"` // "webhook", "smtp" or a connector id
	Config    json.RawMessage `json:"config,omitempty"`
	Sealed    []byte          `json:"-"`
	RateLimit float64         `json:"rateLimit,omitempty"` // deliveries per second, 0: the kind's default
	CreatedAt time.Time       `json:"createdAt"`
}

// Automation runs an action when profiles enter or leave a segment.
type Automation struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Segment     string        `json:"segment"`
	On          string        `json:"on"` // "enter" or "exit"
	Delay       time.Duration `json:"delay,omitempty"`
	Recheck     string        `json:"recheck,omitempty"` // a segment the profile must still be in at send time, or a condition (package action)
	Destination string        `json:"destination"`       // destination ID
	// Options are the action's settings (traits to include, email
	// subject and body, connector operation, quiet hours, channel).
	Options   json.RawMessage `json:"options,omitempty"`
	Enabled   bool            `json:"enabled"`
	Hook      bool            `json:"hook,omitempty"` // a REST Hooks subscription
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}
