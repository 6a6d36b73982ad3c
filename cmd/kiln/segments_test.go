package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/rule"
)

func TestParseArgsTakesFlagsAnywhere(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	limit := fs.Int("limit", 1, "")
	v := fs.Bool("v", false, "")
	if err := parseArgs(fs, []string{"members", "high_value", "-limit", "5", "-v", "extra"}); err != nil {
		t.Fatal(err)
	}
	if *limit != 5 || !*v || strings.Join(fs.Args(), " ") != "members high_value extra" {
		t.Fatalf("limit %d v %v args %v", *limit, *v, fs.Args())
	}
}

// The CLI applies definitions from a file, lists members, explains a
// membership and answers an as-of question, against a running server.
func TestSegmentsCLI(t *testing.T) {
	m, admin, write := testMain(t)
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	defs := filepath.Join(t.TempDir(), "shop.kiln")
	os.WriteFile(defs, []byte(`trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days
segment high_value "High-value customers" {
  spend_365d >= 100
}
`), 0o644)
	day := time.Now().UTC().Add(-48 * time.Hour)
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": []map[string]any{
		{"type": "track", "userId": "vip", "event": "Order Completed", "messageId": "o1", "timestamp": day.Format(time.RFC3339), "properties": map[string]any{"revenue": 150}},
		{"type": "track", "userId": "low", "event": "Order Completed", "messageId": "o2", "timestamp": day.Format(time.RFC3339), "properties": map[string]any{"revenue": 15}},
	}}, false)
	settle(t, m)

	out, errs, err := kilnCmd(t, "apply", "-f", defs)
	if err != nil || !strings.Contains(out, "2 created") {
		t.Fatalf("apply: %v %s %s", err, out, errs)
	}
	out, errs, err = kilnCmd(t, "segments", "members", "high_value", "-limit", "10")
	if err != nil || !strings.Contains(errs, "1 members of high_value") {
		t.Fatalf("members: %v %s %s", err, out, errs)
	}
	out, _, err = kilnCmd(t, "explain", "high_value", "user_id:vip")
	if err != nil || !strings.Contains(out, "IN high_value") || !strings.Contains(out, "150") {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	out, _, err = kilnCmd(t, "explain", "high_value", "user_id:low")
	if err != nil || !strings.Contains(out, "OUT of high_value") {
		t.Fatalf("explain out: %v\n%s", err, out)
	}
	// Before the orders, nobody was a member.
	_, errs, err = kilnCmd(t, "segments", "members", "high_value", "-as-of", day.Add(-time.Hour).Format(time.RFC3339))
	if err != nil || !strings.Contains(errs, "0 members") {
		t.Fatalf("as-of: %v %s", err, errs)
	}
	_, errs, err = kilnCmd(t, "segments", "members", "high_value", "-as-of", day.Add(time.Hour).Format(time.RFC3339))
	if err != nil || !strings.Contains(errs, "1 members") {
		t.Fatalf("as-of after: %v %s", err, errs)
	}
	// A bad definition is refused with its line and column.
	os.WriteFile(defs, []byte("segment broken {\n  nope >= 1\n}\n"), 0o644)
	_, _, err = kilnCmd(t, "apply", "-f", defs)
	if err == nil || !strings.Contains(err.Error(), "2:") {
		t.Fatalf("bad apply: %v", err)
	}
	out, _, err = kilnCmd(t, "segments", "recompute")
	if err != nil || !strings.Contains(out, "0 entered, 0 exited") {
		t.Fatalf("recompute: %v %s", err, out)
	}
}

// The models report reaches the CLI through the API.
func TestModelsCLI(t *testing.T) {
	m, admin, write := testMain(t)
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	var msgs []map[string]any
	for c := 0; c < 60; c++ {
		for k := 0; k < 1+c%4; k++ {
			day := time.Now().UTC().Add(-time.Duration(300-c*3-k*20) * 24 * time.Hour)
			msgs = append(msgs, map[string]any{"type": "track", "userId": fmt.Sprintf("c%d", c), "event": "Order Completed",
				"messageId": fmt.Sprintf("o%d-%d", c, k), "timestamp": day.Format(time.RFC3339), "properties": map[string]any{"revenue": 20 + c}})
		}
	}
	if s := postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": msgs}, false); s != 200 {
		t.Fatal(s)
	}
	settle(t, m)
	out, errs, err := kilnCmd(t, "models", "refit")
	if err != nil {
		t.Fatalf("refit: %v %s", err, errs)
	}
	for _, want := range []string{"Customer models fitted", "RFM groups", "60 customers carry the model traits"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := kilnCmd(t, "models", "report"); err != nil {
		t.Fatal(err)
	}
}

// The API takes the JSON form of definitions too (what a form builder sends).
func TestApplyDefinitionsJSONForm(t *testing.T) {
	m, admin, _ := testMain(t)
	set, err := rule.Parse(`segment buyers { count of "Order Completed" in last 30 days >= 1 }`)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Created []string
	}
	if status := call(t, "POST", m.URL()+"/api/v1/definitions", admin, set, &res); status != 200 || len(res.Created) != 1 || res.Created[0] != "buyers" {
		t.Fatalf("JSON form: status %d, %+v", status, res)
	}
	var bad struct{ Error struct{ Message string } }
	if status := call(t, "POST", m.URL()+"/api/v1/definitions", admin, map[string]any{"definitions": []map[string]any{{"kind": "segment", "name": "x", "nonsense": 1}}}, &bad); status != 400 || bad.Error.Message == "" {
		t.Fatalf("bad JSON form: status %d, %+v", status, bad)
	}
}

// A definition nested a million levels deep, in the text form (the body,
// {"text": ...} and kiln apply) or nested past encoding/json's limit in
// the JSON form, is refused with 400 and the nesting error; the server
// stays up and applies the next definition.
func TestApplyDeeplyNestedDefinition(t *testing.T) {
	m, admin, _ := testMain(t)
	deep := "segment s {\n  " + strings.Repeat("(", 1_000_000) + "\n}\n"
	textErr := fmt.Sprintf("2:%d: definition nested too deeply: more than %d levels", 3+rule.MaxDepth, rule.MaxDepth)
	jsonForm := `{"definitions":[{"kind":"segment","name":"s","condition":` +
		strings.Repeat(`{"op":"not","args":[`, 100_000) + `{"op":"segment","segment":"s"}` + strings.Repeat("]}", 100_000) + "}]}"
	for _, c := range []struct{ name, contentType, body, want string }{
		{"text", "text/plain", deep, textErr},
		{"text in JSON", "application/json", string(mustJSON(map[string]string{"text": deep})), textErr},
		{"JSON form", "application/json", jsonForm, "definitions JSON nested too deeply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", m.URL()+"/api/v1/definitions", strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", c.contentType)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var res struct{ Error struct{ Message string } }
			json.NewDecoder(resp.Body).Decode(&res)
			if resp.StatusCode != 400 || !strings.Contains(res.Error.Message, c.want) || !strings.Contains(res.Error.Message, fmt.Sprint(rule.MaxDepth)) {
				t.Errorf("status %d %q, want 400 with %q", resp.StatusCode, res.Error.Message, c.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	file := filepath.Join(t.TempDir(), "deep.kiln")
	os.WriteFile(file, []byte(deep), 0o644)
	if _, _, err := kilnCmd(t, "apply", "-f", file); err == nil || !strings.Contains(err.Error(), textErr) {
		t.Errorf("kiln apply: %v, want %q", err, textErr)
	}
	if status := call(t, "GET", m.URL()+"/healthz", "", nil, nil); status != 200 {
		t.Fatalf("healthz after the deep definitions: %d", status)
	}
	ok := filepath.Join(t.TempDir(), "ok.kiln")
	os.WriteFile(ok, []byte(`segment buyers { count of "Order Completed" all time >= 1 }`), 0o644)
	if out, _, err := kilnCmd(t, "apply", "-f", ok); err != nil || !strings.Contains(out, "1 created") {
		t.Fatalf("apply after the deep definitions: %v %s", err, out)
	}
}

// Member pages, live or as of an instant, hold at most 10,000 and say
// where to go on; the CLI follows them to print as many as asked for.
func TestMemberPagesLiveAndAsOf(t *testing.T) {
	m, admin, write := testMain(t)
	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	day := time.Now().UTC().Add(-48 * time.Hour)
	var batch []map[string]any
	for i := range 7 {
		batch = append(batch, map[string]any{"type": "track", "userId": fmt.Sprintf("u%d", i), "event": "Order Completed",
			"messageId": fmt.Sprintf("o%d", i), "timestamp": day.Format(time.RFC3339), "properties": map[string]any{"revenue": 10}})
	}
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": batch}, false)
	settle(t, m)
	defs := filepath.Join(t.TempDir(), "buyers.kiln")
	os.WriteFile(defs, []byte(`segment buyers { count of "Order Completed" in last 30 days >= 1 }`), 0o644)
	if _, errs, err := kilnCmd(t, "apply", "-f", defs); err != nil {
		t.Fatalf("apply: %v %s", err, errs)
	}
	asOf := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for _, q := range []string{"", "&as_of=" + asOf} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			var out struct {
				Size       int
				Members    []struct{ ProfileID string }
				ProfileIDs []string `json:"profileIds"`
				Next       string
			}
			if code := call(t, "GET", m.URL()+"/api/v1/segments/buyers/members?limit=3&after="+after+q, admin, nil, &out); code != 200 {
				t.Fatalf("members%s: %d", q, code)
			}
			for _, mm := range out.Members {
				got = append(got, mm.ProfileID)
			}
			got = append(got, out.ProfileIDs...)
			if out.Size != 7 || len(out.Members)+len(out.ProfileIDs) > 3 {
				t.Fatalf("members%s page %d: size %d, %d on the page", q, pages, out.Size, len(out.Members)+len(out.ProfileIDs))
			}
			if out.Next == "" {
				break
			}
			after = out.Next
		}
		if len(got) != 7 || !slices.IsSorted(got) {
			t.Errorf("members%s paged: %v", q, got)
		}
		if code := call(t, "GET", m.URL()+"/api/v1/segments/buyers/members?limit=20000"+q, admin, nil, nil); code != 400 {
			t.Errorf("a limit above a page%s: %d, want 400", q, code)
		}
	}
	for _, args := range [][]string{{"segments", "members", "buyers", "-limit", "5"}, {"segments", "members", "buyers", "-limit", "5", "-as-of", asOf}} {
		out, errs, err := kilnCmd(t, args...)
		lines := strings.Count(strings.TrimSpace(out), "\n") + 1
		if args[len(args)-2] != "-as-of" {
			lines-- // the header
		}
		if err != nil || lines != 5 || !strings.Contains(errs, "7 members of buyers") || !strings.Contains(errs, "more: -after") {
			t.Errorf("%v: %v lines %d\n%s%s", args, err, lines, out, errs)
		}
	}
}
