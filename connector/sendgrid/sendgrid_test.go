package sendgrid_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/sendgrid"
)

const apiKey = "SG.test-key"

const (
	listVIP    = "ca7a3796-e8a8-4029-9ccb-df8937940562"
	listLapsed = "0236d6d2-75d2-42c5-962d-603e0deaf8b1"
)

// fake answers like SendGrid Marketing Campaigns: async upserts (202 with
// job_id), search by email (404 when nothing matches), list removal; errors
// as {"errors":[{"field","message"}]}, 429 with X-RateLimit-* headers.
type fake struct {
	book *connectortest.Book
	now  func() time.Time
}

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "c0ffee00-0000-4000-8000-00000000"}, now: time.Now}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var listContactsRE = regexp.MustCompile(`^/v3/marketing/lists/([^/]+)/contacts$`)

func (f *fake) Items(r *http.Request, body []byte) int {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v3/marketing/contacts":
		var q struct{ Contacts []any }
		json.Unmarshal(body, &q)
		return len(q.Contacts)
	case r.Method == http.MethodDelete && listContactsRE.MatchString(r.URL.Path):
		return len(strings.Split(r.URL.Query().Get("contact_ids"), ","))
	}
	return 0
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	msg := map[int]string{400: "invalid email", 401: "authorization required", 429: "too many requests", 500: "internal error"}[status]
	if status == 429 {
		// SendGrid tells the wait only as the reset time of the window.
		w.Header().Set("X-RateLimit-Limit", "600")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(f.now().Add(retryAfter).Unix()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"message": msg}
	if status == 400 {
		e["field"] = "contacts[0].email"
	}
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{e}})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v3/marketing/contacts":
		var q struct {
			ListIDs  []string `json:"list_ids"`
			Contacts []struct {
				Email        string         `json:"email"`
				ExternalID   string         `json:"external_id"`
				FirstName    string         `json:"first_name"`
				CustomFields map[string]any `json:"custom_fields"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Contacts) == 0 || len(q.Contacts) > 30000 {
			f.WriteError(w, r, 400, 0)
			return
		}
		for _, c := range q.Contacts {
			if c.Email == "" && c.ExternalID == "" {
				f.WriteError(w, r, 400, 0)
				return
			}
		}
		for _, c := range q.Contacts {
			p := f.book.Upsert(c.Email, "", c.ExternalID)
			f.book.Set(p, func(p *connectortest.Person) {
				for _, l := range q.ListIDs {
					p.Lists[l] = true
				}
				for k, v := range c.CustomFields {
					p.Traits[k] = v
				}
				if c.FirstName != "" {
					p.Traits["first_name"] = c.FirstName
				}
			})
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"job_id":"2387e363-4104-4225-8960-4a5758492351"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v3/marketing/contacts/search/emails":
		var q struct{ Emails []string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Emails) == 0 {
			f.WriteError(w, r, 400, 0)
			return
		}
		result := map[string]any{}
		found := 0
		for _, e := range q.Emails {
			if p := f.book.Find(e, "", ""); p != nil {
				found++
				var lists []string
				f.book.Set(p, func(p *connectortest.Person) {
					for l := range p.Lists {
						lists = append(lists, l)
					}
				})
				result[e] = map[string]any{"contact": map[string]any{"id": p.ID, "email": p.Email, "list_ids": append([]string{}, lists...),
					"segment_ids": []string{}, "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z"}}
			} else {
				result[e] = map[string]any{"error": "contact not found"}
			}
		}
		if found == 0 {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"field":null,"message":"No contacts found"}]}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"result": result})
	case r.Method == http.MethodDelete && listContactsRE.MatchString(r.URL.Path):
		list := listContactsRE.FindStringSubmatch(r.URL.Path)[1]
		for _, id := range strings.Split(r.URL.Query().Get("contact_ids"), ",") {
			p := f.book.ByID(id)
			if p == nil {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			f.book.Set(p, func(p *connectortest.Person) { delete(p.Lists, list) })
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"job_id":"5a9b5f63-0fd4-4b83-8a4f-4ba6b2b5f7e2"}`)
	default:
		f.WriteError(w, r, 400, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      sendgrid.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"lists": map[string]string{"vip": listVIP, "lapsed": listLapsed},
				"custom_fields": map[string]string{"plan": "e1_T"}}
		},
		Secrets: connector.Secrets{"api_key": apiKey},
		Lists:   map[string]string{"vip": listVIP, "lapsed": listLapsed},
		Trait:   "e1_T",
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpecs(connectortest.SpecOptions{},
				"sendgrid/spec/json/tsg_mc_contacts_v3.json", "sendgrid/spec/json/tsg_mc_lists_v3.json")
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }
