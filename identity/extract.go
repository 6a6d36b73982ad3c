package identity

import (
	"strconv"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// DefaultBlockedValues are values that are never identifiers, whatever
// their kind: placeholders sent by forms, SDKs and test scripts. A trailing
// "*" matches by prefix.
var DefaultBlockedValues = []string{
	"null", "nil", "none", "undefined", "unknown", "anonymous", "guest",
	"0", "-1", "-", "n/a", "na", "[object object]", "true", "false",
	"test@test.com", "test@example.com", "email@example.com", "user@example.com",
	"noreply@*", "no-reply@*", "donotreply@*", "do-not-reply@*",
}

// Rules says which identifier values count. Ingest (computing an event's
// Anchor) and the resolver must use the same Rules, so that an anchor never
// names an identifier the resolver ignores.
type Rules struct {
	// CountryCode places national phone numbers ("+44", "+1"). With ""
	// only numbers written in international form are accepted.
	CountryCode string
	// Blocklist lists identifiers never linked: a shop tablet's shared
	// anonymous id, the staff's own loyalty card. Emails and phones are
	// normalised before comparing.
	Blocklist []kiln.Identifier
	// BlockedValues are blocked whatever their kind, compared without
	// regard to case; a trailing "*" matches by prefix ("noreply@*").
	// nil means DefaultBlockedValues; use an empty, non-nil slice for none.
	BlockedValues []string
}

// Extractor pulls normalised identifiers out of events under a set of Rules.
// It is safe for concurrent use.
type Extractor struct {
	countryCode string
	blocklist   map[kiln.Identifier]struct{}
	blocked     map[string]struct{}
	prefixes    []string
	maxBlocked  int // longest exact blocked value, to skip the lookup cheaply
}

// NewExtractor builds an Extractor. An invalid CountryCode (not "+" and 1
// to 3 digits) is an error naming the field.
func NewExtractor(r Rules) (*Extractor, error) {
	cc := r.CountryCode
	if cc != "" {
		d := strings.TrimPrefix(cc, "+")
		if len(d) < 1 || len(d) > 3 || d[0] == '0' || strings.Trim(d, "0123456789") != "" {
			return nil, kiln.Errorf(kiln.EInvalid, "identity: country code %q: want \"+\" and 1 to 3 digits, like \"+44\"", cc)
		}
		cc = "+" + d
	}
	x := &Extractor{countryCode: cc, blocklist: map[kiln.Identifier]struct{}{}, blocked: map[string]struct{}{}}
	values := r.BlockedValues
	if values == nil {
		values = DefaultBlockedValues
	}
	for _, v := range values {
		v = strings.ToLower(strings.TrimSpace(v))
		if p, ok := strings.CutSuffix(v, "*"); ok {
			x.prefixes = append(x.prefixes, p)
			continue
		}
		x.blocked[v] = struct{}{}
		x.maxBlocked = max(x.maxBlocked, len(v))
	}
	for _, id := range r.Blocklist {
		if n, ok := x.normalize(id.Kind, id.Value); ok {
			id.Value = n
		}
		x.blocklist[id] = struct{}{}
	}
	return x, nil
}

var defaultExtractor, _ = NewExtractor(Rules{})

// Extract returns the identifiers e carries under the default Rules (no
// country code, DefaultBlockedValues). See Extractor.Extract.
func Extract(e *kiln.Event) []kiln.Identifier { return defaultExtractor.Extract(e) }

// Extract returns the normalised identifiers e carries, strongest kind first
// (kiln.IdentifierKinds order; within a kind in the order below), without
// duplicates, leaving out values that do not normalise or are blocked:
//
//   - user_id: UserID, then an alias's PreviousID (see below)
//   - email: traits.email (identify only: a group's traits describe the
//     group), context.traits.email, properties.email
//   - phone: traits.phone (identify only), context.traits.phone
//   - loyalty: traits.loyalty_number and traits.loyaltyNumber (identify
//     only), context.traits.loyalty_number, properties.loyalty_number
//   - anonymous_id: AnonymousID
//
// PreviousID (alias) names the same person as UserID. It is an email or
// phone if it normalises as one (a phone only if written with "+"), else a
// user id; the Resolver also matches it against known anonymous ids.
func (x *Extractor) Extract(e *kiln.Event) []kiln.Identifier {
	return x.appendIDs(nil, e)
}

// appendIDs is Extract appending to dst, so the resolver can reuse a buffer.
func (x *Extractor) appendIDs(dst []kiln.Identifier, e *kiln.Event) []kiln.Identifier {
	start := len(dst)
	add := func(kind kiln.IdentifierKind, raw string) {
		v, ok := x.normalize(kind, raw)
		if !ok || x.Blocked(kiln.Identifier{Kind: kind, Value: v}) {
			return
		}
		for _, id := range dst[start:] {
			if id.Kind == kind && id.Value == v {
				return
			}
		}
		dst = append(dst, kiln.Identifier{Kind: kind, Value: v})
	}
	var traits, ctxTraits map[string]any
	if e.Type == kiln.Identify {
		traits = e.Traits
	}
	ctxTraits, _ = e.Context["traits"].(map[string]any)
	props := e.Properties

	add(kiln.UserID, e.UserID)
	prevKind := kiln.UserID
	if e.PreviousID != "" {
		prevKind = x.previousKind(e.PreviousID)
		if prevKind == kiln.UserID {
			add(kiln.UserID, e.PreviousID)
		}
	}
	if prevKind == kiln.Email {
		add(kiln.Email, e.PreviousID)
	}
	add(kiln.Email, stringOf(traits["email"]))
	add(kiln.Email, stringOf(ctxTraits["email"]))
	add(kiln.Email, stringOf(props["email"]))
	if prevKind == kiln.Phone {
		add(kiln.Phone, e.PreviousID)
	}
	add(kiln.Phone, stringOf(traits["phone"]))
	add(kiln.Phone, stringOf(ctxTraits["phone"]))
	add(kiln.Loyalty, stringOf(traits["loyalty_number"]))
	add(kiln.Loyalty, stringOf(traits["loyaltyNumber"]))
	add(kiln.Loyalty, stringOf(ctxTraits["loyalty_number"]))
	add(kiln.Loyalty, stringOf(props["loyalty_number"]))
	add(kiln.AnonymousID, e.AnonymousID)
	return dst
}

// previousKind classifies an alias's previousId.
func (x *Extractor) previousKind(v string) kiln.IdentifierKind {
	if strings.IndexByte(v, '@') >= 0 {
		if _, ok := NormalizeEmail(v); ok {
			return kiln.Email
		}
	}
	if t := strings.TrimSpace(v); strings.HasPrefix(t, "+") {
		if _, ok := NormalizePhone(t, ""); ok {
			return kiln.Phone
		}
	}
	return kiln.UserID
}

// Normalize normalises a value of the given kind as Extract does and
// reports whether it is usable (normalises and is not blocked). Use it for
// identifiers typed by people: API look-ups, deletion requests.
func (x *Extractor) Normalize(id kiln.Identifier) (kiln.Identifier, bool) {
	v, ok := x.normalize(id.Kind, id.Value)
	if !ok {
		return id, false
	}
	id.Value = v
	return id, !x.Blocked(id)
}

func (x *Extractor) normalize(kind kiln.IdentifierKind, v string) (string, bool) {
	switch kind {
	case kiln.Email:
		return NormalizeEmail(v)
	case kiln.Phone:
		return NormalizePhone(v, x.countryCode)
	case kiln.Loyalty:
		return normalizeLoyalty(v)
	case kiln.UserID, kiln.AnonymousID:
		return normalizeID(v)
	}
	return "", false
}

// Blocked reports whether a normalised identifier is on the blocklist or
// has a blocked value.
func (x *Extractor) Blocked(id kiln.Identifier) bool {
	if len(x.blocklist) > 0 {
		if _, ok := x.blocklist[id]; ok {
			return true
		}
	}
	v := id.Value
	if len(v) <= x.maxBlocked {
		if _, ok := x.blocked[v]; ok {
			return true
		}
		if _, ok := x.blocked[strings.ToLower(v)]; ok {
			return true
		}
	}
	for _, p := range x.prefixes {
		if len(v) >= len(p) && strings.EqualFold(v[:len(p)], p) {
			return true
		}
	}
	return false
}

// Anchor returns the String() of the strongest identifier in ids (the first
// of the first kind in kiln.IdentifierKinds order that occurs), or "" for
// none. With ids from Extract that is simply the first.
func Anchor(ids []kiln.Identifier) string {
	best, rank := -1, len(kiln.IdentifierKinds)
	for i, id := range ids {
		if r := kindRank(id.Kind); r < rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return ""
	}
	return ids[best].String()
}

// kindRank is the position of k in kiln.IdentifierKinds, or len for unknown kinds.
func kindRank(k kiln.IdentifierKind) int {
	switch k {
	case kiln.UserID:
		return 0
	case kiln.Email:
		return 1
	case kiln.Phone:
		return 2
	case kiln.Loyalty:
		return 3
	case kiln.AnonymousID:
		return 4
	}
	return len(kiln.IdentifierKinds)
}

// stringOf returns v as a string if it is one, or a whole number as sent by
// clients that type ids numerically; anything else gives "".
func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10)
		}
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}
