package intercom_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/intercom"
)

const token = "dG9rOnRlc3Q="

// fake answers like Intercom 2.15: contact search/create/update, tags by
// name, attach/detach; errors as {"type":"error.list","errors":[...]}, 429
// with X-RateLimit-Reset (a Unix time).
type fake struct {
	book *connectortest.Book
	mu   sync.Mutex
	tags map[string]string // name -> id
	now  func() time.Time
}

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "6643703ffae7834d1792fd"}, tags: map[string]string{}, now: time.Now}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	tagsRE   = regexp.MustCompile(`^/contacts/([^/]+)/tags$`)
	untagRE  = regexp.MustCompile(`^/contacts/([^/]+)/tags/([^/]+)$`)
	updateRE = regexp.MustCompile(`^/contacts/([^/]+)$`)
)

func (f *fake) Items(r *http.Request, body []byte) int {
	switch {
	case r.URL.Path == "/contacts/search":
		var q struct{ Query struct{ Value []string } }
		json.Unmarshal(body, &q)
		return len(q.Query.Value)
	case tagsRE.MatchString(r.URL.Path), untagRE.MatchString(r.URL.Path), r.URL.Path == "/contacts":
		return 1
	}
	return 0
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	e := map[int][2]string{
		400: {"parameter_invalid", "Invalid parameter"},
		401: {"unauthorized", "Access Token Invalid"},
		404: {"not_found", "Resource Not Found"},
		429: {"rate_limit_exceeded", "Exceeded rate limit of 10000 in 10_seconds"},
		500: {"server_error", "Server Error"},
	}[status]
	code, msg := e[0], e[1]
	if status == 429 {
		w.Header().Set("X-RateLimit-Limit", "10000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(f.now().Add(retryAfter).Unix()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "error.list", "request_id": "000on04msi4jpk7d98a0",
		"errors": []any{map[string]string{"code": code, "message": msg}}})
}

func contactJSON(p *connectortest.Person) map[string]any {
	return map[string]any{"type": "contact", "id": p.ID, "role": "user", "email": p.Email, "external_id": p.UserID,
		"phone": p.Phone, "custom_attributes": p.Traits}
}

type contactReq struct {
	Role             string         `json:"role"`
	Email            string         `json:"email"`
	ExternalID       string         `json:"external_id"`
	Phone            string         `json:"phone"`
	CustomAttributes map[string]any `json:"custom_attributes"`
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/contacts/search":
		var q struct {
			Query struct {
				Field, Operator string
				Value           []string
			}
			Pagination struct {
				PerPage int `json:"per_page"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Query.Operator != "IN" || q.Pagination.PerPage > 150 {
			f.WriteError(w, r, 400, 0)
			return
		}
		data := []any{}
		for _, v := range q.Query.Value {
			var p *connectortest.Person
			switch q.Query.Field {
			case "email":
				p = f.book.Find(v, "", "")
			case "external_id":
				p = f.book.Find("", "", v)
			}
			if p != nil {
				data = append(data, contactJSON(p))
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"type": "list", "data": data, "total_count": len(data),
			"pages": map[string]any{"type": "pages", "page": 1, "per_page": 150, "total_pages": 1}})
	case r.Method == http.MethodPost && r.URL.Path == "/contacts":
		var q contactReq
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || (q.Email == "" && q.ExternalID == "") {
			f.WriteError(w, r, 400, 0)
			return
		}
		if f.book.Find(q.Email, "", q.ExternalID) != nil {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"type":"error.list","errors":[{"code":"conflict","message":"A contact matching those details already exists"}]}`)
			return
		}
		p := f.book.Create(q.Email, q.Phone, q.ExternalID)
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range q.CustomAttributes {
				p.Traits[k] = v
			}
		})
		json.NewEncoder(w).Encode(contactJSON(p))
	case r.Method == http.MethodPost && r.URL.Path == "/tags":
		var q struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Name == "" {
			f.WriteError(w, r, 400, 0)
			return
		}
		f.mu.Lock()
		id, ok := f.tags[strings.ToLower(q.Name)]
		if !ok {
			id = fmt.Sprint(7522900 + len(f.tags))
			f.tags[strings.ToLower(q.Name)] = id
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"type": "tag", "id": id, "name": q.Name})
	case r.Method == http.MethodPost && tagsRE.MatchString(r.URL.Path):
		p := f.book.ByID(tagsRE.FindStringSubmatch(r.URL.Path)[1])
		var q struct{ ID string }
		json.NewDecoder(r.Body).Decode(&q)
		name := f.tagName(q.ID)
		if p == nil || name == "" {
			f.WriteError(w, r, 404, 0)
			return
		}
		f.book.Set(p, func(p *connectortest.Person) { p.Lists[name] = true })
		json.NewEncoder(w).Encode(map[string]any{"type": "tag", "id": q.ID, "name": name})
	case r.Method == http.MethodDelete && untagRE.MatchString(r.URL.Path):
		m := untagRE.FindStringSubmatch(r.URL.Path)
		p, name := f.book.ByID(m[1]), f.tagName(m[2])
		tagged := false
		if p != nil {
			f.book.Set(p, func(p *connectortest.Person) { tagged = p.Lists[name]; delete(p.Lists, name) })
		}
		if !tagged {
			f.WriteError(w, r, 404, 0)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"type": "tag", "id": m[2], "name": name})
	case r.Method == http.MethodPut && updateRE.MatchString(r.URL.Path):
		p := f.book.ByID(updateRE.FindStringSubmatch(r.URL.Path)[1])
		var q contactReq
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || p == nil {
			f.WriteError(w, r, 404, 0)
			return
		}
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range q.CustomAttributes {
				p.Traits[k] = v
			}
		})
		json.NewEncoder(w).Encode(contactJSON(p))
	default:
		f.WriteError(w, r, 404, 0)
	}
}

func (f *fake) tagName(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, tid := range f.tags {
		if tid == id {
			return name
		}
	}
	return ""
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      intercom.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"tags": map[string]string{"vip": "VIP", "lapsed": "Lapsed buyers"}}
		},
		Secrets: connector.Secrets{"access_token": token},
		Lists:   map[string]string{"vip": "vip", "lapsed": "lapsed buyers"},
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpec("intercom/descriptions/2.15/api.intercom.io.yaml", connectortest.SpecOptions{})
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// Members without email are found and created by external_id.
func TestByExternalID(t *testing.T) {
	h := harness()
	h.Member = func(i int) connector.Member {
		m := connectortest.DefaultMember(i)
		m.Email = ""
		return m
	}
	connectortest.Run(t, h)
}
