package action_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	_ "github.com/kiln-cdp/kiln/connector/braze"
	"github.com/kiln-cdp/kiln/metrics"
	"github.com/kiln-cdp/kiln/store"
)

// fakeBraze is a real HTTP server playing Braze's /users/track: it keeps
// each user's kiln_segments as Braze would, and records every request.
// answer decides each request's fate (nil: accept all).
type fakeBraze struct {
	*httptest.Server
	mu       sync.Mutex
	calls    []brazeCall
	segments map[string]map[string]bool // by email
	applied  map[string]int             // changes applied, by "email op segment"
	answer   func(n int, objs []map[string]any, w http.ResponseWriter) (errIdx []int, done bool)
}

type brazeCall struct {
	at   time.Time
	objs []map[string]any
}

func newFakeBraze(t *testing.T) *fakeBraze {
	f := &fakeBraze{segments: map[string]map[string]bool{}, applied: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/users/track" || r.Header.Get("Authorization") != "Bearer key-1" {
			http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Attributes []map[string]any `json:"attributes"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Attributes) == 0 || len(req.Attributes) > 75 {
			t.Errorf("bad /users/track body (%d objects): %v: %.200s", len(req.Attributes), err, body)
			http.Error(w, `{"message":"bad body"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.calls = append(f.calls, brazeCall{at: time.Now(), objs: req.Attributes})
		n, answer := len(f.calls), f.answer
		f.mu.Unlock()
		var errIdx []int
		if answer != nil {
			var done bool
			if errIdx, done = answer(n, req.Attributes, w); done {
				return
			}
		}
		if r.Context().Err() != nil {
			return // the client gave up: nothing applied
		}
		f.mu.Lock()
		var errs []map[string]any
		for i, o := range req.Attributes {
			if slices.Contains(errIdx, i) {
				errs = append(errs, map[string]any{"type": "invalid email", "input_array": "attributes", "index": i})
				continue
			}
			email, _ := o["email"].(string)
			ops, _ := o["kiln_segments"].(map[string]any)
			for op, v := range ops {
				for _, s := range v.([]any) {
					seg := s.(string)
					if f.segments[email] == nil {
						f.segments[email] = map[string]bool{}
					}
					f.segments[email][seg] = op == "add"
					f.applied[email+" "+op+" "+seg]++
				}
			}
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"message": "success", "errors": errs})
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBraze) callList() []brazeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBraze) member(email, seg string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.segments[email][seg]
}

func (f *fakeBraze) appliedCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.applied {
		out[k] = v
	}
	return out
}

// brazeSync makes a Braze destination at f with enter and exit
// automations on segment vip.
func (r *rig) brazeSync(f *fakeBraze, extra string) *store.Destination {
	r.t.Helper()
	d, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "braze", Kind: "braze",
		Config: json.RawMessage(`{"base_url":"` + f.URL + `"` + extra + `}`), Secrets: connector.Secrets{"api_key": "key-1"}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.automation(action.AutomationSpec{Name: "vip-in", Segment: "vip", Destination: d.Name})
	r.automation(action.AutomationSpec{Name: "vip-out", Segment: "vip", On: action.OnExit, Destination: d.Name})
	return d
}

// offline runs fn with the dispatcher stopped (the store stays open), so
// that what fn plans waits in the outbox and the restarted dispatcher
// claims it all at once.
func (r *rig) offline(fn func()) {
	r.t.Helper()
	r.stop()
	fn()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.svc.Run(c) }()
	r.stop = func() { cancel(); <-done }
}

func email(o map[string]any) string { s, _ := o["email"].(string); return s }

func ops(o map[string]any) string {
	m, _ := o["kiln_segments"].(map[string]any)
	for op, v := range m {
		return fmt.Sprintf("%s %v", op, v)
	}
	return ""
}

// 100 entries to a vendor that takes 75 per call go out in
// ceil(100/75) = 2 calls carrying every member once; the batch-size
// histogram sees them.
func TestBatchesFillTheVendorsLargestCall(t *testing.T) {
	m := metrics.New()
	backends := 0
	onBackends(t, func(c *action.Config) { c.Metrics = m.Delivery }, func(t *testing.T, r *rig) {
		backends++
		f := newFakeBraze(t)
		r.brazeSync(f, "")
		var ts []kiln.Transition
		for i := range 100 {
			ts = append(ts, enter(fmt.Sprintf("p_%03d", i), "vip"))
		}
		r.offline(func() { r.transition(ts...) })
		waitFor(t, "100 delivered", func() bool { return len(r.items(store.OutboxDelivered)) == 100 })
		calls := f.callList()
		sizes := []int{}
		for _, c := range calls {
			sizes = append(sizes, len(c.objs))
		}
		slices.Sort(sizes) // the two calls run at once
		if fmt.Sprint(sizes) != "[25 75]" {
			t.Fatalf("calls carried %v members, want 75 and 25", sizes)
		}
		seen := map[string]bool{}
		for _, c := range calls {
			for _, o := range c.objs {
				if seen[email(o)] || ops(o) != "add [vip]" || o["_update_existing_only"] != false {
					t.Fatalf("object %v (seen before: %v)", o, seen[email(o)])
				}
				seen[email(o)] = true
			}
		}
		for i := range 100 {
			if e := fmt.Sprintf("p_%03d@example.com", i); !f.member(e, "vip") {
				t.Fatalf("%s is not in vip at the vendor", e)
			}
		}
	})
	// Each backend's calls: 2 with 100 changes.
	if n := scrape(m, `kiln_delivery_batch_size_count{destination="braze"}`); n != float64(2*backends) {
		t.Errorf("batch size observations %v, want %d", n, 2*backends)
	}
	if s := scrape(m, `kiln_delivery_batch_size_sum{destination="braze"}`); s != float64(100*backends) {
		t.Errorf("batch size sum %v, want %d", s, 100*backends)
	}
}

// One call of a batch fails (503) and in another the vendor rejects one
// member: only the failed call's members are sent again, the rejected one
// is a dead letter, and no accepted member is sent twice.
func TestPartialBatchFailureRetriesOnlyTheFailed(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		var failed, rejected sync.Once
		failedSet := map[string]bool{}
		var rejectedEmail string
		f.answer = func(n int, objs []map[string]any, w http.ResponseWriter) (errIdx []int, done bool) {
			switch len(objs) {
			case 40: // the first full call fails
				failed.Do(func() {
					for _, o := range objs {
						failedSet[email(o)] = true
					}
					w.WriteHeader(http.StatusServiceUnavailable)
					done = true
				})
			case 20: // the vendor rejects the first member of the other
				rejected.Do(func() { errIdx, rejectedEmail = []int{0}, email(objs[0]) })
			}
			return errIdx, done
		}
		r.brazeSync(f, `,"batch_size":40`)
		var ts []kiln.Transition
		for i := range 60 {
			ts = append(ts, enter(fmt.Sprintf("p_%03d", i), "vip"))
		}
		r.offline(func() { r.transition(ts...) })
		waitFor(t, "all settled", r.settled)
		// Each member of the failed call is sent twice, every other once.
		sent := map[string]int{}
		for _, c := range f.callList() {
			for _, o := range c.objs {
				sent[email(o)]++
			}
		}
		if len(failedSet) != 40 || rejectedEmail == "" || len(sent) != 60 {
			t.Fatalf("%d members in the failed call, rejected %q, %d members sent", len(failedSet), rejectedEmail, len(sent))
		}
		for e, n := range sent {
			if want := map[bool]int{true: 2, false: 1}[failedSet[e]]; n != want {
				t.Errorf("%s sent %d times, want %d", e, n, want)
			}
		}
		dead := r.items(store.OutboxDead)
		if len(dead) != 1 || dead[0].ProfileID+"@example.com" != rejectedEmail || !strings.Contains(dead[0].LastError, "invalid email") {
			t.Fatalf("dead letters %+v, want the member the vendor rejected", dead)
		}
		if n := len(r.items(store.OutboxDelivered)); n != 59 {
			t.Fatalf("%d delivered, want 59", n)
		}
		for k, n := range f.appliedCounts() {
			if n != 1 {
				t.Errorf("%s applied %d times", k, n)
			}
		}
	})
}

// Profiles flapping within one batch: only the last change for each
// (profile, segment) is sent, in one call, and the vendor ends in the
// final state; the items not sent are recorded as superseded or in sync.
func TestFlappingCoalescesToTheLastChange(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		r.brazeSync(f, "")
		r.offline(func() {
			r.transition(enter("p_1", "vip"), enter("p_2", "vip"), enter("p_3", "vip"))
			r.transition(exit("p_1", "vip"), exit("p_2", "vip"))
			r.transition(enter("p_1", "vip"))
		})
		waitFor(t, "all settled", r.settled)
		calls := f.callList()
		if len(calls) != 1 {
			t.Fatalf("%d calls, want 1", len(calls))
		}
		got := map[string]string{}
		for _, o := range calls[0].objs {
			got[email(o)] = ops(o)
		}
		want := map[string]string{"p_1@example.com": "add [vip]", "p_2@example.com": "remove [vip]", "p_3@example.com": "add [vip]"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("the call carried %v, want %v", got, want)
		}
		if !f.member("p_1@example.com", "vip") || f.member("p_2@example.com", "vip") || !f.member("p_3@example.com", "vip") {
			t.Fatal("the vendor's final state is wrong")
		}
		// p_1's exit and p_2's enter no longer hold when they are checked
		// (the profiles moved back): in sync, no call. p_1's first enter
		// holds, and is superseded by its last.
		superseded, inSync := 0, 0
		for _, it := range r.items(store.OutboxDelivered) {
			switch {
			case strings.HasPrefix(it.LastError, "superseded by item "):
				superseded++
			case strings.HasPrefix(it.LastError, "in sync: "):
				inSync++
			default:
				continue
			}
			if it.Attempts != 0 {
				t.Errorf("item %d (%s) counts %d attempts", it.ID, it.LastError, it.Attempts)
			}
		}
		if superseded != 1 || inSync != 2 {
			t.Fatalf("%d items superseded and %d in sync, want 1 and 2", superseded, inSync)
		}
		for _, h := range r.svc.Dispatcher.Health() {
			if h.Name == "braze" && (h.Sent != 3 || h.Superseded != 1 || h.InSync != 2) {
				t.Errorf("health counts %d sent, %d superseded and %d in sync, want 3, 1 and 2", h.Sent, h.Superseded, h.InSync)
			}
		}
	})
}

// A profile's later change never overtakes an earlier one: while the call
// carrying its entry hangs at the vendor, its exit waits, and goes in a
// call of its own once the entry is delivered.
func TestLaneOrderHoldsAcrossBatches(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		release := make(chan struct{})
		f.answer = func(n int, objs []map[string]any, w http.ResponseWriter) ([]int, bool) {
			if n == 1 {
				<-release
			}
			return nil, false
		}
		r.brazeSync(f, "")
		r.transition(enter("p_1", "vip"))
		waitFor(t, "the first call", func() bool { return len(f.callList()) == 1 })
		r.transition(exit("p_1", "vip"), enter("p_2", "vip"))
		waitFor(t, "p_2's call", func() bool { return len(f.callList()) == 2 })
		time.Sleep(200 * time.Millisecond) // p_1's exit has had every chance to overtake
		if calls := f.callList(); len(calls) != 2 || len(calls[1].objs) != 1 || email(calls[1].objs[0]) != "p_2@example.com" {
			t.Fatalf("while p_1's entry is in flight, calls were %v", calls)
		}
		close(release)
		waitFor(t, "all settled", r.settled)
		calls := f.callList()
		var p1 []string
		for _, c := range calls {
			for _, o := range c.objs {
				if email(o) == "p_1@example.com" {
					p1 = append(p1, ops(o))
				}
			}
		}
		if fmt.Sprint(p1) != "[add [vip] remove [vip]]" || f.member("p_1@example.com", "vip") {
			t.Fatalf("p_1's changes reached the vendor as %v", p1)
		}
	})
}

// A 429 with Retry-After on a batch: no call reaches the vendor before
// the time it named, and the batch's members are then delivered once.
func TestBatchRetryAfterIsHonoured(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		var limitedAt time.Time
		f.answer = func(n int, objs []map[string]any, w http.ResponseWriter) ([]int, bool) {
			if n == 1 {
				limitedAt = time.Now()
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return nil, true
			}
			return nil, false
		}
		r.brazeSync(f, `,"batch_size":20`)
		var ts []kiln.Transition
		for i := range 20 {
			ts = append(ts, enter(fmt.Sprintf("p_%03d", i), "vip"))
		}
		r.offline(func() { r.transition(ts...) })
		waitFor(t, "all settled", r.settled)
		// More entries, after the 429: they wait for the Retry-After too.
		r.transition(enter("p_100", "vip"))
		waitFor(t, "all settled", r.settled)
		calls := f.callList()
		if len(calls) < 2 {
			t.Fatalf("%d calls", len(calls))
		}
		for _, c := range calls[1:] {
			if early := limitedAt.Add(time.Second).Sub(c.at); early > 20*time.Millisecond {
				t.Errorf("a call came %s before the Retry-After ended", early)
			}
		}
		if n := len(r.items(store.OutboxDelivered)); n != 21 {
			t.Fatalf("%d delivered, want 21", n)
		}
		for k, n := range f.appliedCounts() {
			if n != 1 {
				t.Errorf("%s applied %d times", k, n)
			}
		}
	})
}

// Batches that wait for the destination's rate far longer than a lease
// keep their leases (renewed while they wait and while their call runs),
// or go back unsent when the rate's next slot is past their lease: no
// item is claimed a second time while held, and every member reaches the
// vendor exactly once.
func TestBatchLeasesAreRenewedWhileTheyWait(t *testing.T) {
	onBackends(t, func(c *action.Config) {
		c.Lease, c.Timeout = 1200*time.Millisecond, 400*time.Millisecond
	}, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		f.answer = func(int, []map[string]any, http.ResponseWriter) ([]int, bool) {
			time.Sleep(100 * time.Millisecond) // a quarter of the call's timeout
			return nil, false
		}
		r.brazeSync(f, `,"batch_size":10,"requests_per_second":1`)
		var ts []kiln.Transition
		for i := range 50 {
			ts = append(ts, enter(fmt.Sprintf("p_%03d", i), "vip"))
		}
		start := time.Now()
		r.offline(func() { r.transition(ts...) })
		waitFor(t, "all settled", r.settled)
		if took := time.Since(start); took < 2*1200*time.Millisecond {
			t.Fatalf("took %s: the test wants the batches to wait for several leases", took)
		}
		for k, n := range f.appliedCounts() {
			if n != 1 {
				t.Errorf("%s applied %d times", k, n)
			}
		}
		// (A call that timed out on a loaded machine is sent again, but
		// the fake applies nothing whose client gave up: a member
		// applied twice could only come from a second claim.)
		if n := len(r.items(store.OutboxDelivered)); n != 50 {
			t.Fatalf("%d delivered, want 50", n)
		}
	})
}

// Profiles flapping while the dispatcher runs (enter, exit, enter, exit,
// enter, each planned on its own): however the changes fall into
// batches, the vendor ends with every profile in the segment, and no
// profile gets more changes than it had transitions.
func TestLiveFlappingConverges(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		f := newFakeBraze(t)
		r.brazeSync(f, "")
		for round := range 5 {
			var ts []kiln.Transition
			for i := range 20 {
				pid := fmt.Sprintf("p_%02d", i)
				if round%2 == 0 {
					ts = append(ts, enter(pid, "vip"))
				} else {
					ts = append(ts, exit(pid, "vip"))
				}
			}
			r.transition(ts...)
		}
		waitFor(t, "all settled", r.settled)
		sent := map[string]int{}
		for _, c := range f.callList() {
			for _, o := range c.objs {
				sent[email(o)]++
			}
		}
		for i := range 20 {
			e := fmt.Sprintf("p_%02d@example.com", i)
			if !f.member(e, "vip") {
				t.Errorf("%s is not in vip at the vendor", e)
			}
			if sent[e] < 1 || sent[e] > 5 {
				t.Errorf("%s got %d changes for 5 transitions", e, sent[e])
			}
		}
		if n := len(r.items(store.OutboxDelivered)); n != 100 {
			t.Fatalf("%d delivered (sent or superseded), want 100", n)
		}
		t.Logf("%d calls for 100 transitions", len(f.callList()))
	})
}
