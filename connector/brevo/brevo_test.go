package brevo_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/brevo"
	"github.com/kiln-cdp/kiln/connector/connectortest"
)

const apiKey = "xkeysib-test"

// fake answers like Brevo v3: list add/remove by email with per-email
// failures (400 when none succeeded), createContact (201 created, 204
// updated); errors as {"code","message"}; 429 with x-sib-ratelimit-*.
type fake struct{ book *connectortest.Book }

func newFake(*testing.T) connectortest.Fake { return &fake{book: &connectortest.Book{Prefix: "1"}} }

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	listRE     = regexp.MustCompile(`^/v3/contacts/lists/(\d+)/contacts/(add|remove)$`)
	contactsRE = regexp.MustCompile(`^/v3/contacts/lists/(\d+)/contacts$`)
)

func (f *fake) Items(r *http.Request, body []byte) int {
	if listRE.MatchString(r.URL.Path) {
		var q struct{ Emails []string }
		json.Unmarshal(body, &q)
		return len(q.Emails)
	}
	if r.URL.Path == "/v3/contacts" {
		return 1
	}
	return 0
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	e := map[int][2]string{
		400: {"invalid_parameter", "Invalid email address"},
		401: {"unauthorized", "Key not found"},
		404: {"document_not_found", "List ID does not exist"},
		429: {"too_many_requests", "Too many requests"},
		500: {"internal_error", "Internal server error"},
	}[status]
	if status == 429 {
		w.Header().Set("x-sib-ratelimit-limit", "10")
		w.Header().Set("x-sib-ratelimit-remaining", "0")
		w.Header().Set("x-sib-ratelimit-reset", strconv.Itoa(int(retryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": e[0], "message": e[1]})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("api-key") != apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && contactsRE.MatchString(r.URL.Path):
		list := contactsRE.FindStringSubmatch(r.URL.Path)[1]
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 500 {
			limit = 50
		}
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		people := f.book.People(list)
		contacts := []any{}
		for i := offset; i < len(people) && i < offset+limit; i++ {
			contacts = append(contacts, map[string]any{"email": people[i].Email, "id": i + 1, "emailBlacklisted": false, "smsBlacklisted": false,
				"createdAt": "2026-11-02T10:00:00Z", "modifiedAt": "2026-11-02T10:00:00Z", "listIds": []int{}, "attributes": map[string]any{}})
		}
		json.NewEncoder(w).Encode(map[string]any{"contacts": contacts, "count": len(people)})
	case r.Method == http.MethodPost && listRE.MatchString(r.URL.Path):
		m := listRE.FindStringSubmatch(r.URL.Path)
		list, add := m[1], m[2] == "add"
		var q struct{ Emails []string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Emails) == 0 || len(q.Emails) > 150 {
			f.WriteError(w, r, 400, 0)
			return
		}
		success, failure := []string{}, []string{}
		for _, e := range q.Emails {
			p := f.book.Find(e, "", "")
			changed := false
			if p != nil {
				f.book.Set(p, func(p *connectortest.Person) {
					if p.Lists[list] != add {
						p.Lists[list], changed = add, true
					}
				})
			}
			if changed {
				success = append(success, e)
			} else {
				failure = append(failure, e)
			}
		}
		if len(success) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			msg := "Contact already in list and/or does not exist"
			if !add {
				msg = "Contact already removed from list and/or does not exist"
			}
			json.NewEncoder(w).Encode(map[string]string{"code": "invalid_parameter", "message": msg})
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"contacts": map[string]any{"success": success, "failure": failure, "total": len(q.Emails)}})
	case r.Method == http.MethodPost && r.URL.Path == "/v3/contacts":
		var q struct {
			Email         string
			ExtID         string `json:"ext_id"`
			Attributes    map[string]any
			ListIDs       []int64 `json:"listIds"`
			UpdateEnabled bool    `json:"updateEnabled"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Email == "" {
			f.WriteError(w, r, 400, 0)
			return
		}
		p := f.book.Find(q.Email, "", q.ExtID)
		if p != nil && !q.UpdateEnabled {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":"duplicate_parameter","message":"Unable to create contact, email is already associated with another Contact"}`)
			return
		}
		created := p == nil
		p = f.book.Upsert(q.Email, "", q.ExtID)
		f.book.Set(p, func(p *connectortest.Person) {
			for _, l := range q.ListIDs {
				p.Lists[strconv.FormatInt(l, 10)] = true
			}
			for k, v := range q.Attributes {
				p.Traits[k] = v
			}
		})
		if !created {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		id, _ := strconv.Atoi(p.ID)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]int{"id": id})
	default:
		f.WriteError(w, r, 404, 0)
	}
}

// specOps are the Brevo operations the connector uses: the only ones kept
// when converting the Swagger 2.0 file (see connectortest.SpecOptions).
var specOps = []string{
	"POST /contacts/lists/{listId}/contacts/add",
	"POST /contacts/lists/{listId}/contacts/remove",
	"POST /contacts",
	"GET /contacts/lists/{listId}/contacts",
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:       brevo.ID,
		NewFake:  newFake,
		BasePath: "/v3",
		Config: func() map[string]any {
			return map[string]any{"lists": map[string]int64{"vip": 36, "lapsed": 41}}
		},
		Secrets: connector.Secrets{"api_key": apiKey},
		Lists:   map[string]string{"vip": "36", "lapsed": "41"},
		Trait:   "PLAN",
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpec("brevo/api/swagger.yaml", connectortest.SpecOptions{BasePath: "/v3", Operations: specOps})
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// The pruned conversion still enforces the spec: a list id that is not an
// integer and an add with more than 150 emails are rejected.
func TestSpecRejectsBadRequests(t *testing.T) {
	v, err := harness().Spec()
	if err != nil {
		t.Skipf("spec validation skipped: %v", err)
	}
	for _, c := range []struct{ path, body string }{
		{"/v3/contacts/lists/vip/contacts/add", `{"emails":["a@example.com"]}`},
		{"/v3/contacts/lists/36/contacts/add", fmt.Sprintf(`{"emails":%s}`, manyEmails(151))},
	} {
		r, _ := http.NewRequest(http.MethodPost, "http://x"+c.path, nil)
		r.Header.Set("api-key", apiKey)
		r.Header.Set("Content-Type", "application/json")
		if err := v.Validate(r, []byte(c.body)); err == nil {
			t.Errorf("POST %s %.60s: accepted", c.path, c.body)
		}
	}
}

func manyEmails(n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("p%d@example.com", i))
	}
	b, _ := json.Marshal(s)
	return string(b)
}
