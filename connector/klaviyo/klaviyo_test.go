package klaviyo_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/klaviyo"
)

const apiKey = "pk_test_123"

// fake answers like Klaviyo's JSON:API: profiles, profile-import and list
// relationships, errors as {"errors":[{status, code, title, detail}]}.
type fake struct {
	book *connectortest.Book
	t    testing.TB
}

func newFake(t *testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "01KLAV"}, t: t}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }
func (f *fake) Items(r *http.Request, body []byte) int {
	if strings.HasSuffix(r.URL.Path, "/relationships/profiles") {
		var q struct{ Data []any }
		json.Unmarshal(body, &q)
		return len(q.Data)
	}
	if r.URL.Path == "/api/profile-import" {
		return 1
	}
	return 0
}

var (
	filterRE  = regexp.MustCompile(`^any\((email|external_id|phone_number),(\[.*\])\)$`)
	listRE    = regexp.MustCompile(`^/api/lists/([^/]+)/relationships/profiles$`)
	membersRE = regexp.MustCompile(`^/api/lists/([^/]+)/profiles$`)
)

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	code, detail := map[int][2]string{
		400: {"invalid", "Invalid input."},
		401: {"not_authenticated", "Incorrect authentication credentials."},
		429: {"throttled", fmt.Sprintf("Request was throttled. Expected available in %d seconds.", int(retryAfter.Seconds()))},
		500: {"error", "A server error occurred."},
	}[status][0], ""
	if status == 429 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
		detail = fmt.Sprintf("Request was throttled. Expected available in %d seconds.", int(retryAfter.Seconds()))
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"id": "e1", "status": status, "code": code, "title": http.StatusText(status), "detail": detail, "source": map[string]any{"pointer": "/data/"},
	}}})
}

func (f *fake) profileJSON(p *connectortest.Person) map[string]any {
	return map[string]any{"type": "profile", "id": p.ID, "attributes": map[string]any{
		"email": p.Email, "external_id": p.UserID, "phone_number": p.Phone, "properties": p.Traits},
		"links": map[string]string{"self": "https://a.klaviyo.com/api/profiles/" + p.ID + "/"}}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Klaviyo-API-Key "+apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	if r.Header.Get("revision") == "" {
		f.WriteError(w, r, 400, 0)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/profiles":
		m := filterRE.FindStringSubmatch(r.URL.Query().Get("filter"))
		if m == nil {
			f.WriteError(w, r, 400, 0)
			return
		}
		var vals []string
		if err := json.Unmarshal([]byte(m[2]), &vals); err != nil || len(vals) > 100 {
			f.WriteError(w, r, 400, 0)
			return
		}
		data := []any{}
		for _, v := range vals {
			var p *connectortest.Person
			switch m[1] {
			case "email":
				p = f.book.Find(v, "", "")
			case "external_id":
				p = f.book.Find("", "", v)
			case "phone_number":
				p = f.book.Find("", v, "")
			}
			if p != nil {
				data = append(data, f.profileJSON(p))
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data, "links": map[string]any{"self": "https://a.klaviyo.com/api/profiles/"}})
	case r.Method == http.MethodPost && r.URL.Path == "/api/profile-import":
		var q struct {
			Data struct {
				Type       string
				Attributes struct {
					Email       string         `json:"email"`
					PhoneNumber string         `json:"phone_number"`
					ExternalID  string         `json:"external_id"`
					Properties  map[string]any `json:"properties"`
				}
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Data.Type != "profile" {
			f.WriteError(w, r, 400, 0)
			return
		}
		a := q.Data.Attributes
		status := http.StatusOK
		p := f.book.Find(a.Email, a.PhoneNumber, a.ExternalID)
		if p == nil {
			status = http.StatusCreated
		}
		p = f.book.Upsert(a.Email, a.PhoneNumber, a.ExternalID)
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range a.Properties {
				p.Traits[k] = v
			}
		})
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"data": f.profileJSON(p)})
	case r.Method == http.MethodGet && membersRE.MatchString(r.URL.Path):
		// get_profiles_for_list: pages of page[size] (at most 100), the
		// cursor an offset, the next page's URL in links.next.
		list := membersRE.FindStringSubmatch(r.URL.Path)[1]
		size, _ := strconv.Atoi(r.URL.Query().Get("page[size]"))
		if size <= 0 || size > 100 {
			size = 20
		}
		off, _ := strconv.Atoi(r.URL.Query().Get("page[cursor]"))
		people := f.book.People(list)
		data := []any{}
		for i := off; i < len(people) && i < off+size; i++ {
			pj := f.profileJSON(&people[i])
			pj["attributes"].(map[string]any)["joined_group_at"] = "2026-11-02T10:00:00+00:00"
			data = append(data, pj)
		}
		self := "https://a.klaviyo.com" + r.URL.Path
		links := map[string]any{"self": self}
		if off+size < len(people) {
			links["next"] = self + "?page%5Bcursor%5D=" + strconv.Itoa(off+size)
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data, "links": links})
	case listRE.MatchString(r.URL.Path) && (r.Method == http.MethodPost || r.Method == http.MethodDelete):
		list := listRE.FindStringSubmatch(r.URL.Path)[1]
		var q struct {
			Data []struct{ Type, ID string }
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Data) == 0 || len(q.Data) > 1000 {
			f.WriteError(w, r, 400, 0)
			return
		}
		for _, d := range q.Data {
			p := f.book.ByID(d.ID)
			if p == nil {
				f.WriteError(w, r, 400, 0)
				return
			}
			f.book.Set(p, func(p *connectortest.Person) { p.Lists[list] = r.Method == http.MethodPost })
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		f.WriteError(w, r, 400, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      klaviyo.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"lists": map[string]string{"vip": "Y6nRLr", "lapsed": "XyZ123"}}
		},
		Secrets: connector.Secrets{"api_key": apiKey},
		Lists:   map[string]string{"vip": "Y6nRLr", "lapsed": "XyZ123"},
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpec("klaviyo/openapi/stable.json", connectortest.SpecOptions{})
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// A member known only by user id or phone is found by that identifier.
func TestResolveByExternalIDAndPhone(t *testing.T) {
	h := harness()
	h.Member = func(i int) connector.Member {
		m := connectortest.DefaultMember(i)
		m.Email = ""
		if i%2 == 1 {
			m.UserID = ""
		}
		return m
	}
	connectortest.Run(t, h)
}

// BenchmarkDeliver1000 adds 1,000 existing profiles to a list: 10 lookups
// and one list call against the fake, without spec validation.
func BenchmarkDeliver1000(b *testing.B) {
	h := harness()
	fk := newFake(nil)
	srv := connectortest.NewServer(b, fk, nil)
	c, err := connector.New(klaviyo.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
	if err != nil {
		b.Fatal(err)
	}
	var cs []connector.Change
	for i := range 1000 {
		m := connectortest.DefaultMember(i)
		fk.Book().Upsert(m.Email, m.Phone, m.UserID)
		cs = append(cs, connector.Change{Op: connector.OpAdd, Member: m, Segment: "vip"})
	}
	for b.Loop() {
		for _, r := range c.Deliver(b.Context(), cs) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(len(srv.Requests()))/float64(b.N), "requests/op")
}
