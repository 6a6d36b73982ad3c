package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
)

// Traits go through a snapshot unchanged, whatever their values.
func TestTraitsSnapshotRoundTrip(t *testing.T) {
	names := map[string]string{}
	for _, traits := range []map[string]any{
		nil,
		{"churn_risk": 0.74, "rfm_segment": "At Risk", "gift_buyer": true, "lapsed": false, "gone": nil},
		{"company": map[string]any{"name": "Teahouse Ltd", "size": 12.0}, "tags": []any{"trade", 3.0}, "": "empty key"},
	} {
		b, err := appendTraits(nil, traits)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readTraits(b, names)
		if err != nil {
			t.Fatal(err)
		}
		if len(traits) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, traits) {
			t.Errorf("round trip: %#v, want %#v", got, traits)
		}
		if _, err := readTraits(b[:len(b)-1], names); err == nil {
			t.Error("a truncated encoding decoded")
		}
	}
}

// Nested traits read through a snapshot answer path conditions as they
// did before it: objects stay objects, lists stay lists, amounts exact.
func TestNestedTraitsThroughSnapshot(t *testing.T) {
	traits := map[string]any{
		"company": map[string]any{"name": "Teahouse Ltd", "address": map[string]any{"city": "York"}, "credit": 386.93},
		"tags":    []any{"trade", "vip", map[string]any{"since": "2024-01-01"}},
	}
	b, err := appendTraits(nil, traits)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readTraits(b, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rule.Parse(`segment s { traits.company.address.city = "York" and traits.company.credit = 386.93 and length(traits.tags) = 3 and traits.tags contains "vip" }`)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := eval.Compile(set, eval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tr := range []map[string]any{traits, got} {
		snap := prog.Naive(nil, &eval.Profile{Traits: tr}, now)
		if !snap.Segments["s"] {
			t.Errorf("path conditions do not hold for %#v", tr)
		}
	}
}
