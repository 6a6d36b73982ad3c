// Package connector is the seam between Kiln's segment outbox and the
// vendors it acts on: the Connector interface every destination implements,
// the registry of built-in destinations, strict configuration decoding,
// error classification and the sealing of credentials at rest.
//
// # Lifecycle
//
// A destination instance is created from its registry id, its JSON
// configuration and its secrets (New → Factory → strict decode → validate).
// The outbox then calls Deliver with batches of at most MaxBatch changes and
// paces calls with RateLimit. Connectors hold no resources beyond the
// *http.Client they are given, so there is nothing to close.
//
// # Results and errors
//
// Deliver never returns a single error for the batch: it returns one Result
// per change, in order, so the outbox retries only what failed. A failed
// Result carries an *Error that says whether retrying can help (429, 5xx,
// network failures, cancellation) and how long the vendor asked us to wait;
// permanent errors (validation, auth, unknown list) need a person to act.
//
// # Idempotency
//
// Adding a member to a list, tag or audience is idempotent at every
// supported vendor (adding twice leaves one membership; removing a
// non-member is not an error), so redelivering a change after an ambiguous
// failure is safe. Where a vendor also deduplicates by a key (the
// Segment-compatible forwarder's messageId), Change.IdempotencyKey is sent
// and Doc.IdempotencyKey says where.
//
// # Secrets
//
// Secrets are plain only in memory. The store keeps them sealed with Seal
// (AES-256-GCM under the server's KILN_SECRET_KEY); Open returns them, and
// tells a wrong key apart from tampered data.
package connector
