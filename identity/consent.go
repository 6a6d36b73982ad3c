package identity

import (
	"strings"

	"github.com/kiln-cdp/kiln"
)

// consentTraits maps the trait keys that carry consent to their channel
// and whether a true value means granted (false: "unsubscribed: true"
// means the opposite).
var consentTraits = []struct {
	key     string
	channel kiln.Channel
	granted bool
}{
	{"email_consent", kiln.ChannelEmail, true},
	{"accepts_marketing", kiln.ChannelEmail, true},       // Shopify
	{"email_marketing_consent", kiln.ChannelEmail, true}, // Shopify ({"state": "subscribed"})
	{"unsubscribed", kiln.ChannelEmail, false},
	{"sms_consent", kiln.ChannelSMS, true},
	{"accepts_sms_marketing", kiln.ChannelSMS, true},
	{"sms_marketing_consent", kiln.ChannelSMS, true},
	{"push_consent", kiln.ChannelPush, true},
	{"phone_consent", kiln.ChannelPhone, true},
}

// consentOf calls fn for each consent change event e states:
//   - traits (identify) and context.traits: the keys in consentTraits, with
//     a boolean, a yes/no-like string, 0/1, or an object with a "state" or
//     "status" string; values it cannot read are ignored;
//   - a track "Unsubscribed": properties.channel (default email) denied.
//
// The Source is properties.source if set, else the event's source; At is
// the event's time.
func consentOf(e *kiln.Event, fn func(kiln.Consent)) {
	source := e.SourceID
	if s, ok := e.Properties["source"].(string); ok && s != "" {
		source = s
	}
	at := eventTime(e)
	if e.Type == kiln.Track && e.Name == kiln.Unsubscribed {
		ch := kiln.ChannelEmail
		if s, ok := e.Properties["channel"].(string); ok && s != "" {
			var known bool
			if ch, known = channel(s); !known {
				return
			}
		}
		fn(kiln.Consent{Channel: ch, Granted: false, Source: source, At: at})
		return
	}
	ctxTraits, _ := e.Context["traits"].(map[string]any)
	var traits map[string]any
	if e.Type == kiln.Identify {
		traits = e.Traits
	}
	if len(ctxTraits) == 0 && len(traits) == 0 {
		return
	}
	for _, ct := range consentTraits {
		// The call's own traits over context.traits, as for profile traits.
		v, ok := traits[ct.key]
		if !ok {
			if v, ok = ctxTraits[ct.key]; !ok {
				continue
			}
		}
		yes, ok := parseConsent(v)
		if !ok {
			continue
		}
		fn(kiln.Consent{Channel: ct.channel, Granted: yes == ct.granted, Source: source, At: at})
	}
}

func channel(s string) (kiln.Channel, bool) {
	switch c := kiln.Channel(strings.ToLower(strings.TrimSpace(s))); c {
	case kiln.ChannelEmail, kiln.ChannelSMS, kiln.ChannelPush, kiln.ChannelPhone:
		return c, true
	case "text":
		return kiln.ChannelSMS, true
	}
	return "", false
}

// parseConsent reads a consent-like value; ok is false if it is not one.
func parseConsent(v any) (yes, ok bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case float64:
		if v == 1 || v == 0 {
			return v == 1, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "yes", "y", "1", "on", "granted", "subscribed", "opted_in", "opt_in", "optin", "opt-in", "accepted":
			return true, true
		case "false", "no", "n", "0", "off", "denied", "unsubscribed", "not_subscribed", "opted_out", "opt_out", "optout", "opt-out", "declined", "revoked", "redacted":
			return false, true
		}
	case map[string]any:
		for _, k := range []string{"state", "status"} {
			if s, isStr := v[k].(string); isStr {
				return parseConsent(s)
			}
		}
	}
	return false, false
}
