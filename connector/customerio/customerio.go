// Package customerio is the Customer.io Journeys destination: segment
// membership as membership of a manual segment, through the Track API.
//
// Add and remove send up to 1,000 identifiers per call to
// POST /api/v1/segments/{segment_id}/add_customers (remove_customers), with
// id_type=id for members with a user id and id_type=email for the others.
// Customer.io creates people it does not know on add. Upsert is
// PUT /api/v1/customers/{identifier} with the traits as attributes.
//
// Customer.io publishes its OpenAPI description only on its documentation
// site, not in a public repository, so this connector is tested against a
// fake built from the public documentation, not against a spec.
package customerio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "customerio"

const (
	defaultBase = "https://track.customer.io"
	maxBatch    = 1000 // ids per add_customers / remove_customers call
)

// The Track API's fair-use limit: 100 requests per second per workspace.
var rate = connector.Rate{PerSecond: 100, Burst: 100}

// Config is the destination's configuration. Set base_url to
// https://track-eu.customer.io for EU workspaces.
type Config struct {
	connector.Common
	// Segments maps Kiln segment names to Customer.io manual segment ids.
	Segments map[string]int64 `json:"segments" kiln:"required"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Customer.io",
		Summary:     "add/remove: add_customers / remove_customers on the mapped manual segment (id_type id or email); upsert: PUT the person with traits as attributes",
		Secrets:     []string{"site_id", "api_key"},
		Required:    []string{"segments"},
		Identifiers: []string{"user_id (id)", "email"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type customerio struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes a Customer.io connector. Secrets: site_id and api_key (Track
// API credentials, sent as basic auth).
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	set, err := cfg.Resolve(ID, defaultBase, maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "site_id", "api_key")
	if err != nil {
		return nil, err
	}
	for seg, id := range cfg.Segments {
		if id <= 0 {
			return nil, fmt.Errorf("%s config: segments: segment %q has id %d, want a positive manual segment id", ID, seg, id)
		}
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(s[0]+":"+s[1]))
	return &customerio{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", auth) },
		Message: message,
	}}, nil
}

// message reads Customer.io's {"meta":{"error":"…"}} error body.
func message(body []byte) string {
	var v struct {
		Meta struct {
			Error string `json:"error"`
		} `json:"meta"`
	}
	if json.Unmarshal(body, &v) == nil && v.Meta.Error != "" {
		return v.Meta.Error
	}
	return connector.MessageOf(body)
}

func (cio *customerio) MaxBatch() int             { return cio.set.MaxBatch }
func (cio *customerio) RateLimit() connector.Rate { return cio.set.Rate }

func ident(m connector.Member) (idType, value string) {
	switch {
	case m.UserID != "":
		return "id", m.UserID
	case m.Email != "":
		return "email", strings.ToLower(strings.TrimSpace(m.Email))
	}
	return "", ""
}

func (cio *customerio) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	// Group by op, segment and id type: one call takes one id_type.
	type key struct {
		op     connector.Op
		seg    string
		idType string
	}
	var order []key
	groups := map[key][]int{}
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		t, _ := ident(c.Member)
		if t == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no user id or email", c.Member.ProfileID), i)
			continue
		}
		if c.Op == connector.OpUpsert {
			order = append(order, key{op: c.Op, seg: fmt.Sprint(i)})
			groups[order[len(order)-1]] = []int{i}
			continue
		}
		if cio.cfg.Segments[c.Segment] == 0 {
			p.Fail(connector.Invalid(ID, "segment %q has no Customer.io manual segment in this destination's segments", c.Segment), i)
			continue
		}
		k := key{c.Op, c.Segment, t}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		for _, idx := range connector.Chunk(groups[k], cio.set.MaxBatch) {
			if ctx.Err() != nil {
				return p.Finish(ctx, ID)
			}
			if k.op == connector.OpUpsert {
				p.Fail(cio.upsert(ctx, changes[idx[0]].Member), idx...)
				continue
			}
			var ids []string
			seen := map[string]bool{}
			for _, i := range idx {
				if _, v := ident(changes[i].Member); !seen[v] {
					seen[v] = true
					ids = append(ids, v)
				}
			}
			verb := "add_customers"
			if k.op == connector.OpRemove {
				verb = "remove_customers"
			}
			_, err := cio.c.Do(ctx, connector.Request{Method: http.MethodPost,
				Path:  fmt.Sprintf("/api/v1/segments/%d/%s", cio.cfg.Segments[k.seg], verb),
				Query: url.Values{"id_type": {k.idType}}, Route: "POST /api/v1/segments/{segment_id}/" + verb,
				Body: map[string]any{"ids": ids}}, nil)
			p.Fail(err, idx...)
		}
	}
	return p.Finish(ctx, ID)
}

func (cio *customerio) upsert(ctx context.Context, m connector.Member) error {
	_, v := ident(m)
	body := map[string]any{}
	for k, val := range m.Traits {
		body[k] = val
	}
	if m.Email != "" {
		body["email"] = strings.TrimSpace(m.Email)
	}
	_, err := cio.c.Do(ctx, connector.Request{Method: http.MethodPut, Path: "/api/v1/customers/" + url.PathEscape(v),
		Route: "PUT /api/v1/customers/{identifier}", Body: body}, nil)
	return err
}

var _ connector.Connector = (*customerio)(nil)
