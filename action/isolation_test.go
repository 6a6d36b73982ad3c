package action_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/metrics"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// vendor is a real HTTP server playing a destination that misbehaves:
// hang answers nothing until the client gives up (or the test ends).
type vendor struct {
	*httptest.Server
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	done     chan struct{}
}

func newVendor(t *testing.T, h func(v *vendor, n int64, w http.ResponseWriter, r *http.Request)) *vendor {
	v := &vendor{done: make(chan struct{})}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := v.requests.Add(1)
		in := v.inFlight.Add(1)
		defer v.inFlight.Add(-1)
		for m := v.maxIn.Load(); in > m && !v.maxIn.CompareAndSwap(m, in); m = v.maxIn.Load() {
		}
		io.Copy(io.Discard, r.Body)
		h(v, n, w, r)
	}))
	t.Cleanup(func() { close(v.done); v.Close() })
	return v
}

// hang holds the request until the client gives up.
func hang(v *vendor, _ int64, _ http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-v.done:
	}
}

// A hung destination delays only itself: with its calls all hanging (and
// timing out), webhooks to another destination go out as fast as without
// it, and the hung calls end at the timeout. The test delivers a batch to
// the fast destination alone, then one to both, and compares.
func TestHungDestinationDelaysOnlyItself(t *testing.T) {
	onBackends(t, func(c *action.Config) {
		c.Workers, c.Queue, c.Lease, c.Timeout = 4, 32, 3*time.Second, 500*time.Millisecond
	},
		func(t *testing.T, r *rig) {
			hung := newVendor(t, hang)
			fast := newReceiver(t, nil)
			r.webhook("hung", hung.URL, 0)
			r.webhook("fast", fast.URL, 0)
			r.automation(action.AutomationSpec{Name: "to-fast", Segment: "vip", Destination: "fast"})
			const n = 300
			batch := func(prefix string) (write, deliver, p99 time.Duration) {
				var ts []kiln.Transition
				for i := range n {
					id := fmt.Sprintf("%s_%03d", prefix, i)
					r.profile(id, id+"@example.com", nil, nil)
					ts = append(ts, enter(id, "vip"))
				}
				before := fast.count()
				start := time.Now()
				r.transition(ts...)
				written := time.Now()
				waitFor(t, "the fast destination's webhooks", func() bool { return fast.count() >= before+n })
				var lat []time.Duration
				for _, g := range fast.received()[before:] {
					lat = append(lat, g.at.Sub(written))
				}
				slices.Sort(lat)
				return written.Sub(start), lat[len(lat)-1], lat[len(lat)*99/100]
			}
			w0, alone, p99alone := batch("a")
			r.automation(action.AutomationSpec{Name: "to-hung", Segment: "vip", Destination: "hung"})
			w1, beside, p99beside := batch("b")
			t.Logf("%d webhooks to the fast destination: alone %v (p99 %v), beside a hung destination %v (p99 %v), after writing the transitions in %v and %v; hung: %d requests, at most %d at once",
				n, alone.Round(time.Millisecond), p99alone.Round(time.Millisecond), beside.Round(time.Millisecond), p99beside.Round(time.Millisecond),
				w0.Round(time.Millisecond), w1.Round(time.Millisecond), hung.requests.Load(), hung.maxIn.Load())
			// The hung destination's calls are bounded: its 4 workers at
			// once (the server sees a few more, as it notices a call the
			// client abandoned at its timeout a moment late), and all of
			// them end at the timeout.
			if m := hung.maxIn.Load(); m > 8 {
				t.Errorf("%d calls at once to the hung destination, want about its 4 workers", m)
			}
			// Sharing workers, the fast webhooks would queue behind 300
			// calls of 500 ms, 4 at a time: about 37 s. The bound leaves
			// room for a loaded machine (about 0.3 s either way on a quiet one).
			if beside > max(5*time.Second, 3*alone) {
				t.Errorf("the fast destination took %v for %d webhooks beside a hung one, %v alone", beside, n, alone)
			}
			waitFor(t, "a timed-out attempt recorded", func() bool {
				for _, it := range r.items(store.OutboxPending) {
					if strings.Contains(it.LastError, "timed out") && it.Attempts > 0 {
						return true
					}
				}
				return false
			})
			h := health(r, "hung")
			if h.Held > 4*8 || h.Pending < n-h.Held {
				t.Errorf("hung: %+v, want at most a queue (32) held and the rest pending in the outbox", h)
			}
		})
}

func health(r *rig, name string) action.DestinationHealth {
	for _, h := range r.svc.Dispatcher.Health() {
		if h.Name == name {
			return h
		}
	}
	r.t.Fatalf("no health for destination %s", name)
	return action.DestinationHealth{}
}

// Items held longer than their first lease (waiting behind a slow
// destination's one worker) keep it by renewal: a second dispatcher on the
// same store, claiming all along, never gets one, and nothing is sent
// twice.
func TestRenewedLeasesKeepSlowItemsFromASecondClaim(t *testing.T) {
	onBackends(t, func(c *action.Config) { c.Workers, c.Lease = 1, 800*time.Millisecond }, func(t *testing.T, r *rig) {
		var mu sync.Mutex
		keys := map[string]int{}
		slow := newVendor(t, func(_ *vendor, _ int64, w http.ResponseWriter, req *http.Request) {
			time.Sleep(80 * time.Millisecond)
			if req.Context().Err() != nil {
				return // the client gave up (timed out under load): a retry is no duplicate
			}
			mu.Lock()
			keys[req.Header.Get(action.HeaderID)]++
			mu.Unlock()
		})
		r.webhook("slow", slow.URL, 0)
		r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "slow"})
		// The second process: its own store handle and dispatcher.
		var st2 store.Store
		var err error
		if r.opener != nil {
			st2, err = r.opener()
		} else {
			st2, err = sqlite.Open(r.path)
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg := r.cfg
		cfg.Store = st2
		other := action.New(cfg)
		if err := other.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- other.Run(c) }()
		defer func() { cancel(); <-done; st2.Close() }()

		const n = 25 // 25 × 80 ms: 2 s, two and a half first leases
		var ts []kiln.Transition
		for i := range n {
			ts = append(ts, enter(fmt.Sprintf("p_%02d", i), "vip"))
		}
		start := time.Now()
		r.transition(ts...)
		waitFor(t, "every webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(keys) >= n })
		waitFor(t, "the outcomes recorded", r.settled)
		time.Sleep(200 * time.Millisecond) // room for a duplicate to show up
		mu.Lock()
		defer mu.Unlock()
		for k, c := range keys {
			if c != 1 {
				t.Errorf("item %s was sent %d times", k, c)
			}
		}
		t.Logf("%d items over %v through one worker and an %v lease, %d requests, max %d at once across both dispatchers",
			n, time.Since(start).Round(time.Millisecond), r.cfg.Lease, slow.requests.Load(), slow.maxIn.Load())
	})
}

// A vendor that answers 429 with Retry-After, then 500, then closes the
// connection, then accepts: the item is delivered on the fourth attempt,
// the Retry-After is honoured, and the metrics count it all.
func TestVendorFaultsAreRetriedAndCounted(t *testing.T) {
	m := metrics.New()
	r := newRig(t, func(c *action.Config) { c.Metrics = m.Delivery })
	var mu sync.Mutex
	var at []time.Time
	v := newVendor(t, func(_ *vendor, n int64, w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
		case 3:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	r.webhook("flaky", v.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "flaky"})
	r.transition(enter("p_1", "vip"))
	waitFor(t, "delivery", func() bool { return len(r.items(store.OutboxDelivered)) == 1 })
	mu.Lock()
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	mu.Unlock()
	if it := r.items(store.OutboxDelivered)[0]; it.Attempts != 4 {
		t.Errorf("delivered after %d attempts, want 4", it.Attempts)
	}
	if got := scrape(m, `kiln_delivery_items_total{destination="flaky",outcome="retried"}`); got != 3 {
		t.Errorf("retried = %v, want 3", got)
	}
	if got := scrape(m, `kiln_delivery_items_total{destination="flaky",outcome="sent"}`); got != 1 {
		t.Errorf("sent = %v, want 1", got)
	}
	if got := scrape(m, `kiln_delivery_last_success_timestamp_seconds{destination="flaky"}`); time.Since(time.Unix(int64(got), 0)) > time.Minute {
		t.Errorf("last success %v", got)
	}
	if scrape(m, `kiln_delivery_call_seconds_count{destination="flaky",result="ok"}`) != 1 || scrape(m, `kiln_delivery_call_seconds_count{destination="flaky",result="error"}`) != 3 {
		t.Errorf("call latency histogram: want 1 ok and 3 errors")
	}
}

// The metrics and the health of a failing, backed-up destination say so,
// and why; a healthy one beside it stays ok.
func TestMetricsAndHealthShowAFailingDestination(t *testing.T) {
	m := metrics.New()
	r := newRig(t, func(c *action.Config) {
		c.Metrics, c.Workers, c.Lease, c.Timeout, c.BehindAfter = m.Delivery, 2, 3*time.Second, 200*time.Millisecond, time.Second
	})
	down := newVendor(t, func(_ *vendor, _ int64, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	ok := newReceiver(t, nil)
	r.webhook("down", down.URL, 0)
	r.webhook("ok", ok.URL, 0)
	r.automation(action.AutomationSpec{Name: "a", Segment: "vip", Destination: "down"})
	r.automation(action.AutomationSpec{Name: "b", Segment: "vip", Destination: "ok"})
	var ts []kiln.Transition
	for i := range 20 {
		ts = append(ts, enter(fmt.Sprintf("p_%02d", i), "vip"))
	}
	r.transition(ts...)
	waitFor(t, "the healthy destination's webhooks", func() bool { return ok.count() == 20 })
	waitFor(t, "the failing destination reported", func() bool {
		h := health(r, "down")
		return h.State == action.HealthFailing && strings.Contains(h.Reason, "502") && strings.Contains(h.Reason, "oldest pending item was due")
	})
	waitFor(t, "the healthy destination ok with its 20 sent", func() bool {
		h := health(r, "ok")
		return h.State == action.HealthOK && h.Sent == 20
	})
	waitFor(t, "the metrics", func() bool {
		return scrape(m, `kiln_delivery_queue_depth{destination="down"}`) == 20 &&
			scrape(m, `kiln_delivery_oldest_pending_seconds{destination="down"}`) > 1 &&
			scrape(m, `kiln_delivery_healthy{destination="down"}`) == 0 &&
			scrape(m, `kiln_delivery_healthy{destination="ok"}`) == 1
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`kiln_delivery_queue_depth{destination="down"} 20`, `kiln_delivery_items_total{destination="ok",outcome="sent"} 20`,
		`kiln_delivery_batch_size_count{destination="ok"} 20`, `kiln_delivery_call_seconds_count{destination="down",result="error"}`,
		`kiln_delivery_last_success_timestamp_seconds{destination="ok"}`, `kiln_delivery_healthy{destination="down"} 0`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// scrape reads one sample from /metrics as Prometheus would see it (-1
// when absent).
func scrape(m *metrics.Metrics, series string) float64 {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
