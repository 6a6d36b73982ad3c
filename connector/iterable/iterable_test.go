package iterable_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/iterable"
)

const apiKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

// fake answers like Iterable's API (shapes from its Swagger file): list
// subscribe/unsubscribe and users/bulkUpdate answer 200 with successCount,
// failCount and failedUpdates; errors as {"msg","code","params"}; 429 with
// code RateLimitExceeded and no wait.
type fake struct{ book *connectortest.Book }

func newFake(*testing.T) connectortest.Fake { return &fake{book: &connectortest.Book{Prefix: "it"}} }

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

type user struct {
	Email      string         `json:"email"`
	UserID     string         `json:"userId"`
	DataFields map[string]any `json:"dataFields"`
}

func (f *fake) Items(_ *http.Request, body []byte) int {
	var q struct{ Subscribers, Users []any }
	json.Unmarshal(body, &q)
	return len(q.Subscribers) + len(q.Users)
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) {
	code := map[int]string{400: "BadParams", 401: "BadApiKey", 429: "RateLimitExceeded", 500: "GenericError"}[status]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"msg": "request failed: " + code, "code": code, "params": map[string]any{}})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Api-Key") != apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/api/lists/getUsers" {
		// One email per line (a user id for users without one), text/plain.
		id, err := strconv.ParseInt(r.URL.Query().Get("listId"), 10, 64)
		if err != nil || id <= 0 {
			f.WriteError(w, r, 400, 0)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		for _, p := range f.book.People(strconv.FormatInt(id, 10)) {
			if p.Email != "" {
				fmt.Fprintln(w, p.Email)
			} else {
				fmt.Fprintln(w, p.UserID)
			}
		}
		return
	}
	var q struct {
		ListID      int64  `json:"listId"`
		Subscribers []user `json:"subscribers"`
		Users       []user `json:"users"`
		Channel     *bool  `json:"channelUnsubscribe"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&q) != nil || q.Channel != nil {
		f.WriteError(w, r, 400, 0)
		return
	}
	list := strconv.FormatInt(q.ListID, 10)
	ok, notFound, invalid := 0, []string{}, []string{}
	switch r.URL.Path {
	case "/api/lists/subscribe", "/api/lists/unsubscribe":
		if q.ListID == 0 {
			f.WriteError(w, r, 400, 0)
			return
		}
		for _, u := range q.Subscribers {
			if (u.Email == "") == (u.UserID == "") {
				invalid = append(invalid, u.Email+u.UserID)
				continue
			}
			if r.URL.Path == "/api/lists/subscribe" {
				p := f.book.Upsert(u.Email, "", u.UserID)
				f.book.Set(p, func(p *connectortest.Person) { p.Lists[list] = true })
			} else if p := f.book.Find(u.Email, "", u.UserID); p != nil {
				f.book.Set(p, func(p *connectortest.Person) { delete(p.Lists, list) })
			} else {
				notFound = append(notFound, u.Email)
				continue
			}
			ok++
		}
	case "/api/users/bulkUpdate":
		for _, u := range q.Users {
			if v, _ := u.DataFields["plan"].(string); v == "reject-me" {
				invalid = append(invalid, u.Email)
				continue
			}
			p := f.book.Upsert(u.Email, "", u.UserID)
			f.book.Set(p, func(p *connectortest.Person) {
				for k, v := range u.DataFields {
					p.Traits[k] = v
				}
			})
			ok++
		}
	default:
		f.WriteError(w, r, 400, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"successCount": ok, "failCount": len(notFound) + len(invalid),
		"invalidEmails": []string{}, "invalidUserIds": []string{},
		"failedUpdates": map[string]any{"notFoundEmails": notFound, "invalidDataEmails": invalid}})
}

// specOps are the operations kept when converting the Swagger 2.0 file.
var specOps = []string{"POST /api/lists/subscribe", "POST /api/lists/unsubscribe", "POST /api/users/bulkUpdate", "GET /api/lists/getUsers"}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      iterable.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"lists": map[string]int64{"vip": 1001, "lapsed": 1002}}
		},
		Secrets:      connector.Secrets{"api_key": apiKey},
		Lists:        map[string]string{"vip": "1001", "lapsed": "1002"},
		NoRetryAfter: true,
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpec("iterable/api-docs.json", connectortest.SpecOptions{Operations: specOps})
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// Users Iterable reports as failed fail alone.
func TestPartialFailure(t *testing.T) {
	h := harness()
	srv := connectortest.NewServer(t, newFake(t), nil)
	c, _ := connector.New(iterable.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
	var cs []connector.Change
	for i := range 3 {
		m := connectortest.DefaultMember(i)
		m.Traits = map[string]any{"plan": "gold"}
		if i == 1 {
			m.Traits["plan"] = "reject-me"
		}
		cs = append(cs, connector.Change{Op: connector.OpUpsert, Member: m})
	}
	res := c.Deliver(t.Context(), cs)
	if res[0].Err != nil || res[2].Err != nil {
		t.Errorf("good users failed: %v, %v", res[0].Err, res[2].Err)
	}
	if err := res[1].Err; kiln.ErrorCode(err) != kiln.EInvalid || connector.Retryable(err) {
		t.Errorf("rejected user: %v", err)
	}
}
