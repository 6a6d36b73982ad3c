package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	rudder "github.com/rudderlabs/analytics-go/v4"
	segment "github.com/segmentio/analytics-go/v3"

	"github.com/kiln-cdp/kiln"
)

type profileView struct {
	kiln.Profile
	RecentEvents []kiln.Event
}

func getProfile(t *testing.T, m *Main, admin, id string) (profileView, int) {
	t.Helper()
	var p profileView
	status := call(t, "GET", m.URL()+"/api/v1/profiles/"+id, admin, nil, &p)
	return p, status
}

func hasIdentifier(p kiln.Profile, s string) bool {
	for _, id := range p.Identities {
		if id.Identifier.String() == s {
			return true
		}
	}
	return false
}

// The official Segment client, unchanged, sends to a running Kiln; the
// profile it builds is read back through the admin API.
func TestSegmentClientBuildsProfile(t *testing.T) {
	m, admin, write := testMain(t)
	client, err := segment.NewWithConfig(write, segment.Config{Endpoint: m.URL(), BatchSize: 10, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	client.Enqueue(segment.Track{AnonymousId: "anon-7", Event: "Product Viewed", Properties: segment.NewProperties().Set("sku", "ARB-TP-01")})
	client.Enqueue(segment.Identify{UserId: "cust-7", AnonymousId: "anon-7", Traits: segment.NewTraits().SetEmail(" Ann@Example.COM ").SetName("Ann").Set("email_consent", true)})
	client.Enqueue(segment.Track{UserId: "cust-7", Event: "Order Completed", Properties: segment.NewProperties().
		Set("order_id", "o-1").SetRevenue(86.5).Set("products", []map[string]any{{"sku": "ARB-TP-01", "category": "teaware", "price": 43.25, "quantity": 2}})})
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	p, status := getProfile(t, m, admin, "email:ann@example.com")
	if status != 200 {
		t.Fatalf("profile by email: %d", status)
	}
	for _, want := range []string{"user_id:cust-7", "anonymous_id:anon-7", "email:ann@example.com"} {
		if !hasIdentifier(p.Profile, want) {
			t.Errorf("profile lacks %s: %+v", want, p.Identities)
		}
	}
	if p.EventCount != 3 || len(p.RecentEvents) != 3 {
		t.Errorf("events: count %d, recent %d, want 3", p.EventCount, len(p.RecentEvents))
	}
	if p.Traits["name"] != "Ann" {
		t.Errorf("traits: %v", p.Traits)
	}
	if len(p.Consent) != 1 || !p.Consent[0].Granted || p.Consent[0].Channel != kiln.ChannelEmail {
		t.Errorf("consent: %+v", p.Consent)
	}
	// The same profile is reachable by each identifier.
	for _, id := range []string{"user_id:cust-7", "anonymous_id:anon-7", p.ID} {
		if q, s := getProfile(t, m, admin, id); s != 200 || q.ID != p.ID {
			t.Errorf("by %s: status %d, profile %s, want %s", id, s, q.ID, p.ID)
		}
	}
}

func TestRudderStackClientBuildsProfile(t *testing.T) {
	m, admin, write := testMain(t)
	client, err := rudder.NewWithConfig(write, rudder.Config{DataPlaneUrl: m.URL(), BatchSize: 10, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	client.Enqueue(rudder.Identify{UserId: "r-1", Traits: rudder.NewTraits().SetEmail("bob@example.com").Set("loyalty_number", "LV-1001")})
	client.Enqueue(rudder.Track{UserId: "r-1", Event: "Visit Completed", Properties: rudder.NewProperties().Set("party_size", 4)})
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	p, status := getProfile(t, m, admin, "loyalty:LV-1001")
	if status != 200 {
		var list any
		call(t, "GET", m.URL()+"/api/v1/profiles", admin, nil, &list)
		t.Fatalf("profile by loyalty number: %d; profiles: %v", status, list)
	}
	if !hasIdentifier(p.Profile, "email:bob@example.com") || p.EventCount != 2 {
		t.Errorf("profile: %+v", p.Profile)
	}
}

func postJSON(t *testing.T, url, key string, body any, gz bool) int {
	t.Helper()
	b, _ := json.Marshal(body)
	var buf bytes.Buffer
	if gz {
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
	} else {
		buf.Write(b)
	}
	req, _ := http.NewRequest("POST", url, &buf)
	req.SetBasicAuth(key, "")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A retried batch adds nothing twice; bad messages land in the rejects log
// and the good ones in the same batch are stored.
func TestBatchRetryAndRejects(t *testing.T) {
	m, admin, write := testMain(t)
	batch := map[string]any{"batch": []map[string]any{
		{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m1", "properties": map[string]any{"revenue": 10}},
		{"type": "track", "event": "Order Completed", "messageId": "m2"}, // no identifier
		{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m3", "timestamp": time.Now().Add(72 * time.Hour).Format(time.RFC3339)},
		{"type": "identify", "userId": "u1", "messageId": "m4", "traits": map[string]any{"email": "u1@example.com"}},
	}}
	for i := 0; i < 3; i++ {
		if s := postJSON(t, m.URL()+"/v1/batch", write, batch, i == 1); s != 200 {
			t.Fatalf("batch try %d: %d", i, s)
		}
	}
	settle(t, m)
	n, _ := m.Store.CountEvents(t.Context())
	if n != 2 {
		t.Errorf("stored %d events after three tries of one batch, want 2", n)
	}
	var rej struct{ Rejects []kiln.Reject }
	call(t, "GET", m.URL()+"/api/v1/rejects?source=web", admin, nil, &rej)
	if len(rej.Rejects) < 2 {
		t.Fatalf("rejects: %+v", rej.Rejects)
	}
	seen := map[int]string{}
	for _, r := range rej.Rejects {
		seen[r.Index] = r.Field + ": " + r.Reason
	}
	if seen[1] == "" || seen[2] == "" {
		t.Errorf("want rejects at batch index 1 and 2, got %v", seen)
	}
	if s := postJSON(t, m.URL()+"/v1/batch", write, "not a batch", false); s != 400 {
		t.Errorf("unparseable batch: %d, want 400", s)
	}
}

// Two profiles joined by an identify that carries both ids are merged with
// provenance; undoing the merge restores both with their own events.
func TestMergeAndUnmerge(t *testing.T) {
	m, admin, write := testMain(t)
	send := func(msgs ...map[string]any) {
		if s := postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": msgs}, false); s != 200 {
			t.Fatalf("batch: %d", s)
		}
		settle(t, m)
	}
	send(
		map[string]any{"type": "track", "anonymousId": "tablet-9", "event": "Product Viewed", "messageId": "a1"},
		map[string]any{"type": "track", "anonymousId": "tablet-9", "event": "Product Added", "messageId": "a2"},
		map[string]any{"type": "identify", "userId": "ann", "messageId": "b1", "traits": map[string]any{"email": "ann@example.com", "first_name": "Ann"}},
		map[string]any{"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "b2"},
	)
	anon, _ := getProfile(t, m, admin, "anonymous_id:tablet-9")
	ann, _ := getProfile(t, m, admin, "user_id:ann")
	if anon.ID == ann.ID {
		t.Fatal("profiles merged before anything linked them")
	}
	send(map[string]any{"type": "alias", "userId": "ann", "previousId": "tablet-9", "messageId": "c1"})
	merged, _ := getProfile(t, m, admin, "anonymous_id:tablet-9")
	if merged.ID != ann.ID && merged.ID != anon.ID {
		t.Fatalf("merged into a third profile %s", merged.ID)
	}
	if merged.EventCount != 5 {
		t.Errorf("merged profile has %d events, want 5", merged.EventCount)
	}
	var ms struct{ Merges []kiln.Merge }
	call(t, "GET", m.URL()+"/api/v1/profiles/"+merged.ID+"/merges", admin, nil, &ms)
	if len(ms.Merges) != 1 || ms.Merges[0].Rule != "alias" || ms.Merges[0].EventSeq == 0 {
		t.Fatalf("merges: %+v", ms.Merges)
	}
	var undone kiln.Merge
	if s := call(t, "POST", fmt.Sprintf("%s/api/v1/merges/%d/undo", m.URL(), ms.Merges[0].ID), admin, nil, &undone); s != 200 {
		t.Fatalf("undo: %d", s)
	}
	a, _ := getProfile(t, m, admin, "anonymous_id:tablet-9")
	b, _ := getProfile(t, m, admin, "user_id:ann")
	if a.ID == b.ID {
		t.Fatal("still one profile after unmerge")
	}
	if a.EventCount != 2 || len(a.RecentEvents) != 2 {
		t.Errorf("anonymous side: %d events (%d listed), want its own 2", a.EventCount, len(a.RecentEvents))
	}
	if b.Traits["first_name"] != "Ann" || !hasIdentifier(b.Profile, "email:ann@example.com") {
		t.Errorf("known side lost its traits or email: %+v", b.Profile)
	}
	if s := call(t, "POST", fmt.Sprintf("%s/api/v1/merges/%d/undo", m.URL(), ms.Merges[0].ID), admin, nil, nil); s != 409 {
		t.Errorf("second undo: %d, want 409", s)
	}
}

// Deleting a profile removes its events and identities; with suppression,
// later events from the same identifiers do not recreate it.
func TestDeleteWithSuppression(t *testing.T) {
	m, admin, write := testMain(t)
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": []map[string]any{
		{"type": "identify", "userId": "gone", "messageId": "d1", "traits": map[string]any{"email": "gone@example.com"}},
		{"type": "track", "userId": "gone", "event": "Order Completed", "messageId": "d2"},
	}}, false)
	settle(t, m)
	if s := call(t, "DELETE", m.URL()+"/api/v1/profiles/email:gone@example.com?suppress=true", admin, nil, nil); s != 200 {
		t.Fatalf("delete: %d", s)
	}
	if n, _ := m.Store.CountEvents(t.Context()); n != 0 {
		t.Errorf("%d events left after delete", n)
	}
	postJSON(t, m.URL()+"/v1/track", write, map[string]any{"userId": "gone", "event": "Order Completed", "messageId": "d3"}, false)
	settle(t, m)
	if _, s := getProfile(t, m, admin, "user_id:gone"); s != 404 {
		t.Errorf("suppressed customer came back: status %d", s)
	}
	var sup struct{ Suppressions []kiln.Suppression }
	call(t, "GET", m.URL()+"/api/v1/suppressions", admin, nil, &sup)
	if len(sup.Suppressions) != 2 {
		t.Errorf("suppressions: %+v", sup.Suppressions)
	}
}

func TestConsentByAPI(t *testing.T) {
	m, admin, write := testMain(t)
	postJSON(t, m.URL()+"/v1/identify", write, map[string]any{"userId": "c1", "traits": map[string]any{"email": "c1@example.com", "email_consent": true}}, false)
	settle(t, m)
	var c kiln.Consent
	if s := call(t, "PUT", m.URL()+"/api/v1/profiles/user_id:c1/consent/email", admin, map[string]any{"granted": false, "source": "support-desk"}, &c); s != 200 {
		t.Fatalf("consent: %d", s)
	}
	p, _ := getProfile(t, m, admin, "user_id:c1")
	if len(p.Consent) != 1 || p.Consent[0].Granted || p.Consent[0].Source != "support-desk" {
		t.Errorf("consent after API call: %+v", p.Consent)
	}
	if s := call(t, "PUT", m.URL()+"/api/v1/profiles/user_id:c1/consent/email", admin, map[string]any{"source": "x"}, nil); s != 400 {
		t.Errorf("consent without granted: %d, want 400", s)
	}
}
