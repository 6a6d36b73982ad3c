package ingest

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// NewMailchimpHandler receives Mailchimp audience webhooks, which arrive
// as application/x-www-form-urlencoded posts (type=subscribe&data[email]=...).
// subscribe becomes identify with email_consent true, unsubscribe an
// Unsubscribed track event (channel email), profile an identify with the
// merge fields, upemail an identify carrying both the old and the new
// address (so the resolver links them), cleaned Email Bounced (or
// Unsubscribed when the reason is abuse). campaign notices concern a
// campaign, not a person, and are acknowledged without an event.
//
// Mailchimp does not sign webhooks; its advice is a secret in the URL. When
// the source has a Secret, the request must carry it as ?secret=. GET
// requests (Mailchimp's check that the URL exists) are answered 200.
func NewMailchimpHandler(cfg WebhookConfig) http.Handler {
	h := newWebhook(KindMailchimp, cfg)
	h.get = true
	h.verify = func(wr *webhookRequest) error {
		if wr.src.Secret == "" {
			return nil
		}
		got := wr.r.URL.Query().Get("secret")
		if got == "" {
			return unauthorized("no ?secret= in the webhook URL, and source %q requires one", wr.src.Name)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(wr.src.Secret)) != 1 {
			return unauthorized("?secret= does not match source %q", wr.src.Name)
		}
		return nil
	}
	h.handle = handleMailchimp
	return h
}

// mailchimpMerges maps merge tags to traits.
var mailchimpMerges = map[string]string{
	"FNAME": "first_name", "LNAME": "last_name", "PHONE": "phone", "BIRTHDAY": "birthday",
	"ADDRESS": "address", "COMPANY": "company",
}

func handleMailchimp(wr *webhookRequest) (webhookResult, error) {
	res := webhookResult{origin: "mailchimp"}
	form, err := url.ParseQuery(string(wr.body))
	if err != nil {
		return res, kiln.Errorf(kiln.EInvalid, "mailchimp payload: not form-encoded (application/x-www-form-urlencoded): %v", err)
	}
	typ := form.Get("type")
	res.origin = "mailchimp:" + typ
	if typ == "" {
		return res, kiln.Errorf(kiln.EInvalid, "mailchimp payload: no type field (subscribe, unsubscribe, profile, upemail, cleaned, campaign)")
	}
	d := func(k string) string { return strings.TrimSpace(form.Get("data[" + k + "]")) }
	var ts time.Time
	if fa := form.Get("fired_at"); fa != "" {
		// "2009-03-26 21:35:57", in UTC.
		t, err := time.Parse(time.DateTime, fa)
		if err != nil {
			return res, kiln.Errorf(kiln.EInvalid, "mailchimp payload: fired_at %q is not YYYY-MM-DD HH:MM:SS", fa)
		}
		ts = t
	}
	props := map[string]any{}
	setIfNotEmpty(props, "list_id", d("list_id"))
	traits := map[string]any{}
	for k, vs := range form {
		if strings.HasPrefix(k, "data[merges][") && len(vs) > 0 && vs[0] != "" {
			tag := strings.TrimSuffix(strings.TrimPrefix(k, "data[merges]["), "]")
			if tr, ok := mailchimpMerges[tag]; ok {
				traits[tr] = vs[0]
			}
		}
	}
	e := kiln.Event{Timestamp: ts, Properties: props}
	email := d("email")
	switch typ {
	case "subscribe":
		e.Type = kiln.Identify
		traits[traitEmailConsent] = true
		setIfNotEmpty(traits, "email", email)
		e.Traits = traits
	case "profile":
		e.Type = kiln.Identify
		setIfNotEmpty(traits, "email", email)
		e.Traits = traits
	case "unsubscribe":
		e.Type, e.Name = kiln.Track, kiln.Unsubscribed
		props["channel"] = string(kiln.ChannelEmail)
		setIfNotEmpty(props, "email", email)
		setIfNotEmpty(props, "reason", d("reason"))
		setIfNotEmpty(props, "action", d("action"))
		setIfNotEmpty(props, "campaign_id", d("campaign_id"))
	case "cleaned":
		e.Type, e.Name = kiln.Track, kiln.EmailBounced
		if d("reason") == "abuse" {
			e.Name = kiln.Unsubscribed
			props["channel"] = string(kiln.ChannelEmail)
		}
		setIfNotEmpty(props, "email", email)
		setIfNotEmpty(props, "reason", d("reason"))
		setIfNotEmpty(props, "campaign_id", d("campaign_id"))
	case "upemail":
		e.Type = kiln.Identify
		e.Traits = map[string]any{"email": d("new_email"), "previous_email": d("old_email")}
		// Both addresses on one event: the resolver sees they are one person.
		e.Context = map[string]any{"traits": map[string]any{"email": d("old_email")}}
	case "campaign":
		return res, nil
	default:
		res.rejects = append(res.rejects, kiln.Reject{Origin: res.origin, Field: "type", Reason: "mailchimp webhook type " + typ + " is not mapped", Payload: truncate(wr.body)})
		return res, nil
	}
	// Mailchimp sends no delivery id: hash the form in a stable order, so a
	// retry of the same notice gets the same id.
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var canon strings.Builder
	for _, k := range keys {
		canon.WriteString(k + "=" + strings.Join(form[k], ",") + "\n")
	}
	e.MessageID = hashID("mailchimp-", []byte(canon.String()))
	res.events = append(res.events, mapped{event: e, raw: wr.body})
	return res, nil
}
