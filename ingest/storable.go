package ingest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln"
)

// Every ingest path (the tracking API, the webhooks, bulk import) passes
// each event through CheckStorable before writing it. Concurrent requests
// share one store transaction (package journal), so a value the store
// refuses would fail every request in it, on every retry; caught here, it
// rejects only its own message, with the field and the reason.
//
// NUL characters are rejected wherever they are, never dropped. PostgreSQL
// text and jsonb cannot hold them, and no client means one. Dropping them
// is safe only in free text, but identity and consent read payload values
// by key (properties.email, context.traits.phone, traits.email_consent,
// ...), so free text cannot be told from an identifier by its position:
// an altered identifier would file the event under another customer. The
// rejected message is kept whole in the rejects log, to be fixed and sent
// again.

// The range of times both stores hold: SQLite stores Unix nanoseconds in
// an int64 (1677-09-21 to 2262-04-11), PostgreSQL a far wider range; Go
// reads only four-digit years.
var (
	minStoredTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxStoredTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// maxMessageIDLen bounds a messageId: it is in a unique index, and
// PostgreSQL refuses index entries over about 2.7 KB.
const maxMessageIDLen = 200

// CheckStorable reports the first value of e that a store cannot hold,
// as the field's path (e.g. "properties.products[1].name") and the
// reason; the reason is "" when e can be stored. It checks that the text
// columns (ids, name, store, anchor) are valid UTF-8 without NUL, that no
// payload key or string holds a NUL, that numbers are finite, that
// payloads nest at most maxDepth deep and that times lie within the years
// 1678-2261. (Invalid UTF-8 inside payloads is stored as U+FFFD.)
func CheckStorable(e *kiln.Event) (field, reason string) {
	return checkStorable(e, true)
}

// checkStorable is CheckStorable, walking the payloads only if payloads is
// set. The tracking API's scanner flags the only ways its payloads can go
// wrong (scanner.odd; it bounds depth itself and takes only valid UTF-8),
// so it skips the walk, about a tenth of its parsing time, when unflagged.
func checkStorable(e *kiln.Event, payloads bool) (field, reason string) {
	name := "event"
	if e.Type != kiln.Track {
		name = "name"
	}
	for _, f := range [...]struct{ field, v string }{
		{"type", string(e.Type)}, {"messageId", e.MessageID}, {"userId", e.UserID},
		{"anonymousId", e.AnonymousID}, {"previousId", e.PreviousID}, {"groupId", e.GroupID}, {name, e.Name},
	} {
		if r := textProblem(f.v, true); r != "" {
			return f.field, f.field + " " + r
		}
	}
	if len(e.MessageID) > maxMessageIDLen {
		return "messageId", fmt.Sprintf("messageId is %d characters, over the limit of %d", len(e.MessageID), maxMessageIDLen)
	}
	for _, f := range [...]struct {
		field string
		t     time.Time
	}{{"timestamp", e.Timestamp}, {"receivedAt", e.ReceivedAt}} {
		if !f.t.IsZero() && (f.t.Before(minStoredTime) || !f.t.Before(maxStoredTime)) {
			return f.field, fmt.Sprintf("%s %s is outside the years %d-%d that can be stored",
				f.field, f.t.Format(time.RFC3339Nano), minStoredTime.Year(), maxStoredTime.Year()-1)
		}
	}
	for _, p := range [...]struct {
		field string
		m     map[string]any
	}{{"properties", e.Properties}, {"traits", e.Traits}, {"context", e.Context}} {
		if p.m == nil || !payloads {
			continue
		}
		if path, r := valueProblem(p.m, 1); r != "" {
			path = append(path, p.field)
			slices.Reverse(path)
			field := strings.Join(path, "")
			return field, field + " " + r
		}
	}
	// Store and Anchor are derived from the fields above (or the source),
	// so they are checked last, where a problem is named at its origin first.
	for _, f := range [...]struct{ field, v string }{{"store", e.Store}, {"anchor", e.Anchor}} {
		if r := textProblem(f.v, true); r != "" {
			return f.field, f.field + " " + r
		}
	}
	return "", ""
}

// textProblem says what keeps s out of a store ("" if nothing). Invalid
// UTF-8 matters only for text columns (strict): the payload encoders
// store it as U+FFFD.
func textProblem(s string, strict bool) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Sprintf("contains a NUL character (\\u0000, byte %d), which cannot be stored", i)
	}
	if strict && !utf8.ValidString(s) {
		return fmt.Sprintf("is not valid UTF-8 (byte %d)", invalidUTF8At([]byte(s)))
	}
	return ""
}

// valueProblem walks a payload value at the given depth and returns the
// path to the first value that cannot be stored, innermost segment first
// (the path is built only on failure: this runs for every event), and the
// reason.
func valueProblem(v any, depth int) ([]string, string) {
	switch x := v.(type) {
	case string:
		return nil, textProblem(x, false)
	case float64:
		return nil, numberProblem(x)
	case float32:
		return nil, numberProblem(float64(x))
	case map[string]any:
		if depth > maxDepth {
			return nil, fmt.Sprintf("is nested more than %d levels deep", maxDepth)
		}
		for k, e := range x {
			if r := textProblem(k, false); r != "" {
				return nil, "has a key " + strconv.Quote(k) + " that " + r
			}
			if path, r := valueProblem(e, depth+1); r != "" {
				return append(path, pathKey(k)), r
			}
		}
	case []any:
		if depth > maxDepth {
			return nil, fmt.Sprintf("is nested more than %d levels deep", maxDepth)
		}
		for i, e := range x {
			if path, r := valueProblem(e, depth+1); r != "" {
				return append(path, "["+strconv.Itoa(i)+"]"), r
			}
		}
	}
	return nil, ""
}

func numberProblem(f float64) string {
	switch {
	case math.IsNaN(f):
		return "is NaN (not a number), which cannot be stored"
	case math.IsInf(f, 0):
		return fmt.Sprintf("is out of range (%v): numbers must be finite, within ±%.1e", f, math.MaxFloat64)
	}
	return ""
}

// pathKey is the path segment for an object key: ".key", or the key
// quoted when it holds anything but letters, digits, '_' and '-'.
func pathKey(k string) string {
	if k == "" {
		return `.""`
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "." + strconv.Quote(k)
		}
	}
	return "." + k
}
