package action

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"text/template"
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

// SMTPConfig is an SMTP destination's configuration; its password
// ("password") is sealed.
type SMTPConfig struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	From     string `json:"from"`
	Username string `json:"username,omitempty"`
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
		if c.Host == "" || c.Port <= 0 || c.From == "" {
			return kiln.Errorf(kiln.EInvalid, "smtp config: host, port and from are required")
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
func newSender(d *store.Destination, secrets connector.Secrets, client *http.Client, timeout time.Duration) (sender, float64, time.Duration, error) {
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
		return &smtpSender{cfg: c, password: secrets["password"], timeout: timeout}, d.RateLimit, timeout, nil
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
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return connector.HTTPError(KindWebhook, reqName, resp.StatusCode, connector.ParseRetryAfter(resp.Header, time.Now()), connector.MessageOf(msg))
}

// smtpSender sends one email through net/smtp.
type smtpSender struct {
	cfg      SMTPConfig
	password string
	timeout  time.Duration
}

// mailData is what email templates see.
type mailData struct {
	Segment   string
	ProfileID string
	Entered   bool
	Traits    map[string]any
}

func (s *smtpSender) send(ctx context.Context, d *delivery) error {
	to := identifier(d.profile, kiln.Email)
	if to == "" {
		return connector.Invalid(KindSMTP, "profile %s has no email address", d.item.ProfileID)
	}
	data := mailData{Segment: d.payload.Segment, ProfileID: d.item.ProfileID, Entered: d.payload.Entered, Traits: d.traits}
	subject, err := render("subject", d.opts.Subject, "Kiln: {{.Segment}}", data)
	if err != nil {
		return connector.Invalid(KindSMTP, "automation %s: %v", d.auto.Name, err)
	}
	body, err := render("body", d.opts.Body, "", data)
	if err != nil {
		return connector.Invalid(KindSMTP, "automation %s: %v", d.auto.Name, err)
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@kiln>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		s.cfg.From, to, strings.ReplaceAll(subject, "\n", " "), d.item.Key, time.Now().UTC().Format(time.RFC1123Z))
	msg.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	var auth smtp.Auth
	if s.cfg.Username != "" {
		auth = smtp.PlainAuth("", s.cfg.Username, s.password, s.cfg.Host)
	}
	// net/smtp has no context: run it aside and give up at the timeout (the
	// message may still go out: at least once).
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(addr, auth, s.cfg.From, []string{to}, msg.Bytes()) }()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	var serr error
	select {
	case serr = <-done:
	case <-t.C:
		serr = fmt.Errorf("no answer within %s", s.timeout)
	case <-ctx.Done():
		serr = ctx.Err()
	}
	if serr == nil {
		return nil
	}
	var te *textproto.Error
	if errors.As(serr, &te) && te.Code >= 500 {
		return &connector.Error{Vendor: KindSMTP, Request: "SMTP " + addr, Code: kiln.EInvalid, Message: fmt.Sprintf("%d %s", te.Code, te.Msg)}
	}
	return connector.TransportError(ctx, KindSMTP, "SMTP "+addr, serr)
}

func render(name, text, def string, data mailData) (string, error) {
	if text == "" {
		text = def
	}
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return "", fmt.Errorf("email %s template: %v", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("email %s template: %v", name, err)
	}
	return b.String(), nil
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

func (c *connectorSender) send(ctx context.Context, d *delivery) error {
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
	rs := c.c.Deliver(ctx, []connector.Change{ch})
	if len(rs) != 1 {
		return &connector.Error{Vendor: c.vendor, Code: kiln.EInternal, Retryable: true, Message: fmt.Sprintf("connector returned %d results for 1 change", len(rs))}
	}
	return rs[0].Err
}
