package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/action"
)

// A destination that keeps failing makes /readyz say "degraded", with the
// destination and why, but stay 200: the node ingests and evaluates as
// well as ever, and a vendor that is down is down for every node, so a
// load balancer must not pull nodes over it. /metrics says it too.
func TestReadyzSaysWhichDestinationFails(t *testing.T) {
	setSecretKey(t)
	m, admin, write := testMain(t)
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"message":"vendor is down"}`)
	}))
	defer down.Close()
	defs := filepath.Join(t.TempDir(), "d.kiln")
	os.WriteFile(defs, []byte(`trait orders_30d = count of "Order Completed" in last 30 days
segment buyers "Bought something" {
  orders_30d >= 1
}
`), 0o644)
	if out, errs, err := kilnCmd(t, "apply", "-f", defs); err != nil {
		t.Fatalf("apply: %v %s %s", err, out, errs)
	}
	cfg, _ := json.Marshal(action.WebhookConfig{URL: down.URL})
	ctx := context.Background()
	if _, err := m.Actions.CreateDestination(ctx, action.DestinationSpec{Name: "crm", Kind: action.KindWebhook, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Actions.CreateAutomation(ctx, action.AutomationSpec{Name: "thanks", Segment: "buyers", On: action.OnEnter, Destination: "crm"}); err != nil {
		t.Fatal(err)
	}
	var ready map[string]any
	if code := call(t, "GET", m.URL()+"/readyz", "", nil, &ready); code != 200 || ready["status"] != "ready" {
		t.Fatalf("readyz before any failure: %d %v", code, ready)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var batch []map[string]any
	for i := range 6 { // six buyers: six failed attempts in a row
		batch = append(batch, map[string]any{"type": "track", "userId": fmt.Sprint("u", i), "event": "Order Completed", "messageId": fmt.Sprint("o", i), "timestamp": now})
	}
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": batch}, false)
	settle(t, m)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready = nil
		code := call(t, "GET", m.URL()+"/readyz", "", nil, &ready)
		if code != 200 {
			t.Fatalf("readyz: %d %v, want 200 even when a destination fails", code, ready)
		}
		if ready["status"] == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never said degraded: %v", ready)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds, _ := ready["destinations"].([]any)
	if len(ds) != 1 {
		t.Fatalf("readyz destinations %v, want crm", ready["destinations"])
	}
	d := ds[0].(map[string]any)
	if d["name"] != "crm" || d["state"] != action.HealthFailing || !strings.Contains(fmt.Sprint(d["reason"]), "HTTP 500") {
		t.Errorf("readyz says %v, want crm failing with the vendor's HTTP 500", d)
	}
	for {
		resp, err := http.Get(m.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `kiln_delivery_healthy{destination="crm"} 0`) &&
			strings.Contains(string(body), `kiln_delivery_items_total{destination="crm",outcome="retried"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed crm unhealthy:\n%s", grepLines(string(body), "kiln_delivery"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
