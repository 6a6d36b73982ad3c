package segment_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/connector/connectortest"
	"github.com/kiln-cdp/kiln/connector/segment"
)

const writeKey = "2Dx1wLtEY1xn6nvGrsNZ3dIfc3S"

// fake is a Segment-compatible /v1/batch receiver. It applies the rules
// the RudderStack spec leaves out (userId or anonymousId, event on track,
// messageId, 32 KB per message, 500 KB per batch) and answers in plain
// text like RudderStack's gateway.
type fake struct {
	book *connectortest.Book
	mu   sync.Mutex
	ids  []string
}

func newFake(*testing.T) connectortest.Fake { return &fake{book: &connectortest.Book{Prefix: "p"}} }

func (f *fake) Book() *connectortest.Book { return f.book }
func (f *fake) IdempotencyKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

func (f *fake) Items(r *http.Request, body []byte) int {
	var q struct{ Batch []any }
	json.Unmarshal(body, &q)
	return len(q.Batch)
}

func (f *fake) WriteError(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	if status == 429 {
		w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, map[int]string{400: "Invalid request", 401: "Invalid Authorization Header",
		429: "Too Many Requests", 500: "Internal Server Error"}[status])
}

type message struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId"`
	AnonymousID string         `json:"anonymousId"`
	Event       string         `json:"event"`
	Traits      map[string]any `json:"traits"`
	Properties  struct {
		Segment string `json:"segment"`
		Version *int64 `json:"version"`
	} `json:"properties"`
	Context struct {
		Traits struct {
			Email string `json:"email"`
			Phone string `json:"phone"`
		} `json:"traits"`
	} `json:"context"`
	Timestamp time.Time `json:"timestamp"`
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(writeKey+":")) {
		f.WriteError(w, r, 401, 0)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/batch" {
		f.WriteError(w, r, 400, 0)
		return
	}
	var q struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if r.ContentLength > 500<<10 || json.NewDecoder(r.Body).Decode(&q) != nil || len(q.Batch) == 0 {
		f.WriteError(w, r, 400, 0)
		return
	}
	var msgs []message
	for _, raw := range q.Batch {
		var m message
		if len(raw) > 32<<10 || json.Unmarshal(raw, &m) != nil || m.MessageID == "" || m.Timestamp.IsZero() ||
			(m.UserID == "" && m.AnonymousID == "") || (m.Type == "track" && (m.Event == "" || m.Properties.Version == nil)) {
			f.WriteError(w, r, 400, 0)
			return
		}
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		f.mu.Lock()
		f.ids = append(f.ids, m.MessageID)
		f.mu.Unlock()
		email, _ := m.Traits["email"].(string)
		if email == "" {
			email = m.Context.Traits.Email
		}
		p := f.book.Upsert(email, m.Context.Traits.Phone, m.UserID)
		f.book.Set(p, func(p *connectortest.Person) {
			switch {
			case m.Type == "identify":
				for k, v := range m.Traits {
					p.Traits[k] = v
				}
			case m.Event == "Entered Segment":
				p.Lists[m.Properties.Segment] = true
			case m.Event == "Exited Segment":
				delete(p.Lists, m.Properties.Segment)
			}
		})
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "OK")
}

func harness() connectortest.Harness {
	return connectortest.Harness{
		ID:         segment.ID,
		NewFake:    newFake,
		Config:     func() map[string]any { return map[string]any{} },
		Secrets:    connector.Secrets{"write_key": writeKey},
		Lists:      map[string]string{"vip": "vip", "lapsed": "lapsed"},
		AnySegment: true,
		Spec: func() (connectortest.Validator, error) {
			return connectortest.LoadSpec("rudderstack/gateway/openapi.yaml", connectortest.SpecOptions{})
		},
	}
}

func TestSuite(t *testing.T) { connectortest.Run(t, harness()) }

// The messages carry what the receiver needs: identify with traits, track
// with segment and version, the transition time as timestamp, and a
// deterministic messageId when the change has no idempotency key.
func TestMessages(t *testing.T) {
	fk := newFake(t)
	srv := connectortest.NewServer(t, fk, nil)
	c, err := connector.New(segment.ID, harness().FullConfig(srv.URL, 0), connector.Secrets{"write_key": writeKey}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	m := connector.Member{ProfileID: "prof_9", Email: "ada@example.com", Traits: map[string]any{"plan": "gold"}}
	changes := []connector.Change{
		{Op: connector.OpUpsert, Member: m, At: at},
		{Op: connector.OpAdd, Member: m, Segment: "vip", Version: 4, At: at},
	}
	for _, r := range c.Deliver(t.Context(), changes) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want one batch", len(reqs))
	}
	var body struct {
		Batch []map[string]any
	}
	json.Unmarshal(reqs[0].Body, &body)
	id, tr := body.Batch[0], body.Batch[1]
	if id["type"] != "identify" || id["anonymousId"] != "prof_9" || id["traits"].(map[string]any)["plan"] != "gold" ||
		id["timestamp"] != "2026-11-02T09:30:00Z" {
		t.Errorf("identify: %v", id)
	}
	props := tr["properties"].(map[string]any)
	if tr["type"] != "track" || tr["event"] != "Entered Segment" || props["segment"] != "vip" || props["version"] != float64(4) {
		t.Errorf("track: %v", tr)
	}
	// Redelivering the same changes sends the same messageIds.
	c.Deliver(t.Context(), changes)
	var again struct{ Batch []map[string]any }
	json.Unmarshal(srv.Requests()[1].Body, &again)
	for i := range 2 {
		if again.Batch[i]["messageId"] != body.Batch[i]["messageId"] || !strings.HasPrefix(body.Batch[i]["messageId"].(string), "kiln-") {
			t.Errorf("message %d: messageId %v then %v", i, body.Batch[i]["messageId"], again.Batch[i]["messageId"])
		}
	}
}

// Batches stay under 500 KB and a message over 32 KB fails alone.
func TestSizeLimits(t *testing.T) {
	fk := newFake(t)
	srv := connectortest.NewServer(t, fk, nil)
	c, _ := connector.New(segment.ID, harness().FullConfig(srv.URL, 0), connector.Secrets{"write_key": writeKey}, srv.Client())
	big := strings.Repeat("x", 20<<10)
	var cs []connector.Change
	for i := range 60 {
		cs = append(cs, connector.Change{Op: connector.OpUpsert, Member: connector.Member{ProfileID: fmt.Sprint("p", i),
			Traits: map[string]any{"note": big}}})
	}
	cs = append(cs, connector.Change{Op: connector.OpUpsert, Member: connector.Member{ProfileID: "huge",
		Traits: map[string]any{"note": strings.Repeat("y", 40<<10)}}})
	res := c.Deliver(t.Context(), cs)
	for i, r := range res[:60] {
		if r.Err != nil {
			t.Fatalf("change %d: %v", i, r.Err)
		}
	}
	if err := res[60].Err; err == nil || connector.Retryable(err) {
		t.Errorf("41 KB message: got %v, want a permanent error", err)
	}
	for _, r := range srv.Requests() {
		if len(r.Body) > 500<<10 {
			t.Errorf("a batch of %d bytes", len(r.Body))
		}
	}
	if n := len(srv.Requests()); n < 3 {
		t.Errorf("60 messages of 20 KB went in %d requests", n)
	}
}

// BenchmarkDeliver1000 forwards 1,000 transitions (10 batches of 100).
func BenchmarkDeliver1000(b *testing.B) {
	fk := newFake(nil)
	srv := connectortest.NewServer(b, fk, nil)
	c, _ := connector.New(segment.ID, harness().FullConfig(srv.URL, 0), connector.Secrets{"write_key": writeKey}, srv.Client())
	var cs []connector.Change
	for i := range 1000 {
		cs = append(cs, connector.Change{Op: connector.OpAdd, Member: connectortest.DefaultMember(i), Segment: "vip", Version: 1,
			IdempotencyKey: fmt.Sprint("k", i)})
	}
	for b.Loop() {
		for _, r := range c.Deliver(b.Context(), cs) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
}
