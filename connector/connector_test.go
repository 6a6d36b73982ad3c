package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

func newKey(t *testing.T) (*connector.Key, string) {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	s := base64.StdEncoding.EncodeToString(raw)
	k, err := connector.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

func TestSealRoundTrip(t *testing.T) {
	k, _ := newKey(t)
	secrets := connector.Secrets{"api_key": "pk_live_abc", "site_id": "s1"}
	sealed, err := connector.SealSecrets(k, secrets, []byte("dest-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("pk_live_abc")) {
		t.Fatal("the sealed blob contains the plain secret")
	}
	got, err := connector.OpenSecrets(k, sealed, []byte("dest-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got["api_key"] != "pk_live_abc" || got["site_id"] != "s1" || len(got) != 2 {
		t.Fatalf("opened %v", got)
	}
	again, _ := connector.SealSecrets(k, secrets, []byte("dest-1"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same secrets are identical: the nonce is not random")
	}
}

func TestOpenDetectsTampering(t *testing.T) {
	k, _ := newKey(t)
	sealed, _ := connector.Seal(k, []byte("secret"), []byte("dest-1"))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		_, err := connector.Open(k, bad, []byte("dest-1"))
		if err == nil {
			t.Fatalf("flipping a bit of byte %d went unnoticed", i)
		}
		// The key id bytes (1..4) read as a wrong key; all others as tampering.
		if want := connector.ErrTampered; (i < 1 || i > 4) && !errors.Is(err, want) {
			t.Fatalf("byte %d: got %v, want %v", i, err, want)
		}
	}
	if _, err := connector.Open(k, sealed[:10], []byte("dest-1")); !errors.Is(err, connector.ErrTampered) {
		t.Errorf("truncated: got %v", err)
	}
	if _, err := connector.Open(k, sealed, []byte("dest-2")); !errors.Is(err, connector.ErrTampered) {
		t.Errorf("moved to another destination: got %v, want ErrTampered", err)
	}
}

func TestOpenWrongKey(t *testing.T) {
	k1, _ := newKey(t)
	k2, _ := newKey(t)
	sealed, _ := connector.Seal(k1, []byte("secret"), nil)
	_, err := connector.Open(k2, sealed, nil)
	if !errors.Is(err, connector.ErrWrongKey) || !strings.Contains(err.Error(), connector.KeyEnv) {
		t.Fatalf("got %v, want ErrWrongKey naming %s", err, connector.KeyEnv)
	}
}

func TestParseKey(t *testing.T) {
	_, s := newKey(t)
	if _, err := connector.ParseKey(strings.TrimRight(s, "=")); err != nil {
		t.Errorf("unpadded: %v", err)
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	if _, err := connector.ParseKey(short); err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Errorf("16-byte key: got %v", err)
	}
	if _, err := connector.ParseKey("not base64!"); err == nil {
		t.Error("garbage accepted")
	}
	t.Setenv(connector.KeyEnv, "")
	if _, err := connector.KeyFromEnv(); err == nil || !strings.Contains(err.Error(), connector.KeyEnv) {
		t.Errorf("unset env: got %v", err)
	}
	t.Setenv(connector.KeyEnv, s)
	if _, err := connector.KeyFromEnv(); err != nil {
		t.Error(err)
	}
}

type testConfig struct {
	connector.Common
	Lists  map[string]string `json:"lists" kiln:"required"`
	Tag    string            `json:"tag" kiln:"required"`
	Region string            `json:"region,omitempty"`
}

func TestDecode(t *testing.T) {
	var c testConfig
	err := connector.Decode("demo", json.RawMessage(`{"region":"eu","lists":{}}`), &c)
	if err == nil || !strings.Contains(err.Error(), "lists, tag") {
		t.Errorf("missing fields: got %v, want both named", err)
	}
	err = connector.Decode("demo", json.RawMessage(`{"lists":{"a":"1"},"tag":"x","colour":"red"}`), &c)
	if err == nil || !strings.Contains(err.Error(), `"colour"`) || !strings.HasPrefix(err.Error(), "demo config") {
		t.Errorf("unknown field: got %v", err)
	}
	err = connector.Decode("demo", json.RawMessage(`{"lists":{"a":"1"},"tag":5}`), &c)
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Errorf("wrong type: got %v", err)
	}
	err = connector.Decode("demo", json.RawMessage(`{"lists":{"a":"1"},"tag":"x"} {}`), &c)
	if err == nil {
		t.Error("trailing data accepted")
	}
	c = testConfig{}
	if err := connector.Decode("demo", json.RawMessage(`{"lists":{"a":"1"},"tag":"x","base_url":"https://eu.example.com/","batch_size":5}`), &c); err != nil {
		t.Fatal(err)
	}
	s, err := c.Resolve("demo", "https://api.example.com", 10, connector.Rate{PerSecond: 2, Burst: 4})
	if err != nil || s.BaseURL != "https://eu.example.com" || s.MaxBatch != 5 || s.Rate.PerSecond != 2 {
		t.Errorf("resolve: %+v %v", s, err)
	}
	for _, bad := range []connector.Common{{BaseURL: "ftp://x"}, {BaseURL: "/relative"}, {BatchSize: 11}, {BatchSize: -1}, {RequestsPerSecond: -1}} {
		if _, err := bad.Resolve("demo", "https://api.example.com", 10, connector.Rate{PerSecond: 1}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestHTTPErrorClassification(t *testing.T) {
	cases := []struct {
		status    int
		code      string
		retryable bool
	}{
		{429, kiln.ERateLimited, true}, {500, kiln.EUnavailable, true}, {502, kiln.EUnavailable, true},
		{503, kiln.EUnavailable, true}, {408, kiln.EUnavailable, true}, {400, kiln.EInvalid, false},
		{422, kiln.EInvalid, false}, {401, kiln.EUnauthorized, false}, {403, kiln.EForbidden, false},
		{404, kiln.ENotFound, false}, {409, kiln.EConflict, false}, {413, kiln.ETooLarge, false},
	}
	for _, c := range cases {
		err := connector.HTTPError("demo", "POST /x", c.status, 3*time.Second, "")
		if kiln.ErrorCode(err) != c.code || connector.Retryable(err) != c.retryable {
			t.Errorf("%d: code %s retryable %v", c.status, kiln.ErrorCode(err), connector.Retryable(err))
		}
		if c.retryable && connector.RetryAfter(err) != 3*time.Second || !c.retryable && connector.RetryAfter(err) != 0 {
			t.Errorf("%d: RetryAfter %s", c.status, connector.RetryAfter(err))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := connector.TransportError(ctx, "demo", "GET /", errors.New("boom"))
	if !errors.Is(err, context.Canceled) || !connector.Retryable(err) {
		t.Errorf("cancelled: %v", err)
	}
	if !connector.Retryable(errors.New("unknown")) {
		t.Error("a foreign error must count as retryable so no change is dropped")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", "7")
	if d := connector.ParseRetryAfter(h, now); d != 7*time.Second {
		t.Errorf("seconds: %s", d)
	}
	h.Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
	if d := connector.ParseRetryAfter(h, now); d != 90*time.Second {
		t.Errorf("date: %s", d)
	}
	h.Set("X-RateLimit-Reset", "1793613612") // now+12s
	if d := connector.UnixResetAfter(h, "X-RateLimit-Reset", time.Unix(1793613600, 0)); d != 12*time.Second {
		t.Errorf("unix reset: %s", d)
	}
	h.Set("Retry-After", "soon")
	if d := connector.ParseRetryAfter(h, now); d != 0 {
		t.Errorf("garbage: %s", d)
	}
}

func TestMessageOf(t *testing.T) {
	cases := map[string]string{
		`{"errors":[{"code":"throttled","detail":"Expected available in 7 seconds."}]}`:                     "Expected available in 7 seconds.",
		`{"errors":[{"field":"email","message":"invalid"}]}`:                                                "email: invalid",
		`{"type":"error.list","errors":[{"code":"unauthorized","message":"Access Token Invalid"}]}`:         "Access Token Invalid",
		`{"title":"Resource Not Found","status":404,"detail":"The requested resource could not be found."}`: "Resource Not Found: The requested resource could not be found.",
		`{"code":"invalid_parameter","message":"listId is invalid"}`:                                        "listId is invalid",
		`plain text`: "plain text",
		`{"errors":"[API] Invalid API key or access token"}`: "[API] Invalid API key or access token",
		`{"meta":{"error":"x"}}`:                             `{"meta":{"error":"x"}}`,
	}
	for in, want := range cases {
		if got := connector.MessageOf([]byte(in)); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

func TestLimiterPaces(t *testing.T) {
	l := connector.NewLimiter(connector.Rate{PerSecond: 50, Burst: 2})
	start := time.Now()
	for range 7 { // 2 at once, then 5 at 20 ms each
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
		t.Errorf("7 requests at 50/s burst 2 took %s, want about 100ms", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	slow := connector.NewLimiter(connector.Rate{PerSecond: 0.1, Burst: 1})
	slow.Wait(ctx)
	if err := slow.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting past the deadline: %v", err)
	}
}

func TestGroupChanges(t *testing.T) {
	cs := []connector.Change{
		{Op: connector.OpAdd, Segment: "a"}, {Op: connector.OpRemove, Segment: "a"}, {Op: connector.OpAdd, Segment: "a"},
		{Op: connector.OpAdd, Segment: "b"}, {Op: connector.OpAdd, Segment: "a"}, {Op: connector.OpUpsert, Segment: "x"},
	}
	gs := connector.GroupChanges(cs, 2)
	var got []string
	for _, g := range gs {
		got = append(got, fmt.Sprintf("%s:%s:%v", g.Op, g.Segment, g.Idx))
	}
	want := "add:a:[0 2] add:a:[4] remove:a:[1] add:b:[3] upsert::[5]"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestRegister(t *testing.T) {
	f := func(json.RawMessage, connector.Secrets, *http.Client) (connector.Connector, error) { return nil, nil }
	connector.Register("test_dup", f, connector.Doc{Name: "x"})
	for _, c := range []struct {
		id string
		f  connector.Factory
	}{{"test_dup", f}, {"Bad-ID", f}, {"", f}, {"test_nil", nil}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", c.id)
				}
			}()
			connector.Register(c.id, c.f, connector.Doc{})
		}()
	}
	if _, err := connector.New("no_such", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "test_dup") {
		t.Errorf("unknown id: %v (should list the known ids)", err)
	}
}

func TestNewSealed(t *testing.T) {
	k, _ := newKey(t)
	var got connector.Secrets
	connector.Register("test_sealed", func(_ json.RawMessage, s connector.Secrets, _ *http.Client) (connector.Connector, error) {
		got = s
		return nil, nil
	}, connector.Doc{Name: "sealed"})
	blob, _ := connector.SealSecrets(k, connector.Secrets{"api_key": "abc"}, []byte("dest-7"))
	if _, err := connector.NewSealed(k, "test_sealed", nil, blob, "dest-7", nil); err != nil || got["api_key"] != "abc" {
		t.Fatalf("%v %v", err, got)
	}
	if _, err := connector.NewSealed(k, "test_sealed", nil, blob, "dest-8", nil); !errors.Is(err, connector.ErrTampered) || !strings.Contains(err.Error(), "dest-8") {
		t.Errorf("secrets of another destination: %v", err)
	}
}

func TestFromTransition(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	tr := kiln.Transition{ID: 42, Segment: "vip", ProfileID: "p1", Entered: true, At: at, Version: 3}
	c := connector.FromTransition(tr, connector.Member{Email: "a@example.com"})
	if c.Op != connector.OpAdd || c.Segment != "vip" || c.Version != 3 || !c.At.Equal(at) ||
		c.Member.ProfileID != "p1" || c.IdempotencyKey != "kiln-transition-42" {
		t.Errorf("entry: %+v", c)
	}
	tr.Entered = false
	if c := connector.FromTransition(tr, connector.Member{}); c.Op != connector.OpRemove {
		t.Errorf("exit: %+v", c)
	}
}
