package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// While the engine loads its state at start, the port is open: events
// are acknowledged (durably) and /readyz says what is loading. Once
// loaded, the events are processed. A graceful stop writes a snapshot,
// and the next start loads it instead of replaying the log.
func TestIngestOpenWhileStateLoads(t *testing.T) {
	m, admin, write := testMain(t)
	cfg := m.Config
	post := func(url, body string) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.SetBasicAuth(write, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	apply := `segment buyers { count of "Order Completed" in last 30 days >= 1 }`
	req, _ := http.NewRequest("POST", m.URL()+"/api/v1/definitions", strings.NewReader(apply))
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("applying definitions: %v %v", resp, err)
	}
	if code := post(m.URL()+"/v1/track", `{"userId":"1","event":"Order Completed","properties":{"revenue":10}}`); code != 200 {
		t.Fatalf("track: %d", code)
	}
	settle(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Start again, holding the engine in its loading phase.
	release := make(chan struct{})
	m2 := NewMain(io.Discard)
	cfg.Addr = freeAddr(t)
	m2.Config = cfg
	m2.loading = func() { <-release }
	opened := make(chan error, 1)
	go func() { opened <- m2.Open(context.Background()) }()
	base := "http://" + cfg.Addr
	deadline := time.Now().Add(20 * time.Second)
	var ready map[string]any
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || ready["status"] != "starting" {
				t.Fatalf("readyz while loading: %d %v", resp.StatusCode, ready)
			}
			// The identity index and model traits load first; the test
			// holds the engine in the phase after them.
			if loading, _ := ready["loading"].(map[string]any); loading["phase"] == "rebuilding segment state" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine did not reach the held phase while loading: readyz %v, %v", ready, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post(base+"/v1/track", `{"userId":"2","event":"Order Completed","properties":{"revenue":20}}`); code != 200 {
		t.Fatalf("track while loading: %d, want 200", code)
	}
	// The admin API waits, saying so; the CLI retries until it is ready.
	req, _ = http.NewRequest("GET", base+"/api/v1/segments", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("admin API while loading: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	listed := make(chan error, 1)
	go func() {
		c := &client{base: base, key: admin}
		listed <- c.do(context.Background(), "GET", "/api/v1/segments", nil, nil, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if err := <-listed; err != nil {
		t.Errorf("the CLI's request made while loading: %v", err)
	}
	defer m2.Close()
	if code := call(t, "GET", base+"/readyz", "", nil, &ready); code != 200 {
		t.Fatalf("readyz after loading: %d %v", code, ready)
	}
	settle(t, m2)
	if n, err := m2.Store.CountProfiles(context.Background()); err != nil || n != 2 {
		t.Errorf("profiles after the event sent while loading was processed: %d, %v", n, err)
	}
	// The graceful stop's snapshot covered the whole log: nothing was
	// replayed from it at start.
	if st := m2.Engine.Status(); st.Phase != "ready" || st.Snapshot == 0 || st.Total != 0 {
		t.Errorf("status %+v, want ready from a snapshot with nothing to replay", st)
	}
	if n, _ := m2.Store.CountMembers(context.Background(), "buyers"); n != 2 {
		t.Errorf("buyers has %d members, want 2", n)
	}
}
