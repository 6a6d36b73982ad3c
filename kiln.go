// Package kiln holds Kiln's domain vocabulary: events, profiles, identities,
// sources and keys, rejects and errors. It does no I/O; adapters (store,
// ingest, api, ...) and the engine build on it.
package kiln
