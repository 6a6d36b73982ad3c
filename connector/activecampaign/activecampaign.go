// Package activecampaign is the ActiveCampaign destination: segment
// membership as a contact tag.
//
// ActiveCampaign's v3 API has no bulk tagging, so every change is its own
// short sequence of calls: add syncs the contact by email (POST
// /api/3/contact/sync, creating it when new) and attaches the tag (POST
// /api/3/contactTags); remove finds the contact (GET /api/3/contacts?email=)
// and its contactTag for the tag and deletes it, treating an unknown
// contact or an absent tag as removed. Tag ids are looked up by name once
// (GET /api/3/tags?search=) and the tag is created when missing. Upsert is
// contact/sync with first/last name, phone and mapped custom fields.
//
// ActiveCampaign publishes no machine-readable spec in a public repository,
// so this connector is tested against a fake built from the public
// documentation, not against a spec.
package activecampaign

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "activecampaign"

// One contact per call: the v3 API tags one contact at a time.
const maxBatch = 1

// 5 requests per second per account, shared by every key of the account.
var rate = connector.Rate{PerSecond: 5, Burst: 5}

// Config is the destination's configuration. base_url is required: the
// account's API URL (https://<account>.api-us1.com).
type Config struct {
	connector.Common
	// BaseURL shadows Common's to make it required: there is no default
	// endpoint (the account's API URL, e.g. https://yourname.api-us1.com).
	BaseURL string `json:"base_url" kiln:"required"`
	// Tags maps Kiln segment names to ActiveCampaign tag names.
	Tags map[string]string `json:"tags" kiln:"required"`
	// Fields maps trait names to custom field ids for upsert; traits
	// first_name, last_name and phone set the standard fields, other
	// unmapped traits are not sent.
	Fields map[string]string `json:"fields,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "ActiveCampaign",
		Summary:     "add: sync the contact by email, attach the mapped tag (created when missing); remove: delete the contact's contactTag (unknown contact or tag counts as removed); upsert: contact sync with standard and mapped custom fields",
		Secrets:     []string{"api_token"},
		Required:    []string{"base_url", "tags"},
		Identifiers: []string{"email"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type activecampaign struct {
	c    *connector.Client
	cfg  Config
	set  connector.Settings
	tags connector.Memo[string] // tag name -> id, looked up or created once per destination
}

// New makes an ActiveCampaign connector. Secrets: api_token.
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
	s, err := secrets.Require(ID, "api_token")
	if err != nil {
		return nil, err
	}
	for seg, tag := range cfg.Tags {
		if strings.TrimSpace(tag) == "" {
			return nil, fmt.Errorf("%s config: tags: segment %q has an empty tag name", ID, seg)
		}
	}
	token := s[0]
	return &activecampaign{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL + "/api/3", Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Api-Token", token) },
	}}, nil
}

func (ac *activecampaign) MaxBatch() int             { return ac.set.MaxBatch }
func (ac *activecampaign) RateLimit() connector.Rate { return ac.set.Rate }

func email(m connector.Member) string { return strings.ToLower(strings.TrimSpace(m.Email)) }

func (ac *activecampaign) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	for i, c := range changes {
		if ctx.Err() != nil {
			break
		}
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if email(c.Member) == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email: ActiveCampaign contacts are keyed by email", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && ac.cfg.Tags[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no ActiveCampaign tag in this destination's tags", c.Segment), i)
			continue
		}
		p.Fail(ac.apply(ctx, c), i)
	}
	return p.Finish(ctx, ID)
}

func (ac *activecampaign) apply(ctx context.Context, c connector.Change) error {
	switch c.Op {
	case connector.OpUpsert:
		_, err := ac.sync(ctx, c.Member, true)
		return err
	case connector.OpAdd:
		contact, err := ac.sync(ctx, c.Member, false)
		if err != nil {
			return err
		}
		tag, err := ac.tagID(ctx, ac.cfg.Tags[c.Segment])
		if err != nil {
			return err
		}
		_, err = ac.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contactTags",
			Body: map[string]any{"contactTag": map[string]string{"contact": contact, "tag": tag}}}, nil)
		return err
	default:
		var found struct {
			Contacts []struct {
				ID string `json:"id"`
			} `json:"contacts"`
		}
		if _, err := ac.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/contacts",
			Query: url.Values{"email": {email(c.Member)}}}, &found); err != nil {
			return err
		}
		if len(found.Contacts) == 0 {
			return nil // no such contact: it carries no tag
		}
		tag, err := ac.tagID(ctx, ac.cfg.Tags[c.Segment])
		if err != nil {
			return err
		}
		var cts struct {
			ContactTags []struct {
				ID  string `json:"id"`
				Tag string `json:"tag"`
			} `json:"contactTags"`
		}
		contact := found.Contacts[0].ID
		if _, err := ac.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/contacts/" + url.PathEscape(contact) + "/contactTags",
			Route: "GET /contacts/{id}/contactTags"}, &cts); err != nil {
			return err
		}
		for _, ct := range cts.ContactTags {
			if ct.Tag != tag {
				continue
			}
			_, err := ac.c.Do(ctx, connector.Request{Method: http.MethodDelete, Path: "/contactTags/" + url.PathEscape(ct.ID),
				Route: "DELETE /contactTags/{id}"}, nil)
			if err != nil && connector.StatusOf(err) != http.StatusNotFound {
				return err
			}
		}
		return nil
	}
}

// sync creates or updates the contact by email and returns its id.
func (ac *activecampaign) sync(ctx context.Context, m connector.Member, traits bool) (string, error) {
	contact := map[string]any{"email": email(m)}
	if m.Phone != "" {
		contact["phone"] = m.Phone
	}
	if traits {
		var fields []map[string]string
		for k, v := range m.Traits {
			switch k {
			case "first_name", "firstName":
				contact["firstName"] = fmt.Sprint(v)
			case "last_name", "lastName":
				contact["lastName"] = fmt.Sprint(v)
			case "phone":
				contact["phone"] = fmt.Sprint(v)
			default:
				if id := ac.cfg.Fields[k]; id != "" {
					fields = append(fields, map[string]string{"field": id, "value": fmt.Sprint(v)})
				}
			}
		}
		if len(fields) > 0 {
			contact["fieldValues"] = fields
		}
	}
	var resp struct {
		Contact struct {
			ID string `json:"id"`
		} `json:"contact"`
	}
	if _, err := ac.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contact/sync",
		Body: map[string]any{"contact": contact}}, &resp); err != nil {
		return "", err
	}
	if resp.Contact.ID == "" {
		return "", connector.BadResponse(ID, "POST /contact/sync", "the response carries no contact id")
	}
	return resp.Contact.ID, nil
}

// tagID returns the id of the contact tag called name, creating it when
// the account has none.
func (ac *activecampaign) tagID(ctx context.Context, name string) (string, error) {
	return ac.tags.Get(ctx, name, func(ctx context.Context) (string, error) { return ac.findOrCreateTag(ctx, name) })
}

func (ac *activecampaign) findOrCreateTag(ctx context.Context, name string) (string, error) {
	var id string
	var found struct {
		Tags []struct {
			ID      string `json:"id"`
			Tag     string `json:"tag"`
			TagType string `json:"tagType"`
		} `json:"tags"`
	}
	if _, err := ac.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/tags", Query: url.Values{"search": {name}}}, &found); err != nil {
		return "", err
	}
	// search matches substrings: pick the exact name.
	for _, t := range found.Tags {
		if strings.EqualFold(t.Tag, name) && (t.TagType == "" || t.TagType == "contact") {
			id = t.ID
			break
		}
	}
	if id == "" {
		var created struct {
			Tag struct {
				ID string `json:"id"`
			} `json:"tag"`
		}
		if _, err := ac.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/tags",
			Body: map[string]any{"tag": map[string]string{"tag": name, "tagType": "contact", "description": "Kiln segment"}}}, &created); err != nil {
			return "", err
		}
		if created.Tag.ID == "" {
			return "", connector.BadResponse(ID, "POST /tags", "the response carries no tag id")
		}
		id = created.Tag.ID
	}
	return id, nil
}

var _ connector.Connector = (*activecampaign)(nil)
