package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
)

// testMain starts a real server on a fresh SQLite file (or on PostgreSQL in
// a fresh schema when KILN_TEST_POSTGRES is set and pg is true) and returns
// it with an admin token and a write token for source "web".
func testMain(t *testing.T) (*Main, string, string) {
	return testMainOn(t, "")
}

// testMainOn starts the server on PostgreSQL when dsn is set, else on SQLite.
func testMainOn(t *testing.T, dsn string) (*Main, string, string) {
	t.Helper()
	return testMainWith(t, dsn, nil)
}

// testMainWith is testMainOn with the configuration edited before the
// server starts.
func testMainWith(t *testing.T, dsn string, edit func(*Config)) (*Main, string, string) {
	t.Helper()
	m := NewMain(io.Discard)
	if testing.Verbose() {
		m.logOut = os.Stderr
	}
	m.Config = Config{
		Addr: "127.0.0.1:0", DB: filepath.Join(t.TempDir(), "kiln.db"), Postgres: dsn,
		LogFormat: "text", LogLevel: "warn", Timezone: "UTC", Shutdown: 10 * time.Second,
		AllowPrivateDestinations: true, // the tests' receivers are on loopback
	}
	if edit != nil {
		edit(&m.Config)
	}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	_, admin, err := api.CreateKey(ctx, m.Store, kiln.AdminKey, "test", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A restarted server in a test finds its source there already.
	if _, err := api.CreateSource(ctx, m.Store, "web", "segment", "", "", time.Now()); err != nil && kiln.ErrorCode(err) != kiln.EConflict {
		t.Fatal(err)
	}
	_, write, err := api.CreateKey(ctx, m.Store, kiln.WriteKey, "web", "web", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return m, admin, write
}

// call does an HTTP request with a bearer token and decodes JSON into out.
func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, url, data, err)
		}
	}
	return resp.StatusCode
}

// settle waits until the engine has processed everything stored so far.
func settle(t *testing.T, m *Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	last, err := m.Store.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Engine.WaitFor(ctx, last); err != nil {
		t.Fatalf("engine did not process up to seq %d: %v", last, err)
	}
}

func TestAuthIsRequiredEverywhere(t *testing.T) {
	m, admin, write := testMain(t)
	u := m.URL()
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/profiles", "", 401},
		{"GET", "/api/v1/profiles", "kiln_a_wrong", 401},
		{"GET", "/api/v1/profiles", write, 403},
		{"GET", "/api/v1/profiles", admin, 200},
		{"GET", "/api/v1/keys", write, 403},
		{"POST", "/v1/track", "", 401},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 200},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"userId": "u1", "event": "x"}
		}
		if got := call(t, c.method, u+c.path, c.token, body, nil); got != c.want {
			t.Errorf("%s %s with %q: status %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
}

func TestRevokedKeyStopsWorking(t *testing.T) {
	m, admin, _ := testMain(t)
	var created struct {
		Key   kiln.Key
		Token string
	}
	if s := call(t, "POST", m.URL()+"/api/v1/keys", admin, map[string]any{"kind": "admin", "name": "temp"}, &created); s != 201 {
		t.Fatalf("create key: %d", s)
	}
	if s := call(t, "GET", m.URL()+"/api/v1/profiles", created.Token, nil, nil); s != 200 {
		t.Fatalf("new key: %d", s)
	}
	if s := call(t, "DELETE", m.URL()+"/api/v1/keys/"+created.Key.ID, admin, nil, nil); s != 200 {
		t.Fatalf("revoke: %d", s)
	}
	// The API's key cache holds entries for a few seconds; a fresh server
	// process has none, so check the store directly and through a new cache.
	k, err := m.Store.KeyByHash(context.Background(), kiln.HashToken(created.Token))
	if err != nil || k.RevokedAt == nil {
		t.Fatalf("key not revoked in store: %+v %v", k, err)
	}
	var keys struct{ Keys []kiln.Key }
	call(t, "GET", m.URL()+"/api/v1/keys", admin, nil, &keys)
	for _, k := range keys.Keys {
		if strings.Contains(string(mustJSON(k)), created.Token) {
			t.Fatal("key list exposes a token")
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
