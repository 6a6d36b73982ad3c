package ingest

import (
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

func TestIdentifiersAreTheResolvers(t *testing.T) {
	e := &kiln.Event{
		Type:        kiln.Track,
		UserID:      " 42 ",
		AnonymousID: "anon",
		Traits:      map[string]any{"email": "traits@x.test"}, // a track's traits are not read
		Context:     map[string]any{"traits": map[string]any{"email": "Ctx@X.test", "phone": "+44 20 7946 0958"}},
		Properties:  map[string]any{"email": "ctx@x.test", "loyalty_number": "lc-9"},
	}
	want := []kiln.Identifier{
		{Kind: kiln.UserID, Value: "42"},
		{Kind: kiln.Email, Value: "ctx@x.test"},
		{Kind: kiln.Phone, Value: "+442079460958"},
		{Kind: kiln.Loyalty, Value: "LC9"},
		{Kind: kiln.AnonymousID, Value: "anon"},
	}
	got := Identifiers(e)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %v, want %v", i, got[i], want[i])
		}
	}
	if a := Anchor(e); a != "user_id:42" {
		t.Errorf("anchor %q", a)
	}
	if a := Anchor(&kiln.Event{Type: kiln.Identify, Traits: map[string]any{"email": "T@X.test"}}); a != "email:t@x.test" {
		t.Errorf("identify traits anchor %q", a)
	}
	if a := Anchor(&kiln.Event{Type: kiln.Track}); a != "" {
		t.Errorf("empty event anchor %q", a)
	}
}

// Handlers set anchors with the resolver's rules: with a country code, a
// national phone number becomes an identifier; without, it is not one.
func TestHandlerUsesConfiguredIdentityRules(t *testing.T) {
	t.Parallel()
	x, err := identity.NewExtractor(identity.Rules{CountryCode: "+44"})
	if err != nil {
		t.Fatal(err)
	}
	msg := `{"anonymousId":"a1","event":"Visit Completed","messageId":"m","context":{"traits":{"phone":"020 7946 0958"}}}`
	uk := setupSegment(t, func(c *SegmentConfig) { c.Identity = x })
	uk.post(t, "/v1/track", uk.key, msg)
	plain := setupSegment(t, nil)
	plain.post(t, "/v1/track", plain.key, msg)
	if got := uk.sink.unique(); len(got) != 1 || got[0].Anchor != "phone:+442079460958" {
		t.Errorf("with +44: %+v", got)
	}
	if got := plain.sink.unique(); len(got) != 1 || got[0].Anchor != "anonymous_id:a1" {
		t.Errorf("default rules: %+v", got)
	}
}
