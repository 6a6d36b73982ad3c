package rule

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// wantTooDeep checks err is the nesting error at line:col, naming the
// limit, and that it came quickly (the crash it replaces took seconds to
// exhaust a 1 GB stack).
func wantTooDeep(t *testing.T, err error, pos string, start time.Time) {
	t.Helper()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to reject", took)
	}
	var el ErrorList
	if !errors.As(err, &el) || len(el) != 1 {
		t.Fatalf("got %v, want one nesting error", err)
	}
	msg := el[0].Error()
	if !strings.HasPrefix(msg, pos+": ") || !strings.Contains(msg, "nested too deeply") || !strings.Contains(msg, fmt.Sprint(MaxDepth)) {
		t.Errorf("got %q, want the nesting error at %s naming the limit %d", msg, pos, MaxDepth)
	}
}

func TestMillionParentheses(t *testing.T) {
	for _, tc := range []struct{ name, prefix, unit string }{
		{"condition", "segment s { ", "("},
		{"arithmetic", "trait t = ", "("},
		{"filter", `trait t = count of "A" where `, "("},
		{"not", "segment s { ", "not "},
		{"filter not", `trait t = count of "A" where `, "not "},
		{"any", `trait t = count of "A" where `, "any("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse(tc.prefix + strings.Repeat(tc.unit, 1_000_000))
			// The error points at the first level past the limit.
			col := len(tc.prefix) + 1 + MaxDepth*len(tc.unit)
			wantTooDeep(t, err, fmt.Sprintf("1:%d", col), start)
		})
	}
}

// A left-associative chain nests the tree without nesting the text.
func TestLongArithmeticChain(t *testing.T) {
	start := time.Now()
	_, err := Parse("\ntrait t = " + strings.Repeat("1 + ", 1_000_000) + "1")
	wantTooDeep(t, err, "2:11", start) // where the too-deep expression starts
}

func TestDeepJSON(t *testing.T) {
	nots := func(n int) string {
		return `{"definitions":[{"kind":"segment","name":"s","condition":` +
			strings.Repeat(`{"op":"not","args":[`, n) +
			`{"op":"segment","segment":"s"}` + strings.Repeat(`]}`, n) + `}]}`
	}
	// Far deeper than encoding/json decodes: rejected by the scan, at
	// the JSON's own line and column of the first bracket too deep.
	start := time.Now()
	data := nots(1_000_000)
	col, depth := 0, 0
	for col < len(data) && depth <= maxJSONDepth {
		if data[col] == '{' || data[col] == '[' {
			depth++
		}
		col++
	}
	_, err := ParseJSON([]byte(data))
	wantTooDeep(t, err, fmt.Sprintf("1:%d", col), start)
	if !strings.Contains(err.Error(), "definitions JSON") {
		t.Errorf("%v: want it to say the JSON is too deep", err)
	}

	// Decodable, but deeper than MaxDepth: the error names the definition.
	_, err = ParseJSON([]byte(nots(MaxDepth + 1)))
	if err == nil || err.Error() != "segment s: "+tooDeep(Pos{}).Msg {
		t.Errorf("got %v, want the nesting error naming segment s", err)
	}
}

// Check bounds sets built in code too, before walking them.
func TestCheckDeepSet(t *testing.T) {
	c := &Cond{Op: CSegment, Segment: "s"}
	for range 1_000_000 {
		c = &Cond{Op: CNot, Args: []*Cond{c}}
	}
	start := time.Now()
	_, err := Check(&Set{Defs: []*Def{{Kind: KindSegment, Name: "s", Cond: c}}}, nil)
	var el ErrorList
	if !errors.As(err, &el) || len(el) != 1 || !strings.Contains(el[0].Msg, "segment s: definition nested too deeply") {
		t.Fatalf("got %v, want the nesting error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
}

// AtLimit is text nested n levels in every way the language nests: at
// MaxDepth it is valid, at MaxDepth+1 every line is an error.
func AtLimit(n int) string {
	var and strings.Builder
	for i := range n {
		fmt.Fprintf(&and, "count of \"A\" all time > %d and (", i)
	}
	and.WriteString(`count of "A" all time > 0` + strings.Repeat(")", n))
	open, closed, nots := strings.Repeat("(", n), strings.Repeat(")", n), strings.Repeat("not ", n)
	return "trait parens = " + open + `count of "A" all time` + closed + "\n" +
		`trait chain = count of "A" all time` + strings.Repeat(" + 1", n) + "\n" +
		`trait filter_parens = count of "A" where ` + open + "properties.x = 1" + closed + " all time\n" +
		`trait filter_nots = count of "A" where ` + nots + "properties.x = 1 all time\n" +
		"segment nots { " + nots + "in segment and_or }\n" +
		"segment and_or { " + and.String() + " }\n"
}

func TestAtLimit(t *testing.T) {
	src := AtLimit(MaxDepth)
	set, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(set, nil); err != nil {
		t.Fatal(err)
	}
	// Formatting, reparsing and the JSON form keep it within the limit.
	text := Format(set)
	again, err := Parse(text)
	if err != nil {
		t.Fatalf("formatted text: %v", err)
	}
	if Format(again) != text {
		t.Error("format is not stable")
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data)
	if err != nil {
		t.Fatalf("JSON form: %v", err)
	}
	if Format(back) != text {
		t.Error("JSON round trip changed the text")
	}

	// One more level of each kind is an error.
	for _, line := range strings.Split(strings.TrimSpace(AtLimit(MaxDepth+1)), "\n") {
		if _, err := Parse(line); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Errorf("%.40s...: got %v, want the nesting error", line, err)
		}
	}
}
