package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

// DefaultMaxWebhookBytes caps a webhook body. Shopify orders with hundreds
// of lines and SendGrid batches stay well under it.
const DefaultMaxWebhookBytes = 5 << 20

// WebhookConfig configures the webhook handlers. Sink and Auth are required.
type WebhookConfig struct {
	Sink   Sink
	Auth   Auth
	Logger *slog.Logger
	Now    func() time.Time
	// Identity decides which values are identifiers when setting each
	// event's Anchor; it must be the resolver's (nil: the default rules).
	Identity *identity.Extractor
	// MaxBodyBytes caps a request body (default DefaultMaxWebhookBytes).
	MaxBodyBytes int
	// MaxSignatureAge bounds how old a signed SendGrid timestamp may be, to
	// refuse replays (0: 24 h; SendGrid retries for up to 24 h).
	MaxSignatureAge time.Duration
}

// Webhook kinds, as used in /webhooks/{kind}/{source} and Source.Kind.
const (
	KindShopify     = "shopify"
	KindWooCommerce = "woocommerce"
	KindSendGrid    = "sendgrid"
	KindMailchimp   = "mailchimp"
)

// WebhookKinds lists the webhook kinds NewWebhookHandler knows.
var WebhookKinds = []string{KindShopify, KindWooCommerce, KindSendGrid, KindMailchimp}

// NewWebhookHandler returns the handler for one vendor kind. It is meant to
// be mounted at /webhooks/{kind}/{source}: the source (id or name) is read
// from the "source" path value, or else the last path segment. The
// source's Secret verifies the vendor's signature.
func NewWebhookHandler(kind string, cfg WebhookConfig) (http.Handler, error) {
	switch kind {
	case KindShopify:
		return NewShopifyHandler(cfg), nil
	case KindWooCommerce:
		return NewWooCommerceHandler(cfg), nil
	case KindSendGrid:
		return NewSendGridHandler(cfg), nil
	case KindMailchimp:
		return NewMailchimpHandler(cfg), nil
	}
	return nil, kiln.Errorf(kiln.ENotFound, "no webhook kind %q: known kinds are %s", kind, strings.Join(WebhookKinds, ", "))
}

// Consent conventions, as the identity resolver reads them: identify (or
// context) traits email_consent / sms_consent state consent per channel,
// and a track Unsubscribed withdraws it for properties.channel.
const (
	traitEmailConsent = "email_consent"
	traitSMSConsent   = "sms_consent"
	// subscribed names a re-subscription; the consent itself travels in
	// context.traits.email_consent.
	subscribed = "Subscribed"
)

// mapped is one event a vendor payload turned into, with the raw part of
// the payload it came from (kept if it becomes a reject).
type mapped struct {
	event kiln.Event
	index int
	raw   []byte
}

// webhookRequest is what a vendor mapping sees.
type webhookRequest struct {
	r    *http.Request
	body []byte
	src  *kiln.Source
	now  time.Time
}

// webhookResult is what a vendor mapping returns: events, and rejects for
// parts of a parseable payload that cannot become events. origin names
// the payload in rejects (e.g. "shopify:orders/create").
type webhookResult struct {
	origin  string
	events  []mapped
	rejects []kiln.Reject
}

// webhook is the shared request path of all vendor handlers: find the
// source, verify, map, fill common fields, write.
type webhook struct {
	kind string
	cfg  WebhookConfig
	log  *slog.Logger
	auth *authCache
	// verify checks the request's signature with the source's secret; its
	// error is answered with 401.
	verify func(wr *webhookRequest) error
	// handle maps a verified body; its error is answered with 400.
	handle func(wr *webhookRequest) (webhookResult, error)
	// get answers GET requests (Mailchimp's URL validation); nil: 405.
	get bool
}

func newWebhook(kind string, cfg WebhookConfig) *webhook {
	if cfg.Sink == nil || cfg.Auth == nil {
		panic("ingest: webhook handlers need a Sink and an Auth")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxWebhookBytes
	}
	if cfg.MaxSignatureAge <= 0 {
		cfg.MaxSignatureAge = 24 * time.Hour
	}
	return &webhook{kind: kind, cfg: cfg, log: cfg.Logger, auth: newAuthCache(cfg.Auth, 0, cfg.Now)}
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		writeError(w, h.log, r, err)
	}
}

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("source")
	if name == "" {
		p := strings.TrimSuffix(r.URL.Path, "/")
		name = p[strings.LastIndexByte(p, '/')+1:]
	}
	if name == "" || name == h.kind {
		return kiln.Errorf(kiln.ENotFound, "%s: no source in the URL: use /webhooks/%s/{source}", r.URL.Path, h.kind)
	}
	src, err := h.auth.source(r.Context(), name)
	if err != nil {
		if kiln.ErrorCode(err) == kiln.ENotFound {
			return kiln.Errorf(kiln.ENotFound, "%s: no source %q", r.URL.Path, name)
		}
		return err
	}
	if src.Kind != "" && src.Kind != h.kind {
		return kiln.Errorf(kiln.ENotFound, "%s: source %q is a %s source, not %s", r.URL.Path, src.Name, src.Kind, h.kind)
	}
	switch {
	case r.Method == http.MethodGet && h.get:
		writeSuccess(w)
		return nil
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, errBody(kiln.EInvalid, r.Method+" "+r.URL.Path+": only POST is allowed"))
		return nil
	}
	var buf bytes.Buffer
	if err := readBody(r, &buf, h.cfg.MaxBodyBytes); err != nil {
		return err
	}
	now := h.cfg.Now().UTC()
	wr := &webhookRequest{r: r, body: buf.Bytes(), src: src, now: now}
	if err := h.verify(wr); err != nil {
		return err
	}
	res, err := h.handle(wr)
	if err != nil {
		return err
	}
	events := make([]kiln.Event, 0, len(res.events))
	rejects := res.rejects
	for i := range rejects {
		rejects[i].SourceID, rejects[i].ReceivedAt = src.ID, now
		if rejects[i].Origin == "" {
			rejects[i].Origin = res.origin
		}
	}
	for _, m := range res.events {
		e := m.event
		e.SourceID = src.ID
		e.ReceivedAt = now
		if e.Timestamp.IsZero() {
			e.Timestamp = now
		}
		e.Timestamp = e.Timestamp.UTC()
		if e.Context == nil {
			e.Context = map[string]any{}
		}
		e.Context["integration"] = map[string]any{"name": h.kind}
		if e.Store == "" {
			e.Store = storeOf(&e)
		}
		if e.Store == "" {
			e.Store = src.Store
		}
		e.Anchor = AnchorWith(h.cfg.Identity, &e)
		if e.Anchor == "" {
			rejects = append(rejects, newReject(src.ID, now, res.origin, m.index, "email", "no customer identifier: the payload has no email, phone or customer id", m.raw))
			continue
		}
		if e.MessageID == "" {
			e.MessageID = hashID(h.kind+"-", m.raw)
		}
		// A signed payload with a value no store can hold (a total of
		// "NaN", a date in 1600) is set aside with 200 rather than refused:
		// vendors retry a refused webhook and, after repeated failures,
		// stop sending (Shopify removes the subscription, WooCommerce
		// disables the webhook), which would lose every later order too.
		if field, reason := CheckStorable(&e); reason != "" {
			rejects = append(rejects, newReject(src.ID, now, res.origin, m.index, field, reason, m.raw))
			continue
		}
		events = append(events, e)
	}
	sort.SliceStable(rejects, func(i, j int) bool { return rejects[i].Index < rejects[j].Index })
	if _, err := h.cfg.Sink.Write(r.Context(), events, rejects); err != nil {
		return sinkError(err)
	}
	writeSuccess(w)
	return nil
}

// unauthorized is the answer to a bad or missing signature.
func unauthorized(format string, args ...any) error {
	return kiln.Errorf(kiln.EUnauthorized, format, args...)
}

// num is a JSON number that vendors also send as a string ("199.00").
type num float64

func (n *num) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" || s == `""` {
		return nil
	}
	s = strings.Trim(s, `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	*n = num(f)
	return nil
}

// anyID is an id that vendors send as a number or a string.
type anyID string

func (a *anyID) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*a = anyID(v)
		return nil
	}
	if len(s) > 0 && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		*a = anyID(s)
		return nil
	}
	return fmt.Errorf("%s is not an id", b)
}

// webhookJSONError describes a vendor payload that does not decode.
func webhookJSONError(where string, body []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(body, se.Offset-1)
		return kiln.Errorf(kiln.EInvalid, "%s: invalid JSON at line %d, column %d: %v", where, line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return kiln.Errorf(kiln.EInvalid, "%s: field %s: cannot use JSON %s here", where, te.Field, te.Value)
	}
	return kiln.Errorf(kiln.EInvalid, "%s: %v", where, err)
}

// setIfNotEmpty puts v in m under k unless v is empty or zero.
func setIfNotEmpty(m map[string]any, k string, v any) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return
		}
	case nil:
		return
	}
	m[k] = v
}
