// Package braze is the Braze destination. Braze computes its own segments
// from user attributes, so Kiln segment membership is kept in an array
// custom attribute (default "kiln_segments") that Braze segments filter on:
// add and remove use the attribute's {"add": [...]} and {"remove": [...]}
// operations through /users/track, up to 75 attribute objects per request.
// Upsert writes the traits as custom attributes.
//
// Braze publishes no OpenAPI document in a public repository, so this
// connector is tested against a fake built from the public documentation,
// not against a spec.
package braze

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "braze"

const maxBatch = 75 // attribute objects per /users/track request

// /users/track: 3,000 requests per three seconds per workspace.
var rate = connector.Rate{PerSecond: 1000, Burst: 1000}

// Config is the destination's configuration. base_url is required: it is
// the workspace's REST endpoint (https://rest.iad-01.braze.com, …).
type Config struct {
	connector.Common
	// BaseURL shadows Common's to make it required: there is no default
	// endpoint (the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com).
	BaseURL string `json:"base_url" kiln:"required"`
	// Attribute is the array custom attribute holding segment names;
	// default "kiln_segments".
	Attribute string `json:"attribute,omitempty"`
	// Segments renames Kiln segments in the attribute; unmapped segments
	// use their own names.
	Segments map[string]string `json:"segments,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Braze",
		Summary:     "add/remove: add or remove the segment name in an array custom attribute (kiln_segments) via /users/track; upsert: traits as custom attributes; per-object errors fail only their change",
		Secrets:     []string{"api_key"},
		Required:    []string{"base_url"},
		Identifiers: []string{"user_id (external_id)", "email", "phone"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type braze struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes a Braze connector. Secrets: api_key (a REST API key with
// users.track).
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	cfg.Common.BaseURL = cfg.BaseURL
	set, err := cfg.Resolve(ID, "", maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "api_key")
	if err != nil {
		return nil, err
	}
	if cfg.Attribute == "" {
		cfg.Attribute = "kiln_segments"
	}
	key := s[0]
	return &braze{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		// Braze's 429 says when the window resets, in Unix seconds.
		Wait: func(h http.Header, now time.Time) time.Duration {
			if d := connector.ParseRetryAfter(h, now); d > 0 {
				return d
			}
			return connector.UnixResetAfter(h, "X-RateLimit-Reset", now)
		},
	}}, nil
}

func (b *braze) MaxBatch() int             { return b.set.MaxBatch }
func (b *braze) RateLimit() connector.Rate { return b.set.Rate }

// object is the /users/track attributes object for c, or an error.
func (b *braze) object(c connector.Change) (map[string]any, error) {
	m := c.Member
	o := map[string]any{"_update_existing_only": false}
	switch {
	case m.UserID != "":
		o["external_id"] = m.UserID
	case m.Email != "":
		o["email"] = strings.TrimSpace(m.Email)
	case m.Phone != "":
		o["phone"] = m.Phone
	default:
		return nil, connector.Invalid(ID, "profile %s has no user id, email or phone", m.ProfileID)
	}
	switch c.Op {
	case connector.OpUpsert:
		for k, v := range m.Traits {
			if _, reserved := o[k]; reserved || k == b.cfg.Attribute {
				return nil, connector.Invalid(ID, "profile %s: trait %q would overwrite a field this connector sets", m.ProfileID, k)
			}
			o[k] = v
		}
	default:
		name := b.cfg.Segments[c.Segment]
		if name == "" {
			name = c.Segment
		}
		verb := "add"
		if c.Op == connector.OpRemove {
			verb = "remove"
		}
		o[b.cfg.Attribute] = map[string]any{verb: []string{name}}
	}
	return o, nil
}

type trackResponse struct {
	Message string `json:"message"`
	Errors  []struct {
		Type       string `json:"type"`
		InputArray string `json:"input_array"`
		Index      int    `json:"index"`
	} `json:"errors"`
}

func (b *braze) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var idx []int
	var objs []map[string]any
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		o, err := b.object(c)
		if err != nil {
			p.Fail(err, i)
			continue
		}
		idx = append(idx, i)
		objs = append(objs, o)
	}
	for start := 0; start < len(idx) && ctx.Err() == nil; start += b.set.MaxBatch {
		end := min(start+b.set.MaxBatch, len(idx))
		batch := idx[start:end]
		var resp trackResponse
		_, err := b.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/users/track",
			Body: map[string]any{"attributes": objs[start:end]}}, &resp)
		if err != nil {
			p.Fail(err, batch...)
			continue
		}
		// "success" with minor errors: the objects named by index were
		// rejected, the others applied.
		for _, e := range resp.Errors {
			if e.InputArray == "attributes" && e.Index >= 0 && e.Index < len(batch) {
				p.Fail(&connector.Error{Vendor: ID, Request: "POST /users/track", Status: http.StatusCreated, Code: kiln.EInvalid,
					Message: e.Type}, batch[e.Index])
			}
		}
		for _, i := range batch {
			if !p.Done(i) {
				p.OK(i)
			}
		}
	}
	return p.Finish(ctx, ID)
}

var _ connector.Connector = (*braze)(nil)
