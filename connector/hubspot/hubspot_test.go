package hubspot_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/hubspot"
)

const token = "pat-na1-11111111-2222-3333-4444-555555555555"

// fake answers like HubSpot's CRM v3 (from developers.hubspot.com: no spec
// may be used): contacts batch upsert/read keyed by email, list
// memberships add/remove by record id; errors as
// {"status":"error","message","correlationId","category"}; 429 without
// Retry-After but with X-HubSpot-RateLimit-* headers.
type fake struct{ book *connectortest.Book }

func newFake(*testing.T) connectortest.Fake { return &fake{book: &connectortest.Book{Prefix: "5120"}} }

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

var memberRE = regexp.MustCompile(`^/crm/v3/lists/([^/]+)/memberships/(add|remove)$`)

func (f *fake) Items(r *http.Request, body []byte) int {
	if memberRE.MatchString(r.URL.Path) {
		var ids []string
		json.Unmarshal(body, &ids)
		return len(ids)
	}
	var q struct{ Inputs []any }
	json.Unmarshal(body, &q)
	return len(q.Inputs)
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	body := map[string]any{"status": "error", "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"}
	switch status {
	case 400:
		body["message"], body["category"] = "Property values were not valid", "VALIDATION_ERROR"
	case 401:
		body["message"], body["category"] = "Authentication credentials not found.", "INVALID_AUTHENTICATION"
	case 404:
		body["message"], body["category"] = "resource not found", "OBJECT_NOT_FOUND"
	case 429:
		body["message"], body["errorType"], body["policyName"] = "You have reached your ten_secondly_rolling limit.", "RATE_LIMIT", "TEN_SECONDLY_ROLLING"
		w.Header().Set("X-HubSpot-RateLimit-Max", "100")
		w.Header().Set("X-HubSpot-RateLimit-Remaining", "0")
		w.Header().Set("X-HubSpot-RateLimit-Interval-Milliseconds", fmt.Sprint(retryAfter.Milliseconds()))
	default:
		body["message"], body["category"] = "internal error", "INTERNAL_ERROR"
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func result(p *connectortest.Person) map[string]any {
	props := map[string]any{"email": p.Email, "hs_object_id": p.ID}
	for k, v := range p.Traits {
		props[k] = v
	}
	return map[string]any{"id": p.ID, "properties": props, "archived": false,
		"createdAt": "2026-11-02T10:00:00Z", "updatedAt": "2026-11-02T10:00:00Z"}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		f.WriteError(w, r, 401, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/crm/v3/objects/contacts/batch/upsert":
		var q struct {
			Inputs []struct {
				IDProperty string `json:"idProperty"`
				ID         string
				Properties map[string]string
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Inputs) == 0 || len(q.Inputs) > 100 {
			f.WriteError(w, r, 400, 0)
			return
		}
		seen := map[string]bool{}
		var results []any
		for _, in := range q.Inputs {
			if in.IDProperty != "email" || in.ID == "" || seen[in.ID] {
				f.WriteError(w, r, 400, 0)
				return
			}
			seen[in.ID] = true
			p := f.book.Upsert(in.ID, "", "")
			f.book.Set(p, func(p *connectortest.Person) {
				for k, v := range in.Properties {
					if k != "email" {
						p.Traits[k] = v
					}
				}
			})
			results = append(results, result(p))
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "COMPLETE", "results": results,
			"startedAt": "2026-11-02T10:00:00Z", "completedAt": "2026-11-02T10:00:01Z"})
	case r.Method == http.MethodPost && r.URL.Path == "/crm/v3/objects/contacts/batch/read":
		var q struct {
			IDProperty string `json:"idProperty"`
			Inputs     []struct{ ID string }
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.IDProperty != "email" || len(q.Inputs) > 100 {
			f.WriteError(w, r, 400, 0)
			return
		}
		results, errs := []any{}, []any{}
		for _, in := range q.Inputs {
			if p := f.book.Find(in.ID, "", ""); p != nil {
				results = append(results, result(p))
			} else {
				errs = append(errs, map[string]any{"status": "error", "category": "OBJECT_NOT_FOUND",
					"message": "Could not get some CONTACT objects, they may be deleted or not exist.",
					"context": map[string]any{"ids": []string{in.ID}}})
			}
		}
		status := http.StatusOK
		if len(errs) > 0 {
			status = http.StatusMultiStatus
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"status": "COMPLETE", "results": results, "errors": errs, "numErrors": len(errs)})
	case r.Method == http.MethodPut && memberRE.MatchString(r.URL.Path):
		m := memberRE.FindStringSubmatch(r.URL.Path)
		var ids []string
		if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
			f.WriteError(w, r, 400, 0)
			return
		}
		added, removed, missing := []string{}, []string{}, []string{}
		for _, id := range ids {
			p := f.book.ByID(id)
			if p == nil {
				missing = append(missing, id)
				continue
			}
			f.book.Set(p, func(p *connectortest.Person) {
				if m[2] == "add" && !p.Lists[m[1]] {
					p.Lists[m[1]] = true
					added = append(added, id)
				} else if m[2] == "remove" && p.Lists[m[1]] {
					delete(p.Lists, m[1])
					removed = append(removed, id)
				}
			})
		}
		json.NewEncoder(w).Encode(map[string]any{"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing})
	default:
		f.WriteError(w, r, 404, 0)
	}
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:      hubspot.ID,
		NewFake: newFake,
		Config: func() map[string]any {
			return map[string]any{"lists": map[string]string{"vip": "123", "lapsed": "456"}}
		},
		Secrets: connector.Secrets{"access_token": token},
		Lists:   map[string]string{"vip": "123", "lapsed": "456"},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }
