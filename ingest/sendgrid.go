package ingest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// NewSendGridHandler receives the SendGrid Event Webhook: a JSON array of
// events. open becomes Email Opened, click Email Link Clicked, bounce and
// dropped Email Bounced, and unsubscribe, group_unsubscribe and spamreport
// Unsubscribed with properties.channel "email" (which withdraws email
// consent); group_resubscribe becomes Subscribed with
// context.traits.email_consent true (which grants it again). Delivery-pipeline
// events (processed, delivered, deferred) say nothing about the customer's
// behaviour and are skipped.
//
// When the source has a Secret it is the Signed Event Webhook's
// verification key (base64 DER as SendGrid shows it, or PEM), and every
// request must carry a valid X-Twilio-Email-Event-Webhook-Signature over
// the X-Twilio-Email-Event-Webhook-Timestamp and the body.
func NewSendGridHandler(cfg WebhookConfig) http.Handler {
	h := newWebhook(KindSendGrid, cfg)
	h.verify = func(wr *webhookRequest) error {
		if wr.src.Secret == "" {
			return nil
		}
		return verifySendGrid(wr.src.Secret, wr.r.Header.Get(sendGridSigHeader), wr.r.Header.Get(sendGridTSHeader), wr.body, wr.now, h.cfg.MaxSignatureAge)
	}
	h.handle = handleSendGrid
	return h
}

const (
	sendGridSigHeader = "X-Twilio-Email-Event-Webhook-Signature"
	sendGridTSHeader  = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// parseECPublicKey reads a verification key as SendGrid shows it (base64
// of the DER SubjectPublicKeyInfo) or as PEM.
func parseECPublicKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		der = blk.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("the verification key is neither PEM nor base64: %v", err)
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("the verification key does not parse: %v", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the verification key is a %T, not an ECDSA key", pub)
	}
	return ec, nil
}

// verifySendGrid checks the ECDSA signature of timestamp+body.
func verifySendGrid(key, sig, ts string, body []byte, now time.Time, maxAge time.Duration) error {
	pub, err := parseECPublicKey(key)
	if err != nil {
		// A broken key is our configuration problem, not the caller's.
		return kiln.Errorf(kiln.EInternal, "sendgrid source: %v", err)
	}
	if sig == "" || ts == "" {
		return unauthorized("no %s / %s headers: the request is not signed, but the source has a verification key", sendGridSigHeader, sendGridTSHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return unauthorized("%s is not base64: %v", sendGridSigHeader, err)
	}
	digest := sha256.Sum256(append([]byte(ts), body...))
	if !ecdsa.VerifyASN1(pub, digest[:], raw) {
		return unauthorized("%s does not match: wrong verification key, or the body was altered", sendGridSigHeader)
	}
	if !now.IsZero() && maxAge > 0 {
		sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil {
			return unauthorized("%s %q is not a Unix time", sendGridTSHeader, ts)
		}
		if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
			return unauthorized("%s is %s from now, outside the %s allowed (a replayed request?)", sendGridTSHeader, age.Round(time.Second), maxAge)
		}
	}
	return nil
}

type sendGridEvent struct {
	Email        string `json:"email"`
	Timestamp    num    `json:"timestamp"`
	Event        string `json:"event"`
	SGEventID    string `json:"sg_event_id"`
	SGMessageID  string `json:"sg_message_id"`
	URL          string `json:"url"`
	Reason       string `json:"reason"`
	Status       string `json:"status"`
	Type         string `json:"type"`
	BounceClass  string `json:"bounce_classification"`
	ASMGroupID   anyID  `json:"asm_group_id"`
	UserAgent    string `json:"useragent"`
	IP           string `json:"ip"`
	Category     any    `json:"category"`
	CampaignID   anyID  `json:"marketing_campaign_id"`
	CampaignName string `json:"marketing_campaign_name"`
	MachineOpen  *bool  `json:"sg_machine_open"`
	SingleSendID string `json:"singlesend_id"`
	TemplateID   string `json:"template_id"`
}

func handleSendGrid(wr *webhookRequest) (webhookResult, error) {
	res := webhookResult{origin: "sendgrid"}
	var raws []json.RawMessage
	if err := json.Unmarshal(wr.body, &raws); err != nil {
		return res, webhookJSONError("sendgrid payload (a JSON array of events)", wr.body, err)
	}
	for i, raw := range raws {
		var ev sendGridEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			res.rejects = append(res.rejects, kiln.Reject{Origin: res.origin, Index: i, Reason: webhookJSONError(fmt.Sprintf("event %d", i), raw, err).(*kiln.Error).Message, Payload: truncate(raw)})
			continue
		}
		props := map[string]any{}
		var name string
		consent := false
		switch ev.Event {
		case "open":
			name = kiln.EmailOpened
			if ev.MachineOpen != nil {
				// Apple Mail Privacy Protection opens are not a person reading.
				props["machine_open"] = *ev.MachineOpen
			}
		case "click":
			name = kiln.EmailLinkClicked
			setIfNotEmpty(props, "url", ev.URL)
		case "bounce", "dropped":
			name = kiln.EmailBounced
			props["sendgrid_event"] = ev.Event
			setIfNotEmpty(props, "reason", ev.Reason)
			setIfNotEmpty(props, "status", ev.Status)
			setIfNotEmpty(props, "bounce_type", ev.Type)
			setIfNotEmpty(props, "bounce_classification", ev.BounceClass)
		case "unsubscribe", "group_unsubscribe", "spamreport":
			name = kiln.Unsubscribed
			props["channel"] = string(kiln.ChannelEmail)
			props["reason"] = ev.Event
			setIfNotEmpty(props, "group_id", string(ev.ASMGroupID))
		case "group_resubscribe":
			name = subscribed
			props["channel"] = string(kiln.ChannelEmail)
			setIfNotEmpty(props, "group_id", string(ev.ASMGroupID))
			consent = true
		case "processed", "delivered", "deferred":
			continue
		case "":
			res.rejects = append(res.rejects, kiln.Reject{Origin: res.origin, Index: i, Field: "event", Reason: "event has no \"event\" type", Payload: truncate(raw)})
			continue
		default:
			res.rejects = append(res.rejects, kiln.Reject{Origin: res.origin, Index: i, Field: "event", Reason: fmt.Sprintf("event type %q is not mapped", ev.Event), Payload: truncate(raw)})
			continue
		}
		setIfNotEmpty(props, "email", strings.TrimSpace(ev.Email))
		setIfNotEmpty(props, "sg_message_id", ev.SGMessageID)
		setIfNotEmpty(props, "campaign_id", string(ev.CampaignID))
		setIfNotEmpty(props, "campaign_name", ev.CampaignName)
		setIfNotEmpty(props, "singlesend_id", ev.SingleSendID)
		setIfNotEmpty(props, "template_id", ev.TemplateID)
		if ev.Category != nil {
			props["category"] = ev.Category
		}
		e := kiln.Event{Type: kiln.Track, Name: name, Properties: props, Context: map[string]any{}}
		if consent {
			e.Context["traits"] = map[string]any{traitEmailConsent: true}
		}
		setIfNotEmpty(e.Context, "userAgent", ev.UserAgent)
		setIfNotEmpty(e.Context, "ip", ev.IP)
		if ev.Timestamp > 0 {
			sec := float64(ev.Timestamp)
			e.Timestamp = time.Unix(int64(sec), int64((sec-float64(int64(sec)))*1e9)).UTC()
		}
		if ev.SGEventID != "" {
			e.MessageID = "sendgrid-" + ev.SGEventID
		}
		res.events = append(res.events, mapped{event: e, index: i, raw: raw})
	}
	return res, nil
}
