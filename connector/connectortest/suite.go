// Package connectortest is the suite every connector passes: it runs a
// connector against a fake of its vendor (an httptest server answering in
// the vendor's documented shapes, including its rate-limit and error
// responses) and validates every request the fake receives against the
// vendor's API description in shared/specs when one exists.
//
// Spec validation skips with a message when shared/specs is absent; the
// fake-server checks still run.
package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// Fake is a vendor's fake API.
type Fake interface {
	http.Handler
	// WriteError answers r the way the vendor does with status (429, 500,
	// 400 or 401); for 429 the answer tells the client to wait retryAfter
	// in the vendor's own way (Retry-After, a reset header, a cost budget).
	WriteError(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration)
	// Items is the number of members r carries (0 for lookups).
	Items(r *http.Request, body []byte) int
	// Book is the fake's contacts.
	Book() *Book
	// IdempotencyKeys returns the deduplication keys received, nil when the
	// vendor has none.
	IdempotencyKeys() []string
}

// Harness describes one connector for Run.
type Harness struct {
	ID      string // registry id
	NewFake func(t *testing.T) Fake
	// Config returns the vendor-specific config; Run adds base_url,
	// batch_size and requests_per_second.
	Config  func() map[string]any
	Secrets connector.Secrets
	// BasePath is appended to the fake's URL for base_url (Brevo's "/v3").
	BasePath string
	// Lists maps the Kiln segments the config names to the key the fake
	// stores membership under (a list id, a tag name).
	Lists map[string]string
	// MustExist seeds the fake with every member before adding, for
	// vendors whose membership calls need an existing contact; the suite
	// then also checks that adding an unknown contact fails permanently.
	MustExist bool
	// Member makes the i-th test member; nil uses email, user id and phone.
	Member func(i int) connector.Member
	// Trait is the name the fake stores the upserted trait "plan" under
	// ("" for "plan"); Upsert is skipped when the Doc does not list it.
	Trait string
	// Spec loads the spec to validate against; nil when the vendor has none.
	Spec func() (Validator, error)
	// AnySegment says the connector needs no per-segment mapping (the
	// forwarder sends every segment's events).
	AnySegment bool
	// NoRetryAfter says the vendor's 429 carries no wait (Mailchimp), so
	// RetryAfter must be 0 and the outbox's backoff decides.
	NoRetryAfter bool
	// BatchSize is the batch_size used; 0 means 3.
	BatchSize int
}

// Recorded is one request the fake received.
type Recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	Items               int
}

// Server wraps a fake: it records requests, validates them against the
// spec, and injects failures.
type Server struct {
	*httptest.Server
	Fake Fake
	t    testing.TB
	spec Validator

	mu      sync.Mutex
	reqs    []Recorded
	invalid []string
	// badAnswers are fake responses that break the spec: a bug in the
	// fake, which would make the suite test against the wrong behaviour.
	badAnswers []string
	validated  int
	fault      int // HTTP status to answer with; -1 hangs until the client gives up
	retry      time.Duration
}

// NewServer starts fake behind a recording, validating server.
func NewServer(t testing.TB, fake Fake, spec Validator) *Server {
	s := &Server{Fake: fake, t: t, spec: spec}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
		Items: s.Fake.Items(r, body)}
	var verr error
	if s.spec != nil {
		verr = s.spec.Validate(r, body)
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	if s.spec != nil {
		s.validated++
		if verr != nil {
			s.invalid = append(s.invalid, fmt.Sprintf("%v\n    body: %s", verr, clip(body)))
		}
	}
	fault, retry := s.fault, s.retry
	s.mu.Unlock()
	if fault < 0 {
		<-r.Context().Done()
		return
	}
	ans := httptest.NewRecorder()
	if fault > 0 {
		s.Fake.WriteError(ans, r, fault, retry)
	} else {
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.Fake.ServeHTTP(ans, r)
	}
	res := ans.Result()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(ans.Body.Bytes())
	if rv, ok := s.spec.(ResponseValidator); ok {
		if err := rv.ValidateResponse(r, body, res.StatusCode, res.Header, ans.Body.Bytes()); err != nil {
			s.mu.Lock()
			s.badAnswers = append(s.badAnswers, fmt.Sprintf("%s\n    answer: %s", firstLine(err), clip(ans.Body.Bytes())))
			s.mu.Unlock()
		}
	}
}

// firstLine keeps kin-openapi's reason and drops the schema dump after it.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// Fail makes every following request fail with status (0 clears; -1
// hangs until the client's context ends).
func (s *Server) Fail(status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.retry = status, retryAfter
}

// Requests returns what the fake received so far.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.reqs...)
}

// Reset forgets recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

// Invalid returns the spec violations seen.
func (s *Server) Invalid() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.invalid...)
}

// BadAnswers returns the fake's responses that broke the spec.
func (s *Server) BadAnswers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.badAnswers...)
}

// Validated is how many requests were checked against the spec.
func (s *Server) Validated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.validated
}

// DefaultMember is the i-th test member.
func DefaultMember(i int) connector.Member {
	return connector.Member{
		ProfileID: fmt.Sprintf("prof_%d", i),
		Email:     fmt.Sprintf("Person%d@Example.com", i),
		UserID:    fmt.Sprintf("user-%d", i),
		Phone:     fmt.Sprintf("+4477009%05d", i),
	}
}

// env is one connector under test.
type env struct {
	h     Harness
	doc   connector.Doc
	srv   *Server
	conn  connector.Connector
	batch int
}

func (h Harness) member(i int) connector.Member {
	if h.Member != nil {
		return h.Member(i)
	}
	return DefaultMember(i)
}

// Config returns the full JSON config for a connector pointed at base.
func (h Harness) FullConfig(base string, batch int) json.RawMessage {
	cfg := map[string]any{}
	if h.Config != nil {
		cfg = h.Config()
	}
	cfg["base_url"] = base + h.BasePath
	if batch > 0 {
		cfg["batch_size"] = batch
	}
	// Unthrottled: the suite checks pacing separately, not per vendor.
	cfg["requests_per_second"] = 10000
	b, _ := json.Marshal(cfg)
	return b
}

func setup(t *testing.T, h Harness, spec Validator) *env {
	t.Helper()
	_, doc, ok := connector.Lookup(h.ID)
	if !ok {
		t.Fatalf("connector %q is not registered", h.ID)
	}
	e := &env{h: h, doc: doc, batch: h.BatchSize}
	if e.batch == 0 {
		e.batch = min(3, doc.MaxBatch)
	}
	e.srv = NewServer(t, h.NewFake(t), spec)
	c, err := connector.New(h.ID, h.FullConfig(e.srv.URL, e.batch), h.Secrets, e.srv.Client())
	if err != nil {
		t.Fatalf("New(%s): %v", h.ID, err)
	}
	e.conn = c
	t.Cleanup(func() {
		for _, msg := range e.srv.Invalid() {
			t.Errorf("request does not match the vendor spec: %s", msg)
		}
		for _, msg := range e.srv.BadAnswers() {
			t.Errorf("the fake answered unlike the vendor spec: %s", msg)
		}
	})
	return e
}

func (e *env) changes(op connector.Op, seg string, from, to int) []connector.Change {
	var cs []connector.Change
	for i := from; i < to; i++ {
		cs = append(cs, connector.Change{Op: op, Member: e.h.member(i), Segment: seg, Version: 3,
			At: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), IdempotencyKey: fmt.Sprintf("%s-%s-%d", op, seg, i)})
	}
	return cs
}

func (e *env) seed(from, to int) {
	for i := from; i < to; i++ {
		m := e.h.member(i)
		e.srv.Fake.Book().Upsert(m.Email, m.Phone, m.UserID)
	}
}

func (e *env) deliver(t *testing.T, ctx context.Context, cs []connector.Change) []connector.Result {
	t.Helper()
	res := e.conn.Deliver(ctx, cs)
	if len(res) != len(cs) {
		t.Fatalf("Deliver returned %d results for %d changes", len(res), len(cs))
	}
	return res
}

func mustOK(t *testing.T, what string, res []connector.Result) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: change %d: %v", what, i, r.Err)
		}
	}
}

// segments returns the harness's segments in a stable order.
func (h Harness) segments() []string {
	var s []string
	for k := range h.Lists {
		s = append(s, k)
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// Run runs the shared suite for one connector.
func Run(t *testing.T, h Harness) {
	var spec Validator
	var specErr error
	if h.Spec != nil {
		spec, specErr = h.Spec()
		if specErr != nil && !errors.Is(specErr, ErrNoSpecs) {
			t.Fatalf("loading the spec: %v", specErr)
		}
		if specErr != nil {
			spec = nil // not a typed nil *OpenAPI inside the interface
		}
	}
	t.Run("spec", func(t *testing.T) {
		switch {
		case h.Spec == nil:
			t.Skipf("%s publishes no spec we may use: requests are checked against the fake only (see docs/CONNECTORS.md)", h.ID)
		case specErr != nil:
			t.Skipf("spec validation skipped: %v", specErr)
		}
		// The other subtests validate every request; this one proves the
		// validator rejects a request that breaks the spec.
		r := httptest.NewRequest(http.MethodPost, "/no/such/operation/in/any/spec", strings.NewReader("{}"))
		if err := spec.Validate(r, []byte("{}")); err == nil {
			t.Fatal("the validator accepted a request to an operation the spec does not have")
		}
	})
	if spec == nil && h.Spec != nil {
		t.Logf("spec validation skipped: %v", specErr)
	}
	segs := h.segments()
	if len(segs) == 0 {
		t.Fatal("harness names no segments")
	}

	t.Run("doc", func(t *testing.T) {
		_, doc, _ := connector.Lookup(h.ID)
		if doc.Name == "" || doc.Summary == "" || len(doc.Ops) == 0 || doc.MaxBatch < 1 || doc.Rate.PerSecond <= 0 {
			t.Fatalf("incomplete doc: %+v", doc)
		}
		srv := NewServer(t, h.NewFake(t), nil)
		cfg := map[string]any{}
		if h.Config != nil {
			cfg = h.Config()
		}
		cfg["base_url"] = srv.URL + h.BasePath
		raw, _ := json.Marshal(cfg)
		c, err := connector.New(h.ID, raw, h.Secrets, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxBatch() != doc.MaxBatch {
			t.Errorf("MaxBatch() = %d without batch_size, doc says %d", c.MaxBatch(), doc.MaxBatch)
		}
		if c.RateLimit() != doc.Rate {
			t.Errorf("RateLimit() = %v, doc says %v", c.RateLimit(), doc.Rate)
		}
	})

	t.Run("config", func(t *testing.T) {
		_, doc, _ := connector.Lookup(h.ID)
		_, err := connector.New(h.ID, json.RawMessage(`{}`), h.Secrets, nil)
		if len(doc.Required) > 0 {
			if err == nil {
				t.Fatal("an empty config was accepted")
			}
			for _, f := range doc.Required {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name required field %s", err, f)
				}
			}
		}
		cfg := h.Config()
		cfg["base_url"] = "http://127.0.0.1:1" + h.BasePath
		cfg["no_such_field"] = 1
		raw, _ := json.Marshal(cfg)
		if _, err := connector.New(h.ID, raw, h.Secrets, nil); err == nil || !strings.Contains(err.Error(), "no_such_field") {
			t.Errorf("unknown field: got %v, want an error naming no_such_field", err)
		}
		cfg = h.Config()
		cfg["base_url"] = "http://127.0.0.1:1" + h.BasePath
		cfg["batch_size"] = doc.MaxBatch + 1
		raw, _ = json.Marshal(cfg)
		if _, err := connector.New(h.ID, raw, h.Secrets, nil); err == nil || !strings.Contains(err.Error(), "batch_size") {
			t.Errorf("batch_size over the vendor limit: got %v, want an error naming batch_size", err)
		}
		if _, err := connector.New(h.ID, h.FullConfig("http://x", 0), connector.Secrets{}, nil); err == nil {
			t.Error("missing secrets were accepted")
		} else {
			for _, s := range doc.Secrets {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name secret %s", err, s)
				}
			}
		}
	})

	t.Run("membership", func(t *testing.T) {
		e := setup(t, h, spec)
		n := 2*e.batch + 1
		if h.MustExist {
			e.seed(0, n)
		}
		book := e.srv.Fake.Book()
		for _, seg := range segs {
			key := h.Lists[seg]
			mustOK(t, "add", e.deliver(t, t.Context(), e.changes(connector.OpAdd, seg, 0, n)))
			for i := 0; i < n; i++ {
				if !book.InList(h.member(i), key) {
					t.Fatalf("after add to %s: member %d is not on %s; on it: %v", seg, i, key, book.Members(key))
				}
			}
			// Again: adding a member twice is not an error.
			mustOK(t, "add again", e.deliver(t, t.Context(), e.changes(connector.OpAdd, seg, 0, 2)))
			mustOK(t, "remove", e.deliver(t, t.Context(), e.changes(connector.OpRemove, seg, 0, e.batch+1)))
			for i := 0; i < n; i++ {
				if in := book.InList(h.member(i), key); in != (i > e.batch) {
					t.Fatalf("after removing members 0..%d from %s: member %d on list = %v", e.batch, seg, i, in)
				}
			}
			// Removing a non-member, or someone the vendor has never seen,
			// succeeds: the state asked for holds.
			rm := e.changes(connector.OpRemove, seg, 0, 1)
			rm = append(rm, e.changes(connector.OpRemove, seg, 1000, 1001)...)
			mustOK(t, "remove non-members", e.deliver(t, t.Context(), rm))
		}
		maxItems := 0
		for _, r := range e.srv.Requests() {
			maxItems = max(maxItems, r.Items)
		}
		if maxItems > e.batch {
			t.Errorf("a request carried %d members, batch_size is %d", maxItems, e.batch)
		}
		if maxItems == 0 {
			t.Errorf("the fake counted no members in any request")
		}
	})

	t.Run("list", func(t *testing.T) {
		e := setup(t, h, spec)
		lister, ok := e.conn.(connector.Lister)
		if !ok {
			t.Skipf("%s cannot list membership (no connector.Lister): its reconciliation re-asserts Kiln's state", h.ID)
		}
		// More members than one page of the vendor's smallest page size
		// the fakes use (they page by batch_size when the vendor lets the
		// client choose), so the listing must follow its cursor.
		n := 2*e.batch + 1
		if h.MustExist {
			e.seed(0, n)
		}
		seg := segs[0]
		mustOK(t, "add", e.deliver(t, t.Context(), e.changes(connector.OpAdd, seg, 0, n)))
		mustOK(t, "remove", e.deliver(t, t.Context(), e.changes(connector.OpRemove, seg, 0, 1)))
		// A listed member is the test member it shares an identifier
		// with (vendors list the identifiers they keep).
		got := map[int]int{}
		pages, unknown := 0, 0
		err := lister.ListMembers(t.Context(), seg, func(ms []connector.Member) error {
			pages++
			for _, m := range ms {
				found := -1
				for i := range n {
					w := h.member(i)
					if m.Email != "" && strings.EqualFold(m.Email, w.Email) || m.UserID != "" && m.UserID == w.UserID || m.Phone != "" && m.Phone == w.Phone {
						found = i
						break
					}
				}
				if found < 0 {
					unknown++
					continue
				}
				got[found]++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ListMembers(%s): %v", seg, err)
		}
		if len(got) != n-1 || unknown > 0 || got[0] != 0 {
			t.Errorf("listed members %v and %d unknown ones, want members 1..%d", got, unknown, n-1)
		}
		for i := 1; i < n; i++ {
			if got[i] != 1 {
				t.Errorf("member %d listed %d times, want once", i, got[i])
			}
		}
		if !h.AnySegment {
			err := lister.ListMembers(t.Context(), "no-such-segment", func([]connector.Member) error { return nil })
			if err == nil || connector.Retryable(err) {
				t.Errorf("listing an unmapped segment: %v, want a permanent error", err)
			}
		}
		t.Logf("%d members in %d pages", len(got), pages)
	})

	t.Run("vendor-max", func(t *testing.T) {
		// Without batch_size, requests are filled up to the vendor's limit
		// and never beyond it.
		_, doc, _ := connector.Lookup(h.ID)
		if doc.MaxBatch > 1000 {
			t.Skipf("vendor limit %d is too large to fill in a unit test", doc.MaxBatch)
		}
		srv := NewServer(t, h.NewFake(t), spec)
		c, err := connector.New(h.ID, h.FullConfig(srv.URL, 0), h.Secrets, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		e := &env{h: h, doc: doc, srv: srv, conn: c, batch: doc.MaxBatch}
		n := doc.MaxBatch + 1
		if h.MustExist {
			e.seed(0, n)
		}
		mustOK(t, "add", e.deliver(t, t.Context(), e.changes(connector.OpAdd, segs[0], 0, n)))
		maxItems := 0
		for _, r := range srv.Requests() {
			maxItems = max(maxItems, r.Items)
		}
		switch {
		case maxItems > doc.MaxBatch:
			t.Errorf("a request carried %d members, over the vendor's limit %d", maxItems, doc.MaxBatch)
		case maxItems < doc.MaxBatch && h.Member == nil:
			// Uniform members fill a request; mixed identifier kinds may
			// split into smaller ones.
			t.Errorf("the fullest request carried %d members, want the vendor's limit %d", maxItems, doc.MaxBatch)
		}
		book := srv.Fake.Book()
		for _, i := range []int{0, n / 2, n - 1} {
			if !book.InList(h.member(i), h.Lists[segs[0]]) {
				t.Errorf("member %d of %d is not on the list", i, n)
			}
		}
		for _, msg := range srv.Invalid() {
			t.Errorf("request does not match the vendor spec: %s", msg)
		}
	})

	t.Run("mixed", func(t *testing.T) {
		e := setup(t, h, spec)
		if h.MustExist {
			e.seed(0, 4)
		}
		seg := segs[0]
		cs := e.changes(connector.OpAdd, seg, 0, 4)
		cs[1].Member = connector.Member{}
		cs = append(cs, connector.Change{Op: "frobnicate", Member: h.member(0), Segment: seg})
		cs = append(cs, connector.Change{Op: connector.OpRemove, Member: h.member(0)})
		bad := []int{1, 4, 5}
		if !h.AnySegment {
			cs = append(cs, connector.Change{Op: connector.OpAdd, Member: h.member(0), Segment: "not-configured"})
			bad = append(bad, 6)
		}
		res := e.deliver(t, t.Context(), cs)
		for _, i := range []int{0, 2, 3} {
			if res[i].Err != nil {
				t.Errorf("change %d failed beside bad changes: %v", i, res[i].Err)
			}
		}
		for _, i := range bad {
			if res[i].Err == nil || connector.Retryable(res[i].Err) || kiln.ErrorCode(res[i].Err) != kiln.EInvalid {
				t.Errorf("bad change %d: got %v, want a permanent invalid error", i, res[i].Err)
			}
		}
		if h.MustExist {
			res := e.deliver(t, t.Context(), e.changes(connector.OpAdd, seg, 500, 501))
			if err := res[0].Err; err == nil || connector.Retryable(err) {
				t.Errorf("adding a contact the vendor does not have: got %v, want a permanent error", err)
			}
		}
	})

	if _, doc, _ := connector.Lookup(h.ID); doc.Supports(connector.OpUpsert) {
		t.Run("upsert", func(t *testing.T) {
			env := setup(t, h, spec)
			if h.MustExist {
				env.seed(0, 2)
			}
			cs := env.changes(connector.OpUpsert, "", 0, 2)
			for i := range cs {
				cs[i].Member.Traits = map[string]any{"plan": fmt.Sprintf("gold-%d", i)}
			}
			mustOK(t, "upsert", env.deliver(t, t.Context(), cs))
			name := h.Trait
			if name == "" {
				name = "plan"
			}
			for i := range cs {
				v, ok := env.srv.Fake.Book().Trait(cs[i].Member, name)
				if !ok || v != fmt.Sprintf("gold-%d", i) {
					t.Errorf("member %d: trait %s = %v (%v), want gold-%d", i, name, v, ok, i)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		e := setup(t, h, spec)
		if h.MustExist {
			e.seed(0, 2)
		}
		cases := []struct {
			status    int
			code      string
			retryable bool
			wait      time.Duration
		}{
			{429, kiln.ERateLimited, true, 7 * time.Second},
			{500, kiln.EUnavailable, true, 0},
			{400, kiln.EInvalid, false, 0},
			{401, kiln.EUnauthorized, false, 0},
		}
		for _, c := range cases {
			e.srv.Fail(c.status, c.wait)
			if h.NoRetryAfter {
				c.wait = 0
			}
			res := e.deliver(t, t.Context(), e.changes(connector.OpAdd, segs[0], 0, 2))
			for i, r := range res {
				err := r.Err
				if err == nil {
					t.Errorf("HTTP %d: change %d succeeded", c.status, i)
					continue
				}
				if connector.Retryable(err) != c.retryable || kiln.ErrorCode(err) != c.code {
					t.Errorf("HTTP %d: got retryable=%v code=%s (%v), want retryable=%v code=%s",
						c.status, connector.Retryable(err), kiln.ErrorCode(err), err, c.retryable, c.code)
				}
				if got := connector.RetryAfter(err); got < c.wait-time.Second || got > c.wait+time.Second {
					t.Errorf("HTTP %d: RetryAfter = %s, want about %s", c.status, got, c.wait)
				}
				if !strings.Contains(err.Error(), h.ID) {
					t.Errorf("error %q does not name the connector", err)
				}
			}
		}
		e.srv.Fail(0, 0)
		mustOK(t, "after the vendor recovered", e.deliver(t, t.Context(), e.changes(connector.OpAdd, segs[0], 0, 2)))
	})

	t.Run("concurrent", func(t *testing.T) {
		// Connectors are shared by the outbox's workers: concurrent
		// Deliver calls (with -race) must neither race nor lose changes.
		e := setup(t, h, spec)
		if h.MustExist {
			e.seed(0, 8)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range e.conn.Deliver(t.Context(), e.changes(connector.OpAdd, segs[w%len(segs)], 2*w, 2*w+2)) {
					if r.Err != nil {
						errs <- r.Err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i := range 8 {
			if key := h.Lists[segs[(i/2)%len(segs)]]; !e.srv.Fake.Book().InList(h.member(i), key) {
				t.Errorf("member %d is not on %s after concurrent adds", i, key)
			}
		}
	})

	t.Run("network", func(t *testing.T) {
		e := setup(t, h, nil)
		e.srv.Close()
		for i, r := range e.deliver(t, t.Context(), e.changes(connector.OpAdd, segs[0], 0, 2)) {
			if r.Err == nil || !connector.Retryable(r.Err) {
				t.Errorf("server down: change %d: got %v, want a retryable error", i, r.Err)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		e := setup(t, h, spec)
		if h.MustExist {
			e.seed(0, 2)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for i, r := range e.deliver(t, ctx, e.changes(connector.OpAdd, segs[0], 0, 2)) {
			if !errors.Is(r.Err, context.Canceled) || !connector.Retryable(r.Err) {
				t.Errorf("cancelled before: change %d: got %v, want retryable context.Canceled", i, r.Err)
			}
		}
		if n := len(e.srv.Requests()); n != 0 {
			t.Errorf("%d requests sent on a cancelled context", n)
		}
		e.srv.Fail(-1, 0)
		ctx, cancel = context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := e.deliver(t, ctx, e.changes(connector.OpAdd, segs[0], 0, 2))
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Deliver took %s after its context ended", d)
		}
		for i, r := range res {
			if !errors.Is(r.Err, context.DeadlineExceeded) || !connector.Retryable(r.Err) {
				t.Errorf("vendor hangs: change %d: got %v, want retryable context.DeadlineExceeded", i, r.Err)
			}
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		_, doc, _ := connector.Lookup(h.ID)
		if doc.IdempotencyKey == "" {
			t.Skipf("%s has no idempotency key; its operations are idempotent (see docs/CONNECTORS.md)", h.ID)
		}
		e := setup(t, h, spec)
		cs := e.changes(connector.OpAdd, segs[0], 0, 3)
		mustOK(t, "add", e.deliver(t, t.Context(), cs))
		seen := map[string]bool{}
		for _, k := range e.srv.Fake.IdempotencyKeys() {
			seen[k] = true
		}
		for _, c := range cs {
			if !seen[c.IdempotencyKey] {
				t.Errorf("idempotency key %q was not sent (%s)", c.IdempotencyKey, doc.IdempotencyKey)
			}
		}
	})

	t.Run("spec-coverage", func(t *testing.T) {
		if spec == nil {
			t.Skip("no spec loaded")
		}
		e := setup(t, h, spec)
		if h.MustExist {
			e.seed(0, 1)
		}
		mustOK(t, "add", e.deliver(t, t.Context(), e.changes(connector.OpAdd, segs[0], 0, 1)))
		if e.srv.Validated() == 0 {
			t.Fatal("no request was validated against the spec")
		}
	})
}
