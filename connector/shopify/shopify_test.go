package shopify_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/shopify"
)

const token = "shpat_0123456789abcdef0123456789abcdef"

// fake answers like Shopify's GraphQL Admin API (from shopify.dev; the API
// is GraphQL, no OpenAPI exists) for the three documents the connector
// sends: customers by email search, aliased tagsAdd/tagsRemove, and
// metafieldsSet. Throttling is a 200 with a THROTTLED error and the cost
// bucket; other failures are HTTP errors with {"errors": …}.
type fake struct{ book *connectortest.Book }

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "gid://shopify/Customer/70"}}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	aliasRE = regexp.MustCompile(`(m\d+): (tagsAdd|tagsRemove)\(id: \$(id\d+), tags: \$tags\)`)
	declRE  = regexp.MustCompile(`\$(id\d+): ID!`)
	termRE  = regexp.MustCompile(`^email:("(?:[^"\\]|\\.)*")$`)
)

type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables"`
}

func (f *fake) Items(_ *http.Request, body []byte) int {
	var q request
	json.Unmarshal(body, &q)
	if n := len(aliasRE.FindAllString(q.Query, -1)); n > 0 {
		return n
	}
	if s, ok := q.Variables["q"].(string); ok {
		return len(strings.Split(s, " OR "))
	}
	return 0
}

func cost(requested, available float64) map[string]any {
	return map[string]any{"cost": map[string]any{"requestedQueryCost": requested, "actualQueryCost": nil,
		"throttleStatus": map[string]any{"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}}
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch status {
	case 429:
		// Shopify's GraphQL throttle: HTTP 200, the wait is implied by the
		// cost requested, the points available and the restore rate.
		json.NewEncoder(w).Encode(map[string]any{
			"errors": []any{map[string]any{"message": "Throttled", "extensions": map[string]any{"code": "THROTTLED",
				"documentation": "https://shopify.dev/api/usage/rate-limits"}}},
			"extensions": cost(retryAfter.Seconds()*100, 0)})
	case 401:
		w.WriteHeader(status)
		fmt.Fprint(w, `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`)
	case 400:
		w.WriteHeader(status)
		fmt.Fprint(w, `{"errors":{"query":"Required parameter missing or invalid"}}`)
	default:
		w.WriteHeader(status)
		fmt.Fprint(w, `{"errors":"Internal Server Error"}`)
	}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Shopify-Access-Token") != token {
		f.WriteError(w, r, 401, 0)
		return
	}
	var q request
	if r.Method != http.MethodPost || r.URL.Path != "/admin/api/"+shopify.APIVersion+"/graphql.json" ||
		json.NewDecoder(r.Body).Decode(&q) != nil || q.Query == "" {
		f.WriteError(w, r, 400, 0)
		return
	}
	data := map[string]any{}
	switch {
	case strings.Contains(q.Query, "customers(first: $n, query: $q)"):
		nodes := []any{}
		for _, term := range strings.Split(q.Variables["q"].(string), " OR ") {
			m := termRE.FindStringSubmatch(term)
			if m == nil {
				f.WriteError(w, r, 400, 0)
				return
			}
			e, _ := strconv.Unquote(m[1])
			if p := f.book.Find(e, "", ""); p != nil {
				nodes = append(nodes, map[string]any{"id": p.ID, "defaultEmailAddress": map[string]any{"emailAddress": p.Email}})
			}
		}
		if n, _ := q.Variables["n"].(float64); int(n) < len(nodes) || n > 250 {
			f.WriteError(w, r, 400, 0)
			return
		}
		data["customers"] = map[string]any{"nodes": nodes}
	case aliasRE.MatchString(q.Query):
		declared := map[string]bool{}
		for _, m := range declRE.FindAllStringSubmatch(q.Query, -1) {
			declared[m[1]] = true
		}
		tags, _ := q.Variables["tags"].([]any)
		for _, m := range aliasRE.FindAllStringSubmatch(q.Query, -1) {
			id, _ := q.Variables[m[3]].(string)
			if !declared[m[3]] || len(tags) == 0 {
				f.WriteError(w, r, 400, 0)
				return
			}
			p := f.book.ByID(id)
			if p == nil {
				data[m[1]] = map[string]any{"node": nil, "userErrors": []any{map[string]any{"field": []string{"id"}, "message": "Customer does not exist"}}}
				continue
			}
			f.book.Set(p, func(p *connectortest.Person) {
				for _, t := range tags {
					p.Lists[t.(string)] = m[2] == "tagsAdd"
				}
			})
			data[m[1]] = map[string]any{"node": map[string]any{"id": id}, "userErrors": []any{}}
		}
	case strings.Contains(q.Query, "metafieldsSet(metafields: $m)"):
		raw, _ := json.Marshal(q.Variables["m"])
		var mfs []struct{ OwnerID, Namespace, Key, Type, Value string }
		json.Unmarshal(raw, &mfs)
		var uerrs []any
		for i, mf := range mfs {
			var v any
			p := f.book.ByID(mf.OwnerID)
			if p == nil || mf.Type != "json" || mf.Namespace == "" || json.Unmarshal([]byte(mf.Value), &v) != nil {
				uerrs = append(uerrs, map[string]any{"field": []string{"metafields", fmt.Sprint(i)}, "message": "is invalid"})
				continue
			}
			f.book.Set(p, func(p *connectortest.Person) { p.Traits[mf.Key] = v })
		}
		data["metafieldsSet"] = map[string]any{"metafields": []any{}, "userErrors": append([]any{}, uerrs...)}
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"errors":[{"message":"Field 'x' doesn't exist on type 'QueryRoot'","extensions":{"code":"undefinedField"}}]}`)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{"data": data, "extensions": cost(10, 1990)})
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      shopify.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"shop": "kiln-demo.myshopify.com", "tags": map[string]string{"vip": "kiln-vip", "lapsed": "kiln-lapsed"}}
		},
		Secrets:   connector.Secrets{"access_token": token},
		Lists:     map[string]string{"vip": "kiln-vip", "lapsed": "kiln-lapsed"},
		MustExist: true,
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// A GraphQL error that is not throttling fails the batch permanently.
func TestGraphQLErrors(t *testing.T) {
	h := harness()
	srv := connectortest.NewServer(t, newFake(t), nil)
	c, _ := connector.New(shopify.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
	m := connectortest.DefaultMember(1)
	srv.Fake.Book().Upsert(m.Email, "", "")
	m.Traits = map[string]any{"bad key!": 1}
	err := c.Deliver(t.Context(), []connector.Change{{Op: connector.OpUpsert, Member: m}})[0].Err
	if kiln.ErrorCode(err) != kiln.EInvalid || connector.Retryable(err) || !strings.Contains(err.Error(), "metafield key") {
		t.Errorf("bad metafield key: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, shop := range []string{"https://kiln.myshopify.com", "a b", ""} {
		raw, _ := json.Marshal(map[string]any{"shop": shop, "tags": map[string]string{"vip": "x"}})
		if _, err := connector.New(shopify.ID, raw, connector.Secrets{"access_token": token}, nil); err == nil {
			t.Errorf("shop %q accepted", shop)
		}
	}
}
