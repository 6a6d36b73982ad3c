package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kiln-cdp/kiln"
)

// freshPostgres creates a database of its own for one test on the server
// KILN_TEST_POSTGRES names, and drops it afterwards.
func freshPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("KILN_TEST_POSTGRES")
	if base == "" {
		t.Skip("KILN_TEST_POSTGRES is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): skipping the server on PostgreSQL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("KILN_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("kiln_e2e_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// The server's core flow on PostgreSQL: ingest with retries, profiles,
// merge and unmerge, a segment with explain, and a restart that rebuilds.
func TestServerOnPostgres(t *testing.T) {
	dsn := freshPostgres(t)
	m, admin, write := testMainOn(t, dsn)
	day := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
	batch := map[string]any{"batch": []map[string]any{
		{"type": "track", "anonymousId": "a1", "event": "Product Viewed", "messageId": "p1", "timestamp": day},
		{"type": "identify", "userId": "ann", "messageId": "p2", "traits": map[string]any{"email": "ann@example.com"}, "timestamp": day},
		{"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "p3", "timestamp": day, "properties": map[string]any{"revenue": 150}},
	}}
	for i := 0; i < 2; i++ {
		if s := postJSON(t, m.URL()+"/v1/batch", write, batch, false); s != 200 {
			t.Fatalf("batch: %d", s)
		}
	}
	settle(t, m)
	if n, _ := m.Store.CountEvents(t.Context()); n != 3 {
		t.Fatalf("%d events after a retried batch, want 3", n)
	}
	var res struct{ Created []string }
	if s := call(t, "POST", m.URL()+"/api/v1/definitions", admin, map[string]any{"text": `segment big { sum(properties.revenue) of "Order Completed" in last 30 days >= 100 }`}, &res); s != 200 {
		t.Fatalf("apply: %d", s)
	}
	var ex struct{ Member bool }
	call(t, "GET", m.URL()+"/api/v1/segments/big/explain/email:ann@example.com", admin, nil, &ex)
	if !ex.Member {
		t.Fatal("ann is not in big on PostgreSQL")
	}
	postJSON(t, m.URL()+"/v1/alias", write, map[string]any{"userId": "ann", "previousId": "a1", "messageId": "p4"}, false)
	settle(t, m)
	p, _ := getProfile(t, m, admin, "anonymous_id:a1")
	var ms struct{ Merges []kiln.Merge }
	call(t, "GET", m.URL()+"/api/v1/profiles/"+p.ID+"/merges", admin, nil, &ms)
	if len(ms.Merges) != 1 {
		t.Fatalf("merges: %+v", ms.Merges)
	}
	if s := call(t, "POST", fmt.Sprintf("%s/api/v1/merges/%d/undo", m.URL(), ms.Merges[0].ID), admin, nil, nil); s != 200 {
		t.Fatalf("undo: %d", s)
	}
	a, _ := getProfile(t, m, admin, "anonymous_id:a1")
	b, _ := getProfile(t, m, admin, "user_id:ann")
	if a.ID == b.ID || a.EventCount != 1 {
		t.Fatalf("after unmerge: %s (%d events) and %s", a.ID, a.EventCount, b.ID)
	}
	// A second server on the same database rebuilds and agrees.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, admin2, _ := testMainOn(t, dsn)
	var members struct{ Size int64 }
	call(t, "GET", m2.URL()+"/api/v1/segments/big/members", admin2, nil, &members)
	if members.Size != 1 {
		t.Fatalf("after restart big has %d members, want 1", members.Size)
	}
}
