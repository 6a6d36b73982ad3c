package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("page has no CSRF token")
	}
	return m[1]
}

const testDefs = `trait orders_all = count of "Order Completed" all time
trait spend_all = sum(properties.revenue) of "Order Completed" all time
segment buyers "Buyers" {
  orders_all >= 1
}
segment big_spenders "Big spenders" {
  spend_all >= 100
}
`

// seed writes orders for n customers (customer i spends 10*i) and applies
// testDefs.
func seed(t testing.TB, h *harness, n int) {
	t.Helper()
	now := time.Now().UTC().Add(-time.Hour)
	var evs []kiln.Event
	for i := 1; i <= n; i++ {
		evs = append(evs, order(fmt.Sprintf("c%03d@example.com", i), now.Add(time.Duration(i)*time.Second), float64(10*i), 0))
	}
	h.write(t, evs)
	if _, err := h.Engine.ApplyDefinitions(context.Background(), testDefs, false); err != nil {
		t.Fatal(err)
	}
}

func TestSignIn(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t)

	// No session: every page sends the browser to the sign-in page.
	for _, p := range []string{"/ui/", "/ui/profiles", "/ui/segments/new", "/ui/models"} {
		res, err := c.Get(h.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login?next=") {
			t.Errorf("GET %s signed out: %d %q, want a redirect to the sign-in page", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// JSON endpoints answer 401 instead of redirecting; a form post goes to
	// the sign-in page.
	if code, _ := get(t, c, h.URL+"/ui/stats.json"); code != http.StatusUnauthorized {
		t.Errorf("stats.json signed out: %d, want 401", code)
	}
	if res, err := c.PostForm(h.URL+"/ui/segments", url.Values{"text": {"x"}}); err != nil || res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Errorf("form post signed out: %v %v, want a redirect to sign in", res.StatusCode, err)
	}

	for _, tc := range []struct{ key, want string }{
		{"", "Enter your admin key"},
		{"kiln_a_nope", "not known"},
		{h.WriteKey, "write key"},
	} {
		res, err := c.PostForm(h.URL+"/ui/login", url.Values{"key": {tc.key}})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(b.String(), tc.want) {
			t.Errorf("sign in with %q: %d, body lacks %q", tc.key, res.StatusCode, tc.want)
		}
		if len(res.Cookies()) != 0 {
			t.Errorf("sign in with %q set a cookie", tc.key)
		}
	}

	res, err := c.PostForm(h.URL+"/ui/login", url.Values{"key": {h.AdminKey}, "next": {"/ui/profiles"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/profiles" {
		t.Fatalf("sign in: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	ck := res.Cookies()
	if len(ck) != 1 || ck[0].Name != cookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v, want one HttpOnly SameSite=Strict cookie", ck)
	}
	if code, body := get(t, c, h.URL+"/ui/"); code != 200 || !strings.Contains(body, "Overview") {
		t.Fatalf("overview after sign-in: %d", code)
	}

	// A tampered cookie is no session.
	u, _ := url.Parse(h.URL + "/ui/")
	val := ck[0].Value
	p, sig, _ := strings.Cut(val, ".")
	var sess session
	raw, _ := decodeB64(p)
	json.Unmarshal(raw, &sess)
	sess.Expires += 3600 * 24 * 365
	forged, _ := json.Marshal(sess)
	bad := h.client(t)
	bad.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: encodeB64(forged) + "." + sig, Path: "/ui/"}})
	if res, _ := bad.Get(h.URL + "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("forged session: %d, want a redirect to sign in", res.StatusCode)
	}

	// Revoking the key ends its sessions.
	if err := h.DB.RevokeKey(context.Background(), sess.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Get(h.URL + "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after revoking the key: %d, want a redirect to sign in", res.StatusCode)
	}

	// Redirects after sign-in stay inside the UI.
	for in, want := range map[string]string{"/ui/x": "/ui/x", "https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/", "/api/v1/keys": "/ui/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now()
	h.UI.now = func() time.Time { return now }
	c := h.signIn(t)
	if code, _ := get(t, c, h.URL+"/ui/"); code != 200 {
		t.Fatalf("fresh session: %d", code)
	}
	now = now.Add(13 * time.Hour)
	res, err := c.Get(h.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("session after 13 hours: %d, want a redirect to sign in", res.StatusCode)
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 3)
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/segments/new")
	tok := csrfOf(t, body)
	other := csrfOf(t, func() string { _, b := get(t, h.signIn(t), h.URL+"/ui/segments/new"); return b }())
	if tok == other {
		t.Fatal("two sessions got the same CSRF token")
	}
	text := "segment csrf_test {\n  orders_all >= 1\n}\n"
	for _, tc := range []struct {
		name, tok string
		want      int
	}{{"no token", "", 403}, {"another session's token", other, 403}, {"garbage", "abc", 403}, {"own token", tok, 303}} {
		res, err := c.PostForm(h.URL+"/ui/segments", url.Values{"text": {text}, "csrf": {tc.tok}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("save with %s: %d, want %d", tc.name, res.StatusCode, tc.want)
		}
		_, exists := h.UI.findSegment("csrf_test")
		if exists != (tc.want == 303) {
			t.Errorf("save with %s: segment exists = %v", tc.name, exists)
		}
	}
	// JSON posts carry the token in a header.
	req, _ := http.NewRequest("POST", h.URL+"/ui/builder/parse", strings.NewReader(`{"text":"segment a { orders_all > 1 }"}`))
	if res, _ := c.Do(req); res.StatusCode != 403 {
		t.Errorf("builder parse without token: %d, want 403", res.StatusCode)
	}
	// Sign-out is a state change too.
	res, _ := c.PostForm(h.URL+"/ui/logout", url.Values{})
	if res.StatusCode != 403 {
		t.Errorf("sign-out without token: %d, want 403", res.StatusCode)
	}
}

func postJSON(t testing.TB, c *http.Client, u, tok string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", tok)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		var buf bytes.Buffer
		buf.ReadFrom(res.Body)
		t.Fatalf("POST %s: %d %s", u, res.StatusCode, buf.String())
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func TestBuilder(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 12) // spends 10..120: 3 customers at 100 or more
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/segments/new")
	tok := csrfOf(t, body)

	// Text -> JSON -> text gives the canonical text back.
	src := "segment loyal \"Loyal\" {\n  orders_all >= 1 and spend_all > 50 and not in segment big_spenders\n}\n  freshness every 2 hours\n"
	var parsed struct {
		Definition json.RawMessage `json:"definition"`
		Errors     []lineError     `json:"errors"`
	}
	postJSON(t, c, h.URL+"/ui/builder/parse", tok, map[string]string{"text": src}, &parsed)
	if len(parsed.Errors) > 0 {
		t.Fatalf("parse: %v", parsed.Errors)
	}
	var formatted struct {
		Text   string      `json:"text"`
		Errors []lineError `json:"errors"`
	}
	postJSON(t, c, h.URL+"/ui/builder/format", tok, map[string]any{"definition": parsed.Definition}, &formatted)
	if len(formatted.Errors) > 0 || !strings.Contains(formatted.Text, "spend_all > 50") || !strings.Contains(formatted.Text, "freshness every 2 hours") {
		t.Fatalf("format: %q %v", formatted.Text, formatted.Errors)
	}

	// A form edit (the JSON changed) shows up in the text.
	var def map[string]any
	json.Unmarshal(parsed.Definition, &def)
	def["title"] = "Loyal but modest"
	postJSON(t, c, h.URL+"/ui/builder/format", tok, map[string]any{"definition": def}, &formatted)
	if !strings.HasPrefix(formatted.Text, `segment loyal "Loyal but modest" {`) {
		t.Errorf("format after a title change: %q", formatted.Text)
	}

	// A population-relative condition goes through the form and back.
	rankSrc := "segment top_spenders {\n  spend_all in top 25% among big_spenders\n  and percentile of spend_all >= 50\n}\n"
	postJSON(t, c, h.URL+"/ui/builder/parse", tok, map[string]string{"text": rankSrc}, &parsed)
	if len(parsed.Errors) > 0 || !strings.Contains(string(parsed.Definition), `"rank":{"func":"top","trait":"spend_all","among":"big_spenders"}`) {
		t.Fatalf("parse of a ranking: %s %v", parsed.Definition, parsed.Errors)
	}
	postJSON(t, c, h.URL+"/ui/builder/format", tok, map[string]any{"definition": parsed.Definition}, &formatted)
	if formatted.Text != rankSrc {
		t.Errorf("format of a ranking: %q, want %q", formatted.Text, rankSrc)
	}

	// Syntax errors come back with line and column.
	postJSON(t, c, h.URL+"/ui/builder/parse", tok, map[string]string{"text": "segment x {\n  orders_all >= \n}"}, &parsed)
	if len(parsed.Errors) != 1 || parsed.Errors[0].Line != 3 || parsed.Errors[0].Col != 1 {
		t.Errorf("syntax error: %+v, want one at 3:1", parsed.Errors)
	}
	// Check errors (an unknown trait) come from the preview, positioned.
	var pv preview
	postJSON(t, c, h.URL+"/ui/builder/preview", tok, map[string]string{"text": "segment x {\n  ordres_all >= 1\n}"}, &pv)
	if len(pv.Errors) == 0 || pv.Errors[0].Line != 2 || !strings.Contains(pv.Errors[0].Msg, "ordres_all") {
		t.Errorf("unknown trait: %+v, want an error at line 2 naming it", pv.Errors)
	}

	// The preview's count is what saving then produces.
	text := "segment modest \"Modest\" {\n  spend_all >= 30 and spend_all < 80\n}\n"
	pv = preview{}
	postJSON(t, c, h.URL+"/ui/builder/preview", tok, map[string]string{"text": text}, &pv)
	if len(pv.Errors) > 0 || !pv.New || pv.Size != 5 || pv.Entered != 5 {
		t.Fatalf("preview: %+v, want a new segment of 5 (spends 30..70)", pv)
	}
	if _, ok := h.UI.findSegment("modest"); ok {
		t.Fatal("preview saved the segment")
	}
	// With 12 profiles the sample scans them all: it is the 5 members.
	var sample []string
	for _, m := range pv.Sample {
		sample = append(sample, m.Ident)
	}
	slices.Sort(sample)
	if want := []string{"c003@example.com", "c004@example.com", "c005@example.com", "c006@example.com", "c007@example.com"}; !slices.Equal(sample, want) {
		t.Errorf("preview sample %v, want %v", sample, want)
	}
	res, err := c.PostForm(h.URL+"/ui/segments", url.Values{"text": {text}, "csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 || !strings.HasPrefix(res.Header.Get("Location"), "/ui/segments/modest?flash=") {
		t.Fatalf("save: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	n, _ := h.DB.CountMembers(context.Background(), "modest")
	if n != 5 {
		t.Errorf("saved segment has %d members, preview said 5", n)
	}
	// Editing it previews the difference from the saved version.
	pv = preview{}
	postJSON(t, c, h.URL+"/ui/builder/preview", tok, map[string]string{"text": strings.Replace(text, "< 80", "< 100", 1)}, &pv)
	if pv.New || pv.Before != 5 || pv.Size != 7 || pv.Entered != 2 || pv.Exited != 0 {
		t.Errorf("edit preview: %+v, want 5 -> 7", pv)
	}

	// Saving text with a problem re-renders the builder with the error and
	// the text kept.
	res, err = c.PostForm(h.URL+"/ui/segments", url.Values{"text": {"segment bad {\n  nosuch >= 1\n}"}, "csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(b.String(), `data-line="2"`) || !strings.Contains(b.String(), "nosuch") {
		t.Errorf("bad save: %d; want the builder with a line 2 error", res.StatusCode)
	}
}

// The builder refuses a definition nested a million levels deep, typed or
// sent from the form view, with the nesting error.
func TestBuilderDeeplyNested(t *testing.T) {
	h := newHarness(t, "")
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/segments/new")
	tok := csrfOf(t, body)

	var parsed struct{ Errors []lineError }
	postJSON(t, c, h.URL+"/ui/builder/parse", tok, map[string]string{"text": "segment s { " + strings.Repeat("(", 1_000_000)}, &parsed)
	if len(parsed.Errors) != 1 || parsed.Errors[0].Line != 1 || parsed.Errors[0].Col != 13+rule.MaxDepth || !strings.Contains(parsed.Errors[0].Msg, "nested too deeply") {
		t.Errorf("parse: %+v, want the nesting error at 1:%d", parsed.Errors, 13+rule.MaxDepth)
	}
	var pv preview
	postJSON(t, c, h.URL+"/ui/builder/preview", tok, map[string]string{"text": "segment s { " + strings.Repeat("not ", 1_000_000)}, &pv)
	if len(pv.Errors) != 1 || !strings.Contains(pv.Errors[0].Msg, "nested too deeply") {
		t.Errorf("preview: %+v, want the nesting error", pv.Errors)
	}

	// The form's JSON, past encoding/json's own limit.
	def := `{"kind":"segment","name":"s","condition":` + strings.Repeat(`{"op":"not","args":[`, 100_000)
	req, _ := http.NewRequest("POST", h.URL+"/ui/builder/format", strings.NewReader(`{"definition":`+def))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", tok)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Error string }
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 400 || !strings.Contains(out.Error, "definitions JSON nested too deeply") {
		t.Errorf("format: %d %q, want 400 with the nesting error", res.StatusCode, out.Error)
	}
}

func TestSegmentPage(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 60)
	c := h.signIn(t)
	ctx := context.Background()

	code, body := get(t, c, h.URL+"/ui/segments/buyers")
	if code != 200 {
		t.Fatalf("segment page: %d", code)
	}
	for _, want := range []string{"Buyers", ">60<", "Recent entries and exits", "@example.com", "Export CSV", "Recompute now"} {
		if !strings.Contains(body, want) {
			t.Errorf("segment page lacks %q", want)
		}
	}
	// 60 members: the first page has 50 and a link to the next.
	if got := strings.Count(body, `<tr><td><a href="/ui/profiles/p_`); got != 50 {
		t.Errorf("members table has %d rows, want 50", got)
	}
	ms, _ := h.DB.Members(ctx, "buyers", "", 50)
	next := ms[49].ProfileID
	if !strings.Contains(body, "after="+next) {
		t.Fatalf("no next-page link after %s", next)
	}
	_, body2 := get(t, c, h.URL+"/ui/segments/buyers?after="+next)
	if got := strings.Count(body2, `<tr><td><a href="/ui/profiles/p_`); got != 10 {
		t.Errorf("second page has %d rows, want 10", got)
	}

	// Search finds one member by the start of their email.
	_, body = get(t, c, h.URL+"/ui/segments/big_spenders?q=c011")
	if rows := membersTable(body); !strings.Contains(rows, "c011@example.com") || strings.Count(rows, "<tr>") != 2 {
		t.Errorf("search c011 in big_spenders: want only c011, got %s", rows)
	}
	_, body = get(t, c, h.URL+"/ui/segments/big_spenders?q=c009")
	if !strings.Contains(body, "No members match") {
		t.Errorf("search c009 (spent 90, not a big spender) found someone")
	}

	// The CSV has every member once, with emails.
	res, err := c.Get(h.URL + "/ui/segments/big_spenders/members.csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(res.Body).ReadAll()
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 52 { // header + customers 10..60
		t.Fatalf("CSV has %d lines, want 52", len(recs))
	}
	var emails []string
	for _, r := range recs[1:] {
		emails = append(emails, r[3])
	}
	for i := 10; i <= 60; i++ {
		if !slices.Contains(emails, fmt.Sprintf("c%03d@example.com", i)) {
			t.Errorf("CSV lacks c%03d", i)
		}
	}

	// Unknown segments are a 404 page, not a crash.
	if code, _ := get(t, c, h.URL+"/ui/segments/nope"); code != 404 {
		t.Errorf("unknown segment: %d", code)
	}

	// Freshness: the form re-applies the definition with the new setting.
	tok := csrfOf(t, body)
	res, err = c.PostForm(h.URL+"/ui/segments/buyers/freshness", url.Values{"csrf": {tok}, "mode": {"every"}, "n": {"4"}, "unit": {"hours"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	info, _ := h.UI.findSegment("buyers")
	if info.Freshness == nil || info.Freshness.Mode != "every" || info.Freshness.Every.N != 4 || info.Version != 2 {
		t.Errorf("after setting freshness: %+v version %d", info.Freshness, info.Version)
	}

	// Recompute starts a job the page follows.
	res, err = c.PostForm(h.URL+"/ui/segments/buyers/recompute", url.Values{"csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, "/ui/segments/buyers?job=") {
		t.Fatalf("recompute redirect: %q", loc)
	}
	id := strings.TrimPrefix(loc, "/ui/segments/buyers?job=")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var j struct{ State string }
		_, b := get(t, c, h.URL+"/ui/jobs/"+id)
		json.Unmarshal([]byte(b), &j)
		if j.State == "done" {
			break
		}
		if j.State != "running" || time.Now().After(deadline) {
			t.Fatalf("job %s: %s", id, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, b := get(t, c, h.URL+loc); !strings.Contains(b, "<progress") {
		t.Error("segment page with ?job= shows no progress")
	}
}

func TestOverviewAndProfile(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 15)
	c := h.signIn(t)
	code, body := get(t, c, h.URL+"/ui/")
	if code != 200 {
		t.Fatalf("overview: %d", code)
	}
	// Today: 15 entered buyers, 6 entered big_spenders (spends 100..150).
	for _, want := range []string{"Buyers", "Big spenders", `<span class="tile-num up">21</span>`, "+15", "+6", "No destinations yet", `class="spark"`, "Segments are up to date"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}

	pid, err := h.DB.ProfileFor(context.Background(), kiln.Identifier{Kind: kiln.Email, Value: "c012@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	code, body = get(t, c, h.URL+"/ui/profiles/"+pid)
	if code != 200 {
		t.Fatalf("profile: %d", code)
	}
	for _, want := range []string{"c012@example.com", "Why in, why out", "Entered Big spenders", "Order Completed", "spend_all", ">120.00 USD<", "never merged"} {
		if !strings.Contains(body, want) {
			t.Errorf("profile page lacks %q", want)
		}
	}
	// An identifier works as the address too.
	if code, b := get(t, c, h.URL+"/ui/profiles/email:C012@Example.com"); code != 200 || !strings.Contains(b, pid) {
		t.Errorf("profile by email: %d", code)
	}
	_, body = get(t, c, h.URL+"/ui/profiles?q=c01")
	if strings.Count(body, `<tr><td><a href="/ui/profiles/p_`) != 6 { // c010..c015
		t.Errorf("profile search c01: want 6 rows")
	}
	for _, p := range []string{"/ui/automations", "/ui/destinations", "/ui/models"} {
		if code, _ := get(t, c, h.URL+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

func TestUnmergeAndDelete(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 2)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Minute)
	// A user id seen alone, then with c001's email: the profiles merge.
	h.write(t, []kiln.Event{
		{MessageID: "u-1", SourceID: "web", Type: kiln.Track, Name: kiln.ProductViewed, UserID: "u77", Anchor: "user_id:u77", Timestamp: at, ReceivedAt: at},
	})
	h.write(t, []kiln.Event{
		{MessageID: "u-2", SourceID: "web", Type: kiln.Identify, UserID: "u77", Anchor: "user_id:u77", Timestamp: at.Add(time.Second), ReceivedAt: at,
			Traits: map[string]any{"email": "c001@example.com", "first_name": "Ada"}},
	})
	pid, err := h.DB.ProfileFor(ctx, kiln.Identifier{Kind: kiln.UserID, Value: "u77"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := h.DB.Merges(ctx, pid)
	if err != nil || len(ms) != 1 {
		t.Fatalf("merges of %s: %v %v", pid, ms, err)
	}
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/profiles/"+pid)
	if !strings.Contains(body, "Undo merge") || !strings.Contains(body, "Ada") {
		t.Fatalf("merged profile page has no undo button or name")
	}
	tok := csrfOf(t, body)
	res, err := c.PostForm(h.URL+"/ui/profiles/"+pid+"/unmerge", url.Values{"csrf": {tok}, "merge": {fmt.Sprint(ms[0].ID)}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 || !strings.Contains(res.Header.Get("Location"), "flash=Merge+undone") {
		t.Fatalf("unmerge: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	m, _ := h.DB.GetMerge(ctx, ms[0].ID)
	if m.UndoneAt == nil {
		t.Error("merge not undone")
	}

	// Delete with suppression.
	victim, _ := h.DB.ProfileFor(ctx, kiln.Identifier{Kind: kiln.Email, Value: "c002@example.com"})
	res, err = c.PostForm(h.URL+"/ui/profiles/"+victim+"/delete", url.Values{"csrf": {tok}, "suppress": {"on"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if _, err := h.DB.GetProfile(ctx, victim); !store.IsNotFound(err) {
		t.Errorf("profile still there: %v", err)
	}
	sup, _ := h.DB.Suppressed(ctx, []kiln.Identifier{{Kind: kiln.Email, Value: "c002@example.com"}})
	if len(sup) != 1 {
		t.Error("identifier not suppressed")
	}
}

// TestTransitionSearch checks the cursor searches against reading the
// whole log.
func TestTransitionSearch(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 40)
	ctx := context.Background()
	// More transitions, later: recompute-free edits that move members.
	h.Engine.ApplyDefinitions(ctx, "segment big_spenders \"Big spenders\" {\n  spend_all >= 300\n}\n", false)
	all, err := h.DB.Transitions(ctx, store.TransitionQuery{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range []string{"buyers", "big_spenders", ""} {
		var want []kiln.Transition
		for _, tr := range all {
			if seg == "" || tr.Segment == seg {
				want = append(want, tr)
			}
		}
		for _, n := range []int{1, 5, 15, 1000} {
			got, err := recentTransitions(ctx, h.DB, store.TransitionQuery{Segment: seg}, n)
			if err != nil {
				t.Fatal(err)
			}
			k := min(n, len(want))
			if len(got) != k {
				t.Fatalf("%q n=%d: %d transitions, want %d", seg, n, len(got), k)
			}
			for i := range got {
				if got[i].ID != want[len(want)-1-i].ID {
					t.Fatalf("%q n=%d: #%d is %d, want %d", seg, n, i, got[i].ID, want[len(want)-1-i].ID)
				}
			}
		}
	}
	mid := all[len(all)/2].At
	cur, err := firstTransitionAtOrAfter(ctx, h.DB, mid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range all {
		if tr.ID > cur && tr.At.Before(mid) || tr.ID <= cur && !tr.At.Before(mid) {
			t.Fatalf("cursor %d for %s misplaces transition %d at %s", cur, mid, tr.ID, tr.At)
		}
	}
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
func encodeB64(b []byte) string          { return base64.RawURLEncoding.EncodeToString(b) }

func TestStaticList(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 3)
	ctx := context.Background()
	if _, err := h.Engine.ApplyDefinitions(ctx, "segment press \"Press\" static\n", false); err != nil {
		t.Fatal(err)
	}
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/segments/press")
	if !strings.Contains(body, "Update the list") {
		t.Fatal("static segment page has no list form")
	}
	tok := csrfOf(t, body)
	post := func(add, remove string) string {
		res, err := c.PostForm(h.URL+"/ui/segments/press/static", url.Values{"csrf": {tok}, "add": {add}, "remove": {remove}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, _ := url.QueryUnescape(res.Header.Get("Location"))
		return loc
	}
	if loc := post("C001@example.com\nemail:c002@example.com", ""); !strings.Contains(loc, "2 people joined or left") {
		t.Errorf("adding two: %q", loc)
	}
	if n, _ := h.DB.CountMembers(ctx, "press"); n != 2 {
		t.Errorf("press has %d members, want 2", n)
	}
	if loc := post("nobody@example.com", "c001@example.com"); !strings.Contains(loc, "no profile found for nobody@example.com") {
		t.Errorf("unknown address: %q", loc)
	}
	if n, _ := h.DB.CountMembers(ctx, "press"); n != 2 {
		t.Errorf("a refused edit changed the list: %d members", n)
	}
	post("", "c001@example.com")
	if n, _ := h.DB.CountMembers(ctx, "press"); n != 1 {
		t.Errorf("after removing one: %d members, want 1", n)
	}
	// A computed segment takes no list.
	res, _ := c.PostForm(h.URL+"/ui/segments/buyers/static", url.Values{"csrf": {tok}, "add": {"c003@example.com"}})
	loc, _ := url.QueryUnescape(res.Header.Get("Location"))
	if !strings.Contains(loc, "only static segments") {
		t.Errorf("list edit of a computed segment: %q", loc)
	}
}

// membersTable cuts the members table out of a segment page (the page
// lists recent entries with emails too).
func membersTable(page string) string {
	i := strings.Index(page, `id="members"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</table>")
	return page[i : i+j]
}

func TestModels(t *testing.T) {
	h := newHarness(t, "")
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/models")
	// The engine fits on start, so the page shows either that it has not
	// yet or that there was nothing to fit; either way it offers a refit.
	if !strings.Contains(body, "have not been fitted yet") && !strings.Contains(body, "No purchases in the log yet") || !strings.Contains(body, ">Refit now</button>") {
		t.Fatalf("models page before any fit lacks its empty state and refit button:\n%s", body)
	}
	tok := csrfOf(t, body)
	refit := func() string {
		t.Helper()
		res, err := c.PostForm(h.URL+"/ui/models", url.Values{"csrf": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /ui/models: %d, want a redirect", res.StatusCode)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, b := get(t, c, h.URL+"/ui/models")
			if !strings.Contains(b, "Refitting since") {
				return b
			}
			if time.Now().After(deadline) {
				t.Fatal("the models are still refitting after 20s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// No purchases: the page says so rather than drawing empty charts.
	if b := refit(); !strings.Contains(b, "No purchases in the log yet") {
		t.Error("a refit over no purchases does not say there are none")
	}

	// 120 customers over 40 weeks: most buy every few weeks, some stop
	// partway, so the fit has repeaters and the holdout has purchases.
	now := time.Now().UTC().Add(-time.Hour)
	start := now.Add(-40 * 7 * 24 * time.Hour)
	var evs []kiln.Event
	for i := 0; i < 120; i++ {
		email := fmt.Sprintf("m%03d@example.com", i)
		every := time.Duration(2+i%6) * 7 * 24 * time.Hour
		stop := now
		if i%3 == 0 {
			stop = start.Add(time.Duration(5+i%20) * 7 * 24 * time.Hour)
		}
		for at := start.Add(time.Duration(i%9) * 24 * time.Hour); at.Before(stop); at = at.Add(every) {
			evs = append(evs, order(email, at, float64(20+i%7*15), 0))
		}
	}
	h.write(t, evs)
	b := refit()
	rep := h.Engine.ModelReport()
	if rep == nil || rep.Fit.BGNBD == nil || rep.Fit.Spend == nil || rep.Check == nil || rep.Check.Holdout == nil {
		t.Fatalf("the engine's refit lacks a fit or holdout check: %+v", rep)
	}
	if rep.Purchases != len(evs) {
		t.Errorf("the refit read %d purchases, want %d", rep.Purchases, len(evs))
	}
	// A scored customer's profile page shows the predictions.
	ps, _, err := h.DB.ListProfiles(t.Context(), store.ProfileQuery{Limit: 1})
	if err != nil || len(ps) != 1 {
		t.Fatalf("profiles: %v %d", err, len(ps))
	}
	_, page := get(t, c, h.URL+"/ui/profiles/"+ps[0].ID)
	if !strings.Contains(page, "churn_risk") || !strings.Contains(page, "rfm_segment") || strings.Contains(page, "No predictions yet") {
		t.Errorf("profile page of a scored customer shows no predictions")
	}
	hold := rep.Check.Holdout
	want := []string{
		`<span class="tile-label">Customers</span><span class="tile-num">120</span>`,
		`<span class="tile-label">Purchases read</span><span class="tile-num">` + formatInt(len(evs)) + `</span>`,
		"time unit: a week.",
		"Verdict: " + string(rep.Fit.Verdict),
		verdictWords[rep.Fit.Verdict],
		// Parameters, both models, with their log-likelihoods.
		`<th scope="row">r</th><td class="num">` + num4(rep.Fit.BGNBD.Params.R) + `</td>`,
		`<th scope="row">α (alpha)</th><td class="num">` + num4(rep.Fit.BGNBD.Params.Alpha) + `</td>`,
		`<th scope="row">a</th><td class="num">` + num4(rep.Fit.BGNBD.Params.A) + `</td>`,
		`<th scope="row">b</th><td class="num">` + num4(rep.Fit.BGNBD.Params.B) + `</td>`,
		`<th scope="row">p</th><td class="num">` + num4(rep.Fit.Spend.Params.P) + `</td>`,
		`<th scope="row">q</th><td class="num">` + num4(rep.Fit.Spend.Params.Q) + `</td>`,
		`<th scope="row">γ (gamma)</th><td class="num">` + num4(rep.Fit.Spend.Params.Gamma) + `</td>`,
		`<th scope="row">log-likelihood</th><td class="num">` + num2(rep.Fit.BGNBD.LogLikelihood) + `</td>`,
		`<th scope="row">log-likelihood</th><td class="num">` + num2(rep.Fit.Spend.LogLikelihood) + `</td>`,
		// The holdout plot, its text alternative and totals.
		`role="img" aria-label="Holdout check: ` + num1(hold.Predicted) + ` repeat purchases predicted, ` + fmt.Sprint(hold.Actual) + ` actual"`,
		`<strong id="holdout-predicted">` + num1(hold.Predicted) + `</strong>`,
		`<strong id="holdout-actual">` + formatInt(hold.Actual) + `</strong>`,
		// The RFM plot.
		`aria-label="Customers per RFM group (120 in all): `,
	}
	if hold.RelativeError != nil {
		want = append(want, fmt.Sprintf("%.1f%%", math.Abs(*hold.RelativeError)*100))
	}
	for _, w := range rep.Fit.Warnings {
		// html/template also escapes "+" in text.
		want = append(want, strings.ReplaceAll(template.HTMLEscapeString(w), "+", "&#43;"))
	}
	for _, row := range hold.ByFrequency {
		want = append(want, fmt.Sprintf(`repeats before: %s predicted</title>`, num1(row.Predicted)), fmt.Sprintf(`repeats before: %d actual</title>`, row.Actual))
	}
	total := 0
	for name, n := range rep.RFM {
		total += n
		want = append(want, fmt.Sprintf(`>%s (%s)</text>`, formatInt(n), pct(float64(n), 120)), template.HTMLEscapeString(name)+" "+fmt.Sprint(n))
	}
	if total != 120 {
		t.Errorf("RFM groups hold %d customers, want 120", total)
	}
	if len(rep.Clusters) < 2 {
		t.Fatalf("the refit made %d clusters", len(rep.Clusters))
	}
	for _, cl := range rep.Clusters {
		want = append(want, fmt.Sprintf(`<tr><th scope="row">%s</th><td class="num">%d</td>`, template.HTMLEscapeString(cl.Description), cl.Size),
			`aria-label="`+pct(cl.Share, 1)+` of customers are `+template.HTMLEscapeString(cl.Description)+`"`)
	}
	for _, w := range want {
		if !strings.Contains(b, w) {
			t.Errorf("models page lacks %q", w)
		}
	}
	if n := strings.Count(b, "<svg class=\"chart\""); n != 2 {
		t.Errorf("models page has %d charts, want the holdout and RFM ones", n)
	}

	// A page view reads the kept report: it must not refit.
	fitted := rep.FittedAt
	t0 := time.Now()
	get(t, c, h.URL+"/ui/models")
	took := time.Since(t0)
	if h.Engine.ModelReport().FittedAt != fitted {
		t.Error("viewing the models page refitted the models")
	}
	t.Logf("GET /ui/models after a fit of %d customers: %v", rep.Fit.Customers, took)
}

// TestModelsNotFitted views the page through an engine that has not run,
// so it has no report at all: the empty state with the refit button.
func TestModelsNotFitted(t *testing.T) {
	h := newHarness(t, "")
	c := h.signIn(t)
	eng, err := engine.New(engine.Config{Store: h.DB, Logger: h.UI.log})
	if err != nil {
		t.Fatal(err)
	}
	if eng.ModelReport() != nil {
		t.Fatal("an engine that has not run has a model report")
	}
	srv := httptest.NewServer(New(Config{Store: h.DB, Engine: eng, Logger: h.UI.log, Secret: h.UI.cfg.Secret}).Handler())
	defer srv.Close()
	u, _ := url.Parse(h.URL)
	su, _ := url.Parse(srv.URL)
	c.Jar.SetCookies(su, c.Jar.Cookies(u))
	code, body := get(t, c, srv.URL+"/ui/models")
	if code != http.StatusOK || !strings.Contains(body, "have not been fitted yet") || !strings.Contains(body, ">Refit now</button>") || strings.Contains(body, "<svg class=\"chart\"") {
		t.Errorf("models page without a report: %d, want the empty state with a refit button and no charts:\n%s", code, body)
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")", "+447700900816": "+447700900816", "+1 213 555": "+1 213 555", "+SUM(A1)": "'+SUM(A1)", "-2": "'-2", "@cmd": "'@cmd", "Ann": "Ann", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIngestRate(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now()
	h.UI.now = func() time.Time { return now }
	c := h.signIn(t)
	var st map[string]any
	_, b := get(t, c, h.URL+"/ui/stats.json")
	json.Unmarshal([]byte(b), &st)
	if st["rate"] != nil {
		t.Errorf("rate from a single sample: %v", st["rate"])
	}
	seed(t, h, 40) // 40 events
	now = now.Add(20 * time.Second)
	_, b = get(t, c, h.URL+"/ui/stats.json")
	json.Unmarshal([]byte(b), &st)
	if st["rate"] != "2.0 / s" || st["events"] != "40" || st["profiles"] != "40" {
		t.Errorf("after 40 events in 20 s: %v, want 2.0 / s", st)
	}
}

func TestSizeHistory(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 8)
	ctx := context.Background()
	now := time.Now().UTC()
	var ss []kiln.SegmentSize
	for d := 10; d > 0; d-- {
		ss = append(ss, kiln.SegmentSize{Segment: "buyers", At: now.Add(-time.Duration(d) * 24 * time.Hour), Size: int64(10 - d)})
	}
	if err := h.DB.SaveSegmentSizes(ctx, ss); err != nil {
		t.Fatal(err)
	}
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/")
	// 0 ten days ago, 9 yesterday, and the live size (8) now.
	since := now.Add(-10 * 24 * time.Hour).Format("2 Jan")
	if !strings.Contains(body, `aria-label="up from 0 to 8 since `+since+`"`) {
		t.Errorf("overview sparkline for buyers lacks its trend label")
	}
	// Samples older than the window are not drawn; later samples are read
	// incrementally and appended.
	h.DB.SaveSegmentSizes(ctx, []kiln.SegmentSize{{Segment: "buyers", At: now.Add(-40 * 24 * time.Hour), Size: 99}, {Segment: "buyers", At: now.Add(-time.Hour), Size: 3}})
	pts, err := h.UI.sizeSeries(ctx, "buyers", 30*24*time.Hour, 6*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 11 || pts[0].Size != 0 || pts[len(pts)-1].Size != 3 {
		t.Errorf("series: %+v, want 11 points from 0 to 3", pts)
	}
	_, body = get(t, c, h.URL+"/ui/segments/buyers")
	if !strings.Contains(body, `<svg class="chart"`) || !strings.Contains(body, "<polyline") {
		t.Error("segment page has no size chart")
	}
}

// TestTodayCatchUp: when today's transitions are too many to count within
// a page view, the overview shows a partial count and the rest is
// counted in the background.
func TestTodayCatchUp(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 1100) // 1,100 buyers + 1,091 big spenders: more than one chunk
	old := countBudget
	countBudget = 0
	defer func() { countBudget = old }()
	ctx := context.Background()
	in, _, partial, err := h.UI.today(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !partial || in["buyers"]+in["big_spenders"] >= 2191 {
		t.Fatalf("first count: partial %v, %v; want a partial count", partial, in)
	}
	deadline := time.Now().Add(10 * time.Second)
	for partial {
		if time.Now().After(deadline) {
			t.Fatal("the background count did not finish")
		}
		time.Sleep(10 * time.Millisecond)
		in, _, partial, err = h.UI.today(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	if in["buyers"] != 1100 || in["big_spenders"] != 1091 {
		t.Errorf("caught-up count %v, want 1100 buyers and 1091 big spenders", in)
	}
}

func TestDeleteSegment(t *testing.T) {
	h := newHarness(t, "")
	seed(t, h, 4)
	ctx := context.Background()
	if _, err := h.Engine.ApplyDefinitions(ctx, "segment loyal {\n  in segment buyers and orders_all >= 1\n}\n", false); err != nil {
		t.Fatal(err)
	}
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/segments/buyers")
	if !strings.Contains(body, "Version 1") {
		t.Error("segment page lists no versions")
	}
	tok := csrfOf(t, body)
	del := func(name string) string {
		res, err := c.PostForm(h.URL+"/ui/segments/"+name+"/delete", url.Values{"csrf": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, _ := url.QueryUnescape(res.Header.Get("Location"))
		return loc
	}
	// buyers is used by loyal: refused, with the reason.
	if loc := del("buyers"); !strings.Contains(loc, "Not deleted") || !strings.Contains(loc, "buyers") {
		t.Errorf("deleting a segment another uses: %q", loc)
	}
	if _, ok := h.UI.findSegment("buyers"); !ok {
		t.Fatal("buyers was deleted although loyal uses it")
	}
	if loc := del("loyal"); !strings.HasPrefix(loc, "/ui/?flash=Deleted loyal; 4 members left it.") {
		t.Errorf("deleting loyal: %q", loc)
	}
	if _, ok := h.UI.findSegment("loyal"); ok {
		t.Error("loyal still there")
	}
	if n, _ := h.DB.CountMembers(ctx, "loyal"); n != 0 {
		t.Errorf("loyal still has %d members", n)
	}
}

// Amounts show as users wrote them on the profile page: computed traits
// and the why-in tree (100.1 + 200.2 + 86.63 is 386.93000000000006 in
// float64).
func TestProfileShowsExactAmounts(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now().UTC().Add(-time.Hour)
	var evs []kiln.Event
	for i, r := range []float64{100.1, 200.2, 86.63} {
		evs = append(evs, order("amy@example.com", now.Add(time.Duration(i)*time.Second), r, 0))
	}
	h.write(t, evs)
	if _, err := h.Engine.ApplyDefinitions(context.Background(), testDefs+"segment exact { spend_all = 386.93 }\n", false); err != nil {
		t.Fatal(err)
	}
	c := h.signIn(t)
	_, body := get(t, c, h.URL+"/ui/profiles/email:amy@example.com")
	for _, want := range []string{">386.93 USD<", "value 386.93 USD; needs = 386.93 USD"} {
		if !strings.Contains(body, want) {
			t.Errorf("profile page lacks %q", want)
		}
	}
	if strings.Contains(body, "386.9300") {
		t.Error("profile page shows a float64 artefact")
	}
	if got, want := formatValue(eval.Number{Text: "-1234567.5", Currency: "GBP"}), "-1,234,567.5 GBP"; got != want {
		t.Errorf("formatValue: %q, want %q", got, want)
	}
}
