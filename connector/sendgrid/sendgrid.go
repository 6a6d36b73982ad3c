// Package sendgrid is the Twilio SendGrid Marketing Campaigns destination:
// segment membership as marketing list membership.
//
// Add upserts the contacts with the list id (PUT /v3/marketing/contacts,
// which creates unknown contacts; SendGrid processes it asynchronously and
// answers 202 with a job id). Remove looks the contacts up by email
// (POST /v3/marketing/contacts/search/emails) and removes the ids found from
// the list (DELETE /v3/marketing/lists/{id}/contacts); the contacts stay.
// Upsert is the same PUT without a list.
package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "sendgrid"

const (
	defaultBase = "https://api.sendgrid.com"
	// PUT /v3/marketing/contacts takes 30,000 contacts or 6 MB; 10,000
	// keeps an upsert with a few traits per contact well under 6 MB.
	maxBatch = 10000
	// Emails per search/emails call, and contact ids per list removal: we
	// keep both at 100 so the query string stays short.
	lookupBatch = 100
)

// SendGrid publishes no number for the Marketing Campaigns endpoints, only
// X-RateLimit-* headers; 600/min is the documented default of its other
// APIs, and a safe pace here.
var rate = connector.Rate{PerSecond: 10, Burst: 10}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Lists maps Kiln segment names to SendGrid list ids (UUIDs).
	Lists map[string]string `json:"lists" kiln:"required"`
	// CustomFields maps trait names to SendGrid custom field ids
	// ("e1_T"). Traits named like reserved fields (first_name, city, …) go
	// there; other traits without a mapping are not sent.
	CustomFields map[string]string `json:"custom_fields,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "SendGrid Marketing Campaigns",
		Summary:     "add: upsert contacts with the mapped list id; remove: find contact ids by email, delete them from the list (contacts kept); upsert: upsert contacts with reserved and mapped custom fields",
		Secrets:     []string{"api_key"},
		Required:    []string{"lists"},
		Identifiers: []string{"email", "user_id (external_id, add and upsert only)"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
		Spec:        "sendgrid/spec/json/tsg_mc_contacts_v3.json, tsg_mc_lists_v3.json",
	})
}

type sendgrid struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// reserved are SendGrid's reserved contact fields a trait may set.
var reserved = map[string]bool{"first_name": true, "last_name": true, "address_line_1": true, "address_line_2": true,
	"city": true, "state_province_region": true, "postal_code": true, "country": true}

// New makes a SendGrid connector. Secrets: api_key.
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	set, err := cfg.Resolve(ID, defaultBase, maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "api_key")
	if err != nil {
		return nil, err
	}
	for seg, id := range cfg.Lists {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("%s config: lists: segment %q has an empty list id", ID, seg)
		}
	}
	key := s[0]
	return &sendgrid{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		Wait: func(h http.Header, now time.Time) time.Duration {
			if d := connector.ParseRetryAfter(h, now); d > 0 {
				return d
			}
			return connector.UnixResetAfter(h, "X-RateLimit-Reset", now)
		},
	}}, nil
}

func (s *sendgrid) MaxBatch() int             { return s.set.MaxBatch }
func (s *sendgrid) RateLimit() connector.Rate { return s.set.Rate }

func (s *sendgrid) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		m := c.Member
		switch {
		case c.Op == connector.OpRemove && m.Email == "":
			p.Fail(connector.Invalid(ID, "profile %s has no email: SendGrid removal finds contacts by email", m.ProfileID), i)
			continue
		case m.Email == "" && m.UserID == "":
			p.Fail(connector.Invalid(ID, "profile %s has no email or user id", m.ProfileID), i)
			continue
		case c.Op != connector.OpUpsert && s.cfg.Lists[c.Segment] == "":
			p.Fail(connector.Invalid(ID, "segment %q has no SendGrid list in this destination's lists", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	groups := connector.GroupChanges(pick(changes, ok), s.set.MaxBatch)
	for _, g := range groups {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		switch g.Op {
		case connector.OpAdd:
			s.upsert(ctx, p, changes, idx, s.cfg.Lists[g.Segment])
		case connector.OpUpsert:
			s.upsert(ctx, p, changes, idx, "")
		case connector.OpRemove:
			for _, chunk := range connector.Chunk(idx, min(lookupBatch, s.set.MaxBatch)) {
				s.remove(ctx, p, changes, chunk, s.cfg.Lists[g.Segment])
			}
		}
	}
	return p.Finish(ctx, ID)
}

func pick(changes []connector.Change, idx []int) []connector.Change {
	out := make([]connector.Change, len(idx))
	for j, i := range idx {
		out[j] = changes[i]
	}
	return out
}

func (s *sendgrid) contact(m connector.Member, traits bool) map[string]any {
	c := map[string]any{}
	if m.Email != "" {
		c["email"] = strings.ToLower(strings.TrimSpace(m.Email))
	}
	if m.UserID != "" {
		c["external_id"] = m.UserID
	}
	if !traits {
		return c
	}
	custom := map[string]any{}
	for name, v := range m.Traits {
		switch {
		case reserved[name]:
			c[name] = fmt.Sprint(v)
		case s.cfg.CustomFields[name] != "":
			custom[s.cfg.CustomFields[name]] = v
		}
	}
	if len(custom) > 0 {
		c["custom_fields"] = custom
	}
	return c
}

func (s *sendgrid) upsert(ctx context.Context, p *connector.Pending, changes []connector.Change, idx []int, list string) {
	contacts := make([]map[string]any, len(idx))
	for j, i := range idx {
		contacts[j] = s.contact(changes[i].Member, list == "")
	}
	body := map[string]any{"contacts": contacts}
	if list != "" {
		body["list_ids"] = []string{list}
	}
	var resp struct {
		JobID string `json:"job_id"`
	}
	if _, err := s.c.Do(ctx, connector.Request{Method: http.MethodPut, Path: "/v3/marketing/contacts", Body: body}, &resp); err != nil {
		p.Fail(err, idx...)
		return
	}
	p.OK(idx...)
}

func (s *sendgrid) remove(ctx context.Context, p *connector.Pending, changes []connector.Change, idx []int, list string) {
	var emails []string
	seen := map[string]bool{}
	for _, i := range idx {
		e := strings.ToLower(strings.TrimSpace(changes[i].Member.Email))
		if !seen[e] {
			seen[e] = true
			emails = append(emails, e)
		}
	}
	var found struct {
		Result map[string]struct {
			Contact *struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"contact"`
		} `json:"result"`
	}
	_, err := s.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/v3/marketing/contacts/search/emails",
		Body: map[string]any{"emails": emails}}, &found)
	if connector.StatusOf(err) == http.StatusNotFound {
		// SendGrid answers 404 when none of the emails is a contact: none
		// is on the list, which is what remove asks for.
		p.OK(idx...)
		return
	}
	if err != nil {
		p.Fail(err, idx...)
		return
	}
	var ids []string
	var send []int
	for _, i := range idx {
		r, ok := found.Result[strings.ToLower(strings.TrimSpace(changes[i].Member.Email))]
		if !ok || r.Contact == nil || r.Contact.ID == "" {
			p.OK(i)
			continue
		}
		send = append(send, i)
		ids = append(ids, r.Contact.ID)
	}
	if len(send) == 0 {
		return
	}
	q := url.Values{"contact_ids": {strings.Join(dedupe(ids), ",")}}
	_, err = s.c.Do(ctx, connector.Request{Method: http.MethodDelete, Path: "/v3/marketing/lists/" + url.PathEscape(list) + "/contacts",
		Query: q, Route: "DELETE /v3/marketing/lists/{id}/contacts"}, nil)
	if err != nil {
		p.Fail(err, send...)
		return
	}
	p.OK(send...)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var _ connector.Connector = (*sendgrid)(nil)
