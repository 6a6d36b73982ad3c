package ingest

import (
	"strings"

	"github.com/kiln-cdp/kiln"
)

// Subscribed is the track event a (re-)subscription maps onto; its
// counterpart kiln.Unsubscribed withdraws consent.
const Subscribed = "Subscribed"

// Consent trait keys on identify calls: a boolean per channel.
const (
	TraitEmailConsent = "email_consent"
	TraitSMSConsent   = "sms_consent"
)

// Consent returns the consent statements an event makes, so ingest and the
// processor agree on the conventions the webhooks map onto:
//
//   - track "Unsubscribed": consent withdrawn for properties.channel
//     (default email). Mailchimp list and SendGrid group unsubscribes and
//     spam reports map onto it too: someone who opted out of anything is
//     not emailed.
//   - track "Subscribed": consent granted for properties.channel (default email).
//   - identify traits email_consent / sms_consent (booleans): consent as
//     stated (Shopify's email_marketing_consent, Mailchimp subscribes).
//
// Source is the webhook kind from context.integration.name, or the call
// type; At is the event's timestamp.
func Consent(e *kiln.Event) []kiln.Consent {
	source := string(e.Type)
	if in, ok := e.Context["integration"].(map[string]any); ok {
		if n, ok := in["name"].(string); ok && n != "" {
			source = n
		}
	}
	channel := func() kiln.Channel {
		if c, ok := e.Properties["channel"].(string); ok && c != "" {
			return kiln.Channel(strings.ToLower(c))
		}
		return kiln.ChannelEmail
	}
	switch {
	case e.Type == kiln.Track && e.Name == kiln.Unsubscribed:
		return []kiln.Consent{{Channel: channel(), Granted: false, Source: source, At: e.Timestamp}}
	case e.Type == kiln.Track && e.Name == Subscribed:
		return []kiln.Consent{{Channel: channel(), Granted: true, Source: source, At: e.Timestamp}}
	case e.Type == kiln.Identify:
		var out []kiln.Consent
		for _, c := range [...]struct {
			key string
			ch  kiln.Channel
		}{{TraitEmailConsent, kiln.ChannelEmail}, {TraitSMSConsent, kiln.ChannelSMS}} {
			if v, ok := e.Traits[c.key].(bool); ok {
				out = append(out, kiln.Consent{Channel: c.ch, Granted: v, Source: source, At: e.Timestamp})
			}
		}
		return out
	}
	return nil
}
