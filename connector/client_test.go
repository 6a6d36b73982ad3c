package connector_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

func TestClientDo(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Key") != "k" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"bad key"}`)
			return
		}
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `{"id":"7"}`)
		case "/garbled":
			fmt.Fprint(w, `{"id":`)
		case "/busy":
			w.Header().Set("Retry-After", "12")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/limited":
			w.Header().Set("X-Reset", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":[{"detail":"slow down"}]}`)
		}
	}))
	defer srv.Close()
	c := &connector.Client{Vendor: "demo", HTTP: srv.Client(), Base: srv.URL,
		Prepare: func(r *http.Request) { r.Header.Set("X-Key", "k") },
		Wait: func(h http.Header, now time.Time) time.Duration {
			if d := connector.ParseRetryAfter(h, now); d > 0 {
				return d
			}
			return connector.SecondsAfter(h, "X-Reset")
		}}
	var out struct{ ID string }
	if _, err := c.Do(t.Context(), connector.Request{Method: "POST", Path: "/ok", Body: map[string]int{"a": 1}}, &out); err != nil || out.ID != "7" {
		t.Fatalf("ok: %v %+v", err, out)
	}
	_, err := c.Do(t.Context(), connector.Request{Method: "POST", Path: "/garbled", Body: []byte(`{}`)}, &out)
	if !connector.Retryable(err) || kiln.ErrorCode(err) != kiln.EUnavailable {
		t.Errorf("unreadable 2xx: %v", err)
	}
	_, err = c.Do(t.Context(), connector.Request{Method: "POST", Path: "/busy", Body: []byte(`{}`), Route: "POST /busy"}, nil)
	if connector.RetryAfter(err) != 12*time.Second || connector.StatusOf(err) != 503 || err.Error() != "demo: POST /busy: HTTP 503: Service Unavailable (retry after 12s)" {
		t.Errorf("503: %v", err)
	}
	_, err = c.Do(t.Context(), connector.Request{Method: "POST", Path: "/limited", Body: []byte(`{}`)}, nil)
	if connector.RetryAfter(err) != 30*time.Second || kiln.ErrorMessage(err) != "slow down" {
		t.Errorf("429 with a vendor header: %v", err)
	}
	_, err = c.Do(t.Context(), connector.Request{Method: "GET", Path: "/ok"}, nil)
	if kiln.ErrorCode(err) != kiln.EUnauthorized || connector.Retryable(err) {
		t.Errorf("no body, so no content type, so the fake says 401: %v", err)
	}
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Message != "bad key" {
		t.Errorf("vendor message not kept: %#v", ce)
	}
}

// The client waits on its limiter before every request.
func TestClientPaces(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := &connector.Client{Vendor: "demo", HTTP: srv.Client(), Base: srv.URL,
		Limiter: connector.NewLimiter(connector.Rate{PerSecond: 40, Burst: 1})}
	start := time.Now()
	for range 5 {
		if _, err := c.Do(t.Context(), connector.Request{Method: "GET", Path: "/"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("5 requests at 40/s burst 1 took %s, want at least 100ms", d)
	}
}

// A *[]byte out takes a 2xx body as it is (text/plain listings); one too
// large to read whole is a permanent error, not a truncated listing.
func TestClientDoRaw(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/huge" {
			line := []byte("someone@example.com\n")
			for n := 0; n <= 9<<20; n += len(line) {
				w.Write(line)
			}
			return
		}
		fmt.Fprint(w, "a@example.com\nb@example.com\n")
	}))
	defer srv.Close()
	c := &connector.Client{Vendor: "demo", HTTP: srv.Client(), Base: srv.URL, Limiter: connector.NewLimiter(connector.Rate{PerSecond: 100, Burst: 10})}
	var raw []byte
	if _, err := c.Do(t.Context(), connector.Request{Method: "GET", Path: "/list"}, &raw); err != nil || string(raw) != "a@example.com\nb@example.com\n" {
		t.Fatalf("raw %q, %v", raw, err)
	}
	_, err := c.Do(t.Context(), connector.Request{Method: "GET", Path: "/huge"}, &raw)
	if err == nil || connector.Retryable(err) {
		t.Fatalf("a body over the limit: %v, want a permanent error", err)
	}
}
