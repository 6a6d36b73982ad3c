package engine

import (
	"reflect"
	"testing"
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
