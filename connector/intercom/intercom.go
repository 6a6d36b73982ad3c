// Package intercom is the Intercom destination. Intercom's own segments are
// read-only, so segment membership is expressed as a contact tag.
//
// Contacts are found with one search per up to 150 members (email IN [...],
// or external_id for members without email). Add creates contacts Intercom
// does not have (role user) and attaches the tag; remove detaches it and
// treats an unknown contact or tag as already removed. Upsert writes traits
// as custom attributes, which must exist in the Intercom workspace (Intercom
// rejects unknown ones with 400).
package intercom

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
const ID = "intercom"

// Version is the Intercom-Version we send and test against.
const Version = "2.15"

const (
	defaultBase = "https://api.intercom.io"
	maxBatch    = 150 // contacts per search page
)

// 10,000 calls per minute per app, enforced in 10-second windows.
var rate = connector.Rate{PerSecond: 166, Burst: 166}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Tags maps Kiln segment names to Intercom tag names; tags are created
	// on first use.
	Tags map[string]string `json:"tags" kiln:"required"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Intercom",
		Summary:     "add: find or create the contact, attach the mapped tag; remove: detach the tag (unknown contact or tag counts as removed); upsert: find or create the contact and set traits as custom attributes",
		Secrets:     []string{"access_token"},
		Required:    []string{"tags"},
		Identifiers: []string{"email", "user_id (external_id)"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
		Spec:        "intercom/descriptions/2.15/api.intercom.io.yaml",
	})
}

type intercom struct {
	c    *connector.Client
	cfg  Config
	set  connector.Settings
	tags connector.Memo[string] // tag name -> id, created once per destination
}

// New makes an Intercom connector. Secrets: access_token. Set base_url to
// https://api.eu.intercom.io or https://api.au.intercom.io for those regions.
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	set, err := cfg.Resolve(ID, defaultBase, maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "access_token")
	if err != nil {
		return nil, err
	}
	for seg, tag := range cfg.Tags {
		if strings.TrimSpace(tag) == "" {
			return nil, fmt.Errorf("%s config: tags: segment %q has an empty tag name", ID, seg)
		}
	}
	token := s[0]
	return &intercom{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+token)
			r.Header.Set("Intercom-Version", Version)
		},
		// Intercom says when the window resets, as a Unix time.
		Wait: func(h http.Header, now time.Time) time.Duration {
			if d := connector.ParseRetryAfter(h, now); d > 0 {
				return d
			}
			return connector.UnixResetAfter(h, "X-RateLimit-Reset", now)
		},
	}}, nil
}

func (ic *intercom) MaxBatch() int             { return ic.set.MaxBatch }
func (ic *intercom) RateLimit() connector.Rate { return ic.set.Rate }

func ident(m connector.Member) (field, value string) {
	switch {
	case m.Email != "":
		return "email", strings.ToLower(strings.TrimSpace(m.Email))
	case m.UserID != "":
		return "external_id", m.UserID
	}
	return "", ""
}

func (ic *intercom) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if f, _ := ident(c.Member); f == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email or user id", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && ic.cfg.Tags[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no Intercom tag in this destination's tags", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	// Look every member up first, in chunks per identifier kind.
	byField := map[string][]int{}
	var fields []string
	for _, i := range ok {
		f, _ := ident(changes[i].Member)
		if byField[f] == nil {
			fields = append(fields, f)
		}
		byField[f] = append(byField[f], i)
	}
	ids := map[int]string{}
	for _, f := range fields {
		for _, chunk := range connector.Chunk(byField[f], ic.set.MaxBatch) {
			if ctx.Err() != nil {
				break
			}
			found, err := ic.search(ctx, f, changes, chunk)
			if err != nil {
				p.Fail(err, chunk...)
				continue
			}
			for _, i := range chunk {
				_, v := ident(changes[i].Member)
				if id, ok := found[v]; ok {
					ids[i] = id
				}
			}
		}
	}
	for _, i := range ok {
		if p.Done(i) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		c := changes[i]
		if err := ic.apply(ctx, c, ids, i); err != nil {
			p.Fail(err, i)
		} else {
			p.OK(i)
		}
	}
	return p.Finish(ctx, ID)
}

func (ic *intercom) apply(ctx context.Context, c connector.Change, ids map[int]string, i int) error {
	id, known := ids[i]
	switch c.Op {
	case connector.OpRemove:
		if !known {
			return nil
		}
		tag, err := ic.tagID(ctx, ic.cfg.Tags[c.Segment])
		if err != nil {
			return err
		}
		_, err = ic.c.Do(ctx, connector.Request{Method: http.MethodDelete,
			Path:  "/contacts/" + url.PathEscape(id) + "/tags/" + url.PathEscape(tag),
			Route: "DELETE /contacts/{contact_id}/tags/{tag_id}"}, nil)
		if connector.StatusOf(err) == http.StatusNotFound {
			return nil // not tagged, or the contact is gone: the tag is off
		}
		return err
	case connector.OpAdd:
		if !known {
			var err error
			if id, err = ic.create(ctx, c.Member, false); err != nil {
				return err
			}
			ids[i] = id
		}
		tag, err := ic.tagID(ctx, ic.cfg.Tags[c.Segment])
		if err != nil {
			return err
		}
		_, err = ic.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contacts/" + url.PathEscape(id) + "/tags",
			Route: "POST /contacts/{contact_id}/tags", Body: map[string]string{"id": tag}}, nil)
		return err
	default: // upsert
		if !known {
			_, err := ic.create(ctx, c.Member, true)
			return err
		}
		body := ic.contactBody(c.Member, true)
		_, err := ic.c.Do(ctx, connector.Request{Method: http.MethodPut, Path: "/contacts/" + url.PathEscape(id),
			Route: "PUT /contacts/{contact_id}", Body: body}, nil)
		return err
	}
}

// Intercom's own contact fields a trait may set; other traits are custom
// attributes.
var standard = map[string]bool{"name": true, "avatar": true, "signed_up_at": true, "last_seen_at": true,
	"unsubscribed_from_emails": true}

func (ic *intercom) contactBody(m connector.Member, traits bool) map[string]any {
	b := map[string]any{}
	if m.Email != "" {
		b["email"] = strings.TrimSpace(m.Email)
	}
	if m.UserID != "" {
		b["external_id"] = m.UserID
	}
	if m.Phone != "" {
		b["phone"] = m.Phone
	}
	if traits && len(m.Traits) > 0 {
		custom := map[string]any{}
		for k, v := range m.Traits {
			if standard[k] {
				b[k] = v
			} else {
				custom[k] = v
			}
		}
		if len(custom) > 0 {
			b["custom_attributes"] = custom
		}
	}
	return b
}

func (ic *intercom) create(ctx context.Context, m connector.Member, traits bool) (string, error) {
	body := ic.contactBody(m, traits)
	body["role"] = "user"
	var resp struct {
		ID string `json:"id"`
	}
	if _, err := ic.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contacts", Body: body}, &resp); err != nil {
		return "", err
	}
	if resp.ID == "" {
		return "", connector.BadResponse(ID, "POST /contacts", "the response carries no contact id")
	}
	return resp.ID, nil
}

// tagID returns the id of the named tag, creating it on first use
// (POST /tags creates or returns the tag with that name).
func (ic *intercom) tagID(ctx context.Context, name string) (string, error) {
	return ic.tags.Get(ctx, name, func(ctx context.Context) (string, error) { return ic.createTag(ctx, name) })
}

func (ic *intercom) createTag(ctx context.Context, name string) (string, error) {
	var resp struct {
		ID string `json:"id"`
	}
	if _, err := ic.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/tags", Body: map[string]string{"name": name}}, &resp); err != nil {
		return "", err
	}
	if resp.ID == "" {
		return "", connector.BadResponse(ID, "POST /tags", "the response carries no tag id")
	}
	return resp.ID, nil
}

func (ic *intercom) search(ctx context.Context, field string, changes []connector.Change, idx []int) (map[string]string, error) {
	var vals []string
	seen := map[string]bool{}
	for _, i := range idx {
		_, v := ident(changes[i].Member)
		if !seen[v] {
			seen[v] = true
			vals = append(vals, v)
		}
	}
	body := map[string]any{
		"query":      map[string]any{"field": field, "operator": "IN", "value": vals},
		"pagination": map[string]any{"per_page": maxBatch},
	}
	var resp struct {
		Data []struct {
			ID         string `json:"id"`
			Email      string `json:"email"`
			ExternalID string `json:"external_id"`
		} `json:"data"`
	}
	if _, err := ic.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contacts/search", Body: body}, &resp); err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, c := range resp.Data {
		v := strings.ToLower(c.Email)
		if field == "external_id" {
			v = c.ExternalID
		}
		if _, dup := found[v]; !dup {
			found[v] = c.ID
		}
	}
	return found, nil
}

var _ connector.Connector = (*intercom)(nil)
