package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// receiver is a webhook endpoint that records what it accepts and
// refuses everything with 400 while fail is set.
type receiver struct {
	srv  *httptest.Server
	fail atomic.Bool
	mu   sync.Mutex
	got  []delivery
	seen chan struct{}
}

type delivery struct {
	Header http.Header
	Body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{seen: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if rc.fail.Load() {
			http.Error(w, "receiver refuses on purpose", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{r.Header.Clone(), b})
		rc.mu.Unlock()
		rc.seen <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// wait returns the n-th accepted delivery (1-based), waiting for it.
func (rc *receiver) wait(t *testing.T, n int) delivery {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		rc.mu.Lock()
		if len(rc.got) >= n {
			d := rc.got[n-1]
			rc.mu.Unlock()
			return d
		}
		rc.mu.Unlock()
		select {
		case <-rc.seen:
		case <-deadline:
			t.Fatalf("the receiver got %d deliveries in 10 s, want %d", len(rc.got), n)
		}
	}
}

func track(t *testing.T, h *harness, user, email string) {
	t.Helper()
	body := fmt.Sprintf(`{"userId":%q,"messageId":"m-%s","event":"Order Completed","properties":{"revenue":20},"context":{"traits":{"email":%q}}}`, user, user, email)
	req, _ := http.NewRequest("POST", h.URL+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth(h.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/v1/track: %d", res.StatusCode)
	}
	h.settle(t)
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) (*http.Response, string) {
	t.Helper()
	res, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// eventually polls a page until cond holds on its body.
func eventually(t *testing.T, c *http.Client, u, what string, cond func(string) bool) string {
	t.Helper()
	var body string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var code int
		if code, body = get(t, c, u); code == http.StatusOK && cond(body) {
			return body
		}
	}
	t.Fatalf("%s: not seen on %s within 10 s; last page:\n%s", what, u, body)
	return ""
}

// tableOf returns the HTML from the element with the id up to its </table>.
func tableOf(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</table>")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

var replayRE = regexp.MustCompile(`name="id" value="(\d+)"`)

func TestAutomationsDeliver(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	if _, err := h.Engine.ApplyDefinitions(ctx, testDefs, false); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	c := h.signIn(t)

	// A webhook destination, made in the page; a bad URL is refused with
	// the reason and the form kept.
	_, page := get(t, c, h.URL+"/ui/destinations")
	tok := csrfOf(t, page)
	if !strings.Contains(page, "kiln destinations create") {
		t.Error("destinations page does not say how to make other kinds")
	}
	res, body := postForm(t, c, h.URL+"/ui/destinations", url.Values{"csrf": {tok}, "name": {"crm"}, "url": {"ftp://nowhere"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "want an absolute http or https URL") || !strings.Contains(body, `value="ftp://nowhere"`) {
		t.Errorf("bad URL: %d, want 400 with the reason and the form kept", res.StatusCode)
	}
	res, body = postForm(t, c, h.URL+"/ui/destinations", url.Values{"csrf": {tok}, "name": {"crm"}, "url": {rc.srv.URL + "/hook"}, "rate": {"50"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("create destination: %d\n%s", res.StatusCode, body)
	}
	secret, err := h.Actions.Secret(ctx, "crm")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.UnescapeString(body), secret) {
		t.Error("the new webhook's signing secret is not shown after creating it")
	}
	_, page = get(t, c, h.URL+"/ui/destinations")
	if strings.Contains(html.UnescapeString(page), secret) {
		t.Error("the signing secret is shown again on a later visit")
	}
	if tb := tableOf(page, "destinations"); !strings.Contains(tb, "crm") || !strings.Contains(tb, rc.srv.URL) || !strings.Contains(tb, "none yet") {
		t.Errorf("destinations table: %s", tb)
	}
	ds, _ := h.Actions.ListDestinations(ctx)
	if len(ds) != 1 || ds[0].RateLimit != 50 {
		t.Fatalf("destinations stored: %+v, want crm at 50/s", ds)
	}

	// An automation on buyers' entries, made in the page.
	_, page = get(t, c, h.URL+"/ui/automations")
	if !strings.Contains(page, `<option value="buyers">`) || !strings.Contains(page, `<option value="`+ds[0].ID+`">crm (webhook)</option>`) {
		t.Fatal("automation form does not offer the segment and the destination")
	}
	res, body = postForm(t, c, h.URL+"/ui/automations", url.Values{"csrf": {tok}, "segment": {"buyers"}, "on": {"enter"}, "delay": {"soon"}, "destination": {ds[0].ID}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "want a duration") {
		t.Errorf("bad delay: %d, want 400 with the reason", res.StatusCode)
	}
	res, _ = postForm(t, c, h.URL+"/ui/automations", url.Values{"csrf": {tok}, "name": {"welcome"}, "segment": {"buyers"}, "on": {"enter"}, "destination": {ds[0].ID}, "traits": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create automation: %d", res.StatusCode)
	}
	as, _ := h.Actions.ListAutomations(ctx)
	if len(as) != 1 || as[0].Name != "welcome" || !as[0].Enabled || as[0].Segment != "buyers" || as[0].On != action.OnEnter {
		t.Fatalf("automations stored: %+v", as)
	}

	// Someone orders through the tracking API: they enter buyers and the
	// receiver gets a signed webhook.
	track(t, h, "u-1", "ann@example.com")
	d := rc.wait(t, 1)
	if err := action.Verify(secret, d.Header, d.Body, time.Now()); err != nil {
		t.Errorf("delivery does not verify with the secret the page showed: %v", err)
	}
	var msg map[string]any
	if err := json.Unmarshal(d.Body, &msg); err != nil || msg["type"] != action.EventEntered || !strings.Contains(string(d.Body), "buyers") {
		t.Errorf("delivery body: %s (%v)", d.Body, err)
	}
	page = eventually(t, c, h.URL+"/ui/deliveries", "a delivered item", func(b string) bool {
		return strings.Contains(tableOf(b, "recent"), `class="state-delivered"`)
	})
	if tb := tableOf(page, "recent"); !strings.Contains(tb, "welcome") || !strings.Contains(tb, "crm") {
		t.Errorf("recent deliveries: %s", tb)
	}
	_, page = get(t, c, h.URL+"/ui/automations")
	if tb := tableOf(page, "automations"); !strings.Contains(tb, "1 delivered") || !strings.Contains(tb, "enabled") {
		t.Errorf("automations table: %s", tb)
	}
	_, page = get(t, c, h.URL+"/ui/segments/buyers")
	if tb := tableOf(page, "automations"); !strings.Contains(tb, "welcome") || !strings.Contains(tb, "crm") {
		t.Errorf("segment page automations: %q", tb)
	}
	_, page = get(t, c, h.URL+"/ui/")
	if !strings.Contains(page, `id="dest-health"`) || !strings.Contains(page, `Delivered recently</span><span class="tile-num">1<`) {
		t.Errorf("overview has no destination health with 1 delivery")
	}

	// The receiver refuses the next one: it becomes a dead letter, shown
	// with the error; replayed from the page, it arrives.
	rc.fail.Store(true)
	track(t, h, "u-2", "bob@example.com")
	page = eventually(t, c, h.URL+"/ui/deliveries", "a dead letter", func(b string) bool {
		return strings.Contains(tableOf(b, "dead"), "receiver refuses on purpose")
	})
	m := replayRE.FindStringSubmatch(tableOf(page, "dead"))
	if m == nil {
		t.Fatal("dead letter has no replay button")
	}
	_, page = get(t, c, h.URL+"/ui/destinations")
	if tb := tableOf(page, "destinations"); !strings.Contains(tb, "1 failed") || !strings.Contains(tb, "receiver refuses on purpose") {
		t.Errorf("destination health after a failure: %s", tb)
	}
	// The dispatcher's view now: a permanent refusal is one failure, not
	// a failing destination.
	if tb := tableOf(page, "destinations"); !strings.Contains(tb, `<span class="up">ok</span>`) || !strings.Contains(tb, "queued") || !strings.Contains(tb, "in flight") {
		t.Errorf("destination's live delivery state: %s", tb)
	}
	_, page = get(t, c, h.URL+"/ui/")
	if !strings.Contains(page, `Failed for good</span><span class="tile-num">1<`) {
		t.Error("overview does not count the dead letter")
	}
	rc.fail.Store(false)
	if res, _ := postForm(t, c, h.URL+"/ui/deliveries/replay", url.Values{"id": {m[1]}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("replay without CSRF token: %d, want 403", res.StatusCode)
	}
	res, _ = postForm(t, c, h.URL+"/ui/deliveries/replay", url.Values{"csrf": {tok}, "id": {m[1]}})
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.Contains(loc, url.QueryEscape("Replayed 1 failed delivery")) {
		t.Errorf("replay: %d to %q", res.StatusCode, loc)
	}
	d = rc.wait(t, 2)
	if !strings.Contains(string(d.Body), "bob@example.com") && !strings.Contains(string(d.Body), "u-2") {
		t.Errorf("replayed body is not bob's: %s", d.Body)
	}
	page = eventually(t, c, h.URL+"/ui/deliveries", "the replayed item delivered", func(b string) bool {
		return tableOf(b, "dead") == "" && strings.Count(tableOf(b, "recent"), `class="state-delivered"`) == 2
	})
	if !strings.Contains(page, "None. Deliveries that fail for good") {
		t.Error("dead letters still listed after the replay")
	}

	// Disable, enable, delete; a destination in use is not deleted.
	for _, step := range []struct{ path, flash string }{
		{"/ui/automations/" + as[0].ID + "/disable", "Disabled automation welcome"},
		{"/ui/destinations/" + ds[0].ID + "/delete", "used by automation welcome"},
		{"/ui/automations/" + as[0].ID + "/enable", "Enabled automation welcome"},
		{"/ui/automations/" + as[0].ID + "/delete", "Deleted automation welcome"},
		{"/ui/destinations/" + ds[0].ID + "/delete", "Deleted destination crm"},
	} {
		res, _ := postForm(t, c, h.URL+step.path, url.Values{"csrf": {tok}})
		loc, _ := url.QueryUnescape(res.Header.Get("Location"))
		if res.StatusCode != http.StatusSeeOther || !strings.Contains(html.UnescapeString(loc), step.flash) {
			t.Errorf("POST %s: %d to %q, want a redirect saying %q", step.path, res.StatusCode, loc, step.flash)
		}
		if strings.HasSuffix(step.path, "/disable") {
			if a, _ := h.DB.GetAutomation(ctx, "welcome"); a == nil || a.Enabled {
				t.Errorf("after disable: %+v", a)
			}
		}
	}
	as, _ = h.Actions.ListAutomations(ctx)
	ds, _ = h.Actions.ListDestinations(ctx)
	if len(as) != 0 || len(ds) != 0 {
		t.Errorf("after deleting: %d automations, %d destinations left", len(as), len(ds))
	}
}

// TestRecentOutbox checks the newest-first listing the store does not
// offer: after every write, the bisected last ID is the true one and the
// newest items come first.
func TestRecentOutbox(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := db.ApplyResolution(ctx, store.Resolution{Profiles: []store.ProfileChange{{ID: "p1", EventCount: 1, At: now}}}); err != nil {
		t.Fatal(err)
	}
	s := &Server{st: db}
	if id, err := s.lastOutboxID(ctx); err != nil || id != 0 {
		t.Fatalf("empty outbox: last ID %d, %v; want 0", id, err)
	}
	for i := 1; i <= 70; i++ {
		res := store.Resolution{
			Transitions: []kiln.Transition{{Segment: "s", ProfileID: "p1", Entered: i%2 == 1, At: now, Version: 1, Reason: kiln.ReasonEvent}},
			Actions:     []store.OutboxItem{{ProfileID: "p1", Destination: "d", Automation: "a", Key: fmt.Sprint("k", i), State: store.OutboxPending, Due: now, NextAt: now, CreatedAt: now}},
		}
		if err := db.ApplyResolution(ctx, res); err != nil {
			t.Fatal(err)
		}
		all, err := db.ListOutbox(ctx, store.OutboxQuery{Limit: 1000})
		if err != nil || len(all) != i {
			t.Fatalf("after %d writes the outbox has %d items (%v)", i, len(all), err)
		}
		want := all[len(all)-1].ID
		if got, err := s.lastOutboxID(ctx); err != nil || got != want {
			t.Fatalf("after %d writes: last ID %d, %v; want %d", i, got, err, want)
		}
		recent, err := s.recentOutbox(ctx, 5)
		if err != nil || len(recent) != min(i, 5) || recent[0].ID != want || recent[len(recent)-1].ID > recent[0].ID {
			t.Fatalf("after %d writes: recent %d items starting at %d (%v); want %d newest first from %d", i, len(recent), recent[0].ID, err, min(i, 5), want)
		}
	}
}

// TestActionsOff: a server without the action runtime says so on every
// page instead of failing, and refuses changes with 503.
func TestActionsOff(t *testing.T) {
	h := newHarness(t, "")
	off := New(Config{Store: h.DB, Engine: h.Engine, Normalize: h.Engine.Extractor().Normalize})
	srv := httptest.NewServer(off.Handler())
	defer srv.Close()
	hh := *h
	hh.URL = srv.URL
	c := hh.signIn(t)
	for _, p := range []string{"/ui/automations", "/ui/destinations", "/ui/deliveries", "/ui/"} {
		code, body := get(t, c, srv.URL+p)
		if code != http.StatusOK || !strings.Contains(body, "does not run automations") {
			t.Errorf("GET %s without actions: %d, want 200 saying the server does not run automations", p, code)
		}
	}
	_, page := get(t, c, srv.URL+"/ui/destinations")
	res, _ := postForm(t, c, srv.URL+"/ui/destinations", url.Values{"csrf": {csrfOf(t, page)}, "name": {"x"}, "url": {"http://127.0.0.1/"}})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("create destination without actions: %d, want 503", res.StatusCode)
	}
}

// TestBrowserAutomation is the marketer's path to a first automation in
// a real browser: add a webhook, note its secret, add an automation on a
// segment, and see a customer's entry delivered.
func TestBrowserAutomation(t *testing.T) {
	h := newHarness(t, "")
	if _, err := h.Engine.ApplyDefinitions(context.Background(), testDefs, false); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	within(t, ctx, 20*time.Second, "adding a webhook",
		chromedp.Navigate(h.URL+"/ui/destinations"),
		typeInto("#d-name", "crm"),
		typeInto("#d-url", rc.srv.URL+"/hook"),
		chromedp.Click(chromedp.CSS(`#new-destination button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-secret")),
	)
	secret, err := h.Actions.Secret(context.Background(), "crm")
	if err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `document.querySelector('#new-secret pre').textContent`); got != secret {
		t.Errorf("secret shown %q, want the destination's", got)
	}
	within(t, ctx, 20*time.Second, "adding an automation",
		chromedp.Navigate(h.URL+"/ui/automations"),
		choose("#a-segment", "big_spenders"),
		chromedp.Click(chromedp.CSS(`#new-automation button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#automations")),
	)
	if got := evalString(t, ctx, `document.getElementById('automations').textContent`); !strings.Contains(got, "big_spenders") || !strings.Contains(got, "crm") || !strings.Contains(got, "enabled") {
		t.Errorf("automations table: %q", got)
	}
	// An order of 20 is not enough for big_spenders; another of 120 is.
	track(t, h, "u-9", "zed@example.com")
	body := `{"userId":"u-9","messageId":"m-big","event":"Order Completed","properties":{"revenue":120},"context":{"traits":{"email":"zed@example.com"}}}`
	req, _ := http.NewRequest("POST", h.URL+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth(h.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/v1/track: %v %v", res, err)
	}
	res.Body.Close()
	h.settle(t)
	d := rc.wait(t, 1)
	if !strings.Contains(string(d.Body), "big_spenders") {
		t.Errorf("delivery: %s", d.Body)
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if err := chromedp.Do(c, chromedp.Navigate(h.URL+"/ui/deliveries"), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Fatalf("the delivery never showed as delivered: %v", err)
		}
		if evalString(t, ctx, `document.querySelector('#recent .state-delivered') ? 'yes' : 'no'`) == "yes" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRESTHookShown: a REST Hooks subscription shows as an automation its
// subscriber manages, and its private destination is not listed.
func TestRESTHookShown(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	if _, err := h.Engine.ApplyDefinitions(ctx, testDefs, false); err != nil {
		t.Fatal(err)
	}
	hook, err := h.Actions.Subscribe(ctx, "http://127.0.0.1:9/zap", action.EventEntered, "buyers")
	if err != nil {
		t.Fatal(err)
	}
	c := h.signIn(t)
	_, page := get(t, c, h.URL+"/ui/automations")
	if tb := tableOf(page, "automations"); !strings.Contains(tb, hook.ID) || !strings.Contains(tb, "REST Hook") || !strings.Contains(tb, "its subscriber removes it") || strings.Contains(tb, "/delete") {
		t.Errorf("automations table: %s", tb)
	}
	_, page = get(t, c, h.URL+"/ui/destinations")
	if strings.Contains(page, hook.ID) || !strings.Contains(page, "No destinations yet") {
		t.Error("the subscription's own destination is listed")
	}
	_, page = get(t, c, h.URL+"/ui/segments/buyers")
	if !strings.Contains(tableOf(page, "automations"), hook.ID) {
		t.Error("segment page does not list the subscription")
	}
}
