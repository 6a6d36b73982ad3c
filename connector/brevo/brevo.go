// Package brevo is the Brevo (ex-Sendinblue) destination: segment
// membership as contact list membership.
//
// Add sends up to 150 emails per addContactToList call. Brevo adds only
// contacts it already has and lists the others as failures (or answers 400
// when none could be added); those are created or updated one by one with
// createContact (listIds, updateEnabled), so add never depends on an earlier
// upsert. Remove sends up to 150 emails per removeContactFromList call; a
// contact that is not on the list, or unknown, counts as removed. Upsert is
// createContact with updateEnabled and the traits as attributes (upper-case
// names, which must exist in the Brevo account).
package brevo

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
const ID = "brevo"

const (
	defaultBase = "https://api.brevo.com/v3"
	maxBatch    = 150 // emails per add/remove call
)

// The /contacts family allows 36,000 requests per hour on every plan.
var rate = connector.Rate{PerSecond: 10, Burst: 10}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Lists maps Kiln segment names to Brevo list ids.
	Lists map[string]int64 `json:"lists" kiln:"required"`
	// Attributes maps trait names to Brevo attribute names; unmapped traits
	// use the trait name in upper case.
	Attributes map[string]string `json:"attributes,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Brevo",
		Summary:     "add: addContactToList by email, creating missing contacts with createContact(listIds); remove: removeContactFromList by email (unknown or absent contacts count as removed); upsert: createContact with updateEnabled and traits as attributes",
		Secrets:     []string{"api_key"},
		Required:    []string{"lists"},
		Identifiers: []string{"email (user_id is sent as ext_id on create and upsert)"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
		Spec:        "brevo/api/swagger.yaml",
	})
}

type brevo struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes a Brevo connector. Secrets: api_key.
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
		if id <= 0 {
			return nil, fmt.Errorf("%s config: lists: segment %q has list id %d, want a positive Brevo list id", ID, seg, id)
		}
	}
	key := s[0]
	return &brevo{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("api-key", key) },
		// Brevo sends no Retry-After, only the seconds left in the window.
		Wait: func(h http.Header, now time.Time) time.Duration {
			if d := connector.ParseRetryAfter(h, now); d > 0 {
				return d
			}
			return connector.SecondsAfter(h, "x-sib-ratelimit-reset")
		},
	}}, nil
}

// listPage is how many contacts one getContactsFromList call reads
// (Brevo's largest limit).
const listPage = 500

// ListMembers reads a list's contacts with getContactsFromList
// (GET /contacts/lists/{listId}/contacts), 500 a page by offset.
func (b *brevo) ListMembers(ctx context.Context, segment string, fn func([]connector.Member) error) error {
	list := b.cfg.Lists[segment]
	if list == 0 {
		return connector.Invalid(ID, "segment %q has no Brevo list in this destination's lists", segment)
	}
	for offset := 0; ; {
		q := url.Values{"limit": {fmt.Sprint(listPage)}, "offset": {fmt.Sprint(offset)}}
		var resp struct {
			Contacts []struct {
				Email string `json:"email"`
			} `json:"contacts"`
			Count int `json:"count"`
		}
		if _, err := b.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: fmt.Sprintf("/contacts/lists/%d/contacts", list), Query: q,
			Route: "GET /contacts/lists/{listId}/contacts"}, &resp); err != nil {
			return err
		}
		ms := make([]connector.Member, len(resp.Contacts))
		for i, c := range resp.Contacts {
			ms[i] = connector.Member{Email: c.Email}
		}
		if err := fn(ms); err != nil {
			return err
		}
		offset += len(resp.Contacts)
		if len(resp.Contacts) == 0 || offset >= resp.Count {
			return nil
		}
	}
}

func (b *brevo) MaxBatch() int             { return b.set.MaxBatch }
func (b *brevo) RateLimit() connector.Rate { return b.set.Rate }

func email(m connector.Member) string { return strings.ToLower(strings.TrimSpace(m.Email)) }

func (b *brevo) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if email(c.Member) == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email: Brevo list calls take emails", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && b.cfg.Lists[c.Segment] == 0 {
			p.Fail(connector.Invalid(ID, "segment %q has no Brevo list in this destination's lists", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, b.set.MaxBatch) {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		switch g.Op {
		case connector.OpUpsert:
			for _, i := range idx {
				if ctx.Err() != nil {
					break
				}
				p.Fail(b.createContact(ctx, changes[i].Member, 0, true), i)
			}
		default:
			b.listCall(ctx, p, changes, g.Op, b.cfg.Lists[g.Segment], idx)
		}
	}
	return p.Finish(ctx, ID)
}

type contactsInfo struct {
	Contacts struct {
		Success []string `json:"success"`
		Failure []string `json:"failure"`
	} `json:"contacts"`
}

func (b *brevo) listCall(ctx context.Context, p *connector.Pending, changes []connector.Change, op connector.Op, list int64, idx []int) {
	var emails []string
	seen := map[string]bool{}
	for _, i := range idx {
		if e := email(changes[i].Member); !seen[e] {
			seen[e] = true
			emails = append(emails, e)
		}
	}
	verb := "add"
	if op == connector.OpRemove {
		verb = "remove"
	}
	var info contactsInfo
	_, err := b.c.Do(ctx, connector.Request{Method: http.MethodPost,
		Path:  fmt.Sprintf("/contacts/lists/%d/contacts/%s", list, verb),
		Route: "POST /contacts/lists/{listId}/contacts/" + verb,
		Body:  map[string]any{"emails": emails}}, &info)
	// Brevo answers 400 when not one contact could be added or removed
	// ("Contact already in list and/or does not exist"); treat it as every
	// email failing, and sort that out below.
	allFailed := err != nil && connector.StatusOf(err) == http.StatusBadRequest && strings.Contains(err.Error(), "does not exist")
	if err != nil && !allFailed {
		p.Fail(err, idx...)
		return
	}
	failed := map[string]bool{}
	for _, f := range info.Contacts.Failure {
		failed[strings.ToLower(f)] = true
	}
	for _, i := range idx {
		e := email(changes[i].Member)
		switch {
		case !allFailed && !failed[e]:
			p.OK(i)
		case op == connector.OpRemove:
			p.OK(i) // not on the list, or unknown: removed either way
		default:
			// Unknown contact (or already on the list): create-or-update
			// with the list, which is idempotent.
			if ctx.Err() != nil {
				return
			}
			p.Fail(b.createContact(ctx, changes[i].Member, list, false), i)
		}
	}
}

// createContact creates or updates one contact, optionally adding it to
// list and setting its traits.
func (b *brevo) createContact(ctx context.Context, m connector.Member, list int64, traits bool) error {
	body := map[string]any{"email": email(m), "updateEnabled": true}
	if m.UserID != "" {
		body["ext_id"] = m.UserID
	}
	if list != 0 {
		body["listIds"] = []int64{list}
	}
	if traits && len(m.Traits) > 0 {
		attrs := map[string]any{}
		for k, v := range m.Traits {
			name := b.cfg.Attributes[k]
			if name == "" {
				name = strings.ToUpper(k)
			}
			attrs[name] = v
		}
		body["attributes"] = attrs
	}
	_, err := b.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/contacts", Body: body}, nil)
	return err
}

var (
	_ connector.Connector = (*brevo)(nil)
	_ connector.Lister    = (*brevo)(nil)
)
