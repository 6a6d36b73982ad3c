package identity

import (
	"slices"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Ann@Example.COM", "ann@example.com", true},
		{"  ann.lee+shop@mail.example.co.uk \n", "ann.lee+shop@mail.example.co.uk", true},
		{"mailto:Bob@Example.org", "bob@example.org", true},
		{"<bob@example.org>", "bob@example.org", true},
		{"o'brien@example.ie", "o'brien@example.ie", true},
		{"zoë@bücher.de", "zoë@bücher.de", true},
		{"", "", false},
		{"ann", "", false},
		{"ann@", "", false},
		{"@example.com", "", false},
		{"ann@example", "", false},
		{"ann@@example.com", "", false},
		{"ann@b@example.com", "", false},
		{"ann lee@example.com", "", false},
		{"ann@exa mple.com", "", false},
		{"ann@example.c", "", false},
		{"ann@example..com", "", false},
		{"ann@.example.com", "", false},
		{"ann@example.com.", "", false},
		{"ann@-example.com", "", false},
		{".ann@example.com", "", false},
		{"ann.@example.com", "", false},
		{"a..nn@example.com", "", false},
		{"ann@1.2.3.4", "", false},
		{"ann,bob@example.com", "", false},
	} {
		got, ok := NormalizeEmail(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, cc, want string
	}{
		// International forms need no country code.
		{"+44 7700 900123", "", "+447700900123"},
		{"+44 (0)7700 900123", "", "+4407700900123"}, // the "(0)" is kept: ambiguous, but consistent
		{"0044 7700 900123", "", "+447700900123"},
		{"+1 (415) 555-2671", "", "+14155552671"},
		{"tel:+1-415-555-2671", "", "+14155552671"},
		{"+1 415 555 2671 ext. 12", "", "+14155552671"},
		{"+1 415 555 2671 x12", "", "+14155552671"},
		{"+49 30 901820", "+44", "+4930901820"},
		// National forms take the configured country code.
		{"07700 900123", "+44", "+447700900123"},
		{"07700-900-123", "44", "+447700900123"},
		{"(415) 555-2671", "+1", "+14155552671"},
		{"1-415-555-2671", "+1", "+14155552671"},
		{"011 44 7700 900123", "+1", "+447700900123"},
		{"06 12 34 56 78", "+33", "+33612345678"},
		{"06 1234 5678", "+39", "+390612345678"}, // Italy keeps its 0
		// Junk.
		{"07700 900123", "", ""},
		{"", "+44", ""},
		{"n/a", "+44", ""},
		{"call me", "+44", ""},
		{"12345", "+44", ""},
		{"+44", "", ""},
		{"0000000000", "+44", ""},
		{"+44 0000 000000", "", ""},
		{"+44 1111 111111", "", ""},
		{"1234567890", "+1", ""},
		{"+1 123 456 7890", "", ""}, // area code cannot start with 1
		{"+1 415 155 2671", "", ""}, // nor the exchange
		{"+1 415 555 26710", "", ""},
		{"+0 7700 900123", "", ""},
		{"+44 7700 900123 4567 89", "", ""},
		{"+44 7700+900123", "", ""},
		{"+44 7700 9001ab", "", ""},
	} {
		got, ok := NormalizePhone(tc.in, tc.cc)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.in, tc.cc, got, ok, tc.want)
		}
	}
}

func TestNewExtractorRejectsBadCountryCode(t *testing.T) {
	t.Parallel()
	for _, cc := range []string{"44a", "+", "+0", "+1234", "uk"} {
		if _, err := NewExtractor(Rules{CountryCode: cc}); err == nil || kiln.ErrorCode(err) != kiln.EInvalid {
			t.Errorf("NewExtractor(CountryCode %q) = %v, want an invalid error", cc, err)
		}
	}
	if _, err := New(Config{MaxPerKind: map[kiln.IdentifierKind]int{"device": 2}}); err == nil {
		t.Error("New accepted a limit for an unknown kind")
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()
	x, err := NewExtractor(Rules{
		CountryCode: "+44",
		Blocklist:   []kiln.Identifier{{Kind: kiln.AnonymousID, Value: "tablet-1"}, {Kind: kiln.Email, Value: "Staff@Shop.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := func(k kiln.IdentifierKind, v string) kiln.Identifier { return kiln.Identifier{Kind: k, Value: v} }
	for _, tc := range []struct {
		name string
		e    kiln.Event
		want []kiln.Identifier
	}{
		{"identify with everything", kiln.Event{
			Type: kiln.Identify, UserID: " 42 ", AnonymousID: "anon-1",
			Traits: map[string]any{"email": "Ann@Example.com", "phone": "07700 900123", "loyalty_number": "ab-123 45", "loyaltyNumber": "AB12345"},
		}, []kiln.Identifier{id(kiln.UserID, "42"), id(kiln.Email, "ann@example.com"), id(kiln.Phone, "+447700900123"), id(kiln.Loyalty, "AB12345"), id(kiln.AnonymousID, "anon-1")}},
		{"track with context traits and properties", kiln.Event{
			Type: kiln.Track, AnonymousID: "anon-1",
			Context:    map[string]any{"traits": map[string]any{"email": "ann@example.com", "phone": "+44 7700 900124", "loyalty_number": 778899.0}},
			Properties: map[string]any{"email": "other@example.com", "loyalty_number": "L-1"},
		}, []kiln.Identifier{id(kiln.Email, "ann@example.com"), id(kiln.Email, "other@example.com"), id(kiln.Phone, "+447700900124"), id(kiln.Loyalty, "778899"), id(kiln.Loyalty, "L1"), id(kiln.AnonymousID, "anon-1")}},
		{"group traits describe the group", kiln.Event{
			Type: kiln.Group, UserID: "42", GroupID: "g1", Traits: map[string]any{"email": "office@corp.example", "phone": "07700 900555"},
		}, []kiln.Identifier{id(kiln.UserID, "42")}},
		{"alias with a user id", kiln.Event{Type: kiln.Alias, UserID: "42", PreviousID: "old-7"},
			[]kiln.Identifier{id(kiln.UserID, "42"), id(kiln.UserID, "old-7")}},
		{"alias with an email", kiln.Event{Type: kiln.Alias, UserID: "42", PreviousID: "Ann@Example.com"},
			[]kiln.Identifier{id(kiln.UserID, "42"), id(kiln.Email, "ann@example.com")}},
		{"alias with a phone", kiln.Event{Type: kiln.Alias, UserID: "42", PreviousID: "+44 7700 900123"},
			[]kiln.Identifier{id(kiln.UserID, "42"), id(kiln.Phone, "+447700900123")}},
		{"blocked values and blocklist", kiln.Event{
			Type: kiln.Identify, UserID: "NULL", AnonymousID: "tablet-1",
			Traits: map[string]any{"email": "staff@shop.example", "phone": "0000 000000", "loyalty_number": "undefined"},
		}, nil},
		{"noreply prefix and junk types", kiln.Event{
			Type: kiln.Identify, UserID: "u1", Traits: map[string]any{"email": "NoReply@shop.example", "phone": true, "loyalty_number": 1.5},
		}, []kiln.Identifier{id(kiln.UserID, "u1")}},
		{"duplicates once", kiln.Event{
			Type: kiln.Identify, UserID: "u1", AnonymousID: "u1",
			Traits: map[string]any{"email": "a@b.example"}, Context: map[string]any{"traits": map[string]any{"email": "A@B.example"}},
		}, []kiln.Identifier{id(kiln.UserID, "u1"), id(kiln.Email, "a@b.example"), id(kiln.AnonymousID, "u1")}},
	} {
		got := x.Extract(&tc.e)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Extract = %v, want %v", tc.name, got, tc.want)
		}
		want := ""
		if len(tc.want) > 0 {
			want = tc.want[0].String()
		}
		if a := Anchor(got); a != want {
			t.Errorf("%s: Anchor = %q, want %q", tc.name, a, want)
		}
	}
}

func TestExtractDefaultRules(t *testing.T) {
	t.Parallel()
	// No country code: a national number cannot be placed and is left out.
	e := &kiln.Event{Type: kiln.Identify, AnonymousID: "a", Traits: map[string]any{"phone": "07700 900123", "email": "test@test.com"}}
	if got := Extract(e); !slices.Equal(got, []kiln.Identifier{{Kind: kiln.AnonymousID, Value: "a"}}) {
		t.Errorf("Extract = %v", got)
	}
	// An explicitly empty BlockedValues blocks nothing.
	x, _ := NewExtractor(Rules{BlockedValues: []string{}})
	if got := x.Extract(&kiln.Event{UserID: "null"}); len(got) != 1 {
		t.Errorf("Extract with no blocked values = %v", got)
	}
}

func TestAnchorOrder(t *testing.T) {
	t.Parallel()
	for i, k := range kiln.IdentifierKinds {
		if kindRank(k) != i {
			t.Fatalf("kindRank(%s) = %d, want %d: keep it in kiln.IdentifierKinds order", k, kindRank(k), i)
		}
	}
	ids := []kiln.Identifier{{Kind: kiln.AnonymousID, Value: "a"}, {Kind: kiln.Phone, Value: "+447700900123"}, {Kind: kiln.Email, Value: "x@y.example"}, {Kind: kiln.Email, Value: "z@y.example"}}
	if got := Anchor(ids); got != "email:x@y.example" {
		t.Errorf("Anchor = %q", got)
	}
	if got := Anchor(nil); got != "" {
		t.Errorf("Anchor(nil) = %q", got)
	}
}

func TestConsentOf(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    kiln.Event
		want []kiln.Consent
	}{
		{"unsubscribed track", kiln.Event{Type: kiln.Track, Name: kiln.Unsubscribed, SourceID: "src_1", Properties: map[string]any{"channel": "SMS", "source": "twilio"}},
			[]kiln.Consent{{Channel: kiln.ChannelSMS, Granted: false, Source: "twilio", At: at}}},
		{"unsubscribed default channel", kiln.Event{Type: kiln.Track, Name: kiln.Unsubscribed, SourceID: "src_1"},
			[]kiln.Consent{{Channel: kiln.ChannelEmail, Source: "src_1", At: at}}},
		{"unsubscribed unknown channel", kiln.Event{Type: kiln.Track, Name: kiln.Unsubscribed, Properties: map[string]any{"channel": "pigeon"}}, nil},
		{"identify traits", kiln.Event{Type: kiln.Identify, SourceID: "src_2", Traits: map[string]any{
			"accepts_marketing": true, "sms_consent": "opted_out", "push_consent": "maybe", "phone_consent": 1.0,
		}}, []kiln.Consent{
			{Channel: kiln.ChannelEmail, Granted: true, Source: "src_2", At: at},
			{Channel: kiln.ChannelSMS, Granted: false, Source: "src_2", At: at},
			{Channel: kiln.ChannelPhone, Granted: true, Source: "src_2", At: at},
		}},
		{"unsubscribed trait and shopify object", kiln.Event{Type: kiln.Identify, Traits: map[string]any{
			"unsubscribed": true, "sms_marketing_consent": map[string]any{"state": "subscribed"},
		}}, []kiln.Consent{{Channel: kiln.ChannelEmail, Granted: false, At: at}, {Channel: kiln.ChannelSMS, Granted: true, At: at}}},
		{"context traits on a track", kiln.Event{Type: kiln.Track, Name: "Order Completed", Context: map[string]any{"traits": map[string]any{"email_consent": "yes"}}},
			[]kiln.Consent{{Channel: kiln.ChannelEmail, Granted: true, At: at}}},
		{"track traits are not identify traits", kiln.Event{Type: kiln.Track, Name: "x", Traits: map[string]any{"email_consent": true}}, nil},
	} {
		tc.e.Timestamp = at
		var got []kiln.Consent
		consentOf(&tc.e, func(c kiln.Consent) { got = append(got, c) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: consent = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
