package customerio_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/customerio"
)

const siteID, apiKey = "f3a9c2e1d0b4a5c6e7f8", "0a1b2c3d4e5f60718293"

// fake answers like the Customer.io Track API v1 (from docs.customer.io;
// its spec is only on the docs site): manual segment add/remove by id or
// email (creating unknown people on add), PUT customers; errors as
// {"meta":{"error":"…"}}; 429 with Retry-After.
type fake struct{ book *connectortest.Book }

func newFake(*testing.T) connectortest.Fake { return &fake{book: &connectortest.Book{Prefix: "cio_"}} }

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	segRE      = regexp.MustCompile(`^/api/v1/segments/(\d+)/(add_customers|remove_customers)$`)
	customerRE = regexp.MustCompile(`^/api/v1/customers/([^/]+)$`)
)

func (f *fake) Items(r *http.Request, body []byte) int {
	if segRE.MatchString(r.URL.Path) {
		var q struct{ IDs []string }
		json.Unmarshal(body, &q)
		return len(q.IDs)
	}
	return 1
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	msg := map[int]string{400: "id attribute must be present", 401: "Unauthorized request",
		429: "rate limit exceeded", 500: "internal server error"}[status]
	if status == 429 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"error": msg}})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(siteID+":"+apiKey)) {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && segRE.MatchString(r.URL.Path):
		m := segRE.FindStringSubmatch(r.URL.Path)
		idType := r.URL.Query().Get("id_type")
		var q struct{ IDs []string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.IDs) > 1000 || (idType != "id" && idType != "email") {
			f.WriteError(w, r, 400, 0)
			return
		}
		for _, id := range q.IDs {
			var p *connectortest.Person
			email, uid := "", id
			if idType == "email" {
				email, uid = id, ""
			}
			if m[2] == "add_customers" {
				p = f.book.Upsert(email, "", uid)
			} else if p = f.book.Find(email, "", uid); p == nil {
				continue
			}
			f.book.Set(p, func(p *connectortest.Person) { p.Lists[m[1]] = m[2] == "add_customers" })
		}
		fmt.Fprint(w, "{}")
	case r.Method == http.MethodPut && customerRE.MatchString(r.URL.Path):
		id, _ := url.PathUnescape(customerRE.FindStringSubmatch(r.URL.Path)[1])
		var attrs map[string]any
		if err := json.NewDecoder(r.Body).Decode(&attrs); err != nil {
			f.WriteError(w, r, 400, 0)
			return
		}
		email, _ := attrs["email"].(string)
		uid := id
		if strings.Contains(id, "@") {
			uid = ""
		}
		p := f.book.Upsert(email, "", uid)
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range attrs {
				p.Traits[k] = v
			}
		})
		fmt.Fprint(w, "{}")
	default:
		f.WriteError(w, r, 400, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      customerio.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"segments": map[string]int64{"vip": 7, "lapsed": 9}}
		},
		Secrets: connector.Secrets{"site_id": siteID, "api_key": apiKey},
		Lists:   map[string]string{"vip": "7", "lapsed": "9"},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// Members without a user id go by email (id_type=email).
func TestByEmail(t *testing.T) {
	h := harness()
	h.Member = func(i int) connector.Member {
		m := connectortest.DefaultMember(i)
		if i%2 == 0 {
			m.UserID = ""
		}
		return m
	}
	connectortest.Run(t, h)
}
