package action_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	_ "github.com/kiln-cdp/kiln/connector/klaviyo"
	"github.com/kiln-cdp/kiln/store"
)

// bucket is a vendor-side token bucket: burst requests at once, then
// perSecond. take reports how long the caller must wait when empty.
type bucket struct {
	burst, perSecond float64
	tokens           float64
	last             time.Time
}

func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.perSecond * float64(time.Second))
}

// fakeKlaviyo knows every profile already (a backfill of existing
// customers) and enforces, per endpoint, the limit the connector
// documents for the ones it calls: burst 10, steady 150 per minute
// (2.5/s), answering 429 with Retry-After beyond it.
type fakeKlaviyo struct {
	*httptest.Server
	mu       sync.Mutex
	lookups  int
	adds     int
	limited  int
	members  map[string]bool
	buckets  map[string]*bucket
	maxAdded int
}

func newFakeKlaviyo() *fakeKlaviyo {
	f := &fakeKlaviyo{members: map[string]bool{}, buckets: map[string]*bucket{
		"profiles": {burst: 10, perSecond: 2.5}, "relationships": {burst: 10, perSecond: 2.5}}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ep := "profiles"
		if strings.HasSuffix(r.URL.Path, "/relationships/profiles") {
			ep = "relationships"
		}
		f.mu.Lock()
		ok, wait := f.buckets[ep].take(time.Now())
		if !ok {
			f.limited++
			f.mu.Unlock()
			w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		f.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/profiles":
			filter := r.URL.Query().Get("filter") // any(email,["a@x",...])
			var emails []string
			json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(filter, "any(email,"), ")")), &emails)
			var data []map[string]any
			for _, e := range emails {
				data = append(data, map[string]any{"type": "profile", "id": "K" + e, "attributes": map[string]any{"email": e}})
			}
			f.mu.Lock()
			f.lookups++
			f.mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"data": data})
		case r.Method == http.MethodPost && r.URL.Path == "/api/lists/L1/relationships/profiles":
			var req struct {
				Data []struct{ ID string } `json:"data"`
			}
			json.Unmarshal(body, &req)
			f.mu.Lock()
			f.adds++
			f.maxAdded = max(f.maxAdded, len(req.Data))
			for _, d := range req.Data {
				f.members[d.ID] = true
			}
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		}
	}))
	return f
}

// BenchmarkBackfillKlaviyo backfills 5,000 members to a fake Klaviyo that
// enforces the rate limits, and reports the calls and time against the
// minimum the limits allow: 50 profile lookups (100 per call) and 5 list
// relationship calls (1,000 per call), each endpoint burst 10 then 2.5/s.
func BenchmarkBackfillKlaviyo(b *testing.B) {
	const members = 5000
	for range b.N {
		t := &testing.T{}
		r := newRig(t, func(c *action.Config) { c.Workers = 32; c.Lease = time.Minute; c.Timeout = 20 * time.Second })
		f := newFakeKlaviyo()
		if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "klaviyo", Kind: "klaviyo",
			Config: json.RawMessage(`{"base_url":"` + f.URL + `","lists":{"vip":"L1"}}`), Secrets: connector.Secrets{"api_key": "pk_1"}}); err != nil {
			b.Fatal(err)
		}
		r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "klaviyo"})
		res := store.Resolution{}
		r.offline(func() {
			for i := range members {
				pid := fmt.Sprintf("p_%05d", i)
				res.Profiles = append(res.Profiles, store.ProfileChange{ID: pid, EventCount: 1, At: time.Now().UTC()})
				res.Identities = append(res.Identities, kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.Email, Value: pid + "@example.com"}, ProfileID: pid, FirstSeen: time.Now().UTC()})
				res.Transitions = append(res.Transitions, kiln.Transition{Segment: "vip", ProfileID: pid, Entered: true, Act: true, At: time.Now().UTC(), Version: 1, Reason: kiln.ReasonEvent})
			}
			if err := r.svc.Planner.Plan(ctx, &res); err != nil {
				b.Fatal(err)
			}
			if err := r.st.ApplyResolution(ctx, res); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
		})
		start := time.Now()
		for {
			f.mu.Lock()
			n := len(f.members)
			f.mu.Unlock()
			if n == members {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("only %d members after 10 minutes", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		// The limit-bound minimum: the 50 lookups gate the list calls;
		// after the burst of 10, 40 more at 2.5/s.
		minimum := time.Duration((50.0 - 10) / 2.5 * float64(time.Second))
		f.mu.Lock()
		b.ReportMetric(took.Seconds(), "s/backfill")
		b.ReportMetric(minimum.Seconds(), "s-min")
		b.ReportMetric(took.Seconds()/minimum.Seconds(), "x-min")
		b.ReportMetric(float64(f.lookups), "lookups")
		b.ReportMetric(float64(f.adds), "list-calls")
		b.ReportMetric(float64(f.limited), "429s")
		b.ReportMetric(float64(f.maxAdded), "max-per-call")
		f.mu.Unlock()
		r.close()
		f.Close()
		b.StartTimer()
	}
}
