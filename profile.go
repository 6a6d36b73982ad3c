package kiln

import "time"

// Profile is one customer as Kiln knows them.
type Profile struct {
	ID         string     `json:"id"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	FirstSeen  time.Time  `json:"firstSeen"`
	LastSeen   time.Time  `json:"lastSeen"`
	EventCount int64      `json:"eventCount"`
	Identities []Identity `json:"identities,omitempty"`
	// Traits are what identify calls said about the customer, last write
	// (by event time) wins per key.
	Traits map[string]any `json:"traits,omitempty"`
	// Computed are traits Kiln derived (spend, RFM, predictions, ...).
	Computed map[string]any `json:"computed,omitempty"`
	Consent  []Consent      `json:"consent,omitempty"`
}

// Channel is a channel a customer may consent to be contacted on.
type Channel string

// Known consent channels.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
	ChannelPush  Channel = "push"
	ChannelPhone Channel = "phone"
)

// Consent is the latest consent state for one channel, with where it came from.
type Consent struct {
	Channel Channel   `json:"channel"`
	Granted bool      `json:"granted"`
	Source  string    `json:"source"` // "identify", "sendgrid", "mailchimp", "api", ...
	At      time.Time `json:"at"`
}

// Suppression keeps a deleted customer's identifier from creating a profile again.
type Suppression struct {
	Identifier
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
}
