package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
	"github.com/parquet-go/parquet-go"
)

func setSecretKey(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	t.Setenv(connector.KeyEnv, base64.StdEncoding.EncodeToString(raw))
}

// Events in, segment entry, a signed webhook out; the CLI manages the
// destination and automation, lists and replays dead letters and exports
// the segment; REST Hooks subscribe and unsubscribe through the API.
func TestActionsEndToEnd(t *testing.T) {
	setSecretKey(t)
	m, admin, write := testMain(t)
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)

	var mu sync.Mutex
	var bodies [][]byte
	var headers []http.Header
	fail := true
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail && !strings.Contains(string(b), `"Ann"`) {
			w.WriteHeader(http.StatusUnprocessableEntity) // permanent: a dead letter
			return
		}
		bodies, headers = append(bodies, b), append(headers, r.Header.Clone())
	}))
	defer recv.Close()
	got := func() int { mu.Lock(); defer mu.Unlock(); return len(bodies) }

	defs := filepath.Join(t.TempDir(), "d.kiln")
	os.WriteFile(defs, []byte(`trait orders_30d = count of "Order Completed" in last 30 days
segment buyers "Bought something" {
  orders_30d >= 1
}
`), 0o644)
	if out, errs, err := kilnCmd(t, "apply", "-f", defs); err != nil {
		t.Fatalf("apply: %v %s %s", err, out, errs)
	}
	out, errs, err := kilnCmd(t, "destinations", "create", "-name", "crm", "-kind", "webhook", "-config", `{"url":"`+recv.URL+`"}`)
	if err != nil || !strings.Contains(out, "signing secret") {
		t.Fatalf("destinations create: %v %s %s", err, out, errs)
	}
	secret := strings.TrimSpace(out[strings.Index(out, "whsec_"):])
	if _, errs, err := kilnCmd(t, "automations", "create", "-name", "thanks", "-segment", "nobody", "-destination", "crm"); err == nil || !strings.Contains(err.Error(), "no segment") {
		t.Fatalf("automation on an unknown segment: %v %s", err, errs)
	}
	out, errs, err = kilnCmd(t, "automations", "create", "-name", "thanks", "-segment", "buyers", "-on", "enter", "-destination", "crm", "-options", `{"traits":["name"]}`)
	if err != nil {
		t.Fatalf("automations create: %v %s %s", err, out, errs)
	}
	if out, _, _ := kilnCmd(t, "automations", "list"); !strings.Contains(out, "thanks") || !strings.Contains(out, "true") {
		t.Fatalf("automations list:\n%s", out)
	}
	if out, _, _ := kilnCmd(t, "destinations", "list"); !strings.Contains(out, "crm") || strings.Contains(out, "whsec_") {
		t.Fatalf("destinations list shows no crm, or a secret:\n%s", out)
	}
	var hook action.Hook
	if status := call(t, "POST", m.URL()+"/api/v1/hooks", admin, map[string]string{"target_url": recv.URL, "event": "segment.entered", "segment": "buyers", "zap": "extra"}, &hook); status != 201 || hook.ID == "" {
		t.Fatalf("subscribe: %d %+v", status, hook)
	}

	now := time.Now().UTC().Format(time.RFC3339)
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": []map[string]any{
		{"type": "identify", "userId": "ann", "messageId": "i1", "timestamp": now, "traits": map[string]any{"name": "Ann", "email": "ann@example.com"}},
		{"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "o1", "timestamp": now, "properties": map[string]any{"revenue": 20}},
		{"type": "track", "userId": "bad", "event": "Order Completed", "messageId": "o2", "timestamp": now},
	}}, false)
	settle(t, m)
	deadline := time.Now().Add(10 * time.Second)
	for got() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	n := len(bodies)
	var ann *action.Message
	for i, b := range bodies {
		var msg action.Message
		json.Unmarshal(b, &msg)
		if msg.Data.Automation == "thanks" {
			if err := action.Verify(secret, headers[i], b, time.Now()); err != nil {
				t.Errorf("signature: %v", err)
			}
			ann = &msg
		}
	}
	mu.Unlock()
	if n != 2 || ann == nil || ann.Type != "segment.entered" || ann.Data.Segment != "buyers" || ann.Data.Traits["name"] != "Ann" || ann.Data.TransitionID == 0 {
		t.Fatalf("received %d webhooks (want ann's for the automation and the hook); automation message %+v", n, ann)
	}

	for time.Now().Before(deadline) {
		if dead, _ := m.Store.ListOutbox(context.Background(), store.OutboxQuery{State: store.OutboxDead}); len(dead) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _, err = kilnCmd(t, "deadletters", "list")
	if err != nil || !strings.Contains(out, "HTTP 422") || strings.Count(out, "\n") != 3 {
		t.Fatalf("deadletters list: %v\n%s", err, out)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	out, _, err = kilnCmd(t, "deadletters", "replay")
	if err != nil || !strings.Contains(out, "replayed 2") {
		t.Fatalf("deadletters replay: %v %s", err, out)
	}
	for got() < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got() != 4 {
		t.Fatalf("after replay: %d webhooks, want 4", got())
	}

	out, _, err = kilnCmd(t, "segments", "export", "buyers", "-format", "csv")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, "ann@example.com") || !strings.Contains(strings.Split(out, "\n")[0], "orders_30d") {
		t.Fatalf("export csv: %v\n%s", err, out)
	}
	out, _, err = kilnCmd(t, "segments", "export", "buyers", "-format", "ndjson")
	// Stored traits and the computed orders_30d are columns.
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"name":"Ann"`) || !strings.Contains(out, `"orders_30d":1`) {
		t.Fatalf("export ndjson: %v\n%s", err, out)
	}
	pq := filepath.Join(t.TempDir(), "buyers.parquet")
	if _, errs, err := kilnCmd(t, "segments", "export", "buyers", "-format", "parquet", "-o", pq); err != nil {
		t.Fatalf("export parquet: %v %s", err, errs)
	}
	// Rows are by profile id, which is random: find Ann's.
	rows := readParquet(t, pq)
	i := slices.IndexFunc(rows, func(r map[string]any) bool { return r["email"] == "ann@example.com" })
	if len(rows) != 2 || i < 0 || rows[i]["orders_30d"] != int64(1) || rows[i]["name"] != "Ann" {
		t.Fatalf("parquet rows %v", rows)
	}
	out, errs, err = kilnCmd(t, "segments", "export", "buyers", "-format", "ndjson", "-after", "0")
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"change":"entered"`) || !strings.Contains(errs, "cursor: ") {
		t.Fatalf("incremental export: %v\n%s\n%s", err, out, errs)
	}
	cursor := strings.Fields(errs[strings.Index(errs, "cursor: "):])[1]
	if out, _, err := kilnCmd(t, "segments", "export", "buyers", "-format", "ndjson", "-after", cursor); err != nil || out != "" {
		t.Fatalf("nothing after cursor %s: %v %q", cursor, err, out)
	}
	// Scheduled exports to a directory, through the running engine.
	dir := t.TempDir()
	m.Config.ExportDir, m.Config.ExportEvery, m.Config.ExportFormats = dir, time.Hour, "parquet"
	ectx, stop := context.WithCancel(context.Background())
	exported := make(chan struct{})
	go func() { defer close(exported); m.runExports(ectx) }()
	waitUntil(t, "the scheduled export", func() bool { _, err := os.Stat(filepath.Join(dir, "buyers", "cursor")); return err == nil })
	stop()
	<-exported
	if rows := readParquet(t, filepath.Join(dir, "buyers", "members-latest.parquet")); len(rows) != 2 || rows[0]["orders_30d"] != int64(1) || rows[1]["orders_30d"] != int64(1) {
		t.Fatalf("scheduled parquet rows %v", rows)
	}
	if status := call(t, "DELETE", m.URL()+"/api/v1/hooks/"+hook.ID, admin, nil, nil); status != 204 {
		t.Fatalf("unsubscribe: %d", status)
	}
	if status := call(t, "DELETE", m.URL()+"/api/v1/hooks/"+hook.ID, admin, nil, nil); status != 404 {
		t.Fatalf("unsubscribe twice: %d", status)
	}
	if _, _, err := kilnCmd(t, "automations", "disable", "thanks"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := kilnCmd(t, "automations", "list"); !strings.Contains(out, "false") || strings.Contains(out, "REST hook") {
		t.Fatalf("after disable and unsubscribe:\n%s", out)
	}
}

// readParquet reads a Parquet file's rows back with the library.
func readParquet(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := parquet.NewReader(f)
	var rows []map[string]any
	for {
		m := map[string]any{}
		if err := r.Read(&m); err == io.EOF {
			return rows
		} else if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, m)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
