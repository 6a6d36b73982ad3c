package ingest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

func TestCheckStorable(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	good := func() kiln.Event {
		return kiln.Event{Type: kiln.Track, Name: "Order Completed", MessageID: "m1", UserID: "u1", Anchor: "user_id:u1",
			Timestamp: now, ReceivedAt: now, Properties: map[string]any{"revenue": 1.5, "note": "caf\xe9",
				"products": []any{map[string]any{"name": "cup", "price": float32(2)}}}}
	}
	nested := any(1.0)
	for range maxDepth + 1 {
		nested = []any{nested}
	}
	cases := []struct {
		name          string
		mod           func(e *kiln.Event)
		field, reason string
	}{
		{"good (invalid UTF-8 in a payload is stored as U+FFFD)", func(*kiln.Event) {}, "", ""},
		{"zero timestamp", func(e *kiln.Event) { e.Timestamp = time.Time{} }, "", ""},
		{"NUL in userId", func(e *kiln.Event) { e.UserID = "u\x001" }, "userId", "userId contains a NUL character (\\u0000, byte 1)"},
		{"invalid UTF-8 in userId", func(e *kiln.Event) { e.UserID = "u\xff" }, "userId", "userId is not valid UTF-8 (byte 1)"},
		{"NUL in a page name", func(e *kiln.Event) { e.Type, e.Name = kiln.Page, "Home\x00" }, "name", "name contains a NUL"},
		{"NUL in store", func(e *kiln.Event) { e.Store = "\x00" }, "store", "store contains a NUL"},
		{"NUL in anchor", func(e *kiln.Event) { e.Anchor = "loyalty:A\x00" }, "anchor", "anchor contains a NUL"},
		{"long messageId", func(e *kiln.Event) { e.MessageID = strings.Repeat("m", 201) }, "messageId", "messageId is 201 characters, over the limit of 200"},
		{"year 1600", func(e *kiln.Event) { e.Timestamp = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) },
			"timestamp", "timestamp 1600-01-01T00:00:00Z is outside the years 1678-2261 that can be stored"},
		{"year 20000", func(e *kiln.Event) { e.Timestamp = time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC) }, "timestamp", "outside the years"},
		{"NaN", func(e *kiln.Event) { e.Properties["revenue"] = math.NaN() }, "properties.revenue", "properties.revenue is NaN"},
		{"Inf in a product", func(e *kiln.Event) {
			e.Properties["products"].([]any)[0].(map[string]any)["price"] = float32(math.Inf(-1))
		}, "properties.products[0].price", "properties.products[0].price is out of range (-Inf): numbers must be finite, within ±1.8e+308"},
		{"NUL in context", func(e *kiln.Event) { e.Context = map[string]any{"user agent": "x\x00"} }, `context."user agent"`, `context."user agent" contains a NUL`},
		{"NUL in a key", func(e *kiln.Event) { e.Traits = map[string]any{"a": map[string]any{"\x00": 1}} }, "traits.a", `traits.a has a key "\x00" that contains a NUL`},
		{"nested too deeply", func(e *kiln.Event) { e.Properties = map[string]any{"a": nested} }, "properties.a" + strings.Repeat("[0]", maxDepth-1),
			"is nested more than 200 levels deep"},
	}
	for _, c := range cases {
		e := good()
		c.mod(&e)
		field, reason := CheckStorable(&e)
		if field != c.field || !strings.Contains(reason, c.reason) || (reason == "") != (c.reason == "") {
			t.Errorf("%s: field %q reason %q, want field %q reason containing %q", c.name, field, reason, c.field, c.reason)
		}
	}
}
