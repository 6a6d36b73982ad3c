package ingest

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln"
)

// Identifiers returns the normalised identifiers e carries, strongest kind
// first (kiln.IdentifierKinds order), without duplicates. Where each comes from:
//
//   - user_id: UserID
//   - email: traits.email (identify only: a group's traits describe the
//     group), context.traits.email, properties.email
//   - phone: the same places, key "phone"
//   - loyalty: the same places, keys "loyalty_number" and "loyaltyNumber"
//   - anonymous_id: AnonymousID
//
// An alias's PreviousID is not included: whether it names a user id or an
// anonymous id is for the resolver to decide. Values that do not normalise
// (an email without "@", a phone with too few digits) are left out.
func Identifiers(e *kiln.Event) []kiln.Identifier {
	var out []kiln.Identifier
	add := func(kind kiln.IdentifierKind, v string) {
		if v == "" {
			return
		}
		for _, id := range out {
			if id.Kind == kind && id.Value == v {
				return
			}
		}
		out = append(out, kiln.Identifier{Kind: kind, Value: v})
	}
	if v := NormalizeUserID(e.UserID); v != "" {
		add(kiln.UserID, v)
	}
	places := identifierPlaces(e)
	for _, m := range places {
		if v, ok := NormalizeEmail(stringOf(m["email"])); ok {
			add(kiln.Email, v)
		}
	}
	for _, m := range places {
		if v, ok := NormalizePhone(stringOf(m["phone"])); ok {
			add(kiln.Phone, v)
		}
	}
	for _, m := range places {
		for _, k := range [...]string{"loyalty_number", "loyaltyNumber"} {
			if v, ok := NormalizeLoyalty(stringOf(m[k])); ok {
				add(kiln.Loyalty, v)
			}
		}
	}
	if v := NormalizeUserID(e.AnonymousID); v != "" {
		add(kiln.AnonymousID, v)
	}
	return out
}

// Anchor returns the "kind:value" form of e's strongest identifier, or ""
// if it has none.
func Anchor(e *kiln.Event) string {
	ids := Identifiers(e)
	if len(ids) == 0 {
		return ""
	}
	return ids[0].String()
}

// identifierPlaces lists the maps identifiers are read from, in order.
func identifierPlaces(e *kiln.Event) []map[string]any {
	places := make([]map[string]any, 0, 3)
	if e.Type == kiln.Identify && e.Traits != nil {
		places = append(places, e.Traits)
	}
	if ct, ok := e.Context["traits"].(map[string]any); ok {
		places = append(places, ct)
	}
	if e.Properties != nil {
		places = append(places, e.Properties)
	}
	return places
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

// NormalizeUserID trims surrounding white space; ids are otherwise
// case-sensitive and kept as sent.
func NormalizeUserID(s string) string { return strings.TrimSpace(s) }

// NormalizeEmail lower-cases and trims an email address. It reports false
// for values that are not plausibly an address (no "@", nothing before or
// after it, white space inside). Provider-specific rewrites (dots and "+tags"
// at Gmail) are not applied: they would merge people wrongly elsewhere.
func NormalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || !utf8.ValidString(s) {
		return "", false
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 || !strings.Contains(s[at+1:], ".") && s[at+1:] != "localhost" {
		return "", false
	}
	return s, true
}

// NormalizePhone reduces a phone number to E.164 form: "+" then digits.
// A leading "+" or "00" marks the international form; separators (spaces,
// dashes, dots, parentheses, "/") are dropped, and an extension ("x12",
// "ext. 12") is cut off. A number written without its country code cannot
// be placed without knowing the country, so its digits are kept as they are
// after the "+" (consistent for matching, if not a dialable E.164 number).
// It reports false for fewer than 6 or more than 15 digits, or for letters.
func NormalizePhone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	if i := strings.IndexAny(strings.ToLower(s), "xe"); i > 0 { // "x12", "ext 12"
		s = strings.TrimSpace(s[:i])
	}
	s = strings.TrimPrefix(s, "+")
	var b strings.Builder
	b.Grow(len(s) + 1)
	b.WriteByte('+')
	n := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
			n++
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\u00a0':
		default:
			return "", false
		}
	}
	out := b.String()
	if strings.HasPrefix(out, "+00") {
		out = "+" + out[3:]
		n -= 2
	}
	if n < 6 || n > 15 {
		return "", false
	}
	return out, true
}

// NormalizeLoyalty trims a loyalty number and upper-cases it (card numbers
// are printed in capitals and typed either way); white space inside is dropped.
func NormalizeLoyalty(s string) (string, bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	return s, s != ""
}
