// Package ingest turns incoming HTTP requests into kiln.Event values and
// hands them to a Sink: the Segment tracking API (/v1/track, /v1/batch, ...)
// and commerce and engagement webhooks (Shopify, WooCommerce, SendGrid,
// Mailchimp). Messages that cannot be stored become kiln.Reject records
// beside the events, so nothing bad is dropped silently.
//
// # Acknowledgement
//
// A handler answers 2xx only after Sink.Write returned, and Sink.Write
// returns only once the events are durable. Any other answer makes the
// official clients and the webhook vendors retry, so handlers answer 4xx
// only for requests a retry cannot fix (bad key, bad signature,
// unparseable body) and 200 for parseable requests with some bad messages:
// those messages are recorded as rejects instead of being retried forever.
//
// # Values no store can hold
//
// Every event passes CheckStorable before it is written: a NUL character,
// NaN or a number beyond float64, nesting deeper than 200 levels or a time
// outside 1678-2261 rejects its message alone, naming the field. Requests
// share store transactions (package journal), so one such value written
// would fail every request beside it.
//
// # Idempotency
//
// Every event carries a MessageID; the store drops an event whose
// (source, MessageID) it already holds. Clients' messageIds are kept; when a
// message has none, or a webhook payload has no delivery id, the id is
// derived from a hash of the content so a retry of the same message gets
// the same id.
//
// # Identifiers
//
// Every event's Anchor is its strongest identifier as package identity
// extracts and normalises it (Identifiers and Anchor here are thin wrappers
// of identity.Extract): ingest and the resolver must agree on what an
// identifier is, so handlers take the resolver's identity.Extractor.
//
// # Webhooks
//
// NewWebhookHandler (or NewShopifyHandler, NewWooCommerceHandler,
// NewSendGridHandler, NewMailchimpHandler) serves one vendor, mounted at
// /webhooks/{kind}/{source}; the source's Secret verifies signatures. Bad
// signatures get 401, unparseable bodies 400 saying what and where, and a
// parseable payload that cannot become an event (no customer identifier, a
// topic Kiln does not map) is recorded as a reject and answered 200, so the
// vendor does not retry it forever. Vendor payloads map onto Segment's
// e-commerce spec names (kiln.OrderCompleted, ...).
//
// # Consent
//
// The webhooks map unsubscribes, spam reports and marketing-consent fields
// onto the conventions the identity resolver reads: a track Unsubscribed
// with properties.channel withdraws consent; traits email_consent and
// sms_consent (identify traits or context.traits) state it.
//
// Bulk file import lives in the subpackage ingest/bulk.
//
// The package imports no store or other adapter: it declares the two small
// interfaces it needs, Sink and Auth.
package ingest
