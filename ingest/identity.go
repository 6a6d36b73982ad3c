package ingest

import (
	"strconv"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

// Identifiers returns the normalised identifiers e carries, strongest kind
// first, under the default identity rules. It is identity.Extract: ingest
// (which sets each event's Anchor) and the resolver (which indexes the
// identifiers) must agree on what an identifier is, so there is one
// definition, in package identity; see identity.Extractor.Extract for where
// each kind is read from. Handlers configured with an Identity extractor
// use that one instead.
func Identifiers(e *kiln.Event) []kiln.Identifier { return identity.Extract(e) }

// Anchor returns the "kind:value" form of e's strongest identifier under
// the default identity rules, or "" if it has none.
func Anchor(e *kiln.Event) string { return identity.Anchor(identity.Extract(e)) }

// AnchorWith is Anchor under the rules of x (nil: the default rules).
func AnchorWith(x *identity.Extractor, e *kiln.Event) string {
	if x == nil {
		return Anchor(e)
	}
	return identity.Anchor(x.Extract(e))
}

// stringOf returns v as a string if it is one (or a number, as sent by
// clients that type ids numerically), else "".
func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}
