package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

type resp struct {
	status int
	header http.Header
	body   string
}

// post sends body to path with the given key as basic auth user ("" for none).
func (b *segmentBundle) post(t *testing.T, path, key, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest("POST", b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) resp {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(body)}
}

// errorMessage decodes an error answer, failing the test if it is not in
// the {"error":{"code","message"}} shape.
func errorMessage(t *testing.T, r resp) (string, string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal([]byte(r.body), &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("status %d: body %q is not an error object", r.status, r.body)
	}
	return eb.Error.Code, eb.Error.Message
}

func TestBatchBadMessagesAreRejected(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name   string
		msg    string
		field  string
		reason string // substring
	}{
		{"no ids", `{"type":"track","event":"X"}`, "userId", "neither userId nor anonymousId"},
		{"empty ids", `{"type":"track","event":"X","userId":"  ","anonymousId":""}`, "userId", "neither userId nor anonymousId"},
		{"track without event", `{"type":"track","userId":"u"}`, "event", "no event name"},
		{"alias without previousId", `{"type":"alias","userId":"u"}`, "previousId", "no previousId"},
		{"group without groupId", `{"type":"group","userId":"u"}`, "groupId", "no groupId"},
		{"unknown type", `{"type":"purchase","userId":"u"}`, "type", `"purchase" is not one of`},
		{"missing type", `{"userId":"u","event":"X"}`, "type", "type is missing"},
		{"properties not object", `{"type":"track","userId":"u","event":"X","properties":[1,2]}`, "properties", "properties must be an object, not array"},
		{"event not string", `{"type":"track","userId":"u","event":42}`, "event", "event must be a string, not number"},
		{"userId object", `{"type":"track","userId":{"a":1},"event":"X"}`, "userId", "userId must be a string, not object"},
		{"message not object", `"hello"`, "", "must be a JSON object, not string"},
		{"bad timestamp", `{"type":"track","userId":"u","event":"X","timestamp":"yesterday"}`, "timestamp", `cannot read "yesterday"`},
		{"timestamp in future", `{"type":"track","userId":"u","event":"X","timestamp":"` + future + `"}`, "timestamp", "in the future"},
		{"timestamp before 2000", `{"type":"track","userId":"u","event":"X","timestamp":"1970-01-01T00:00:00Z"}`, "timestamp", "before 2000-01-01"},
		{"invalid utf8", "{\"type\":\"track\",\"userId\":\"u\xff\",\"event\":\"X\"}", "", "not valid UTF-8 (byte 27)"},
		// Values the stores cannot hold reject their message alone.
		{"NUL in userId", `{"type":"track","userId":"u\u0000","event":"X"}`, "userId", "userId contains a NUL character"},
		{"NUL in anonymousId", `{"type":"track","anonymousId":"\u0000a","event":"X"}`, "anonymousId", "anonymousId contains a NUL character"},
		{"NUL in event", `{"type":"track","userId":"u","event":"Order\u0000"}`, "event", "event contains a NUL character"},
		{"NUL in messageId", `{"type":"track","userId":"u","event":"X","messageId":"m\u0000"}`, "messageId", "messageId contains a NUL character"},
		{"NUL in context", `{"type":"track","userId":"u","event":"X","context":{"page":{"title":"a\u0000"}}}`, "context.page.title", "context.page.title contains a NUL character"},
		{"NUL in a key", `{"type":"identify","userId":"u","traits":{"a\u0000b":1}}`, "traits", `traits has a key "a\x00b" that contains a NUL character`},
		{"number beyond float64", `{"type":"track","userId":"u","event":"X","properties":{"products":[{"price":1e400}]}}`, "properties.products[0].price", "out of range"},
		{"nested too deeply", `{"type":"track","userId":"u","event":"X","properties":{"a":` + strings.Repeat("[", 250) + strings.Repeat("]", 250) + `}}`, "properties", "properties is nested more than 200 levels deep"},
		{"oversize", `{"type":"track","userId":"u","event":"X","properties":{"blob":"` + strings.Repeat("a", 40000) + `"}}`, "", "over the 32 KB limit"},
	}
	b := setupSegment(t, nil)
	var msgs []string
	good := `{"type":"track","userId":"good","event":"Fine","messageId":"ok-1"}`
	msgs = append(msgs, good)
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	r := b.post(t, "/v1/batch", b.key, `{"batch":[`+strings.Join(msgs, ",")+`]}`)
	if r.status != 200 || strings.TrimSpace(r.body) != `{"success":true}` {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	events, rejects := b.sink.snapshot()
	if len(events) != 1 || events[0].MessageID != "ok-1" {
		t.Errorf("events: %+v", events)
	}
	if len(rejects) != len(cases) {
		t.Fatalf("%d rejects, want %d: %+v", len(rejects), len(cases), rejects)
	}
	for i, c := range cases {
		rj := rejects[i]
		if rj.Index != i+1 || rj.Origin != "batch" || rj.SourceID != "src_web" || rj.ReceivedAt.IsZero() {
			t.Errorf("%s: reject %+v has the wrong index/origin/source", c.name, rj)
		}
		if rj.Field != c.field || !strings.Contains(rj.Reason, c.reason) {
			t.Errorf("%s: field %q reason %q; want field %q reason containing %q", c.name, rj.Field, rj.Reason, c.field, c.reason)
		}
		if c.name != "oversize" && string(rj.Payload) != c.msg {
			t.Errorf("%s: payload %q, want the raw message", c.name, rj.Payload)
		}
	}
	if !strings.Contains(rejects[len(rejects)-1].Reason, "message is 40") {
		t.Errorf("oversize reason should give the size: %s", rejects[len(rejects)-1].Reason)
	}
}

func TestSingleCallBadMessageIsRejectedWith200(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	r := b.post(t, "/v1/track", b.key, `{"userId":"u1"}`)
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	_, rejects := b.sink.snapshot()
	if len(rejects) != 1 || rejects[0].Origin != "track" || rejects[0].Field != "event" || rejects[0].Index != 0 {
		t.Errorf("rejects %+v", rejects)
	}
	// Well-formed values no store can hold are the message's fault too.
	for _, c := range []struct{ body, field string }{
		{`{"userId":"u1","event":"X","properties":{"total":-2e308}}`, "properties.total"},
		{`{"userId":"u1","event":"X","traits":` + strings.Repeat(`{"a":`, 220) + "1" + strings.Repeat("}", 220) + `}`, "traits"},
	} {
		if r := b.post(t, "/v1/track", b.key, c.body); r.status != 200 {
			t.Fatalf("%s: status %d %s", c.field, r.status, r.body)
		}
		_, rejects = b.sink.snapshot()
		if last := rejects[len(rejects)-1]; last.Field != c.field || last.Index != 0 {
			t.Errorf("reject %+v, want field %s", last, c.field)
		}
	}
	// The endpoint decides the type, whatever the body says.
	r = b.post(t, "/v1/identify", b.key, `{"type":"track","userId":"u1","traits":{"plan":"gold"}}`)
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	events, _ := b.sink.snapshot()
	if len(events) != 1 || events[0].Type != kiln.Identify || events[0].Traits["plan"] != "gold" {
		t.Errorf("events %+v", events)
	}
}

func TestRequestLevelErrors(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, func(c *SegmentConfig) { c.MaxBatchMessages = 30 })
	bigBatch := `{"batch":[` + strings.Repeat(`{"type":"track","userId":"u","event":"`+strings.Repeat("x", 30000)+`"},`, 20) + `{}]}`
	cases := []struct {
		name, path, body string
		status           int
		code, msg        string
	}{
		{"syntax", "/v1/batch", "{\"batch\":[\n{\"type\":\"track\",}]}", 400, "invalid", "invalid JSON at line 2, column 17"},
		{"truncated", "/v1/batch", `{"batch":[{"type":"track"`, 400, "invalid", "JSON ends early"},
		{"batch not array", "/v1/batch", `{"batch":{"type":"track"}}`, 400, "invalid", "batch must be an array, not object"},
		{"no batch", "/v1/batch", `{"messages":[]}`, 400, "invalid", `no "batch" array`},
		{"too many messages", "/v1/batch", `{"batch":[` + strings.Repeat("{},", 30) + `{}]}`, 400, "too_large", "batch has 31 messages, over the limit of 30"},
		{"batch over 500KB", "/v1/batch", bigBatch, 400, "too_large", "over the 500 KB limit"},
		{"single over 32KB", "/v1/track", `{"userId":"u","event":"` + strings.Repeat("x", 33000) + `"}`, 400, "too_large", "over the 32 KB limit"},
		{"single not json", "/v1/track", `userId=u`, 400, "invalid", "invalid JSON at line 1, column 1"},
		{"empty", "/v1/track", ``, 400, "invalid", "empty request"},
		{"bad sentAt", "/v1/batch", `{"batch":[],"sentAt":"now"}`, 400, "invalid", `sentAt: cannot read "now"`},
		// The batch's own context belongs to every message in it.
		{"batch context too deep", "/v1/batch", `{"batch":[],"context":{"a":` + strings.Repeat("[", 250) + strings.Repeat("]", 250) + `}}`, 400, "invalid", "body: context is nested more than 200 levels deep (byte 225)"},
		{"unknown endpoint", "/v1/purchase", `{}`, 404, "not_found", "no such endpoint /v1/purchase"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := b.post(t, c.path, b.key, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			code, msg := errorMessage(t, r)
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Errorf("error %s %q, want %s containing %q", code, msg, c.code, c.msg)
			}
		})
	}
	events, rejects := b.sink.snapshot()
	if len(events)+len(rejects) != 0 {
		t.Errorf("failed requests stored %d events and %d rejects", len(events), len(rejects))
	}
	// GET is not allowed.
	r := do(t, must(http.NewRequest("GET", b.srv.URL+"/v1/batch", nil)))
	if r.status != 405 {
		t.Errorf("GET: status %d", r.status)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	msg := func(id string) string { return `{"userId":"u","event":"E","messageId":"` + id + `"}` }
	// Basic auth, Bearer, body writeKey all work.
	if r := b.post(t, "/v1/track", b.key, msg("basic")); r.status != 200 {
		t.Fatalf("basic: %d %s", r.status, r.body)
	}
	if r := b.post(t, "/v1/track", "", msg("bearer"), "Authorization", "Bearer "+b.key); r.status != 200 {
		t.Fatalf("bearer: %d %s", r.status, r.body)
	}
	if r := b.post(t, "/v1/track", "", `{"userId":"u","event":"E","messageId":"body","writeKey":"`+b.key+`"}`); r.status != 200 {
		t.Fatalf("body writeKey: %d %s", r.status, r.body)
	}
	if r := b.post(t, "/v1/batch", "", `{"batch":[{"type":"track","userId":"u","event":"E","messageId":"batchbody"}],"writeKey":"`+b.key+`"}`); r.status != 200 {
		t.Fatalf("batch body writeKey: %d %s", r.status, r.body)
	}
	// Admin keys ingest into ?source= or the default source.
	if r := b.post(t, "/v1/track?source=pos-1", b.admin, msg("admin-pos")); r.status != 200 {
		t.Fatalf("admin with source: %d %s", r.status, r.body)
	}
	if r := b.post(t, "/v1/track", b.admin, msg("admin-default")); r.status != 200 {
		t.Fatalf("admin default: %d %s", r.status, r.body)
	}
	got := byMessageID(t, b.sink.unique())
	for id, src := range map[string]string{"basic": "src_web", "bearer": "src_web", "body": "src_web", "batchbody": "src_web", "admin-pos": "src_pos1", "admin-default": "src_default"} {
		if got[id].SourceID != src {
			t.Errorf("%s: source %q, want %q", id, got[id].SourceID, src)
		}
	}
	// The source's store applies when the event names none.
	if got["admin-pos"].Store != "store-1" {
		t.Errorf("store from source: %q", got["admin-pos"].Store)
	}

	fails := []struct {
		name, key, path string
		status          int
		msg             string
	}{
		{"no key", "", "/v1/track", 401, "no write key"},
		{"unknown key", "kiln_w_nope", "/v1/track", 401, "unknown write key"},
		{"write key other source", b.key, "/v1/track?source=pos-1", 403, "may only ingest into its own source"},
		{"admin unknown source", b.admin, "/v1/track?source=nope", 400, `source "nope" does not exist`},
	}
	for _, f := range fails {
		r := b.post(t, f.path, f.key, msg("x"))
		if r.status != f.status {
			t.Errorf("%s: status %d, want %d (%s)", f.name, r.status, f.status, r.body)
			continue
		}
		if _, m := errorMessage(t, r); !strings.Contains(m, f.msg) {
			t.Errorf("%s: message %q, want %q", f.name, m, f.msg)
		}
	}
	b.auth.revoke(b.key)
	r := b.post(t, "/v1/track", b.key, msg("revoked"))
	if _, m := errorMessage(t, r); r.status != 401 || !strings.Contains(m, "revoked") {
		t.Errorf("revoked key: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, b.key) {
		t.Errorf("error echoes the whole key: %s", r.body)
	}
}

func TestGzipBodies(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, `{"batch":[{"type":"track","userId":"u","event":"Zipped","messageId":"z1"}]}`)
	zw.Close()
	if r := b.post(t, "/v1/batch", b.key, buf.String(), "Content-Encoding", "gzip"); r.status != 200 {
		t.Fatalf("gzip: %d %s", r.status, r.body)
	}
	if ev := b.sink.unique(); len(ev) != 1 || ev[0].Name != "Zipped" {
		t.Fatalf("events %+v", ev)
	}
	r := b.post(t, "/v1/batch", b.key, `{"batch":[]}`, "Content-Encoding", "gzip")
	if _, m := errorMessage(t, r); r.status != 400 || !strings.Contains(m, "not gzip data") {
		t.Errorf("plain body labelled gzip: %d %s", r.status, r.body)
	}
	// A gzip bomb is cut off at the limit after decompression.
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zw.Write([]byte(`{"batch":[{"type":"track","userId":"u","event":"`))
	zw.Write(bytes.Repeat([]byte("a"), 10<<20))
	zw.Close()
	r = b.post(t, "/v1/batch", b.key, buf.String(), "Content-Encoding", "gzip")
	if _, m := errorMessage(t, r); r.status != 400 || !strings.Contains(m, "over the 500 KB limit") {
		t.Errorf("gzip bomb: %d %s", r.status, r.body)
	}
	r = b.post(t, "/v1/batch", b.key, `{"batch":[]}`, "Content-Encoding", "br")
	if _, m := errorMessage(t, r); r.status != 400 || !strings.Contains(m, `"br" is not supported`) {
		t.Errorf("brotli: %d %s", r.status, r.body)
	}
}

func TestDerivedMessageIDsAreStable(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	// The same message twice (a retry), with a different sentAt and key
	// order and white space: same id. A different message: a different id.
	b.post(t, "/v1/batch", b.key, `{"sentAt":"2024-05-01T10:00:00Z","batch":[{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T09:00:00Z","properties":{"a":1,"b":2}}]}`)
	b.post(t, "/v1/batch", b.key, `{"sentAt":"2024-05-01T10:05:00Z","batch":[ {"properties":{"b":2, "a":1},"event":"E","userId":"u","type":"track","timestamp":"2024-05-01T09:00:00Z","sentAt":"2024-05-01T10:05:00Z"} ]}`)
	b.post(t, "/v1/batch", b.key, `{"batch":[{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T09:00:00Z","properties":{"a":1,"b":3}}]}`)
	events, _ := b.sink.snapshot()
	if len(events) != 3 {
		t.Fatalf("%d events", len(events))
	}
	if events[0].MessageID == "" || events[0].MessageID != events[1].MessageID {
		t.Errorf("retry ids differ: %q %q", events[0].MessageID, events[1].MessageID)
	}
	if events[2].MessageID == events[0].MessageID {
		t.Errorf("different messages share id %q", events[0].MessageID)
	}
	if !strings.HasPrefix(events[0].MessageID, "kiln-") {
		t.Errorf("derived id %q should be marked as derived", events[0].MessageID)
	}
	if len(b.sink.unique()) != 2 {
		t.Errorf("store would keep %d events, want 2", len(b.sink.unique()))
	}
}

func TestClockSkewCorrection(t *testing.T) {
	t.Parallel()
	recv := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	b := setupSegment(t, func(c *SegmentConfig) { c.Now = func() time.Time { return recv } })
	// The device's clock is 10 minutes fast: it says it sent at 12:10 an
	// event from 12:05, so the event happened 5 minutes before receipt.
	b.post(t, "/v1/batch", b.key, `{"sentAt":"2025-06-01T12:10:00Z","batch":[
		{"type":"track","userId":"u","event":"A","messageId":"batch-sentat","timestamp":"2025-06-01T12:05:00Z"},
		{"type":"track","userId":"u","event":"B","messageId":"own-sentat","originalTimestamp":"2025-06-01T14:05:00+02:00","sentAt":"2025-06-01T12:20:00Z"},
		{"type":"track","userId":"u","event":"C","messageId":"none"}]}`)
	b.post(t, "/v1/track", b.key, `{"userId":"u","event":"D","messageId":"no-sentat","timestamp":"2025-05-01T08:00:00Z"}`)
	got := byMessageID(t, b.sink.unique())
	want := map[string]time.Time{
		"batch-sentat": recv.Add(-5 * time.Minute),
		"own-sentat":   recv.Add(-15 * time.Minute),
		"none":         recv,
		"no-sentat":    time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC),
	}
	for id, w := range want {
		if !got[id].Timestamp.Equal(w) || got[id].Timestamp.Location() != time.UTC {
			t.Errorf("%s: timestamp %v, want %v", id, got[id].Timestamp, w)
		}
		if !got[id].ReceivedAt.Equal(recv) {
			t.Errorf("%s: receivedAt %v", id, got[id].ReceivedAt)
		}
	}
}

func TestStoreAndAnchor(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	b.post(t, "/v1/batch", b.key, `{"batch":[
		{"type":"track","anonymousId":"a1","event":"Visit Completed","messageId":"ctx","context":{"store":"st-9","traits":{"email":"X@Shop.Example"}}},
		{"type":"track","anonymousId":"a1","event":"Visit Completed","messageId":"props","properties":{"store":"st-8"},"context":{"traits":{"phone":"0044 (20) 7946-0958"}}},
		{"type":"track","anonymousId":"a1","event":"Visit Completed","messageId":"loc","context":{"location":{"city":"Leeds","id":"leeds-1"}},"properties":{"loyalty_number":"L-77"}},
		{"type":"identify","anonymousId":"a1","messageId":"none","traits":{"email":"not-an-email"}}]}`)
	got := byMessageID(t, b.sink.unique())
	for id, w := range map[string][2]string{
		"ctx":   {"st-9", "email:x@shop.example"},
		"props": {"st-8", "phone:+442079460958"},
		"loc":   {"leeds-1", "loyalty:L77"},
		"none":  {"", "anonymous_id:a1"},
	} {
		if got[id].Store != w[0] || got[id].Anchor != w[1] {
			t.Errorf("%s: store %q anchor %q, want %q %q", id, got[id].Store, got[id].Anchor, w[0], w[1])
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &now
	b := setupSegment(t, func(c *SegmentConfig) {
		c.RateLimit = 2
		c.RateBurst = 3
		c.Now = func() time.Time { return *clock }
	})
	batch := `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"track","userId":"u","event":"F"},{"type":"track","userId":"u","event":"G"},{"type":"track","userId":"u","event":"H"}]}`
	if r := b.post(t, "/v1/batch", b.key, batch); r.status != 200 {
		t.Fatalf("first batch: %d %s", r.status, r.body)
	}
	// 3 tokens minus 4 messages leaves a debt of 1: 1 s to get back to 0
	// and 0.5 s more for a token.
	r := b.post(t, "/v1/batch", b.key, batch)
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("second batch: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if code, _ := errorMessage(t, r); code != kiln.ERateLimited {
		t.Errorf("code %s", code)
	}
	// Other sources have their own bucket.
	if r := b.post(t, "/v1/batch", b.admin, batch); r.status != 200 {
		t.Errorf("other source throttled: %d", r.status)
	}
	now = now.Add(1600 * time.Millisecond)
	if r := b.post(t, "/v1/batch", b.key, batch); r.status != 200 {
		t.Errorf("after waiting: %d %s", r.status, r.body)
	}
}

func TestSinkFailureIsRetryable(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	b.sink.failNext = 1
	r := b.post(t, "/v1/track", b.key, `{"userId":"u","event":"E"}`)
	if r.status < 500 {
		t.Fatalf("sink failure answered %d: clients would not retry", r.status)
	}
	if _, m := errorMessage(t, r); strings.Contains(m, "disk on fire") {
		t.Errorf("internal detail leaked: %s", m)
	}
}

func TestDecodeArchived(t *testing.T) {
	recv := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	opts := ArchiveOptions{SourceID: "src_arch", ReceivedAt: recv}
	// An exported message: timestamp is the corrected time; sentAt and
	// originalTimestamp are kept from the device and must not shift it.
	raw := []byte(`{"type":"track","event":"Order Completed","userId":"u9","messageId":"ajs-1","timestamp":"1998-03-01T10:00:00.000Z",
		"originalTimestamp":"1998-03-01T10:07:00.000Z","sentAt":"1998-03-01T10:08:00.000Z","receivedAt":"1998-03-01T10:01:00.000Z","properties":{"revenue":12.5}}`)
	e, field, reason := DecodeArchived(raw, opts)
	if reason != "" {
		t.Fatalf("%s: %s", field, reason)
	}
	if !e.Timestamp.Equal(time.Date(1998, 3, 1, 10, 0, 0, 0, time.UTC)) || e.MessageID != "ajs-1" || e.SourceID != "src_arch" || e.Anchor != "user_id:u9" || !e.ReceivedAt.Equal(recv) {
		t.Errorf("event %+v", e)
	}
	// Without a messageId, the id is the one the tracking API derives.
	live := setupSegment(t, nil)
	msg := `{"type":"track","event":"E","userId":"u","timestamp":"2025-05-01T09:00:00Z"}`
	live.post(t, "/v1/batch", live.key, `{"batch":[`+msg+`]}`)
	a, _, _ := DecodeArchived([]byte(msg), opts)
	if got := live.sink.unique(); len(got) != 1 || got[0].MessageID != a.MessageID {
		t.Errorf("archived id %q, live %+v", a.MessageID, got)
	}
	if _, field, reason := DecodeArchived([]byte(`{"type":"track","userId":"u"}`), opts); field != "event" || reason == "" {
		t.Errorf("bad message: %q %q", field, reason)
	}
	if _, _, reason := DecodeArchived([]byte(`{"type":`), opts); !strings.Contains(reason, "invalid JSON") {
		t.Errorf("broken JSON: %q", reason)
	}
}

// Mounted with the prefix stripped, the handler routes the same way.
func TestStrippedPrefix(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	srv := httptest.NewServer(http.StripPrefix("/v1", b.h))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/page", strings.NewReader(`{"anonymousId":"a","name":"Home"}`))
	req.SetBasicAuth(b.key, "")
	if r := do(t, req); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if ev := b.sink.unique(); len(ev) != 1 || ev[0].Type != kiln.Page || ev[0].Name != "Home" {
		t.Errorf("events %+v", ev)
	}
}
