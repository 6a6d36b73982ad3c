package braze_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/braze"
	"github.com/kiln-cdp/kiln/connector/connectortest"
)

const apiKey = "b7d3a8c4-0000-4000-8000-5f1e2d3c4b5a"

// fake answers like Braze's /users/track (from braze.com/docs: no spec is
// published): 201 {"message":"success","attributes_processed":n} with
// per-object "minor" errors by index, fatal errors as {"message","errors"},
// 429 with X-RateLimit-* headers (reset as Unix seconds).
type fake struct {
	book *connectortest.Book
	now  func() time.Time
}

func newFake(*testing.T) connectortest.Fake {
	return &fake{book: &connectortest.Book{Prefix: "braze-"}, now: time.Now}
}

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string { return nil }

func (f *fake) Items(r *http.Request, body []byte) int {
	var q struct{ Attributes []any }
	json.Unmarshal(body, &q)
	return len(q.Attributes)
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	msg := map[int]string{400: "Invalid request: attributes must be an array", 401: "Invalid API key: " + "xxx",
		429: "API rate limit reached", 500: "Internal server error"}[status]
	if status == 429 {
		w.Header().Set("X-RateLimit-Limit", "3000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(f.now().Add(retryAfter).Unix()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"message": msg})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		f.WriteError(w, r, 401, 0)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/users/track" {
		f.WriteError(w, r, 400, 0)
		return
	}
	var q struct {
		Attributes []map[string]any `json:"attributes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Attributes) > 75 {
		f.WriteError(w, r, 400, 0)
		return
	}
	var minor []any
	for i, a := range q.Attributes {
		ext, _ := a["external_id"].(string)
		email, _ := a["email"].(string)
		phone, _ := a["phone"].(string)
		if ext == "" && email == "" && phone == "" {
			minor = append(minor, map[string]any{"type": "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
				"input_array": "attributes", "index": i})
			continue
		}
		if v, ok := a["plan"].(string); ok && v == "reject-me" {
			minor = append(minor, map[string]any{"type": "Invalid value for attribute plan", "input_array": "attributes", "index": i})
			continue
		}
		p := f.book.Upsert(email, phone, ext)
		f.book.Set(p, func(p *connectortest.Person) {
			for k, v := range a {
				switch k {
				case "external_id", "email", "phone", "_update_existing_only":
				case "kiln_segments":
					op, _ := v.(map[string]any)
					for verb, names := range op {
						for _, n := range names.([]any) {
							p.Lists[n.(string)] = verb == "add"
						}
					}
				default:
					p.Traits[k] = v
				}
			}
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	resp := map[string]any{"message": "success", "attributes_processed": len(q.Attributes) - len(minor)}
	if len(minor) > 0 {
		resp["errors"] = minor
	}
	json.NewEncoder(w).Encode(resp)
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:         braze.ID,
		NewFake:    newFake,
		Config:     func() map[string]any { return map[string]any{} },
		Secrets:    connector.Secrets{"api_key": apiKey},
		Lists:      map[string]string{"vip": "vip", "lapsed": "lapsed"},
		AnySegment: true,
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// A "success" answer with a minor error fails only the object it names.
func TestMinorErrors(t *testing.T) {
	h := harness()
	srv := connectortest.NewServer(t, newFake(t), nil)
	c, _ := connector.New(braze.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
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
		t.Errorf("good objects failed: %v, %v", res[0].Err, res[2].Err)
	}
	if err := res[1].Err; err == nil || connector.Retryable(err) || kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("rejected object: %v", err)
	}
}

func TestBaseURLRequired(t *testing.T) {
	if _, err := connector.New(braze.ID, json.RawMessage(`{}`), connector.Secrets{"api_key": "k"}, nil); err == nil {
		t.Error("accepted a config without base_url")
	}
}
