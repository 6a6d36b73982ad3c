package ui

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/ingest"
	"github.com/kiln-cdp/kiln/journal"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// harness is a real Kiln server for the tests: SQLite in a temp dir, the
// engine, the tracking API at /v1/ and the UI at /ui/.
type harness struct {
	URL      string
	DB       *sqlite.DB
	Engine   *engine.Engine
	Journal  *journal.Journal
	UI       *Server
	Actions  *action.Service
	AdminKey string
	WriteKey string
	srv      *httptest.Server
}

// wakeSink writes through the journal and wakes the engine, as serve does.
type wakeSink struct {
	j *journal.Journal
	e *engine.Engine
}

func (s wakeSink) Write(ctx context.Context, evs []kiln.Event, rs []kiln.Reject) (int, error) {
	n, err := s.j.Write(ctx, evs, rs)
	s.e.Wake()
	return n, err
}

func newHarness(t testing.TB, path string) *harness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "kiln.db")
	}
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The action runtime as serve wires it, with fast retries and few
	// attempts so a failing receiver makes a dead letter quickly.
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	key, err := connector.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	acts := action.New(action.Config{Store: db, Key: key, Logger: log, Poll: 50 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAttempts: 2, Timeout: 2 * time.Second,
		DeliveryOptions: action.DeliveryOptions{AllowPrivate: true}}) // the receivers are on loopback
	eng, err := engine.New(engine.Config{Store: db, Logger: log, Poll: 50 * time.Millisecond, Planner: acts.Planner, OnTransitions: acts.OnTransitions})
	if err != nil {
		t.Fatal(err)
	}
	acts.SegmentExists = func(name string) bool {
		_, ok := (&Server{eng: eng}).findSegment(name)
		return ok
	}
	if err := acts.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	engCtx, cancel := context.WithCancel(ctx)
	actsDone := make(chan error, 1)
	go func() { actsDone <- acts.Run(engCtx) }()
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() { done <- eng.Run(engCtx, ready) }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	j := journal.New(db, journal.Options{})
	h := &harness{DB: db, Engine: eng, Journal: j, Actions: acts}
	if _, err := db.GetSource(ctx, "web"); err != nil {
		if _, err := api.CreateSource(ctx, db, "web", "segment", "", "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	_, h.AdminKey, err = api.CreateKey(ctx, db, kiln.AdminKey, "ui test", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, h.WriteKey, err = api.CreateKey(ctx, db, kiln.WriteKey, "ui test", "web", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h.UI = New(Config{Store: db, Engine: eng, Logger: log, Normalize: eng.Extractor().Normalize, Actions: acts})
	mux := http.NewServeMux()
	mux.Handle("/v1/", ingest.NewSegmentHandler(ingest.SegmentConfig{Sink: wakeSink{j, eng}, Auth: db, Logger: log, Identity: eng.Extractor()}))
	mux.Handle("/ui/", h.UI.Handler())
	h.srv = httptest.NewServer(mux)
	h.URL = h.srv.URL
	t.Cleanup(func() {
		h.srv.Close()
		j.Close()
		cancel()
		<-done
		<-actsDone
		db.Close()
	})
	return h
}

// write stores events through the journal and waits until the engine
// has processed them.
func (h *harness) write(t testing.TB, evs []kiln.Event) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < len(evs); i += 5000 {
		if _, err := h.Journal.Write(ctx, evs[i:min(i+5000, len(evs))], nil); err != nil {
			t.Fatal(err)
		}
	}
	h.settle(t)
}

// settle waits until the engine has processed everything in the log.
func (h *harness) settle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	last, err := h.DB.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Engine.Wake()
	if err := h.Engine.WaitFor(ctx, last); err != nil {
		t.Fatalf("waiting for the engine to process seq %d: %v", last, err)
	}
}

// order is a completed order event for a customer.
func order(email string, at time.Time, revenue float64, n int) kiln.Event {
	return kiln.Event{
		MessageID: email + "-order-" + at.Format(time.RFC3339Nano) + "-" + strings.Repeat("x", n),
		SourceID:  "web", Type: kiln.Track, Name: kiln.OrderCompleted,
		Anchor: "email:" + email, Timestamp: at, ReceivedAt: at,
		Properties: map[string]any{"revenue": revenue, "order_id": email + at.Format("20060102150405")},
		Context:    map[string]any{"traits": map[string]any{"email": email}},
	}
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects, so tests see them.
func (h *harness) client(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn posts the admin key and returns the signed-in client.
func (h *harness) signIn(t testing.TB) *http.Client {
	t.Helper()
	c := h.client(t)
	res, err := c.PostForm(h.URL+"/ui/login", url.Values{"key": {h.AdminKey}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in: got %d to %q, want 303 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	return c
}

func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
