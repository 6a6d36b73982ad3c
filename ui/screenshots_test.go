package ui

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/store"
)

// Screenshots of every page, on a laptop and on a phone, over a small demo
// data set, for anyone to look at:
//
//	go test ./ui -run TestScreenshots -screenshots "$PWD/screenshots"
var shotDir = flag.String("screenshots", "", "write screenshots of every UI page into this directory")

// loadDemo fills the harness with the demo businesses (smaller than
// `kiln demo`) and the shipped definitions.
func loadDemo(t testing.TB, h *harness, customers, guests int) {
	t.Helper()
	ctx := context.Background()
	cfg := demo.Config{Seed: 1, Customers: customers, Guests: guests, End: time.Now().UTC()}
	for _, s := range demo.Sources(cfg) {
		s.CreatedAt = time.Now().UTC()
		if err := h.DB.CreateSource(ctx, s); err != nil && kiln.ErrorCode(err) != kiln.EConflict {
			t.Fatal(err)
		}
	}
	var evs []kiln.Event
	if _, err := demo.Generate(cfg, func(e kiln.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	h.write(t, evs)
	if _, err := h.Engine.ApplyDefinitions(ctx, library.All(), false); err != nil {
		t.Fatal(err)
	}
}

func TestScreenshots(t *testing.T) {
	if *shotDir == "" {
		t.Skip("pass -screenshots DIR to write a screenshot of every page")
	}
	dir, err := filepath.Abs(*shotDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "")
	ctx := newBrowser(t, 1280, 900)
	// Two webhooks, one that accepts and one that refuses, with
	// automations on the segments the demo fills, so the automation,
	// destination and delivery pages have something to show.
	ok, bad := newReceiver(t), newReceiver(t)
	bad.fail.Store(true)
	bg := context.Background()
	if _, err := h.Engine.ApplyDefinitions(bg, library.All(), false); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		dest, url, seg, on string
	}{{"crm", ok.srv.URL, "high_value", action.OnEnter}, {"support-desk", bad.srv.URL, "repeat_customers", action.OnEnter}} {
		cfg, _ := json.Marshal(action.WebhookConfig{URL: x.url})
		d, err := h.Actions.CreateDestination(bg, action.DestinationSpec{Name: x.dest, Kind: action.KindWebhook, Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Actions.CreateAutomation(bg, action.AutomationSpec{Name: x.seg + "_to_" + x.dest, Segment: x.seg, On: x.on, Destination: d.ID}); err != nil {
			t.Fatal(err)
		}
	}
	loadDemo(t, h, 1200, 400)
	// Let the deliveries finish (the refused ones die after two attempts).
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if its, err := h.DB.ListOutbox(bg, store.OutboxQuery{State: store.OutboxPending, Limit: 1}); err == nil && len(its) == 0 {
			break
		}
	}
	h.UI.runModels(context.Background())
	ms, err := h.DB.Members(bg, "high_value", "", 1)
	if err != nil || len(ms) == 0 {
		t.Fatalf("no high_value member to show: %v", err)
	}
	profile := "/ui/profiles/" + ms[0].ProfileID

	shoot := func(name string, width, height int64, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		steps = append([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(width, height)}, steps...)
		within(t, ctx, 60*time.Second, name, steps...)
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ready := chromedp.WaitVisible(chromedp.CSS("main h1"))
	shoot("login", 1280, 800, chromedp.Navigate(h.URL+"/ui/login"), ready)
	shoot("login-phone", 390, 844, chromedp.Navigate(h.URL+"/ui/login"), ready)
	signInBrowser(t, ctx, h)

	pages := []struct{ name, path string }{
		{"overview", "/ui/"},
		{"segment", "/ui/segments/high_value"},
		{"segment-search", "/ui/segments/repeat_customers?q=a"},
		{"profiles", "/ui/profiles"},
		{"profile", profile},
		{"automations", "/ui/automations"},
		{"destinations", "/ui/destinations"},
		{"deliveries", "/ui/deliveries"},
		{"models", "/ui/models"},
	}
	for _, p := range pages {
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(h.URL + p.path), ready}
		if p.name == "profile" { // show one "why" tree open
			steps = append(steps, chromedp.Evaluate[chromedp.Void](`document.querySelector('details.explain').open = true`))
		}
		shoot(p.name, 1280, 900, steps...)
	}
	for _, p := range []string{"overview", "segment", "profile"} {
		for _, q := range pages {
			if q.name == p {
				shoot(p+"-phone", 390, 844, chromedp.Navigate(h.URL+q.path), ready)
			}
		}
	}
	shoot("builder", 1280, 900, chromedp.Navigate(h.URL+"/ui/segments/new"), chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)))
	shoot("builder-preview", 1280, 900,
		chromedp.Navigate(h.URL+"/ui/segments/lapsed_customers/edit"),
		chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)),
		chromedp.Click(chromedp.CSS("#preview-btn")),
		chromedp.WaitVisible(chromedp.CSS("#preview-size")))
	shoot("builder-error", 1280, 900,
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)),
		typeInto("#def-text", "segment vip \"VIP\" {\n  spend_365d >= 500 and ordrs_365d >= 3\n}\n"),
		chromedp.WaitVisible(chromedp.CSS("#def-errors button[data-line]")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-path="name"]').value === 'vip'`))
	shoot("builder-phone", 390, 844, chromedp.Navigate(h.URL+"/ui/segments/new"), chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)))
	t.Logf("screenshots in %s", dir)
}
