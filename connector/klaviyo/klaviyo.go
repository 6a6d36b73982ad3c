// Package klaviyo is the Klaviyo destination: segment membership as
// Klaviyo list relationships, upserts as profile imports.
//
// Add resolves members to Klaviyo profile ids (one get_profiles call per
// 100 members, creating unknown ones with create_or_update_profile), then
// adds them with add_profiles_to_list in batches of up to 1,000. Remove
// resolves the same way but never creates: a profile Klaviyo does not know
// is not on the list. Membership here is not consent: Klaviyo keeps
// subscriptions separately, and this connector does not touch them.
package klaviyo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "klaviyo"

// Revision is the API revision we send and test against.
const Revision = "2026-07-15"

const (
	defaultBase = "https://a.klaviyo.com"
	maxBatch    = 1000 // add_profiles_to_list / remove_profiles_from_list
	pageSize    = 100  // get_profiles page[size] maximum
	mediaType   = "application/vnd.api+json"
)

// Steady 150/min, burst 10/s for the list relationship endpoints, the
// tightest of the ones we call.
var rate = connector.Rate{PerSecond: 2.5, Burst: 10}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Lists maps Kiln segment names to Klaviyo list ids.
	Lists map[string]string `json:"lists" kiln:"required"`
	// Revision overrides the API revision header.
	Revision string `json:"revision,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Klaviyo",
		Summary:     "add/remove: list relationships of the mapped list (profiles resolved by email, external id or phone; add creates unknown profiles); upsert: create_or_update_profile with traits as properties",
		Secrets:     []string{"api_key"},
		Required:    []string{"lists"},
		Identifiers: []string{"email", "user_id (external_id)", "phone (phone_number)"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
		Spec:        "klaviyo/openapi/stable.json",
	})
}

type klaviyo struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes a Klaviyo connector. Secrets: api_key (a private key).
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
	rev := cfg.Revision
	if rev == "" {
		rev = Revision
	}
	key := s[0]
	return &klaviyo{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) {
			r.Header.Set("Authorization", "Klaviyo-API-Key "+key)
			r.Header.Set("revision", rev)
			r.Header.Set("Accept", mediaType)
		},
	}}, nil
}

func (k *klaviyo) MaxBatch() int             { return k.set.MaxBatch }
func (k *klaviyo) RateLimit() connector.Rate { return k.set.Rate }

// ident is the filter field and value Klaviyo finds a member by.
func ident(m connector.Member) (field, value string) {
	switch {
	case m.Email != "":
		return "email", strings.ToLower(strings.TrimSpace(m.Email))
	case m.UserID != "":
		return "external_id", m.UserID
	case m.Phone != "":
		return "phone_number", m.Phone
	}
	return "", ""
}

func (k *klaviyo) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if f, _ := ident(c.Member); f == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email, user id or phone", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && k.cfg.Lists[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no Klaviyo list in this destination's lists", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, k.set.MaxBatch) {
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		if ctx.Err() != nil {
			break
		}
		switch g.Op {
		case connector.OpUpsert:
			for _, i := range idx {
				if ctx.Err() != nil {
					break
				}
				if _, err := k.importProfile(ctx, changes[i].Member, true); err != nil {
					p.Fail(err, i)
				} else {
					p.OK(i)
				}
			}
		default:
			k.membership(ctx, p, changes, g.Op, k.cfg.Lists[g.Segment], idx)
		}
	}
	return p.Finish(ctx, ID)
}

// membership resolves idx to profile ids and sends one relationship call.
func (k *klaviyo) membership(ctx context.Context, p *connector.Pending, changes []connector.Change, op connector.Op, list string, idx []int) {
	ids := k.resolve(ctx, p, changes, idx, op == connector.OpAdd)
	var send []int
	var data []map[string]string
	seen := map[string]bool{}
	for _, i := range idx {
		if p.Done(i) {
			continue
		}
		id, found := ids[i]
		if !found {
			p.OK(i) // remove of a profile Klaviyo does not have: nothing to do
			continue
		}
		send = append(send, i)
		if !seen[id] {
			seen[id] = true
			data = append(data, map[string]string{"type": "profile", "id": id})
		}
	}
	if len(send) == 0 {
		return
	}
	method := http.MethodPost
	if op == connector.OpRemove {
		method = http.MethodDelete
	}
	_, err := k.c.Do(ctx, connector.Request{
		Method: method, Path: "/api/lists/" + url.PathEscape(list) + "/relationships/profiles",
		Route: method + " /api/lists/{id}/relationships/profiles",
		Body:  map[string]any{"data": data}, ContentType: mediaType,
	}, nil)
	if err != nil {
		p.Fail(err, send...)
		return
	}
	p.OK(send...)
}

// resolve returns Klaviyo profile ids for the members of idx, looking them
// up 100 at a time per identifier kind; with create, unknown members are
// created. Members it cannot resolve because a request failed are marked
// failed in p.
func (k *klaviyo) resolve(ctx context.Context, p *connector.Pending, changes []connector.Change, idx []int, create bool) map[int]string {
	out := map[int]string{}
	byField := map[string][]int{}
	var fields []string
	for _, i := range idx {
		f, _ := ident(changes[i].Member)
		if byField[f] == nil {
			fields = append(fields, f)
		}
		byField[f] = append(byField[f], i)
	}
	for _, f := range fields {
		for _, chunk := range connector.Chunk(byField[f], pageSize) {
			found, err := k.lookup(ctx, f, changes, chunk)
			if err != nil {
				p.Fail(err, chunk...)
				continue
			}
			for _, i := range chunk {
				_, v := ident(changes[i].Member)
				if id, ok := found[v]; ok {
					out[i] = id
					continue
				}
				if !create {
					continue
				}
				id, err := k.importProfile(ctx, changes[i].Member, false)
				if err != nil {
					p.Fail(err, i)
					continue
				}
				out[i] = id
				found[v] = id
			}
		}
	}
	return out
}

type profile struct {
	ID         string `json:"id"`
	Attributes struct {
		Email       string `json:"email"`
		ExternalID  string `json:"external_id"`
		PhoneNumber string `json:"phone_number"`
	} `json:"attributes"`
}

func (k *klaviyo) lookup(ctx context.Context, field string, changes []connector.Change, idx []int) (map[string]string, error) {
	vals := make([]string, 0, len(idx))
	seen := map[string]bool{}
	for _, i := range idx {
		_, v := ident(changes[i].Member)
		if !seen[v] {
			seen[v] = true
			vals = append(vals, v)
		}
	}
	// Klaviyo's filter strings are JSON-like; do not let json.Marshal turn
	// & < > (legal in emails) into \u escapes Klaviyo would not read.
	var list bytes.Buffer
	enc := json.NewEncoder(&list)
	enc.SetEscapeHTML(false)
	enc.Encode(vals)
	q := url.Values{}
	q.Set("filter", fmt.Sprintf("any(%s,%s)", field, bytes.TrimSpace(list.Bytes())))
	q.Set("page[size]", fmt.Sprint(pageSize))
	q.Set("fields[profile]", "email,external_id,phone_number")
	var resp struct {
		Data []profile `json:"data"`
	}
	if _, err := k.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/api/profiles", Query: q, Route: "GET /api/profiles"}, &resp); err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, pr := range resp.Data {
		var v string
		switch field {
		case "email":
			v = strings.ToLower(pr.Attributes.Email)
		case "external_id":
			v = pr.Attributes.ExternalID
		case "phone_number":
			v = pr.Attributes.PhoneNumber
		}
		found[v] = pr.ID
	}
	return found, nil
}

// Attributes Klaviyo keeps as top-level profile fields; other traits go
// into properties.
var topLevel = map[string]bool{"first_name": true, "last_name": true, "organization": true, "locale": true, "title": true, "image": true}

// importProfile creates or updates one profile and returns its id.
func (k *klaviyo) importProfile(ctx context.Context, m connector.Member, withTraits bool) (string, error) {
	attrs := map[string]any{}
	if m.Email != "" {
		attrs["email"] = strings.TrimSpace(m.Email)
	}
	if m.Phone != "" {
		attrs["phone_number"] = m.Phone
	}
	if m.UserID != "" {
		attrs["external_id"] = m.UserID
	}
	if withTraits && len(m.Traits) > 0 {
		props := map[string]any{}
		for name, v := range m.Traits {
			if topLevel[name] {
				attrs[name] = v
			} else {
				props[name] = v
			}
		}
		if len(props) > 0 {
			attrs["properties"] = props
		}
	}
	var resp struct {
		Data profile `json:"data"`
	}
	_, err := k.c.Do(ctx, connector.Request{
		Method: http.MethodPost, Path: "/api/profile-import", Route: "POST /api/profile-import",
		Body:        map[string]any{"data": map[string]any{"type": "profile", "attributes": attrs}},
		ContentType: mediaType,
	}, &resp)
	if err != nil {
		return "", err
	}
	if resp.Data.ID == "" {
		return "", connector.BadResponse(ID, "POST /api/profile-import", "the response carries no profile id")
	}
	return resp.Data.ID, nil
}

// ListMembers reads a list's members with get_profiles_for_list, 100 a
// page, following the next-page cursor.
func (k *klaviyo) ListMembers(ctx context.Context, segment string, fn func([]connector.Member) error) error {
	list := k.cfg.Lists[segment]
	if list == "" {
		return connector.Invalid(ID, "segment %q has no Klaviyo list in this destination's lists", segment)
	}
	cursor := ""
	for {
		q := url.Values{}
		q.Set("fields[profile]", "email,external_id,phone_number")
		q.Set("page[size]", fmt.Sprint(pageSize))
		if cursor != "" {
			q.Set("page[cursor]", cursor)
		}
		var resp struct {
			Data  []profile `json:"data"`
			Links struct {
				Next string `json:"next"`
			} `json:"links"`
		}
		if _, err := k.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/api/lists/" + url.PathEscape(list) + "/profiles", Query: q,
			Route: "GET /api/lists/{id}/profiles"}, &resp); err != nil {
			return err
		}
		ms := make([]connector.Member, 0, len(resp.Data))
		for _, p := range resp.Data {
			ms = append(ms, connector.Member{Email: p.Attributes.Email, UserID: p.Attributes.ExternalID, Phone: p.Attributes.PhoneNumber})
		}
		if err := fn(ms); err != nil {
			return err
		}
		if resp.Links.Next == "" {
			return nil
		}
		u, err := url.Parse(resp.Links.Next)
		if err != nil || u.Query().Get("page[cursor]") == "" {
			return connector.BadResponse(ID, "GET /api/lists/{id}/profiles", "links.next carries no page[cursor]")
		}
		cursor = u.Query().Get("page[cursor]")
	}
}

var (
	_ connector.Connector = (*klaviyo)(nil)
	_ connector.Lister    = (*klaviyo)(nil)
)
