// Package hubspot is the HubSpot destination: segment membership as
// membership of a manual (MANUAL or SNAPSHOT) contact list.
//
// Add upserts the contacts by email (POST
// /crm/v3/objects/contacts/batch/upsert, up to 100, which returns their
// record ids) and adds the ids to the list (PUT
// /crm/v3/lists/{listId}/memberships/add). Remove reads the contacts by
// email (batch/read; unknown emails are not on the list) and removes the ids
// (PUT .../memberships/remove). Upsert is batch/upsert with the traits as
// contact properties (internal property names, which must exist).
//
// HubSpot's OpenAPI files are not licensed for external use, so this
// connector is tested against a fake built from the public documentation,
// not against a spec.
package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "hubspot"

const (
	defaultBase = "https://api.hubapi.com"
	maxBatch    = 100 // CRM batch endpoints take 100 inputs
)

// Private apps: 100 requests per 10 seconds on Free and Starter (190 on
// Professional and Enterprise: raise requests_per_second to 19).
var rate = connector.Rate{PerSecond: 10, Burst: 10}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Lists maps Kiln segment names to HubSpot list ids (the ILS list id
	// of a MANUAL or SNAPSHOT list).
	Lists map[string]string `json:"lists" kiln:"required"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "HubSpot",
		Summary:     "add: batch-upsert contacts by email, add their record ids to the mapped list; remove: batch-read contacts by email, remove their ids from the list; upsert: batch-upsert with traits as contact properties",
		Secrets:     []string{"access_token"},
		Required:    []string{"lists"},
		Identifiers: []string{"email"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type hubspot struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes a HubSpot connector. Secrets: access_token (a private app
// token with crm.objects.contacts.read/write and crm.lists.read/write).
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
	for seg, id := range cfg.Lists {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("%s config: lists: segment %q has an empty list id", ID, seg)
		}
	}
	token := s[0]
	return &hubspot{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
		Wait:    wait,
	}}, nil
}

// wait reads HubSpot's 429: there is no Retry-After, but when the rolling
// window is spent (X-HubSpot-RateLimit-Remaining: 0) the window's length is
// in X-HubSpot-RateLimit-Interval-Milliseconds.
func wait(h http.Header, now time.Time) time.Duration {
	if d := connector.ParseRetryAfter(h, now); d > 0 {
		return d
	}
	if h.Get("X-HubSpot-RateLimit-Remaining") == "0" {
		if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return 0
}

func (hs *hubspot) MaxBatch() int             { return hs.set.MaxBatch }
func (hs *hubspot) RateLimit() connector.Rate { return hs.set.Rate }

func email(m connector.Member) string { return strings.ToLower(strings.TrimSpace(m.Email)) }

func (hs *hubspot) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if email(c.Member) == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email: HubSpot contacts are matched by email", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && hs.cfg.Lists[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no HubSpot list in this destination's lists", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, hs.set.MaxBatch) {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		var ids map[string]string
		var err error
		if g.Op == connector.OpRemove {
			ids, err = hs.read(ctx, changes, idx)
		} else {
			ids, err = hs.upsert(ctx, changes, idx, g.Op == connector.OpUpsert)
		}
		if err != nil {
			p.Fail(err, idx...)
			continue
		}
		if g.Op == connector.OpUpsert {
			p.OK(idx...)
			continue
		}
		var send []int
		var recs []string
		seen := map[string]bool{}
		for _, i := range idx {
			id, found := ids[email(changes[i].Member)]
			switch {
			case !found && g.Op == connector.OpRemove:
				p.OK(i) // HubSpot has no such contact: it is on no list
			case !found:
				p.Fail(connector.BadResponse(ID, "POST /crm/v3/objects/contacts/batch/upsert", "no record id returned for "+email(changes[i].Member)), i)
			default:
				send = append(send, i)
				if !seen[id] {
					seen[id] = true
					recs = append(recs, id)
				}
			}
		}
		if len(send) == 0 {
			continue
		}
		verb := "add"
		if g.Op == connector.OpRemove {
			verb = "remove"
		}
		_, err = hs.c.Do(ctx, connector.Request{Method: http.MethodPut,
			Path:  "/crm/v3/lists/" + url.PathEscape(hs.cfg.Lists[g.Segment]) + "/memberships/" + verb,
			Route: "PUT /crm/v3/lists/{listId}/memberships/" + verb, Body: recs}, nil)
		p.Fail(err, send...)
	}
	return p.Finish(ctx, ID)
}

type batchResult struct {
	Results []struct {
		ID         string            `json:"id"`
		Properties map[string]string `json:"properties"`
	} `json:"results"`
}

func (r batchResult) byEmail() map[string]string {
	out := map[string]string{}
	for _, c := range r.Results {
		out[strings.ToLower(c.Properties["email"])] = c.ID
	}
	return out
}

// upsert creates or updates contacts by email and returns email → id.
func (hs *hubspot) upsert(ctx context.Context, changes []connector.Change, idx []int, traits bool) (map[string]string, error) {
	// One input per email: HubSpot rejects a batch naming a contact twice.
	inputs := []map[string]any{}
	pos := map[string]int{}
	for _, i := range idx {
		e := email(changes[i].Member)
		props := map[string]any{"email": e}
		if j, dup := pos[e]; dup {
			props = inputs[j]["properties"].(map[string]any)
		} else {
			pos[e] = len(inputs)
			inputs = append(inputs, map[string]any{"idProperty": "email", "id": e, "properties": props})
		}
		if traits {
			for k, v := range changes[i].Member.Traits {
				// HubSpot property values are strings.
				props[k] = fmt.Sprint(v)
			}
		}
	}
	var res batchResult
	_, err := hs.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/crm/v3/objects/contacts/batch/upsert",
		Body: map[string]any{"inputs": inputs}}, &res)
	return res.byEmail(), err
}

// read looks contacts up by email; unknown emails are absent from the map.
func (hs *hubspot) read(ctx context.Context, changes []connector.Change, idx []int) (map[string]string, error) {
	var inputs []map[string]string
	seen := map[string]bool{}
	for _, i := range idx {
		if e := email(changes[i].Member); !seen[e] {
			seen[e] = true
			inputs = append(inputs, map[string]string{"id": e})
		}
	}
	var res batchResult
	// HubSpot answers 207 Multi-Status when some emails are unknown; the
	// results still list the known ones.
	_, err := hs.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/crm/v3/objects/contacts/batch/read",
		Body: map[string]any{"idProperty": "email", "properties": []string{"email"}, "inputs": inputs}}, &res)
	return res.byEmail(), err
}

var _ connector.Connector = (*hubspot)(nil)
