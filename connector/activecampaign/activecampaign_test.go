package activecampaign_test

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
	"github.com/kiln-cdp/kiln/connector/activecampaign"
	"github.com/kiln-cdp/kiln/connector/connectortest"
)

const token = "ac-test-token-0123456789abcdef"

// fake answers like ActiveCampaign's v3 API (from
// developers.activecampaign.com: no spec is published): contact sync and
// search, tags by substring search, contactTags; errors as
// {"errors":[{"title","detail","code"}]} or {"message"}; 429 with
// Retry-After.
type fake struct {
	book *connectortest.Book
	mu   sync.Mutex
	tags map[string]string // id -> name
}

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: ""}, tags: map[string]string{}}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	contactTagsRE = regexp.MustCompile(`^/api/3/contacts/([^/]+)/contactTags$`)
	deleteRE      = regexp.MustCompile(`^/api/3/contactTags/ct-([^-]+)-([^-]+)$`)
)

func (f *fake) Items(r *http.Request, _ []byte) int {
	if r.URL.Path == "/api/3/contactTags" || deleteRE.MatchString(r.URL.Path) || r.URL.Path == "/api/3/contact/sync" {
		return 1
	}
	return 0
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	if status == 429 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch status {
	case 400, 422:
		json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"title": "Email address is not valid.",
			"detail": "", "code": "email_invalid", "source": map[string]string{"pointer": "/data/attributes/email"}}}})
	default:
		json.NewEncoder(w).Encode(map[string]any{"message": map[int]string{401: "No Result found for User with id 0",
			404: "No Result found", 429: "Too Many Requests", 500: "Internal Server Error"}[status]})
	}
}

func (f *fake) tagName(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tags[id]
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Api-Token") != token {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/3/contact/sync":
		var q struct {
			Contact struct {
				Email, Phone, FirstName string
				FieldValues             []struct{ Field, Value string }
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || !strings.Contains(q.Contact.Email, "@") {
			f.WriteError(w, r, 422, 0)
			return
		}
		status := http.StatusOK
		if f.book.Find(q.Contact.Email, "", "") == nil {
			status = http.StatusCreated
		}
		p := f.book.Upsert(q.Contact.Email, q.Contact.Phone, "")
		f.book.Set(p, func(p *connectortest.Person) {
			for _, fv := range q.Contact.FieldValues {
				p.Traits[fv.Field] = fv.Value
			}
		})
		w.WriteHeader(status)
		enc.Encode(map[string]any{"contact": map[string]any{"id": p.ID, "email": p.Email}, "fieldValues": []any{}})
	case r.Method == http.MethodGet && r.URL.Path == "/api/3/contacts":
		contacts := []any{}
		if p := f.book.Find(r.URL.Query().Get("email"), "", ""); p != nil {
			contacts = append(contacts, map[string]any{"id": p.ID, "email": p.Email})
		}
		enc.Encode(map[string]any{"contacts": contacts, "meta": map[string]any{"total": fmt.Sprint(len(contacts))}})
	case r.Method == http.MethodGet && r.URL.Path == "/api/3/tags":
		search := strings.ToLower(r.URL.Query().Get("search"))
		tags := []any{}
		f.mu.Lock()
		for id, name := range f.tags {
			if strings.Contains(strings.ToLower(name), search) {
				tags = append(tags, map[string]any{"id": id, "tag": name, "tagType": "contact"})
			}
		}
		f.mu.Unlock()
		enc.Encode(map[string]any{"tags": tags})
	case r.Method == http.MethodPost && r.URL.Path == "/api/3/tags":
		var q struct{ Tag struct{ Tag, TagType string } }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Tag.Tag == "" || q.Tag.TagType != "contact" {
			f.WriteError(w, r, 422, 0)
			return
		}
		f.mu.Lock()
		id := fmt.Sprint(20 + len(f.tags))
		f.tags[id] = q.Tag.Tag
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		enc.Encode(map[string]any{"tag": map[string]any{"id": id, "tag": q.Tag.Tag, "tagType": "contact"}})
	case r.Method == http.MethodPost && r.URL.Path == "/api/3/contactTags":
		var q struct{ ContactTag struct{ Contact, Tag string } }
		json.NewDecoder(r.Body).Decode(&q)
		p, name := f.book.ByID(q.ContactTag.Contact), f.tagName(q.ContactTag.Tag)
		if p == nil || name == "" {
			f.WriteError(w, r, 422, 0)
			return
		}
		f.book.Set(p, func(p *connectortest.Person) { p.Lists[name] = true })
		w.WriteHeader(http.StatusCreated)
		enc.Encode(map[string]any{"contactTag": map[string]any{"contact": p.ID, "tag": q.ContactTag.Tag,
			"id": "ct-" + p.ID + "-" + q.ContactTag.Tag}})
	case r.Method == http.MethodGet && contactTagsRE.MatchString(r.URL.Path):
		p := f.book.ByID(contactTagsRE.FindStringSubmatch(r.URL.Path)[1])
		if p == nil {
			f.WriteError(w, r, 404, 0)
			return
		}
		cts := []any{}
		f.mu.Lock()
		for id, name := range f.tags {
			if f.book.InList(connector.Member{Email: p.Email}, name) {
				cts = append(cts, map[string]any{"id": "ct-" + p.ID + "-" + id, "contact": p.ID, "tag": id})
			}
		}
		f.mu.Unlock()
		enc.Encode(map[string]any{"contactTags": cts})
	case r.Method == http.MethodDelete && deleteRE.MatchString(r.URL.Path):
		m := deleteRE.FindStringSubmatch(r.URL.Path)
		p, name := f.book.ByID(m[1]), f.tagName(m[2])
		if p == nil || name == "" {
			f.WriteError(w, r, 404, 0)
			return
		}
		f.book.Set(p, func(p *connectortest.Person) { delete(p.Lists, name) })
		enc.Encode(map[string]any{})
	default:
		f.WriteError(w, r, 404, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      activecampaign.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			// "VIP" is a substring of "VIP lapsed": the exact-name lookup matters.
			return map[string]any{"tags": map[string]string{"vip": "VIP", "lapsed": "VIP lapsed"}, "fields": map[string]string{"plan": "7"}}
		},
		Secrets: connector.Secrets{"api_token": token},
		Lists:   map[string]string{"vip": "VIP", "lapsed": "VIP lapsed"},
		Trait:   "7",
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }
