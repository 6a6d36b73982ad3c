package action_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/store"
)

// The Standard Webhooks specification's published example.
func TestSignatureMatchesTheSpecVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	got, err := action.Sign(secret, id, ts, body)
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	h := http.Header{}
	h.Set(action.HeaderID, id)
	h.Set(action.HeaderTimestamp, "1614265330")
	h.Set(action.HeaderSignature, "v1,bm90IGl0 "+want) // several signatures: any may match
	if err := action.Verify(secret, h, body, ts.Add(time.Minute)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := action.Verify(secret, h, []byte(`{"test": 2432232315}`), ts); err != action.ErrSignature {
		t.Errorf("tampered body: got %v, want ErrSignature", err)
	}
	if err := action.Verify(secret, h, body, ts.Add(6*time.Minute)); err != action.ErrStale {
		t.Errorf("replayed after 6 minutes: got %v, want ErrStale", err)
	}
	if err := action.Verify("whsec_"+strings.Repeat("A", 32), h, body, ts); err != action.ErrSignature {
		t.Errorf("wrong secret: got %v, want ErrSignature", err)
	}
	h.Del(action.HeaderID)
	if err := action.Verify(secret, h, body, ts); err != action.ErrNoSignature {
		t.Errorf("no id: got %v, want ErrNoSignature", err)
	}
}

func TestWebhookPayloadAndSignature(t *testing.T) {
	r := newRig(t, nil)
	rc := newReceiver(t, nil)
	d := r.webhook("crm", rc.URL, 0)
	a := r.automation(action.AutomationSpec{Name: "vip-in", Segment: "vip", Destination: "crm", Options: json.RawMessage(`{"traits":["name"]}`)})
	r.profile("p_1", "ann@example.com", nil, map[string]any{"name": "Ann", "secret_note": "x"})
	ts := r.transition(enter("p_1", "vip"), exit("p_1", "other"))
	waitFor(t, "the webhook", func() bool { return len(rc.received()) == 1 })
	got := rc.received()[0]
	waitFor(t, "the outcomes recorded", r.settled)
	secret, err := r.svc.Secret(ctx, "crm")
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q, %v", secret, err)
	}
	if err := action.Verify(secret, got.header, got.body, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	m := got.msg
	if m.Type != action.EventEntered || m.Data.Segment != "vip" || m.Data.ProfileID != "p_1" || m.Data.TransitionID != ts[0].ID ||
		!m.Data.Entered || m.Data.Version != 1 || m.Data.Reason != kiln.ReasonEvent || m.Data.Automation != a.Name ||
		string(m.Data.Evidence) != `{"orders":2}` || len(m.Data.Traits) != 1 || m.Data.Traits["name"] != "Ann" {
		t.Fatalf("message %s", got.body)
	}
	items := r.items(store.OutboxDelivered)
	if len(items) != 1 || items[0].Key != got.header.Get(action.HeaderID) || items[0].Destination != d.ID || items[0].Attempts != 1 {
		t.Fatalf("delivered items %+v; webhook-id %s", items, got.header.Get(action.HeaderID))
	}
	if stored, _ := r.st.GetDestination(ctx, "crm"); bytes.Contains(stored.Sealed, []byte(secret[6:])) || len(stored.Sealed) == 0 {
		t.Error("the secret is stored in the clear")
	}
}

// A receiver that is down for a while: every action arrives once it
// recovers, and each profile's arrive in the order of their transitions.
func TestReceiverDownThenRecoversLosesNothingAndKeepsOrder(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		// Down for its first requests, however long the set-up takes on
		// a loaded machine (a down time in seconds could pass unused).
		rc := newReceiver(t, func(n int64) int {
			if n <= 6 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		r.webhook("crm", rc.URL, 0)
		r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
		r.automation(action.AutomationSpec{Name: "out", Segment: "vip", On: action.OnExit, Destination: "crm"})
		profiles := []string{"p_a", "p_b", "p_c"}
		want := map[string][]int64{}
		for round := range 4 {
			for _, p := range profiles {
				tr := enter(p, "vip")
				if round%2 == 1 {
					tr = exit(p, "vip")
				}
				ts := r.transition(tr)
				want[p] = append(want[p], ts[0].ID)
			}
		}
		waitFor(t, "all 12 webhooks", func() bool { return len(rc.received()) >= 12 })
		waitFor(t, "the outcomes recorded", r.settled)
		if rc.requests.Load() <= 12 {
			t.Fatalf("the receiver was down, yet only %d requests were made", rc.requests.Load())
		}
		got := map[string][]int64{}
		for _, g := range rc.received() {
			got[g.msg.Data.ProfileID] = append(got[g.msg.Data.ProfileID], g.msg.Data.TransitionID)
		}
		for _, p := range profiles {
			if !slices.Equal(got[p], want[p]) {
				t.Errorf("%s: received transitions %v, want %v in that order", p, got[p], want[p])
			}
		}
		for _, it := range r.items("") {
			if it.State != store.OutboxDelivered {
				t.Errorf("item %d is %s", it.ID, it.State)
			}
		}
	})
}

// A restart in the middle of a delivery loses nothing: the item in flight
// is released at shutdown and delivered by the next process.
func TestRestartMidDeliveryLosesNothing(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		release := make(chan struct{})
		var hung atomic.Bool
		rc := newReceiver(t, func(n int64) int {
			if n == 1 {
				hung.Store(true)
				<-release // hold the first request until the dispatcher is stopped
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		r.webhook("crm", rc.URL, 0)
		r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
		r.profile("p_1", "a@example.com", nil, nil)
		r.transition(enter("p_1", "vip"), enter("p_2", "vip"))
		waitFor(t, "the first request", hung.Load)
		go func() { time.Sleep(100 * time.Millisecond); close(release) }()
		r.restart()
		// Both items arrive (either may arrive twice: at least once, e.g.
		// when a loaded machine lets the held call time out and retry
		// before the restart), and both end delivered.
		keys := func() map[string]bool {
			m := map[string]bool{}
			for _, g := range rc.received() {
				m[g.header.Get(action.HeaderID)] = true
			}
			return m
		}
		waitFor(t, "both webhooks after the restart", func() bool { return len(keys()) == 2 })
		waitFor(t, "the outcomes recorded", r.settled)
		for _, it := range r.items("") {
			if it.State != store.OutboxDelivered {
				t.Errorf("item %d is %s (%s)", it.ID, it.State, it.LastError)
			}
		}
	})
}

// A worker that died holding a claim: the item is delivered when the lease ends.
func TestExpiredLeaseIsDeliveredAgain(t *testing.T) {
	r := newRig(t, func(c *action.Config) { c.Lease = 300 * time.Millisecond })
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
	r.stop() // no dispatcher: claim as a worker that then dies
	r.stop = nil
	r.transition(enter("p_1", "vip"))
	claimed, err := r.st.ClaimOutbox(ctx, time.Now(), 300*time.Millisecond, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	r.st.Close()
	r.open()
	start := time.Now()
	waitFor(t, "the webhook", func() bool { return len(rc.received()) == 1 })
	if time.Since(start) < 150*time.Millisecond {
		t.Errorf("delivered %s after the restart, before the lease ended", time.Since(start))
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	onBackends(t, func(c *action.Config) { c.MaxAttempts = 3 }, func(t *testing.T, r *rig) {
		var mode atomic.Int64
		mode.Store(http.StatusBadRequest)
		rc := newReceiver(t, func(int64) int { return int(mode.Load()) })
		r.webhook("crm", rc.URL, 0)
		r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
		r.transition(enter("p_1", "vip"))
		waitFor(t, "a dead letter", func() bool { return len(r.items(store.OutboxDead)) == 1 })
		dead, err := r.svc.DeadLetters(ctx, 0, 10)
		if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "HTTP 400") {
			t.Fatalf("a 400 is permanent: dead letters %+v, %v", dead, err)
		}
		mode.Store(http.StatusServiceUnavailable)
		r.transition(enter("p_2", "vip"))
		waitFor(t, "a second dead letter", func() bool { return len(r.items(store.OutboxDead)) == 2 })
		dead, _ = r.svc.DeadLetters(ctx, dead[0].ID, 10)
		if len(dead) != 1 || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "gave up after 3 attempts") {
			t.Fatalf("retryable failures end after MaxAttempts: %+v", dead)
		}
		mode.Store(http.StatusOK)
		n, err := r.svc.Replay(ctx, nil)
		if err != nil || n != 2 {
			t.Fatalf("replay: %d, %v", n, err)
		}
		waitFor(t, "the replayed webhooks", func() bool { return len(rc.received()) == 2 })
		if d := r.items(store.OutboxDead); len(d) != 0 {
			t.Errorf("dead letters left after replay: %+v", d)
		}
	})
}

func TestEmailConsentAndSuppression(t *testing.T) {
	r := newRig(t, nil)
	srv := newSMTPServer(t)
	cfg, _ := json.Marshal(action.SMTPConfig{Host: "127.0.0.1", Port: srv.port(), From: "shop@example.com"})
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "mail", Kind: action.KindSMTP, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	r.automation(action.AutomationSpec{Name: "welcome", Segment: "vip", Destination: "mail",
		Options: json.RawMessage(`{"traits":["name"],"subject":"Welcome {{.Traits.name}}","body":"Hello {{.Traits.name}},\nyou are in {{.Segment}}."}`)})
	yes, no := true, false
	r.profile("p_yes", "ann@example.com", &yes, map[string]any{"name": "Ann"})
	r.profile("p_no", "bob@example.com", &no, map[string]any{"name": "Bob"})
	r.profile("p_none", "cy@example.com", nil, nil)
	r.profile("p_sup", "dee@example.com", &yes, nil)
	if err := r.st.AddSuppressions(ctx, []kiln.Suppression{{Identifier: kiln.Identifier{Kind: kiln.Email, Value: "dee@example.com"}, Reason: "bounced", CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	r.transition(enter("p_yes", "vip"), enter("p_no", "vip"), enter("p_none", "vip"), enter("p_sup", "vip"))
	waitFor(t, "every item finished", func() bool { return len(r.items(store.OutboxPending)) == 0 })
	msgs := srv.messages()
	if len(msgs) != 1 || msgs[0].from != "shop@example.com" || !slices.Equal(msgs[0].to, []string{"ann@example.com"}) ||
		!strings.Contains(msgs[0].data, "Subject: Welcome Ann\r\n") || !strings.Contains(msgs[0].data, "Hello Ann,\r\nyou are in vip.") {
		t.Fatalf("messages %+v", msgs)
	}
	why := map[string]string{}
	for _, it := range r.items(store.OutboxSkipped) {
		why[it.ProfileID] = it.LastError
	}
	if !strings.Contains(why["p_no"], "no consent") || !strings.Contains(why["p_none"], "no consent") || !strings.Contains(why["p_sup"], "suppressed") || len(why) != 3 {
		t.Fatalf("skips %v", why)
	}
}

func TestFrequencyCapAcrossAutomations(t *testing.T) {
	r := newRig(t, func(c *action.Config) { c.Cap = action.FrequencyCap{Max: 2, Per: time.Hour} })
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	for _, n := range []string{"a1", "a2", "a3"} {
		r.automation(action.AutomationSpec{Name: n, Segment: "vip", Destination: "crm"})
	}
	r.transition(enter("p_1", "vip"))
	hook, err := r.svc.Subscribe(ctx, rc.URL, action.EventEntered, "vip")
	if err != nil {
		t.Fatal(err)
	}
	r.transition(exit("p_2", "vip"), enter("p_2", "vip"))
	waitFor(t, "every item finished", func() bool { return len(r.items(store.OutboxPending)) == 0 })
	per := map[string]int{}
	for _, g := range rc.received() {
		per[g.msg.Data.ProfileID+"/"+g.msg.Data.Automation]++
	}
	n1 := per["p_1/a1"] + per["p_1/a2"] + per["p_1/a3"]
	if n1 != 2 {
		t.Errorf("p_1 received %d automation actions, want the cap of 2 (%v)", n1, per)
	}
	if per["p_2/"+hook.ID] != 1 {
		t.Errorf("the REST hook is not capped: %v", per)
	}
	skipped := r.items(store.OutboxSkipped)
	if len(skipped) != 2 || !strings.Contains(skipped[0].LastError, "frequency cap") {
		t.Errorf("skipped %+v", skipped)
	}
}

func TestQuietHoursWaitInTheStoreTimeZone(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	r := newRig(t, func(c *action.Config) { c.Location = loc })
	// 23:30 in Paris: inside 22:00-07:30.
	r.clock.set(time.Date(2026, 3, 1, 23, 30, 0, 0, loc))
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm", Options: json.RawMessage(`{"quiet":"22:00-07:30"}`)})
	r.transition(enter("p_1", "vip"))
	end := time.Date(2026, 3, 2, 7, 30, 0, 0, loc)
	waitFor(t, "the item postponed", func() bool {
		it := r.items(store.OutboxPending)
		return len(it) == 1 && it[0].NextAt.Equal(end) && strings.Contains(it[0].LastError, "quiet hours")
	})
	r.clock.set(end.Add(-time.Second))
	time.Sleep(150 * time.Millisecond)
	if len(rc.received()) != 0 {
		t.Fatal("sent during quiet hours")
	}
	r.clock.set(end.Add(time.Second))
	waitFor(t, "the webhook after quiet hours", func() bool { return len(rc.received()) == 1 })
	waitFor(t, "the outcome recorded", func() bool { return len(r.items(store.OutboxDelivered)) == 1 })
	if it := r.items(store.OutboxDelivered); len(it) != 1 || it[0].Attempts != 1 {
		t.Errorf("a postponement is not an attempt: %+v", it)
	}
}

func TestDelayAndRecheck(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		r.clock.set(t0)
		rc := newReceiver(t, nil)
		r.webhook("crm", rc.URL, 0)
		r.automation(action.AutomationSpec{Name: "nudge", Segment: "cart", Delay: "1h", Recheck: "cart", Destination: "crm"})
		// p_1 stays in the segment; p_2 leaves it before the hour is up.
		r.transition(enter("p_1", "cart"), enter("p_2", "cart"))
		if err := r.st.ApplyResolution(ctx, store.Resolution{Transitions: []kiln.Transition{{Segment: "cart", ProfileID: "p_2", Entered: false, At: t0.Add(time.Minute), Version: 1, Reason: kiln.ReasonEvent}}}); err != nil {
			t.Fatal(err)
		}
		r.clock.set(t0.Add(59 * time.Minute))
		time.Sleep(150 * time.Millisecond)
		if len(rc.received()) != 0 {
			t.Fatal("sent before the delay")
		}
		r.clock.set(t0.Add(61 * time.Minute))
		waitFor(t, "every item finished", func() bool { return len(r.items(store.OutboxPending)) == 0 })
		got := rc.received()
		if len(got) != 1 || got[0].msg.Data.ProfileID != "p_1" {
			t.Fatalf("received %d webhooks; want only p_1's", len(got))
		}
		if sk := r.items(store.OutboxSkipped); len(sk) != 1 || sk[0].ProfileID != "p_2" || !strings.Contains(sk[0].LastError, "recheck") {
			t.Fatalf("skipped %+v", sk)
		}
	})
}

func TestBackfillTransitionsDoNotAct(t *testing.T) {
	r := newRig(t, nil)
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
	quiet := enter("p_1", "vip")
	quiet.Act = false
	r.transition(quiet, enter("p_2", "vip"), enter("p_3", "other"))
	if it := r.items(""); len(it) != 1 || it[0].ProfileID != "p_2" {
		t.Fatalf("planned %+v; want one item, for p_2", it)
	}
}

func TestRESTHooksSubscribeAnd410Unsubscribes(t *testing.T) {
	r := newRig(t, nil)
	gone := newReceiver(t, func(int64) int { return http.StatusGone })
	hook, err := r.svc.Subscribe(ctx, gone.URL, action.EventExited, "vip")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Subscribe(ctx, gone.URL, "segment.changed", "vip"); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("unknown event: %v", err)
	}
	r.transition(enter("p_1", "vip"), exit("p_1", "vip"))
	waitFor(t, "the unsubscription", func() bool {
		_, err := r.st.GetAutomation(ctx, hook.ID)
		ds, _ := r.st.ListDestinations(ctx)
		return store.IsNotFound(err) && len(ds) == 0
	})
	if n := gone.requests.Load(); n != 1 {
		t.Errorf("the target got %d requests, want 1 (only the exit)", n)
	}
	if err := r.svc.Unsubscribe(ctx, hook.ID); kiln.ErrorCode(err) != kiln.ENotFound {
		t.Errorf("unsubscribe twice: %v", err)
	}
}

func TestPerDestinationRateLimit(t *testing.T) {
	r := newRig(t, nil)
	rc := newReceiver(t, nil)
	r.webhook("slow", rc.URL, 20)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "slow"})
	var ts []kiln.Transition
	for i := range 30 {
		ts = append(ts, enter("p_"+string(rune('a'+i)), "vip"))
	}
	start := time.Now()
	r.transition(ts...)
	waitFor(t, "30 webhooks", func() bool { return len(rc.received()) == 30 })
	// 20 at once (the burst), then 20 per second.
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("30 deliveries at 20/s took %s", took)
	}
}

func TestAutomationValidationAndEnable(t *testing.T) {
	r := newRig(t, nil)
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	r.svc.SegmentExists = func(s string) bool { return s == "vip" }
	for _, spec := range []action.AutomationSpec{
		{Name: "a", Segment: "nope", On: "enter", Destination: "crm"},
		{Name: "a", Segment: "vip", On: "entered", Destination: "crm"},
		{Name: "a", Segment: "vip", On: "enter", Destination: "nope"},
		{Name: "a", Segment: "vip", On: "enter", Destination: "crm", Delay: "soon"},
		{Name: "a", Segment: "vip", On: "enter", Destination: "crm", Options: json.RawMessage(`{"quiet":"25:00-01:00"}`)},
		{Name: "a", Segment: "vip", On: "enter", Destination: "crm", Options: json.RawMessage(`{"trait":["x"]}`)},
	} {
		if _, err := r.svc.CreateAutomation(ctx, spec); kiln.ErrorCode(err) != kiln.EInvalid && kiln.ErrorCode(err) != kiln.ENotFound {
			t.Errorf("%+v: got %v, want refused", spec, err)
		}
	}
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
	if _, err := r.svc.SetEnabled(ctx, "in", false); err != nil {
		t.Fatal(err)
	}
	r.transition(enter("p_1", "vip"))
	if it := r.items(""); len(it) != 0 {
		t.Fatalf("a disabled automation planned %d items", len(it))
	}
	if _, err := r.svc.SetEnabled(ctx, "in", true); err != nil {
		t.Fatal(err)
	}
	r.transition(enter("p_2", "vip"))
	waitFor(t, "the webhook", func() bool { return len(rc.received()) == 1 })
	if err := r.svc.DeleteDestination(ctx, "crm"); kiln.ErrorCode(err) != kiln.EConflict {
		t.Errorf("deleting a destination in use: %v", err)
	}
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "bad", Kind: "fax"}); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "bad", Kind: "webhook", Config: json.RawMessage(`{"url":"ftp://x"}`)}); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Errorf("bad url: %v", err)
	}
}

// A recheck condition over identified and computed traits is evaluated at
// send time.
func TestRecheckCondition(t *testing.T) {
	// Computed traits come as the engine gives them: exact numbers.
	computed := map[string]map[string]any{"p_1": {"cart_value": eval.Number{Text: "50.00", Currency: "GBP"}}, "p_2": {"cart_value": int64(20)}, "p_3": {"cart_value": 90.0}}
	r := newRig(t, func(c *action.Config) {
		c.TraitValues = func(pid string) map[string]any { return computed[pid] }
	})
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	for _, bad := range []string{"cart_value >= lots", "plan = pro", "x > true"} {
		if _, err := r.svc.CreateAutomation(ctx, action.AutomationSpec{Name: "bad", Segment: "cart", Recheck: bad, Destination: "crm"}); kiln.ErrorCode(err) != kiln.EInvalid {
			t.Errorf("recheck %q: got %v, want invalid", bad, err)
		}
	}
	r.automation(action.AutomationSpec{Name: "nudge", Segment: "cart", Recheck: `cart_value >= 50 and plan = "pro"`, Destination: "crm"})
	r.profile("p_1", "a@example.com", nil, map[string]any{"plan": "pro"})
	r.profile("p_2", "b@example.com", nil, map[string]any{"plan": "pro"})
	r.profile("p_3", "c@example.com", nil, map[string]any{"plan": "free"})
	r.transition(enter("p_1", "cart"), enter("p_2", "cart"), enter("p_3", "cart"))
	waitFor(t, "every item finished", r.settled)
	got := rc.received()
	if len(got) != 1 || got[0].msg.Data.ProfileID != "p_1" {
		t.Fatalf("received %d webhooks; want only p_1's", len(got))
	}
	if sk := r.items(store.OutboxSkipped); len(sk) != 2 || !strings.Contains(sk[0].LastError, "no longer holds") {
		t.Fatalf("skipped %+v", sk)
	}
}

// With the default retry policy, a destination down for an hour loses
// nothing: the item is still being retried when it comes back. The clock
// is moved from each retry to the next.
func TestDownForAnHourLosesNothing(t *testing.T) {
	r := newRig(t, func(c *action.Config) { c.MinBackoff, c.MaxBackoff, c.MaxAttempts = 0, 0, 0 }) // the defaults
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r.clock.set(t0)
	var up atomic.Bool
	rc := newReceiver(t, func(int64) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusBadGateway
	})
	r.webhook("crm", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
	r.transition(enter("p_1", "vip"))
	attempts := 0
	for r.clock.now().Before(t0.Add(time.Hour)) {
		var it store.OutboxItem
		waitFor(t, "the next attempt recorded", func() bool {
			items := r.items("")
			it = items[0]
			return it.Attempts > attempts || it.State != store.OutboxPending
		})
		if it.State != store.OutboxPending {
			t.Fatalf("after %s of outage the item is %s: %s", r.clock.now().Sub(t0), it.State, it.LastError)
		}
		attempts = it.Attempts
		r.clock.set(it.NextAt)
	}
	up.Store(true)
	waitFor(t, "the webhook after the outage", func() bool { return len(rc.received()) == 1 })
	t.Logf("delivered on attempt %d, %s after the first", attempts+1, r.clock.now().Sub(t0))
}

// A slow rate limit does not hold claimed items past their lease: they go
// back and are claimed again, and nothing is sent twice.
func TestRateLimitNeverOutlivesTheLease(t *testing.T) {
	r := newRig(t, func(c *action.Config) { c.Lease = 400 * time.Millisecond })
	rc := newReceiver(t, nil)
	r.webhook("slow", rc.URL, 4)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "slow"})
	var ts []kiln.Transition
	for i := range 8 {
		ts = append(ts, enter("p_"+string(rune('a'+i)), "vip"))
	}
	r.transition(ts...)
	waitFor(t, "8 webhooks", func() bool { return len(rc.received()) >= 8 })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	seen := map[string]int{}
	for _, g := range rc.received() {
		seen[g.header.Get(action.HeaderID)]++
	}
	if len(seen) != 8 || len(rc.received()) != 8 {
		t.Fatalf("%d webhooks for %d items: %v", len(rc.received()), len(seen), seen)
	}
}

// Items that wait for a busy worker longer than half their lease go back
// to be claimed again rather than risk a second claim: nothing is sent twice.
func TestSlowDestinationNeverOutlivesTheLease(t *testing.T) {
	r := newRig(t, func(c *action.Config) { c.Lease, c.Workers = 400*time.Millisecond, 1 })
	rc := newReceiver(t, func(int64) int { time.Sleep(60 * time.Millisecond); return http.StatusOK })
	r.webhook("slow", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "slow"})
	var ts []kiln.Transition
	for i := range 20 {
		ts = append(ts, enter("p_"+string(rune('a'+i)), "vip"))
	}
	r.transition(ts...)
	waitFor(t, "20 webhooks", func() bool { return len(rc.received()) >= 20 })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	seen := map[string]int{}
	for _, g := range rc.received() {
		seen[g.header.Get(action.HeaderID)]++
	}
	if len(seen) != 20 || len(rc.received()) != 20 {
		t.Fatalf("%d webhooks for %d items", len(rc.received()), len(seen))
	}
}
