// Package segment is the Segment-compatible forwarder: it sends segment
// transitions and trait upserts as tracking-API calls to any endpoint that
// speaks Segment's /v1/batch (Segment itself, RudderStack, Jitsu, or
// another Kiln).
//
// Add becomes a track call "Entered Segment" and remove "Exited Segment",
// with properties {segment, version}; upsert becomes an identify call with
// the traits. Each message's messageId is the change's idempotency key, so
// a receiver that deduplicates by messageId (Segment, RudderStack, Kiln)
// drops redelivered changes. The message is attributed to the member's user
// id, else to the Kiln profile id as anonymousId.
package segment

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "segment"

const (
	defaultBase = "https://api.segment.io"
	maxBatch    = 100
	// The tracking API's limits: 32 KB per message, 500 KB per batch.
	maxMessage = 32 << 10
	maxRequest = 500 << 10
)

// Segment asks senders to stay under 500 requests per second per source
// (its tracking API has no hard limit; RudderStack's is per deployment).
var rate = connector.Rate{PerSecond: 500, Burst: 500}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// EnteredEvent and ExitedEvent name the track events; defaults
	// "Entered Segment" and "Exited Segment".
	EnteredEvent string `json:"entered_event,omitempty"`
	ExitedEvent  string `json:"exited_event,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:           "Segment-compatible endpoint",
		Summary:        "add/remove: track \"Entered Segment\"/\"Exited Segment\" with properties {segment, version}; upsert: identify with the traits; all through POST /v1/batch",
		Secrets:        []string{"write_key"},
		Identifiers:    []string{"user_id (userId)", "profile id (anonymousId)"},
		Ops:            []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:       maxBatch,
		Rate:           rate,
		Spec:           "rudderstack/gateway/openapi.yaml",
		IdempotencyKey: "messageId of each message",
	})
}

type forwarder struct {
	c       *connector.Client
	cfg     Config
	set     connector.Settings
	now     func() time.Time
	entered string
	exited  string
}

// New makes a forwarder. Secrets: write_key (sent as the basic-auth user
// name with an empty password). Set base_url to the receiver's root (the
// part before /v1/batch).
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	set, err := cfg.Resolve(ID, defaultBase, maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "write_key")
	if err != nil {
		return nil, err
	}
	f := &forwarder{cfg: cfg, set: set, now: time.Now, entered: cfg.EnteredEvent, exited: cfg.ExitedEvent}
	if f.entered == "" {
		f.entered = "Entered Segment"
	}
	if f.exited == "" {
		f.exited = "Exited Segment"
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(s[0]+":"))
	f.c = &connector.Client{Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", auth) }}
	return f, nil
}

func (f *forwarder) MaxBatch() int             { return f.set.MaxBatch }
func (f *forwarder) RateLimit() connector.Rate { return f.set.Rate }

// message builds the tracking-API message for c.
func (f *forwarder) message(c connector.Change) map[string]any {
	m := c.Member
	at := c.At
	if at.IsZero() {
		at = f.now()
	}
	msg := map[string]any{
		"messageId": messageID(c),
		"timestamp": at.UTC().Format(time.RFC3339Nano),
		"context":   map[string]any{"library": map[string]any{"name": "kiln"}},
	}
	if m.UserID != "" {
		msg["userId"] = m.UserID
	} else {
		msg["anonymousId"] = m.ProfileID
	}
	known := map[string]any{}
	if m.Email != "" {
		known["email"] = m.Email
	}
	if m.Phone != "" {
		known["phone"] = m.Phone
	}
	switch c.Op {
	case connector.OpUpsert:
		traits := map[string]any{}
		for k, v := range m.Traits {
			traits[k] = v
		}
		for k, v := range known {
			traits[k] = v
		}
		msg["type"] = "identify"
		msg["traits"] = traits
	default:
		msg["type"] = "track"
		msg["event"] = f.entered
		if c.Op == connector.OpRemove {
			msg["event"] = f.exited
		}
		msg["properties"] = map[string]any{"segment": c.Segment, "version": c.Version}
		if len(known) > 0 {
			// Lets the receiver resolve the member without an earlier identify.
			msg["context"].(map[string]any)["traits"] = known
		}
	}
	return msg
}

// messageID is the change's idempotency key, or, without one, a digest of
// the change so redelivery of the same change still carries the same id.
func messageID(c connector.Change) string {
	if c.IdempotencyKey != "" {
		return c.IdempotencyKey
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%d", c.Op, c.Member.ProfileID, c.Member.UserID, c.Segment, c.Version, c.At.UnixNano())
	if c.Op == connector.OpUpsert {
		b, _ := json.Marshal(c.Member.Traits) // map keys are sorted: stable
		h.Write(b)
	}
	return "kiln-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (f *forwarder) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	type encoded struct {
		i   int
		raw json.RawMessage
	}
	var msgs []encoded
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if c.Member.UserID == "" && c.Member.ProfileID == "" {
			p.Fail(connector.Invalid(ID, "change has neither a user id nor a profile id to send as userId or anonymousId"), i)
			continue
		}
		raw, err := json.Marshal(f.message(c))
		if err != nil {
			p.Fail(connector.Invalid(ID, "profile %s: encoding the message: %v", c.Member.ProfileID, err), i)
			continue
		}
		if len(raw) > maxMessage {
			p.Fail(&connector.Error{Vendor: ID, Code: kiln.ETooLarge,
				Message: fmt.Sprintf("profile %s: message is %d bytes, the tracking API takes at most %d", c.Member.ProfileID, len(raw), maxMessage)}, i)
			continue
		}
		msgs = append(msgs, encoded{i, raw})
	}
	// Cut batches by count and by size.
	for len(msgs) > 0 && ctx.Err() == nil {
		n, size := 0, len(`{"batch":[],"sentAt":"2006-01-02T15:04:05.999999999Z"}`)
		for n < len(msgs) && n < f.set.MaxBatch && size+len(msgs[n].raw)+1 <= maxRequest {
			size += len(msgs[n].raw) + 1
			n++
		}
		var b strings.Builder
		b.WriteString(`{"batch":[`)
		idx := make([]int, n)
		for j := range n {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(msgs[j].raw)
			idx[j] = msgs[j].i
		}
		fmt.Fprintf(&b, `],"sentAt":%q}`, f.now().UTC().Format(time.RFC3339Nano))
		_, err := f.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/v1/batch", Body: []byte(b.String()),
			ContentType: "application/json"}, nil)
		if err != nil {
			p.Fail(err, idx...)
		} else {
			p.OK(idx...)
		}
		msgs = msgs[n:]
	}
	return p.Finish(ctx, ID)
}

var _ connector.Connector = (*forwarder)(nil)
