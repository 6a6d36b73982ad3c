// Package iterable is the Iterable destination: segment membership as
// static list subscription.
//
// Add subscribes the members to the mapped list (POST /api/lists/subscribe,
// creating unknown users); remove unsubscribes them from that list only
// (POST /api/lists/unsubscribe without channelUnsubscribe, which would be a
// global channel unsubscribe); upsert is POST /api/users/bulkUpdate with the
// traits as dataFields. Members go by email, or by user id when they have
// no email (Iterable takes one or the other, not both). Users Iterable
// reports as failed (invalid, forgotten, conflicting) fail alone.
package iterable

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "iterable"

const (
	defaultBase = "https://api.iterable.com"
	// Iterable states no subscriber limit for list calls in its spec; 1,000
	// keeps requests small. bulkUpdate takes up to 4 MB.
	maxBatch = 1000
)

// bulkUpdate's 5 requests per second per project, the tightest limit among
// the calls used (Iterable does not publish one for list subscribe).
var rate = connector.Rate{PerSecond: 5, Burst: 5}

// Config is the destination's configuration. Set base_url to
// https://api.eu.iterable.com for EU projects.
type Config struct {
	connector.Common
	// Lists maps Kiln segment names to Iterable static list ids.
	Lists map[string]int64 `json:"lists" kiln:"required"`
}

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Iterable",
		Summary:     "add: subscribe to the mapped static list; remove: unsubscribe from that list only (never channelUnsubscribe); upsert: users/bulkUpdate with traits as dataFields",
		Secrets:     []string{"api_key"},
		Required:    []string{"lists"},
		Identifiers: []string{"email", "user_id (userId, when there is no email)"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
		Spec:        "iterable/api-docs.json",
	})
}

type iterable struct {
	c   *connector.Client
	cfg Config
	set connector.Settings
}

// New makes an Iterable connector. Secrets: api_key (a server-side key).
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
			return nil, fmt.Errorf("%s config: lists: segment %q has list id %d, want a positive Iterable list id", ID, seg, id)
		}
	}
	key := s[0]
	return &iterable{cfg: cfg, set: set, c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("Api-Key", key) },
		Message: message,
	}}, nil
}

// message reads Iterable's {"msg", "code", "params"} error body.
func message(body []byte) string {
	var v struct {
		Msg  string `json:"msg"`
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &v) == nil && v.Msg != "" {
		return v.Code + ": " + v.Msg
	}
	return connector.MessageOf(body)
}

func (it *iterable) MaxBatch() int             { return it.set.MaxBatch }
func (it *iterable) RateLimit() connector.Rate { return it.set.Rate }

func ident(m connector.Member) (field, value string) {
	switch {
	case m.Email != "":
		return "email", strings.ToLower(strings.TrimSpace(m.Email))
	case m.UserID != "":
		return "userId", m.UserID
	}
	return "", ""
}

type bulkResponse struct {
	FailCount     int                 `json:"failCount"`
	InvalidEmails []string            `json:"invalidEmails"`
	InvalidIDs    []string            `json:"invalidUserIds"`
	FailedUpdates map[string][]string `json:"failedUpdates"`
}

// failed returns the identifiers Iterable did not update, with why.
func (r bulkResponse) failed() map[string]string {
	out := map[string]string{}
	for _, e := range r.InvalidEmails {
		out[strings.ToLower(e)] = "invalidEmails"
	}
	for _, id := range r.InvalidIDs {
		out[id] = "invalidUserIds"
	}
	for reason, ids := range r.FailedUpdates {
		for _, id := range ids {
			out[strings.ToLower(id)] = reason
			out[id] = reason
		}
	}
	return out
}

func (it *iterable) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
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
		if c.Op != connector.OpUpsert && it.cfg.Lists[c.Segment] == 0 {
			p.Fail(connector.Invalid(ID, "segment %q has no Iterable list in this destination's lists", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, it.set.MaxBatch) {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		var users []map[string]any
		for _, i := range idx {
			f, v := ident(changes[i].Member)
			u := map[string]any{f: v}
			if g.Op == connector.OpUpsert && len(changes[i].Member.Traits) > 0 {
				u["dataFields"] = changes[i].Member.Traits
			}
			users = append(users, u)
		}
		var req connector.Request
		switch g.Op {
		case connector.OpAdd:
			req = connector.Request{Method: http.MethodPost, Path: "/api/lists/subscribe",
				Body: map[string]any{"listId": it.cfg.Lists[g.Segment], "subscribers": users, "updateExistingUsersOnly": false}}
		case connector.OpRemove:
			req = connector.Request{Method: http.MethodPost, Path: "/api/lists/unsubscribe",
				Body: map[string]any{"listId": it.cfg.Lists[g.Segment], "subscribers": users}}
		default:
			req = connector.Request{Method: http.MethodPost, Path: "/api/users/bulkUpdate", Body: map[string]any{"users": users}}
		}
		var resp bulkResponse
		if _, err := it.c.Do(ctx, req, &resp); err != nil {
			p.Fail(err, idx...)
			continue
		}
		failed := resp.failed()
		for _, i := range idx {
			_, v := ident(changes[i].Member)
			reason, bad := failed[v]
			switch {
			case !bad:
				p.OK(i)
			case g.Op == connector.OpRemove && (reason == "notFoundEmails" || reason == "notFoundUserIds"):
				p.OK(i) // not a user: not on the list
			default:
				p.Fail(&connector.Error{Vendor: ID, Request: req.Method + " " + req.Path, Status: http.StatusOK, Code: kiln.EInvalid,
					Message: fmt.Sprintf("Iterable did not update %s (%s)", v, reason)}, i)
			}
		}
	}
	return p.Finish(ctx, ID)
}

// ListMembers reads a static list's members with getUsers
// (GET /api/lists/getUsers), which answers one email per line (a user
// id for users without one). A list too large to read whole (8 MB) is a
// permanent error, so its reconciliation reports the segment failed.
func (it *iterable) ListMembers(ctx context.Context, segment string, fn func([]connector.Member) error) error {
	list := it.cfg.Lists[segment]
	if list == 0 {
		return connector.Invalid(ID, "segment %q has no Iterable list in this destination's lists", segment)
	}
	var raw []byte
	if _, err := it.c.Do(ctx, connector.Request{Method: http.MethodGet, Path: "/api/lists/getUsers",
		Query: url.Values{"listId": {strconv.FormatInt(list, 10)}}, Route: "GET /api/lists/getUsers"}, &raw); err != nil {
		return err
	}
	var ms []connector.Member
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.Contains(line, "@"):
			ms = append(ms, connector.Member{Email: line})
		default:
			ms = append(ms, connector.Member{UserID: line})
		}
		if len(ms) == 1000 {
			if err := fn(ms); err != nil {
				return err
			}
			ms = nil
		}
	}
	if len(ms) > 0 {
		return fn(ms)
	}
	return nil
}

var (
	_ connector.Connector = (*iterable)(nil)
	_ connector.Lister    = (*iterable)(nil)
)
