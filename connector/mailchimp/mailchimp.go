// Package mailchimp is the Mailchimp Marketing API destination: segment
// membership as a tag on audience members.
//
// Mailchimp tags are static segments of the audience, so membership is
// changed in batches of up to 500 emails with "batch add or remove members"
// (POST /lists/{list_id}/segments/{segment_id}); the tag's segment id is
// looked up by name once, and the tag is created when missing. Mailchimp
// ignores emails that are not audience members and reports them as errors:
// on add they fail permanently (not found) unless status_if_new is set, in
// which case the member is created with that status first. Upsert writes
// traits as merge fields (PATCH the member, or PUT with status_if_new).
//
// Mailchimp's Swagger file could not be obtained whole (see
// shared/specs/README.md), so this connector is tested against a fake built
// from the public documentation, not against a spec.
package mailchimp

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "mailchimp"

const maxBatch = 500 // emails per static-segment batch call

// Mailchimp limits concurrency (10 simultaneous connections per user), not
// a rate; ten requests a second keeps a sequential sender well inside it.
var rate = connector.Rate{PerSecond: 10, Burst: 10}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// AudienceID is the Mailchimp audience (list) id.
	AudienceID string `json:"audience_id" kiln:"required"`
	// Tags maps Kiln segment names to Mailchimp tag names.
	Tags map[string]string `json:"tags" kiln:"required"`
	// StatusIfNew, when set ("subscribed", "unsubscribed", "pending",
	// "transactional"), lets add and upsert create audience members with
	// that status. Unset, only existing members are tagged or updated, so
	// Kiln never subscribes anyone by itself.
	StatusIfNew string `json:"status_if_new,omitempty"`
	// MergeFields maps trait names to merge tags ("FNAME"); unmapped traits
	// use the trait name in upper case.
	MergeFields map[string]string `json:"merge_fields,omitempty"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Mailchimp",
		Summary:     "add/remove: batch add or remove audience members (by email) to the mapped tag, created when missing; upsert: member merge fields; new members only with status_if_new",
		Secrets:     []string{"api_key"},
		Required:    []string{"audience_id", "tags"},
		Identifiers: []string{"email"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type mailchimp struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
	ids connector.Memo[int64] // tag name -> static segment id, looked up or created once per destination
}

// New makes a Mailchimp connector. Secrets: api_key ("…-us6"); its
// data-centre suffix selects https://us6.api.mailchimp.com/3.0 unless
// base_url is set.
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "api_key")
	if err != nil {
		return nil, err
	}
	key := s[0]
	base := ""
	if _, dc, ok := strings.Cut(key, "-"); ok && dc != "" {
		base = "https://" + dc + ".api.mailchimp.com/3.0"
	} else if cfg.BaseURL == "" {
		return nil, fmt.Errorf("%s: the api_key has no data-centre suffix (like -us6) and base_url is not set", ID)
	}
	set, err := cfg.Resolve(ID, base, maxBatch, rate)
	if err != nil {
		return nil, err
	}
	switch cfg.StatusIfNew {
	case "", "subscribed", "unsubscribed", "pending", "transactional", "cleaned":
	default:
		return nil, fmt.Errorf("%s config: status_if_new %q: want subscribed, unsubscribed, pending or transactional", ID, cfg.StatusIfNew)
	}
	for seg, tag := range cfg.Tags {
		if strings.TrimSpace(tag) == "" {
			return nil, fmt.Errorf("%s config: tags: segment %q has an empty tag name", ID, seg)
		}
	}
	return &mailchimp{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.SetBasicAuth("kiln", key) },
	}}, nil
}

// listPage is how many members one listing call reads (Mailchimp's
// largest count).
const listPage = 1000

// ListMembers reads the tag's members with "list members in segment"
// (GET /lists/{list_id}/segments/{segment_id}/members), 1,000 a page.
func (mc *mailchimp) ListMembers(ctx context.Context, segment string, fn func([]connector.Member) error) error {
	tag := mc.cfg.Tags[segment]
	if tag == "" {
		return connector.Invalid(ID, "segment %q has no Mailchimp tag in this destination's tags", segment)
	}
	seg, err := mc.segmentID(ctx, tag)
	if err != nil {
		return err
	}
	for offset := 0; ; {
		q := url.Values{"count": {fmt.Sprint(listPage)}, "offset": {fmt.Sprint(offset)}, "fields": {"members.email_address,total_items"}}
		var resp struct {
			Members []struct {
				EmailAddress string `json:"email_address"`
			} `json:"members"`
			TotalItems int `json:"total_items"`
		}
		if _, err := mc.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: fmt.Sprintf("%s/segments/%d/members", mc.list(), seg), Query: q,
			Route: "GET /lists/{list_id}/segments/{segment_id}/members"}, &resp); err != nil {
			return err
		}
		ms := make([]connector.Member, len(resp.Members))
		for i, m := range resp.Members {
			ms[i] = connector.Member{Email: m.EmailAddress}
		}
		if err := fn(ms); err != nil {
			return err
		}
		offset += len(resp.Members)
		if len(resp.Members) == 0 || offset >= resp.TotalItems {
			return nil
		}
	}
}

func (mc *mailchimp) MaxBatch() int             { return mc.set.MaxBatch }
func (mc *mailchimp) RateLimit() connector.Rate { return mc.set.Rate }

func email(m connector.Member) string { return strings.ToLower(strings.TrimSpace(m.Email)) }

// subscriberHash is how Mailchimp addresses a member: the MD5 of the
// lower-cased email.
func subscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

func (mc *mailchimp) list() string { return "/lists/" + url.PathEscape(mc.cfg.AudienceID) }

func (mc *mailchimp) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if email(c.Member) == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email: Mailchimp audience members are emails", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && mc.cfg.Tags[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no Mailchimp tag in this destination's tags", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, mc.set.MaxBatch) {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		if g.Op == connector.OpUpsert {
			for _, i := range idx {
				if ctx.Err() != nil {
					break
				}
				p.Fail(mc.putMember(ctx, changes[i].Member, true), i)
			}
			continue
		}
		mc.tag(ctx, p, changes, g.Op, mc.cfg.Tags[g.Segment], idx)
	}
	return p.Finish(ctx, ID)
}

type batchResult struct {
	Errors []struct {
		EmailAddresses []string `json:"email_addresses"`
		Error          string   `json:"error"`
	} `json:"errors"`
}

func (mc *mailchimp) tag(ctx context.Context, p *connector.Pending, changes []connector.Change, op connector.Op, tag string, idx []int) {
	seg, err := mc.segmentID(ctx, tag)
	if err != nil {
		p.Fail(err, idx...)
		return
	}
	failed, err := mc.batch(ctx, op, seg, changes, idx)
	if err != nil {
		p.Fail(err, idx...)
		return
	}
	var retry []int
	for _, i := range idx {
		reason, bad := failed[email(changes[i].Member)]
		switch {
		case !bad, op == connector.OpRemove:
			p.OK(i) // removing a non-member leaves it untagged, as asked
		case mc.cfg.StatusIfNew == "":
			p.Fail(&connector.Error{Vendor: ID, Request: "POST /lists/{list_id}/segments/{segment_id}", Code: kiln.ENotFound,
				Message: fmt.Sprintf("%s is not a member of audience %s (%s); set status_if_new to let Kiln add members", email(changes[i].Member), mc.cfg.AudienceID, reason)}, i)
		default:
			if err := mc.putMember(ctx, changes[i].Member, false); err != nil {
				p.Fail(err, i)
				continue
			}
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return
	}
	failed, err = mc.batch(ctx, op, seg, changes, retry)
	if err != nil {
		p.Fail(err, retry...)
		return
	}
	for _, i := range retry {
		if reason, bad := failed[email(changes[i].Member)]; bad {
			p.Fail(&connector.Error{Vendor: ID, Request: "POST /lists/{list_id}/segments/{segment_id}", Code: kiln.EInvalid,
				Message: fmt.Sprintf("%s: %s", email(changes[i].Member), reason)}, i)
		} else {
			p.OK(i)
		}
	}
}

// batch sends one static-segment batch call and returns the emails
// Mailchimp reported as errors, with the reason.
func (mc *mailchimp) batch(ctx context.Context, op connector.Op, seg int64, changes []connector.Change, idx []int) (map[string]string, error) {
	var emails []string
	seen := map[string]bool{}
	for _, i := range idx {
		if e := email(changes[i].Member); !seen[e] {
			seen[e] = true
			emails = append(emails, e)
		}
	}
	field := "members_to_add"
	if op == connector.OpRemove {
		field = "members_to_remove"
	}
	var res batchResult
	_, err := mc.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: fmt.Sprintf("%s/segments/%d", mc.list(), seg),
		Route: "POST /lists/{list_id}/segments/{segment_id}", Body: map[string]any{field: emails}}, &res)
	if err != nil {
		return nil, err
	}
	failed := map[string]string{}
	for _, e := range res.Errors {
		for _, a := range e.EmailAddresses {
			failed[strings.ToLower(a)] = e.Error
		}
	}
	return failed, nil
}

// segmentID returns the static segment id of tag, creating the tag when
// the audience has none by that name.
func (mc *mailchimp) segmentID(ctx context.Context, tag string) (int64, error) {
	return mc.ids.Get(ctx, tag, func(ctx context.Context) (int64, error) { return mc.findOrCreateSegment(ctx, tag) })
}

func (mc *mailchimp) findOrCreateSegment(ctx context.Context, tag string) (int64, error) {
	var id int64
	var list struct {
		Segments []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"segments"`
	}
	q := url.Values{"type": {"static"}, "count": {"1000"}, "fields": {"segments.id,segments.name"}}
	if _, err := mc.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: mc.list() + "/segments", Query: q,
		Route: "GET /lists/{list_id}/segments"}, &list); err != nil {
		return 0, err
	}
	for _, s := range list.Segments {
		if strings.EqualFold(s.Name, tag) {
			id = s.ID
		}
	}
	if id == 0 {
		var created struct {
			ID int64 `json:"id"`
		}
		if _, err := mc.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: mc.list() + "/segments",
			Route: "POST /lists/{list_id}/segments", Body: map[string]any{"name": tag, "static_segment": []string{}}}, &created); err != nil {
			return 0, err
		}
		if created.ID == 0 {
			return 0, connector.BadResponse(ID, "POST /lists/{list_id}/segments", "the response carries no segment id")
		}
		id = created.ID
	}
	return id, nil
}

// putMember updates a member's merge fields, creating the member with
// status_if_new when that is configured (PUT), else only updating (PATCH,
// which fails with 404 for non-members).
func (mc *mailchimp) putMember(ctx context.Context, m connector.Member, traits bool) error {
	e := email(m)
	body := map[string]any{}
	if traits && len(m.Traits) > 0 {
		merge := map[string]any{}
		for k, v := range m.Traits {
			name := mc.cfg.MergeFields[k]
			if name == "" {
				name = strings.ToUpper(k)
			}
			merge[name] = v
		}
		body["merge_fields"] = merge
	}
	method := http.MethodPatch
	if mc.cfg.StatusIfNew != "" {
		method = http.MethodPut
		body["email_address"] = e
		body["status_if_new"] = mc.cfg.StatusIfNew
	}
	_, err := mc.c.Do(ctx, connector.Request{Method: method, Path: mc.list() + "/members/" + subscriberHash(e),
		Route: method + " /lists/{list_id}/members/{subscriber_hash}", Body: body}, nil)
	return err
}

var (
	_ connector.Connector = (*mailchimp)(nil)
	_ connector.Lister    = (*mailchimp)(nil)
)
