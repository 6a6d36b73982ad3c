// Package shopify is the Shopify destination: segment membership as a
// customer tag, through the GraphQL Admin API.
//
// Customers are looked up by email, up to 25 per query (email:"a" OR
// email:"b"); add and remove then send one request with up to 25 aliased
// tagsAdd or tagsRemove mutations. Shopify customers come from the shop
// itself, so add fails permanently (not found) for an email the shop does
// not know, and remove treats it as done. Upsert writes traits as customer
// metafields in the "kiln" namespace (type json) with metafieldsSet.
//
// Shopify throttles by query cost, not request count: a throttled request
// answers 200 with a THROTTLED error and the bucket state, from which the
// wait is computed. The Admin API is GraphQL, with no OpenAPI document, so
// this connector is tested against a fake built from the public
// documentation, not against a spec.
package shopify

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// ID is the registry id.
const ID = "shopify"

// APIVersion is the Admin API version used unless the config names one.
const APIVersion = "2026-01"

const (
	// 25 mutations of cost 10 is 250 points, an eighth of a standard
	// shop's 2,000-point bucket.
	maxBatch = 25
	// Metafields per metafieldsSet call.
	maxMetafields = 25
)

// A standard shop restores 100 cost points per second; a full batch costs
// about 250, so 0.4 requests per second sustained, 8 in a burst.
var rate = connector.Rate{PerSecond: 0.4, Burst: 8}

// Config is the destination's configuration.
type Config struct {
	connector.Common
	// Shop is the shop's myshopify domain ("kiln-demo.myshopify.com") or
	// its name ("kiln-demo").
	Shop string `json:"shop" kiln:"required"`
	// Tags maps Kiln segment names to customer tags.
	Tags map[string]string `json:"tags" kiln:"required"`
	// APIVersion pins the Admin API version; default APIVersion.
	APIVersion string `json:"api_version,omitempty"`
}

var (
	shopRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	versionRE = regexp.MustCompile(`^\d{4}-\d{2}$|^unstable$`)
	keyRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{2,64}$`)
)

func init() {
	connector.Register(ID, New, connector.Doc{
		Name:        "Shopify",
		Summary:     "add/remove: look customers up by email, tagsAdd/tagsRemove of the mapped tag (aliased mutations, 25 per request); unknown customers fail add and count as removed; upsert: traits as customer metafields (namespace kiln, type json)",
		Secrets:     []string{"access_token"},
		Required:    []string{"shop", "tags"},
		Identifiers: []string{"email"},
		Ops:         []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert},
		MaxBatch:    maxBatch,
		Rate:        rate,
	})
}

type shopify struct {
	c    *connector.Client
	cfg  Config
	set  connector.Settings
	path string
}

// New makes a Shopify connector. Secrets: access_token (an Admin API
// access token with read_customers and write_customers).
func New(raw json.RawMessage, secrets connector.Secrets, hc *http.Client) (connector.Connector, error) {
	var cfg Config
	if err := connector.Decode(ID, raw, &cfg); err != nil {
		return nil, err
	}
	shop := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(cfg.Shop)), ".myshopify.com")
	if !shopRE.MatchString(shop) {
		return nil, fmt.Errorf("%s config: shop %q: want the shop's name or its myshopify.com domain", ID, cfg.Shop)
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = APIVersion
	}
	if !versionRE.MatchString(cfg.APIVersion) {
		return nil, fmt.Errorf("%s config: api_version %q: want YYYY-MM", ID, cfg.APIVersion)
	}
	set, err := cfg.Resolve(ID, "https://"+shop+".myshopify.com", maxBatch, rate)
	if err != nil {
		return nil, err
	}
	s, err := secrets.Require(ID, "access_token")
	if err != nil {
		return nil, err
	}
	for seg, tag := range cfg.Tags {
		if strings.TrimSpace(tag) == "" || strings.Contains(tag, ",") {
			return nil, fmt.Errorf("%s config: tags: segment %q has tag %q: want a non-empty tag without commas", ID, seg, tag)
		}
	}
	token := s[0]
	return &shopify{cfg: cfg, set: set, path: "/admin/api/" + cfg.APIVersion + "/graphql.json", c: &connector.Client{
		Vendor: ID, HTTP: hc, Base: set.BaseURL, Limiter: connector.NewLimiter(set.Rate),
		Prepare: func(r *http.Request) { r.Header.Set("X-Shopify-Access-Token", token) },
	}}, nil
}

func (s *shopify) MaxBatch() int             { return s.set.MaxBatch }
func (s *shopify) RateLimit() connector.Rate { return s.set.Rate }

func email(m connector.Member) string { return strings.ToLower(strings.TrimSpace(m.Email)) }

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

type gqlResponse struct {
	Data       map[string]json.RawMessage `json:"data"`
	Errors     []gqlError                 `json:"errors"`
	Extensions struct {
		Cost struct {
			RequestedQueryCost float64 `json:"requestedQueryCost"`
			ThrottleStatus     struct {
				MaximumAvailable   float64 `json:"maximumAvailable"`
				CurrentlyAvailable float64 `json:"currentlyAvailable"`
				RestoreRate        float64 `json:"restoreRate"`
			} `json:"throttleStatus"`
		} `json:"cost"`
	} `json:"extensions"`
}

const route = "POST /admin/api/{version}/graphql.json"

// graphql runs one document. GraphQL-level errors become *connector.Error:
// THROTTLED is rate limited with the wait the cost budget implies, others
// are invalid.
func (s *shopify) graphql(ctx context.Context, query string, vars map[string]any) (map[string]json.RawMessage, error) {
	var resp gqlResponse
	_, err := s.c.Do(ctx, connector.Request{Method: http.MethodPost, Path: s.path, Route: route,
		Body: map[string]any{"query": query, "variables": vars}}, &resp)
	if err != nil {
		return nil, err
	}
	if len(resp.Errors) > 0 {
		e := resp.Errors[0]
		if e.Extensions.Code == "THROTTLED" {
			c := resp.Extensions.Cost
			var wait time.Duration
			if r := c.ThrottleStatus.RestoreRate; r > 0 {
				need := c.RequestedQueryCost - c.ThrottleStatus.CurrentlyAvailable
				wait = time.Duration(math.Ceil(math.Max(need, 0)/r)) * time.Second
			}
			return nil, &connector.Error{Vendor: ID, Request: route, Status: http.StatusOK, Code: kiln.ERateLimited,
				Retryable: true, RetryAfter: wait, Message: "throttled: " + e.Message}
		}
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, e.Message)
		}
		return nil, &connector.Error{Vendor: ID, Request: route, Status: http.StatusOK, Code: kiln.EInvalid,
			Message: strings.Join(msgs, "; ")}
	}
	return resp.Data, nil
}

const customersQuery = `query KilnCustomers($q: String!, $n: Int!) {
  customers(first: $n, query: $q) { nodes { id defaultEmailAddress { emailAddress } } }
}`

// quote makes a double-quoted search term, so + @ and spaces stay inside
// it; only backslash and the quote are escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// lookup returns email → customer GID for the members of idx.
func (s *shopify) lookup(ctx context.Context, changes []connector.Change, idx []int) (map[string]string, error) {
	var terms []string
	seen := map[string]bool{}
	for _, i := range idx {
		if e := email(changes[i].Member); !seen[e] {
			seen[e] = true
			terms = append(terms, "email:"+quote(e))
		}
	}
	data, err := s.graphql(ctx, customersQuery, map[string]any{"q": strings.Join(terms, " OR "), "n": len(terms)})
	if err != nil {
		return nil, err
	}
	var res struct {
		Nodes []struct {
			ID                  string `json:"id"`
			DefaultEmailAddress struct {
				EmailAddress string `json:"emailAddress"`
			} `json:"defaultEmailAddress"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(data["customers"], &res); err != nil {
		return nil, connector.BadResponse(ID, route, "customers: "+err.Error())
	}
	out := map[string]string{}
	for _, n := range res.Nodes {
		out[strings.ToLower(n.DefaultEmailAddress.EmailAddress)] = n.ID
	}
	return out, nil
}

type userErrors struct {
	UserErrors []struct {
		Field   []string `json:"field"`
		Message string   `json:"message"`
	} `json:"userErrors"`
}

func (u userErrors) err() error {
	if len(u.UserErrors) == 0 {
		return nil
	}
	var msgs []string
	for _, e := range u.UserErrors {
		msgs = append(msgs, strings.Join(e.Field, ".")+": "+e.Message)
	}
	return &connector.Error{Vendor: ID, Request: route, Status: http.StatusOK, Code: kiln.EInvalid, Message: strings.Join(msgs, "; ")}
}

func (s *shopify) Deliver(ctx context.Context, changes []connector.Change) []connector.Result {
	p := connector.NewPending(len(changes))
	var ok []int
	for i, c := range changes {
		if err := connector.CheckChange(ID, c); err != nil {
			p.Fail(err, i)
			continue
		}
		if email(c.Member) == "" {
			p.Fail(connector.Invalid(ID, "profile %s has no email: Shopify customers are found by email", c.Member.ProfileID), i)
			continue
		}
		if c.Op != connector.OpUpsert && s.cfg.Tags[c.Segment] == "" {
			p.Fail(connector.Invalid(ID, "segment %q has no Shopify tag in this destination's tags", c.Segment), i)
			continue
		}
		ok = append(ok, i)
	}
	sub := make([]connector.Change, len(ok))
	for j, i := range ok {
		sub[j] = changes[i]
	}
	for _, g := range connector.GroupChanges(sub, s.set.MaxBatch) {
		if ctx.Err() != nil {
			break
		}
		idx := make([]int, len(g.Idx))
		for j, x := range g.Idx {
			idx[j] = ok[x]
		}
		ids, err := s.lookup(ctx, changes, idx)
		if err != nil {
			p.Fail(err, idx...)
			continue
		}
		var send []int
		for _, i := range idx {
			if _, found := ids[email(changes[i].Member)]; found {
				send = append(send, i)
			} else if g.Op == connector.OpRemove {
				p.OK(i)
			} else {
				p.Fail(&connector.Error{Vendor: ID, Request: route, Code: kiln.ENotFound,
					Message: fmt.Sprintf("the shop has no customer with email %s", email(changes[i].Member))}, i)
			}
		}
		if len(send) == 0 {
			continue
		}
		if g.Op == connector.OpUpsert {
			for _, i := range send {
				if ctx.Err() != nil {
					break
				}
				p.Fail(s.setMetafields(ctx, ids[email(changes[i].Member)], changes[i].Member), i)
			}
			continue
		}
		s.tag(ctx, p, changes, send, ids, g.Op, s.cfg.Tags[g.Segment])
	}
	return p.Finish(ctx, ID)
}

// tag sends one document of aliased tagsAdd/tagsRemove mutations.
func (s *shopify) tag(ctx context.Context, p *connector.Pending, changes []connector.Change, idx []int, ids map[string]string, op connector.Op, tag string) {
	mutation := "tagsAdd"
	if op == connector.OpRemove {
		mutation = "tagsRemove"
	}
	var b strings.Builder
	b.WriteString("mutation KilnTags($tags: [String!]!")
	vars := map[string]any{"tags": []string{tag}}
	for j, i := range idx {
		fmt.Fprintf(&b, ", $id%d: ID!", j)
		vars[fmt.Sprintf("id%d", j)] = ids[email(changes[i].Member)]
	}
	b.WriteString(") {\n")
	for j := range idx {
		fmt.Fprintf(&b, "  m%d: %s(id: $id%d, tags: $tags) { userErrors { field message } }\n", j, mutation, j)
	}
	b.WriteString("}")
	data, err := s.graphql(ctx, b.String(), vars)
	if err != nil {
		p.Fail(err, idx...)
		return
	}
	for j, i := range idx {
		var ue userErrors
		raw, ok := data[fmt.Sprintf("m%d", j)]
		if !ok || json.Unmarshal(raw, &ue) != nil {
			p.Fail(connector.BadResponse(ID, route, fmt.Sprintf("no result for mutation m%d", j)), i)
			continue
		}
		p.Fail(ue.err(), i)
	}
}

const metafieldsMutation = `mutation KilnTraits($m: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $m) { metafields { key } userErrors { field message } }
}`

func (s *shopify) setMetafields(ctx context.Context, owner string, m connector.Member) error {
	var fields []map[string]string
	for k, v := range m.Traits {
		if !keyRE.MatchString(k) {
			return connector.Invalid(ID, "profile %s: trait %q is not a valid metafield key (2-64 letters, digits, _ or -)", m.ProfileID, k)
		}
		val, err := json.Marshal(v)
		if err != nil {
			return connector.Invalid(ID, "profile %s: trait %q: %v", m.ProfileID, k, err)
		}
		fields = append(fields, map[string]string{"ownerId": owner, "namespace": "kiln", "key": k, "type": "json", "value": string(val)})
	}
	for start := 0; start < len(fields); start += maxMetafields {
		data, err := s.graphql(ctx, metafieldsMutation, map[string]any{"m": fields[start:min(start+maxMetafields, len(fields))]})
		if err != nil {
			return err
		}
		var ue userErrors
		if err := json.Unmarshal(data["metafieldsSet"], &ue); err != nil {
			return connector.BadResponse(ID, route, "metafieldsSet: "+err.Error())
		}
		if err := ue.err(); err != nil {
			return err
		}
	}
	return nil
}

var _ connector.Connector = (*shopify)(nil)
