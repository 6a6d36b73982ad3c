package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// countSink counts events without keeping them, so the benchmark measures
// the handler.
type countSink struct{ events, rejects int }

func (s *countSink) Write(_ context.Context, ev []kiln.Event, rj []kiln.Reject) (int, error) {
	s.events += len(ev)
	s.rejects += len(rj)
	return len(ev), nil
}

// typicalBatch builds a /v1/batch body of n track events shaped like what
// a web shop's server library sends (about 600 bytes each).
func typicalBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","messageId":"msg-%08d","userId":"user-%d","anonymousId":"2f4f8a6c-8d7e-4c1b-9d3a-%012d","event":"Product Added","timestamp":"2025-06-01T11:59:%02d.123Z",`+
			`"properties":{"product_id":"P-%d","sku":"SKU-%d","name":"Blue Teapot","category":"Tableware","price":24.5,"quantity":2,"currency":"EUR","cart_id":"c-%d","position":3,"url":"https://shop.example/p/blue-teapot"},`+
			`"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","locale":"en-GB","page":{"path":"/p/blue-teapot","referrer":"https://www.example.org/"}},"integrations":{}}`,
			i, i%500, i, i%60, i%97, i%97, i)
	}
	b.WriteString(`],"sentAt":"2025-06-01T12:00:00Z","context":{"library":{"name":"analytics-go","version":"3.3.0"}}}`)
	return b.Bytes()
}

// BenchmarkBatchHandler measures the tracking API's parsing and mapping of
// a 100-event /v1/batch (auth look-up and response included, storage not).
func BenchmarkBatchHandler(b *testing.B) {
	auth := newMemAuth()
	auth.addSource(kiln.Source{ID: "src_web", Name: "web"})
	key := auth.addKey(kiln.WriteKey, "src_web")
	sink := &countSink{}
	now := time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC)
	h := NewSegmentHandler(SegmentConfig{Sink: sink, Auth: auth, KeyCacheTTL: time.Minute, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	const n = 100
	body := typicalBatch(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/batch", bytes.NewReader(body))
		req.SetBasicAuth(key, "")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	if sink.rejects != 0 {
		b.Fatalf("%d rejects", sink.rejects)
	}
	b.ReportMetric(float64(sink.events)/b.Elapsed().Seconds(), "events/s")
	// The machine is shared: events per CPU second of this process is the
	// figure that does not depend on what else runs.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(sink.events)/cpu, "events/cpu-s")
	}
}

// cpuTime is the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
