package ingest

import (
	"testing"

	"github.com/kiln-cdp/kiln"
)

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ann@Example.COM ": "ann@example.com",
		"a.b+tag@gmail.com": "a.b+tag@gmail.com",
		"root@localhost":    "root@localhost",
		"no-at-sign":        "",
		"@example.com":      "",
		"ann@":              "",
		"ann@example":       "",
		"an n@example.com":  "",
		"":                  "",
	} {
		got, ok := NormalizeEmail(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+44 20 7946 0958":     "+442079460958",
		"0044 (20) 7946-0958":  "+442079460958",
		"+1 (613) 555-0123":    "+16135550123",
		"+1 613.555.0123 x42":  "+16135550123",
		"+49 30 1234567 ext 9": "+49301234567",
		"07946 095800":         "+07946095800",
		"555-555-SHIP":         "",
		"12345":                "",
		"+1234567890123456":    "",
		"":                     "",
	} {
		got, ok := NormalizePhone(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestIdentifiersOrderAndSources(t *testing.T) {
	e := &kiln.Event{
		Type:        kiln.Track,
		UserID:      " 42 ",
		AnonymousID: "anon",
		Traits:      map[string]any{"email": "traits@x.test"}, // ignored: not an identify
		Context:     map[string]any{"traits": map[string]any{"email": "Ctx@X.test", "loyaltyNumber": "lc 9"}},
		Properties:  map[string]any{"email": "ctx@x.test", "phone": "+33 1 23 45 67 89", "loyalty_number": 12345},
	}
	want := []kiln.Identifier{
		{Kind: kiln.UserID, Value: "42"},
		{Kind: kiln.Email, Value: "ctx@x.test"},
		{Kind: kiln.Phone, Value: "+33123456789"},
		{Kind: kiln.Loyalty, Value: "LC9"},
		{Kind: kiln.Loyalty, Value: "12345"},
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
