package payloadjson

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// The hand-written encoder must produce JSON that decodes to what
// encoding/json's output decodes to.
func TestAppendPayloadMatchesEncodingJSON(t *testing.T) {
	type custom struct {
		A int `json:"a"`
	}
	e := kiln.Event{
		Properties: map[string]any{
			"s": "plain", "esc": "quote \" back \\ nl \n tab \t cr \r ctl \x01 \x1f", "uni": "café ☕ 𝄞",
			"bad": "a\xffb", "f": 12.5, "tiny": 1e-9, "huge": 1e22, "neg": -0.000123, "zero": 0.0,
			"f32": float32(0.1), "i": 7, "i64": int64(-1 << 40), "i32": int32(3), "u64": uint64(1 << 63),
			"num": json.Number("3.25"), "t": true, "nil": nil,
			"list": []any{1.0, "x", nil, map[string]any{"k": []any{}}}, "strs": []string{"a", "b"},
			"nilList": []any(nil), "when": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "custom": custom{A: 1},
		},
		Traits:  map[string]any{"": "empty key", "k\"q": map[string]any{}},
		Context: nil,
	}
	got, err := Append(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	want, err := json.Marshal(payload{e.Properties, e.Traits, e.Context})
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("decoded differently:\n got %v\nwant %v", g, w)
	}
	for _, v := range []float64{1e-9, 1e22, 12.5, -0.000123, 1e21, 1e-6, 123456789} {
		a, _ := appendFloat(nil, v, 64)
		b, _ := json.Marshal(v)
		if string(a) != string(b) {
			t.Errorf("float %v: %s, encoding/json %s", v, a, b)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), json.Number("1x"), make(chan int)} {
		e := kiln.Event{Properties: map[string]any{"v": bad}}
		if _, err := Append(nil, &e); err == nil {
			t.Errorf("encoding %v succeeded, want an error", bad)
		}
	}
}

// payload is the shape Append writes, for comparing with encoding/json.
type payload struct {
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
}
