package kiln

import "time"

// Source is a named origin of events (webstore, POS store 1, ERP, ...).
// Every event records the source whose write key sent it.
type Source struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"` // segment, shopify, woocommerce, sendgrid, mailchimp, import
	Store string `json:"store,omitempty"`
	// Secret verifies webhook signatures for webhook sources (Shopify's
	// shared secret, WooCommerce's webhook secret, ...).
	Secret string `json:"-"`
	// SealedSecret is Secret sealed with the server key (connector.SealSource),
	// the form kept at rest; Secret is then empty in the store and filled
	// in by whoever holds the key (the webhook handlers).
	SealedSecret []byte    `json:"-"`
	CreatedAt    time.Time `json:"createdAt"`
}

// KeyKind is what a key may do.
type KeyKind string

// Write keys can only ingest into their source; admin keys can do everything.
const (
	WriteKey KeyKind = "write"
	AdminKey KeyKind = "admin"
)

// Key is an API key. Only its SHA-256 hash is stored; the token is shown
// once, when the key is created.
type Key struct {
	ID        string     `json:"id"`
	Kind      KeyKind    `json:"kind"`
	Name      string     `json:"name"`
	SourceID  string     `json:"sourceId,omitempty"` // write keys only
	Hash      string     `json:"-"`                  // hex SHA-256 of the token
	Prefix    string     `json:"prefix"`             // first characters of the token, to tell keys apart
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Reject is an ingested message that was set aside instead of stored, with
// the reason. Nothing bad is dropped silently: it lands here.
type Reject struct {
	ID         int64     `json:"id"`
	SourceID   string    `json:"sourceId"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Origin says where it came from: "batch", "track", "shopify", "import:orders.csv", ...
	Origin string `json:"origin"`
	// Index is the message's position in its batch, or the line number of an import.
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"` // e.g. "timestamp", "properties.revenue"
	Reason string `json:"reason"`
	// Payload is the raw message as received (truncated to 64 KiB).
	Payload []byte `json:"payload,omitempty"`
}
