package action

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// delivery is one item ready to send.
type delivery struct {
	item    store.OutboxItem
	payload Payload
	auto    store.Automation
	opts    Options
	profile *kiln.Profile
	traits  map[string]any // the chosen traits
	ack     *store.SyncAck // for a sync: the state the destination acknowledges by accepting it
	hadAck  bool           // an acknowledged state was stored for it (forgotten before the call)
}

// sender delivers to one destination. Errors are *connector.Error (or
// treated as retryable).
type sender interface {
	send(ctx context.Context, d *delivery) error
}

// WebhookConfig is a webhook destination's configuration; its secret
// ("secret", whsec_...) is sealed.
type WebhookConfig struct {
	URL string `json:"url"`
	// TimeoutSeconds bounds one attempt (default: the dispatcher's).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
}

func decodeStrict(what string, raw json.RawMessage, dst any) error {
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return kiln.Errorf(kiln.EInvalid, "%s config: %v", what, err)
	}
	return nil
}

// checkConfig validates a destination's kind, configuration and secrets.
func checkConfig(kind string, cfg json.RawMessage, secrets connector.Secrets) error {
	switch kind {
	case KindWebhook:
		var c WebhookConfig
		if err := decodeStrict("webhook", cfg, &c); err != nil {
			return err
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return kiln.Errorf(kiln.EInvalid, "webhook config: url %q: want an absolute http or https URL", c.URL)
		}
		if _, err := secretBytes(secrets["secret"]); err != nil {
			return kiln.Errorf(kiln.EInvalid, "webhook secrets: secret: %v", err)
		}
	case KindSMTP:
		var c SMTPConfig
		if err := decodeStrict("smtp", cfg, &c); err != nil {
			return err
		}
		if err := c.check(); err != nil {
			return err
		}
	default:
		if _, _, ok := connector.Lookup(kind); !ok {
			return kiln.Errorf(kiln.EInvalid, "destination kind %q: want webhook, smtp or a connector (%s)", kind, strings.Join(connector.IDs(), ", "))
		}
		if _, err := connector.New(kind, cfg, secrets, nil); err != nil {
			return kiln.Errorf(kiln.EInvalid, "%s destination: %v", kind, err)
		}
	}
	return nil
}

// newSender builds the sender for a destination with its opened secrets,
// and says its rate and how long one call may take.
func newSender(d *store.Destination, secrets connector.Secrets, client *http.Client, timeout time.Duration, opts DeliveryOptions) (sender, float64, time.Duration, error) {
	s, rate, timeout, err := newKindSender(d, secrets, client, timeout, opts)
	if err != nil {
		return nil, 0, 0, err
	}
	return guarded{kind: d.Kind, s: s, r: newRedactor(secrets)}, rate, timeout, nil
}

func newKindSender(d *store.Destination, secrets connector.Secrets, client *http.Client, timeout time.Duration, opts DeliveryOptions) (sender, float64, time.Duration, error) {
	switch d.Kind {
	case KindWebhook:
		var c WebhookConfig
		if err := decodeStrict("webhook", d.Config, &c); err != nil {
			return nil, 0, 0, err
		}
		if c.TimeoutSeconds > 0 {
			// Shorter than the dispatcher's only: its timeout keeps calls
			// within their lease.
			timeout = min(timeout, time.Duration(c.TimeoutSeconds*float64(time.Second)))
		}
		return &webhookSender{url: c.URL, secret: secrets["secret"], client: client, timeout: timeout}, d.RateLimit, timeout, nil
	case KindSMTP:
		var c SMTPConfig
		if err := decodeStrict("smtp", d.Config, &c); err != nil {
			return nil, 0, 0, err
		}
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, 0, 0, err
		}
		return &smtpSender{cfg: c, tls: tc, password: secrets["password"], timeout: timeout, opts: opts}, d.RateLimit, timeout, nil
	}
	conn, err := connector.New(d.Kind, d.Config, secrets, client)
	if err != nil {
		return nil, 0, 0, err
	}
	rate := d.RateLimit
	if rate <= 0 {
		rate = conn.RateLimit().PerSecond
	}
	return &connectorSender{vendor: d.Kind, c: conn}, rate, timeout, nil
}

// webhookSender POSTs the signed Message.
type webhookSender struct {
	url, secret string
	client      *http.Client
	timeout     time.Duration
}

func (w *webhookSender) send(ctx context.Context, d *delivery) error {
	p := d.payload
	body, err := json.Marshal(Message{Type: p.Type, Timestamp: p.At, Data: MessageData{
		Segment: p.Segment, ProfileID: p.ProfileID, TransitionID: d.item.TransitionID, Entered: p.Entered, At: p.At,
		Version: p.Version, Reason: p.Reason, EventSeq: p.EventSeq, Evidence: p.Evidence, Traits: d.traits, Automation: d.auto.Name,
	}})
	if err != nil {
		return connector.Invalid(KindWebhook, "encoding the message: %v", err)
	}
	now := time.Now()
	sig, err := Sign(w.secret, d.item.Key, now, body)
	if err != nil {
		return connector.Invalid(KindWebhook, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	reqName := "POST " + w.url
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return connector.Invalid(KindWebhook, "%s: %v", reqName, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Kiln-Webhooks/1")
	req.Header.Set(HeaderID, d.item.Key)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return connector.TransportError(ctx, KindWebhook, reqName, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Not followed (egress.Client): a signed POST must not turn into
		// a GET elsewhere, and the target may be an internal address.
		return connector.HTTPError(KindWebhook, reqName, resp.StatusCode, 0,
			fmt.Sprintf("redirected to %q, which Kiln does not follow: configure the final URL", capText(resp.Header.Get("Location"), 200)))
	}
	return connector.HTTPError(KindWebhook, reqName, resp.StatusCode, connector.ParseRetryAfter(resp.Header, time.Now()), connector.MessageOf(msg))
}

// identifier returns the profile's first identifier of a kind, "" if none.
func identifier(p *kiln.Profile, kind kiln.IdentifierKind) string {
	for _, id := range p.Identities {
		if id.Kind == kind {
			return id.Value
		}
	}
	return ""
}

// connectorSender hands the change to a vendor connector.
type connectorSender struct {
	vendor string
	c      connector.Connector
}

// batchSender is a sender that takes several deliveries in one call
// (a vendor connector): sendBatch returns one error per delivery, nil
// for those the destination accepted.
type batchSender interface {
	maxBatch() int
	sendBatch(ctx context.Context, ds []*delivery) []error
}

func (c *connectorSender) maxBatch() int { return max(1, c.c.MaxBatch()) }

// change is the connector change a delivery asks for.
func (c *connectorSender) change(d *delivery) connector.Change {
	op := d.opts.Op
	if op == "" {
		op = connector.OpRemove
		if d.payload.Entered {
			op = connector.OpAdd
		}
	}
	ch := connector.Change{Op: op, Segment: d.payload.Segment, Version: d.payload.Version, At: d.payload.At, IdempotencyKey: d.item.Key,
		Member: connector.Member{ProfileID: d.item.ProfileID, Email: identifier(d.profile, kiln.Email), Phone: identifier(d.profile, kiln.Phone),
			UserID: identifier(d.profile, kiln.UserID), Traits: d.traits}}
	if op == connector.OpUpsert {
		ch.Segment = ""
	}
	return ch
}

func (c *connectorSender) send(ctx context.Context, d *delivery) error {
	return c.sendBatch(ctx, []*delivery{d})[0]
}

// sendBatch hands the changes to the connector in one Deliver call.
func (c *connectorSender) sendBatch(ctx context.Context, ds []*delivery) []error {
	cs := make([]connector.Change, len(ds))
	for i, d := range ds {
		cs[i] = c.change(d)
	}
	rs := c.c.Deliver(ctx, cs)
	errs := make([]error, len(ds))
	for i := range errs {
		if len(rs) != len(ds) {
			errs[i] = &connector.Error{Vendor: c.vendor, Code: kiln.EInternal, Retryable: true, Message: fmt.Sprintf("connector returned %d results for %d changes", len(rs), len(ds))}
			continue
		}
		errs[i] = rs[i].Err
	}
	return errs
}
