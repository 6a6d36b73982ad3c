package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/rule/library"
)

// The browser tests drive the system Chromium (Debian's chromium package)
// through the DevTools protocol with chromedp. They skip when no Chromium
// is installed; KILN_CHROMIUM names another binary.

func chromiumPath() string {
	if p := os.Getenv("KILN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile directory and
// returns a context for chromedp actions; it is stopped when the test ends.
func newBrowser(t testing.TB, width, height int) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found: install it (apt-get install -y chromium) or set KILN_CHROMIUM to run the browser tests")
	}
	dir, err := os.MkdirTemp("", "kiln-ui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(width, height),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first run starts the browser; it must not have a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's helpers may write to the profile briefly after exit.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}

// within runs actions with a deadline, failing the test on error.
func within(t testing.TB, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func evalString(t testing.TB, ctx context.Context, js string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return s
}

// typeInto replaces a field's text by typing, as a person would (key
// events, so the page's input handlers run).
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// choose picks an option in a select and fires its change event.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(function(){var s=document.querySelector(%q); s.value=%q; s.dispatchEvent(new Event('change', {bubbles: true}));})()`, sel, value)),
	)
}

func signInBrowser(t testing.TB, ctx context.Context, h *harness) {
	t.Helper()
	within(t, ctx, 20*time.Second, "signing in",
		chromedp.Navigate(h.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), h.AdminKey),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav a[aria-current="page"][href="/ui/"]`)),
	)
}

// TestBrowserBuildSegment is the marketer's path: sign in, build a segment
// in the form, preview its size, save it, then watch a new customer sent
// through the tracking API appear in it.
func TestBrowserBuildSegment(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now().UTC().Add(-2 * time.Hour)
	// Two customers with two recent orders, two with one.
	h.write(t, []kiln.Event{
		order("ann@example.com", now, 40, 0), order("ann@example.com", now.Add(time.Minute), 60, 0),
		order("bob@example.com", now, 25, 0), order("bob@example.com", now.Add(time.Minute), 35, 0),
		order("cat@example.com", now, 80, 0),
		order("dan@example.com", now, 15, 0),
	})
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)

	// Build: "2 or more orders in 90 days, and ordered in the last 30".
	within(t, ctx, 30*time.Second, "building the segment in the form",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		typeInto(`[data-path="name"]`, "frequent_buyers"),
		typeInto(`[data-path="title"]`, "Frequent buyers"),
		typeInto(`[data-path="condition.value"]`, "2"),
		choose(`[data-path="condition.op"]`, "and"),
		chromedp.Click(chromedp.CSS(`[data-path="condition.add"]`)),
		choose(`[data-path="condition.args.1.op"]`, "performed"),
		typeInto(`[data-path="condition.args.1.aggregate.window.n"]`, "30"),
	)
	want := "segment frequent_buyers \"Frequent buyers\" {\n  count of \"Order Completed\" in last 90 days >= 2\n  and performed \"Order Completed\" in last 30 days\n}\n"
	pollText := fmt.Sprintf(`document.getElementById('def-text').value === %q`, want)
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := chromedp.Run(c, chromedp.Poll[bool](pollText))
	cancel()
	if err != nil {
		t.Fatalf("the text view did not follow the form: got %q, want %q (%v)", evalString(t, ctx, `document.getElementById('def-text').value`), want, err)
	}

	// Preview: two people, before anything is saved.
	within(t, ctx, 30*time.Second, "previewing",
		chromedp.Click(chromedp.CSS("#preview-btn")),
		chromedp.WaitVisible(chromedp.CSS("#preview-size")),
	)
	if got := evalString(t, ctx, `document.getElementById('preview-size').textContent`); got != "2" {
		t.Errorf("preview size %q, want 2", got)
	}
	if _, ok := h.UI.findSegment("frequent_buyers"); ok {
		t.Fatal("preview saved the segment")
	}
	if s := evalString(t, ctx, `document.getElementById('preview-sample').textContent`); !strings.Contains(s, "ann@example.com") || !strings.Contains(s, "bob@example.com") || strings.Contains(s, "cat@") {
		t.Errorf("preview sample members: %q, want Ann and Bob", s)
	}

	// Save: the segment page opens with its two members.
	within(t, ctx, 30*time.Second, "saving",
		chromedp.Click(chromedp.CSS("#save-btn")),
		chromedp.WaitVisible(chromedp.CSS("#seg-size")),
	)
	if loc := evalString(t, ctx, `location.pathname`); loc != "/ui/segments/frequent_buyers" {
		t.Fatalf("after saving, the browser is at %s", loc)
	}
	if got := evalString(t, ctx, `document.getElementById('seg-size').textContent`); got != "2" {
		t.Errorf("segment size %q, want 2", got)
	}
	members := evalString(t, ctx, `document.getElementById('members').textContent`)
	if !strings.Contains(members, "ann@example.com") || !strings.Contains(members, "bob@example.com") || strings.Contains(members, "cat@example.com") {
		t.Errorf("members table: %q", members)
	}

	// A new customer orders twice through the tracking API.
	for i := range 2 {
		body := fmt.Sprintf(`{"userId":"new-1","messageId":"m-%d","event":"Order Completed","properties":{"revenue":%d},"context":{"traits":{"email":"eve@example.com","first_name":"Eve"}}}`, i, 20+i)
		req, _ := http.NewRequest("POST", h.URL+"/v1/track", strings.NewReader(body))
		req.SetBasicAuth(h.WriteKey, "")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("/v1/track: %d", res.StatusCode)
		}
	}
	h.settle(t)
	within(t, ctx, 20*time.Second, "reloading the segment page",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#members")),
	)
	members = evalString(t, ctx, `document.getElementById('members').textContent`)
	if !strings.Contains(members, "eve@example.com") || !strings.Contains(members, "Eve") {
		t.Errorf("the new customer is not in the members table: %q", members)
	}
	if got := evalString(t, ctx, `document.getElementById('seg-size').textContent`); got != "3" {
		t.Errorf("segment size after the new orders %q, want 3", got)
	}
	recent := evalString(t, ctx, `document.querySelector('section[aria-labelledby="recent-h"]').textContent`)
	if !strings.Contains(recent, "Eve") || !strings.Contains(recent, "new event") {
		t.Errorf("recent entries do not show Eve entering on a new event: %q", recent)
	}
}

// TestBrowserTextErrors types a broken definition: the error appears
// inline with its line and column, and clicking it puts the cursor there.
func TestBrowserTextErrors(t *testing.T) {
	h := newHarness(t, "")
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	within(t, ctx, 20*time.Second, "typing a broken definition",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)),
		typeInto("#def-text", "segment broken {\n  count of \"Order Completed\" in last 9 weeks >= 1\n}"),
		chromedp.WaitVisible(chromedp.CSS("#def-errors button[data-line]")),
	)
	errText := evalString(t, ctx, `document.getElementById('def-errors').textContent`)
	if !strings.Contains(errText, "line 2, column 40") || !strings.Contains(errText, "minutes, hours or days") {
		t.Errorf("inline error: %q", errText)
	}
	if !strings.Contains(evalString(t, ctx, `document.getElementById('form-stale').hidden ? 'hidden' : 'shown'`), "shown") {
		t.Error("the form does not say it shows the last valid version")
	}
	within(t, ctx, 10*time.Second, "clicking the error", chromedp.Click(chromedp.CSS("#def-errors button[data-line]")))
	pos := evalString(t, ctx, `String(document.getElementById('def-text').selectionStart)`)
	// Line 1 is 17 characters with its newline; column 40 is offset 39.
	if pos != "56" {
		t.Errorf("cursor at %s after clicking the error, want 56", pos)
	}
}

// TestBrowserAccessibility checks every page for what keyboard and
// screen-reader users need: each visible form control has a label, the
// first Tab reaches the skip link, and charts carry a text alternative.
func TestBrowserAccessibility(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 5)
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	pid, err := h.DB.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.Email, Value: "c003@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	const unlabelled = `Array.from(document.querySelectorAll('input, select, textarea')).filter(function (e) {
		if (e.type === 'hidden' || e.offsetParent === null) return false;
		return !(e.labels && e.labels.length) && !e.getAttribute('aria-label');
	}).map(function (e) { return e.outerHTML.slice(0, 80); }).join(' | ')`
	// A destination, so the automation form shows too.
	if _, err := h.Actions.CreateDestination(context.Background(), action.DestinationSpec{Name: "hook", Kind: action.KindWebhook, Config: json.RawMessage(`{"url":"http://127.0.0.1:9/"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ui/", "/ui/segments/new", "/ui/segments/buyers", "/ui/profiles", "/ui/profiles/" + pid, "/ui/automations", "/ui/destinations", "/ui/deliveries", "/ui/models"} {
		within(t, ctx, 20*time.Second, "opening "+p, chromedp.Navigate(h.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if p == "/ui/segments/new" {
			within(t, ctx, 10*time.Second, "waiting for the form", chromedp.WaitVisible(chromedp.CSS(`[data-path="condition.op"]`)))
		}
		if bad := evalString(t, ctx, unlabelled); bad != "" {
			t.Errorf("%s: controls without a label: %s", p, bad)
		}
		within(t, ctx, 10*time.Second, "pressing Tab on "+p, chromedp.KeyEvent("\t"))
		if got := evalString(t, ctx, `document.activeElement ? document.activeElement.textContent : ''`); got != "Skip to content" {
			t.Errorf("%s: the first Tab focuses %q, want the skip link", p, got)
		}
		if bad := evalString(t, ctx, `Array.from(document.querySelectorAll('svg')).filter(function (s) { return !s.getAttribute('aria-label'); }).length + ''`); bad != "0" {
			t.Errorf("%s: %s charts without a text alternative", p, bad)
		}
	}
}

// vocabularyExtra uses the parts of the language the shipped library does
// not: between, in lists, not and or in filters, arithmetic with numbers,
// the other aggregate functions, calendar windows, cron freshness.
const vocabularyExtra = `trait rt_extra = (max(properties.revenue) of "Order Completed" where properties.gift = true or not properties.category in ["teaware", "glassware"] between "2025-01-01" and "2025-12-31") / 2 + first(properties.revenue in GBP) of "Order Completed" this week
segment rt_extra_seg "Extra" {
  (last(properties.revenue) of "Order Completed" today > 10 or distinct(products.sku) of "Order Completed" this month >= 3)
  and traits.vip not exists
  and not traits.closed exists
  and traits.city contains "Lon"
  and performed "Product Viewed" where properties.category != "x" and properties.price <= 5 this year
}
  freshness cron "0 6 * * *" tz "Europe/London"
  backfill all
`

// coverage lists the language features a definition's JSON form uses.
func coverage(v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"op", "func", "cmp", "mode", "backfill"} {
			if s, ok := x[k].(string); ok {
				out[k+":"+s] = true
			}
		}
		if s, ok := x["kind"].(string); ok && x["name"] == nil {
			out["window:"+s] = true
		}
		for _, y := range x {
			coverage(y, out)
		}
	case []any:
		for _, y := range x {
			coverage(y, out)
		}
	}
}

// TestBrowserVocabulary loads definitions using every part of the
// language into the text view, lets the form render them, edits the form
// and checks that the text it writes back is the canonical text of the
// same definition: the form neither loses nor invents anything.
func TestBrowserVocabulary(t *testing.T) {
	set, err := rule.Parse(library.All() + "\n" + vocabularyExtra)
	if err != nil {
		t.Fatal(err)
	}
	// Greedy cover: keep taking the definition that adds the most
	// features not seen yet, so a few definitions cover the language.
	covs := make([]map[string]bool, len(set.Defs))
	for i, d := range set.Defs {
		b, _ := json.Marshal(d)
		var v any
		json.Unmarshal(b, &v)
		covs[i] = map[string]bool{}
		coverage(v, covs[i])
	}
	seen := map[string]bool{}
	var picked []*rule.Def
	for {
		best, gain := -1, 0
		for i, cov := range covs {
			g := 0
			for k := range cov {
				if !seen[k] {
					g++
				}
			}
			if g > gain {
				best, gain = i, g
			}
		}
		if best < 0 {
			break
		}
		for k := range covs[best] {
			seen[k] = true
		}
		picked = append(picked, set.Defs[best])
	}
	for _, want := range []string{"op:not_followed", "op:anniversary", "op:ago", "op:within_last", "op:segment", "op:not_performed", "op:/", "window:between", "cmp:in", "cmp:not exists", "mode:cron", "fn:distinct"} {
		if !seen[strings.Replace(want, "fn:", "func:", 1)] {
			t.Errorf("the vocabulary sample lacks %s", want)
		}
	}
	h := newHarness(t, "")
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	within(t, ctx, 20*time.Second, "opening the builder", chromedp.Navigate(h.URL+"/ui/segments/new"), chromedp.WaitVisible(chromedp.CSS(`[data-path="name"]`)))
	for _, d := range picked {
		text := rule.FormatDef(d)
		d.Title = "Round trip"
		want := rule.FormatDef(d)
		within(t, ctx, 20*time.Second, "loading "+d.Name,
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(function(){var t=document.getElementById('def-text'); t.value=%q; t.dispatchEvent(new Event('input', {bubbles: true}));})()`, text)),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('[data-path="name"]').value === %q`, d.Name), chromedp.WithPollingTimeout(10*time.Second)),
			chromedp.Evaluate[chromedp.Void](`(function(){var t=document.querySelector('[data-path="title"]'); t.value='Round trip'; t.dispatchEvent(new Event('input', {bubbles: true}));})()`),
		)
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('def-text').value === %q`, want)))
		cancel()
		if err != nil {
			t.Errorf("%s: the form wrote back\n%s\nwant\n%s", d.Name, evalString(t, ctx, `document.getElementById('def-text').value`), want)
		}
	}
	t.Logf("%d definitions covered %d language features", len(picked), len(seen))
}

// TestBrowserBuildExpressions builds "an order shipped to a name other
// than the customer's own" in the form: a filter comparing two values,
// with a function and a concatenation, and a condition comparing a
// computed value with a profile trait.
func TestBrowserBuildExpressions(t *testing.T) {
	h := newHarness(t, "")
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	where := "condition.aggregate.where"
	within(t, ctx, 30*time.Second, "building the filter in the form",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		typeInto(`[data-path="name"]`, "gift_buyer"),
		choose(`[data-path="condition.op"]`, "performed"),
		typeInto(`[data-path="condition.aggregate.window.n"]`, "365"),
		chromedp.Click(chromedp.CSS(`[data-path="condition.aggregate.addwhere"]`)),
		choose(`[data-path="`+where+`.op"]`, "compare"),
		choose(`[data-path="`+where+`.right.op"]`, "+"),
		choose(`[data-path="`+where+`.right.args.1.op"]`, "profile"),
		typeInto(`[data-path="`+where+`.right.args.1.name"]`, "last_name"),
		choose(`[data-path="`+where+`.left.op"]`, "call"),
		choose(`[data-path="`+where+`.left.func"]`, "trim"),
	)
	want := "segment gift_buyer \"New segment\" {\n  performed \"Order Completed\" where trim(properties.shipping_address.name) != traits.first_name + traits.last_name in last 365 days\n}\n"
	waitText(t, ctx, want)

	// A condition comparing two values: another value on the right.
	within(t, ctx, 30*time.Second, "building a comparison of two values",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		typeInto(`[data-path="name"]`, "more_orders_than_letters"),
		choose(`[data-path="condition.with"]`, "expr"),
		choose(`[data-path="condition.right.op"]`, "call"),
		choose(`[data-path="condition.right.func"]`, "length"),
		typeInto(`[data-path="condition.right.args.0.name"]`, "first_name"),
		choose(`[data-path="condition.cmp"]`, ">"),
	)
	waitText(t, ctx, "segment more_orders_than_letters \"New segment\" {\n  count of \"Order Completed\" in last 90 days > length(traits.first_name)\n}\n")
}

// waitText waits for the builder's text view to read want.
func waitText(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := chromedp.Run(c, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById('def-text').value === %q`, want)))
	cancel()
	if err != nil {
		t.Fatalf("the text view did not follow the form: got %q, want %q (%v)", evalString(t, ctx, `document.getElementById('def-text').value`), want, err)
	}
}

// A population-relative condition built in the form reads as the text a
// marketer would write, top share and quantile score alike.
func TestBrowserBuildRanking(t *testing.T) {
	h := newHarness(t, "")
	ctx := newBrowser(t, 1280, 900)
	signInBrowser(t, ctx, h)
	within(t, ctx, 30*time.Second, "building a top share in the form",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		typeInto(`[data-path="name"]`, "top_spenders"),
		choose(`[data-path="condition.op"]`, "rank"),
		typeInto(`[data-path="condition.rank.trait"]`, "spend_365d"),
		typeInto(`[data-path="condition.value"]`, "10"),
	)
	waitText(t, ctx, "segment top_spenders \"New segment\" {\n  spend_365d in top 10%\n}\n")

	within(t, ctx, 30*time.Second, "building a quintile score among buyers",
		chromedp.Navigate(h.URL+"/ui/segments/new"),
		typeInto(`[data-path="name"]`, "best_buyers"),
		choose(`[data-path="condition.op"]`, "rank"),
		typeInto(`[data-path="condition.rank.trait"]`, "spend_365d"),
		choose(`[data-path="condition.rank.func"]`, "quintile"),
		typeInto(`[data-path="condition.rank.among"]`, "buyers"),
	)
	waitText(t, ctx, "segment best_buyers \"New segment\" {\n  quintile of spend_365d among buyers >= 5\n}\n")
}
