package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	rudder "github.com/rudderlabs/analytics-go/v4"
	segment "github.com/segmentio/analytics-go/v3"
)

const gatewaySpec = "/work/shared/specs/rudderstack/gateway/openapi.yaml"

// specValidator checks every request against the RudderStack gateway spec
// (the Segment-compatible tracking API) before the handler sees it. The
// spec's responses are text/plain while ours are Segment's JSON, so only
// requests are checked.
type specValidator struct {
	t    *testing.T
	next http.Handler
	doc  *openapi3.T
	mu   sync.Mutex
	seen []string
	errs []string
}

func newSpecValidator(t *testing.T, next http.Handler) *specValidator {
	t.Helper()
	if _, err := os.Stat(gatewaySpec); err != nil {
		t.Skipf("gateway spec not available (%v); it ships in /work/shared/specs", err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(gatewaySpec)
	if err != nil {
		t.Fatal(err)
	}
	return &specValidator{t: t, next: next, doc: doc}
}

func (v *specValidator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	plain := body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			plain, _ = io.ReadAll(zr)
		}
	}
	// The router matches on the server URL, so point the spec at this server.
	v.mu.Lock()
	v.doc.Servers = openapi3.Servers{{URL: "http://" + r.Host}}
	router, err := gorillamux.NewRouter(v.doc)
	v.mu.Unlock()
	if err != nil {
		v.t.Errorf("router: %v", err)
	}
	vr := r.Clone(r.Context())
	vr.Body = io.NopCloser(bytes.NewReader(plain))
	vr.Header.Del("Content-Encoding")
	route, params, err := router.FindRoute(vr)
	v.mu.Lock()
	v.seen = append(v.seen, r.URL.Path)
	if err != nil {
		v.errs = append(v.errs, r.URL.Path+": "+err.Error())
	} else if err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}); err != nil {
		v.errs = append(v.errs, r.URL.Path+": "+err.Error())
	}
	v.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	v.next.ServeHTTP(w, r)
}

// The requests the official clients send, and the single-call bodies the
// tests use, conform to the published tracking API spec.
func TestRequestsConformToGatewaySpec(t *testing.T) {
	b := setupSegment(t, nil)
	v := newSpecValidator(t, b.h)
	srv := httptest.NewServer(v)
	defer srv.Close()

	sc, _ := segment.NewWithConfig(b.key, segment.Config{Endpoint: srv.URL, BatchSize: 10, Interval: time.Hour})
	sc.Enqueue(segment.Track{UserId: "u", Event: "Order Completed", Properties: segment.NewProperties().SetRevenue(10)})
	sc.Enqueue(segment.Identify{UserId: "u", Traits: segment.NewTraits().SetEmail("a@b.test")})
	sc.Close()
	rc, _ := rudder.NewWithConfig(b.key, rudder.Config{DataPlaneUrl: srv.URL, BatchSize: 10, Interval: time.Hour})
	rc.Enqueue(rudder.Page{UserId: "u", Name: "Home"})
	rc.Enqueue(rudder.Alias{UserId: "u", PreviousId: "a"})
	rc.Close()
	single := map[string]string{
		"/v1/track":    `{"userId":"u","event":"E","properties":{"a":1},"timestamp":"2025-01-01T00:00:00Z"}`,
		"/v1/identify": `{"userId":"u","traits":{"email":"a@b.test"},"context":{"traits":{"trait1":"x"}}}`,
		"/v1/alias":    `{"userId":"u","previousId":"a"}`,
		"/v1/group":    `{"userId":"u","groupId":"g","traits":{"name":"Acme"}}`,
		"/v1/page":     `{"anonymousId":"a","name":"Home","properties":{"url":"/"}}`,
		"/v1/screen":   `{"userId":"u","name":"Cart"}`,
	}
	for path, body := range single {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(b.key, "")
		if r := do(t, req); r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		t.Error(e)
	}
	if len(v.seen) != 2+len(single) {
		t.Errorf("validated %d requests (%v), want %d", len(v.seen), v.seen, 2+len(single))
	}
	if n := len(b.sink.unique()); n != 4+len(single) {
		t.Errorf("stored %d events, want %d", n, 4+len(single))
	}
}

// The validator is not vacuous: a batch that breaks the spec is caught.
func TestGatewaySpecCatchesBadBatch(t *testing.T) {
	b := setupSegment(t, nil)
	v := newSpecValidator(t, b.h)
	srv := httptest.NewServer(v)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/batch", strings.NewReader(`{"batch":"not an array"}`))
	req.Header.Set("Content-Type", "application/json")
	do(t, req)
	if len(v.errs) != 1 {
		t.Fatalf("errors %v, want one", v.errs)
	}
}
