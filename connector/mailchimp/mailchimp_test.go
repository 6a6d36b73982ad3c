package mailchimp_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/mailchimp"
)

const (
	apiKey   = "0123456789abcdef0123456789abcdef-us6"
	audience = "a1b2c3d4e5"
)

// fake answers like the Mailchimp Marketing API 3.0 (from
// mailchimp.com/developer: no spec could be obtained): static segments
// (tags) by name, batch add/remove ignoring non-members and listing them in
// errors, members by subscriber hash; errors as RFC 7807 problem documents;
// 429 without any rate-limit header (Mailchimp limits connections, not rate).
type fake struct {
	book *connectortest.Book
	mu   sync.Mutex
	segs map[int64]string // id -> tag name
}

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "m"}, segs: map[int64]string{}}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var (
	segRE        = regexp.MustCompile(`^/3.0/lists/` + audience + `/segments/(\d+)$`)
	segMembersRE = regexp.MustCompile(`^/3.0/lists/` + audience + `/segments/(\d+)/members$`)
	memberRE     = regexp.MustCompile(`^/3.0/lists/` + audience + `/members/([0-9a-f]{32})$`)
)

func (f *fake) Items(r *http.Request, body []byte) int {
	if segRE.MatchString(r.URL.Path) {
		var q struct {
			Add    []string `json:"members_to_add"`
			Remove []string `json:"members_to_remove"`
		}
		json.Unmarshal(body, &q)
		return len(q.Add) + len(q.Remove)
	}
	if memberRE.MatchString(r.URL.Path) {
		return 1
	}
	return 0
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) {
	e := map[int][2]string{
		400: {"Invalid Resource", "The resource submitted could not be validated."},
		401: {"API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."},
		404: {"Resource Not Found", "The requested resource could not be found."},
		429: {"Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."},
		500: {"Internal Server Error", "An unexpected internal error has occurred."},
	}[status]
	title, detail := e[0], e[1]
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "https://mailchimp.com/developer/marketing/docs/errors/",
		"title": title, "status": status, "detail": detail, "instance": "995c5cb0-3280-4a6e-808b-3b096d0bb219"})
}

func hash(email string) string {
	s := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(s[:])
}

func (f *fake) byHash(h string) *connectortest.Person {
	return f.book.Where(func(p *connectortest.Person) bool { return hash(p.Email) == h })
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" || pass != apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/3.0/lists/"+audience+"/segments":
		if r.URL.Query().Get("type") != "static" {
			f.WriteError(w, r, 400, 0)
			return
		}
		var segs []any
		f.mu.Lock()
		for id, name := range f.segs {
			segs = append(segs, map[string]any{"id": id, "name": name})
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"segments": segs, "total_items": len(segs)})
	case r.Method == http.MethodPost && r.URL.Path == "/3.0/lists/"+audience+"/segments":
		var q struct {
			Name          string
			StaticSegment []string `json:"static_segment"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Name == "" || q.StaticSegment == nil {
			f.WriteError(w, r, 400, 0)
			return
		}
		f.mu.Lock()
		id := int64(49380 + len(f.segs))
		f.segs[id] = q.Name
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": id, "name": q.Name, "type": "static", "member_count": 0, "list_id": audience})
	case r.Method == http.MethodGet && segMembersRE.MatchString(r.URL.Path):
		id, _ := strconv.ParseInt(segMembersRE.FindStringSubmatch(r.URL.Path)[1], 10, 64)
		f.mu.Lock()
		tag, ok := f.segs[id]
		f.mu.Unlock()
		if !ok {
			f.WriteError(w, r, 404, 0)
			return
		}
		count, _ := strconv.Atoi(r.URL.Query().Get("count"))
		if count <= 0 || count > 1000 {
			count = 10
		}
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		people := f.book.People(tag)
		members := []any{}
		for i := offset; i < len(people) && i < offset+count; i++ {
			members = append(members, map[string]any{"email_address": people[i].Email})
		}
		json.NewEncoder(w).Encode(map[string]any{"members": members, "total_items": len(people)})
	case r.Method == http.MethodPost && segRE.MatchString(r.URL.Path):
		id, _ := strconv.ParseInt(segRE.FindStringSubmatch(r.URL.Path)[1], 10, 64)
		f.mu.Lock()
		tag, ok := f.segs[id]
		f.mu.Unlock()
		var q struct {
			Add    []string `json:"members_to_add"`
			Remove []string `json:"members_to_remove"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || !ok || len(q.Add) > 500 || len(q.Remove) > 500 {
			f.WriteError(w, r, 400, 0)
			return
		}
		var notMembers []string
		added, removed := 0, 0
		apply := func(emails []string, in bool, n *int) {
			for _, e := range emails {
				p := f.book.Find(e, "", "")
				if p == nil {
					notMembers = append(notMembers, e)
					continue
				}
				f.book.Set(p, func(p *connectortest.Person) {
					if p.Lists[tag] != in {
						p.Lists[tag] = in
						*n++
					}
				})
			}
		}
		apply(q.Add, true, &added)
		apply(q.Remove, false, &removed)
		errs := []any{}
		if len(notMembers) > 0 {
			errs = append(errs, map[string]any{"email_addresses": notMembers, "error": "Email addresses do not belong to this list"})
		}
		json.NewEncoder(w).Encode(map[string]any{"members_added": []any{}, "members_removed": []any{}, "errors": errs,
			"total_added": added, "total_removed": removed, "error_count": len(notMembers)})
	case memberRE.MatchString(r.URL.Path) && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
		h := memberRE.FindStringSubmatch(r.URL.Path)[1]
		var q struct {
			EmailAddress string         `json:"email_address"`
			StatusIfNew  string         `json:"status_if_new"`
			MergeFields  map[string]any `json:"merge_fields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			f.WriteError(w, r, 400, 0)
			return
		}
		p := f.byHash(h)
		if p == nil && r.Method == http.MethodPatch {
			f.WriteError(w, r, 404, 0)
			return
		}
		if p == nil {
			if q.EmailAddress == "" || hash(q.EmailAddress) != h || q.StatusIfNew == "" {
				f.WriteError(w, r, 400, 0)
				return
			}
			p = f.book.Create(q.EmailAddress, "", "")
		}
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range q.MergeFields {
				p.Traits[k] = v
			}
		})
		json.NewEncoder(w).Encode(map[string]any{"id": h, "email_address": p.Email, "status": "subscribed", "list_id": audience})
	default:
		f.WriteError(w, r, 404, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      mailchimp.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"audience_id": audience, "tags": map[string]string{"vip": "VIP", "lapsed": "Lapsed"}}
		},
		Secrets:      connector.Secrets{"api_key": apiKey},
		BasePath:     "/3.0",
		Lists:        map[string]string{"vip": "VIP", "lapsed": "Lapsed"},
		MustExist:    true,
		Trait:        "PLAN",
		NoRetryAfter: true,
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// With status_if_new, add creates members Mailchimp does not have; without
// it, adding a non-member fails as not found and names the setting.
func TestStatusIfNew(t *testing.T) {
	h := harness()
	fk := newFake(t)
	srv := connectortest.NewServer(t, fk, nil)
	add := []connector.Change{{Op: connector.OpAdd, Segment: "vip", Member: connectortest.DefaultMember(7)}}

	c, _ := connector.New(mailchimp.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
	err := c.Deliver(t.Context(), add)[0].Err
	if kiln.ErrorCode(err) != kiln.ENotFound || connector.Retryable(err) || !strings.Contains(err.Error(), "status_if_new") {
		t.Fatalf("non-member without status_if_new: %v", err)
	}
	cfg := h.Config()
	cfg["status_if_new"] = "transactional"
	cfg["base_url"] = srv.URL + "/3.0"
	raw, _ := json.Marshal(cfg)
	c, err = connector.New(mailchimp.ID, raw, h.Secrets, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Deliver(t.Context(), add)[0].Err; err != nil {
		t.Fatal(err)
	}
	if !fk.Book().InList(add[0].Member, "VIP") {
		t.Error("the new member is not tagged")
	}
}

func TestDataCentreFromKey(t *testing.T) {
	h := harness()
	raw, _ := json.Marshal(h.Config())
	if _, err := connector.New(mailchimp.ID, raw, connector.Secrets{"api_key": "nodatacentre"}, nil); err == nil ||
		!strings.Contains(err.Error(), "data-centre") {
		t.Errorf("key without -dc: %v", err)
	}
}
