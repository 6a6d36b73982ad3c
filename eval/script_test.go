package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/rule/library"
)

// Scripts in testdata/*.txt describe segment behaviour as a customer
// story; every step is also checked against the naive evaluator.
//
//	tz Europe/London                       evaluator time zone (default UTC)
//	currency GBP                           default currency (default USD)
//	rates 1 EUR = 0.86 GBP, 1 USD = 0.79 GBP   conversion rates
//	library shop.kiln                      load a shipped definition file
//	define                                 inline definitions, up to "end"
//	profile {"birthday": "1990-05-02"}     profile traits (JSON), applied at the current time
//	static press, vips                     static segment lists (applied with profile)
//	at 2025-01-01T10:00:00Z                set the clock
//	event "Order Completed" {"revenue": 20}            an event at the current time
//	event "Order Completed" @2024-12-30T09:00:00Z {..}  a late (or future) event
//	event "Visit Completed" from pos-glendale at glendale {..}  its source and store
//	advance 2025-02-01T00:00:00Z | advance due          move the clock (due: to NextDue)
//	expect member high_value | expect not member high_value
//	expect entered high_value | expect exited high_value | expect no changes
//	expect trait spend_365d 120            the value as JSON shows it (null for none; money: 120.00)
//	expect shown spend_365d 120.00 GBP     the value as people see it, with the currency
//	expect due 2025-04-01T10:00:00Z | expect due none
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

type script struct {
	t      *testing.T
	file   string
	line   int
	loc    *time.Location
	opts   Options
	src    strings.Builder
	p      *Program
	st     *State
	prof   *Profile
	events []*kiln.Event
	now    time.Time
	res    Result
}

func (s *script) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func runScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &script{t: t, file: file, loc: time.UTC, prof: &Profile{}}
	sc := bufio.NewScanner(f)
	defining := false
	for sc.Scan() {
		s.line++
		line := strings.TrimSpace(sc.Text())
		if defining {
			if line == "end" {
				defining = false
			} else {
				s.src.WriteString(sc.Text() + "\n")
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		if s.p == nil && cmd != "tz" && cmd != "library" && cmd != "define" && cmd != "currency" && cmd != "rates" {
			s.compile()
		}
		switch cmd {
		case "tz":
			if s.loc, err = time.LoadLocation(rest); err != nil {
				s.fail("%v", err)
			}
		case "currency":
			s.opts.Currency = rest
		case "rates":
			if s.opts.Rates, err = ParseRates(rest); err != nil {
				s.fail("%v", err)
			}
		case "library":
			s.src.WriteString(library.Source(rest) + "\n")
		case "define":
			defining = true
		case "profile":
			s.prof = &Profile{Static: s.prof.Static}
			if err := json.Unmarshal([]byte(rest), &s.prof.Traits); err != nil {
				s.fail("profile: %v", err)
			}
			s.step(s.p.ApplyProfile(s.st, s.prof, s.now))
		case "static":
			s.prof = &Profile{Traits: s.prof.Traits}
			for _, name := range strings.Split(rest, ",") {
				if name = strings.TrimSpace(name); name != "" {
					s.prof.Static = append(s.prof.Static, name)
				}
			}
			s.step(s.p.ApplyProfile(s.st, s.prof, s.now))
		case "at":
			s.now = s.parseTime(rest)
		case "event":
			s.event(rest)
		case "advance":
			to := s.res.NextDue
			if rest != "due" {
				to = s.parseTime(rest)
			} else if to.IsZero() {
				s.fail("advance due: nothing is due")
			}
			s.now = to
			s.step(s.p.Advance(s.st, s.prof, s.now))
		case "expect":
			s.expect(rest)
		default:
			s.fail("unknown command %q", cmd)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

func (s *script) compile() {
	set, err := rule.Parse(s.src.String())
	if err != nil {
		s.fail("definitions: %v", err)
	}
	s.opts.Location = s.loc
	if s.p, err = Compile(set, s.opts); err != nil {
		s.fail("definitions: %v", err)
	}
	s.st = s.p.NewState()
}

func (s *script) parseTime(v string) time.Time {
	tm, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v))
	if err != nil {
		s.fail("bad time %q", v)
	}
	return tm
}

func (s *script) event(rest string) {
	name, err := stringsUnquotePrefix(rest)
	if err != nil {
		s.fail("event: %v", err)
	}
	rest = strings.TrimSpace(rest[len(name.raw):])
	at := s.now
	if strings.HasPrefix(rest, "@") {
		stamp, tail, _ := strings.Cut(rest[1:], " ")
		at = s.parseTime(stamp)
		rest = strings.TrimSpace(tail)
	}
	ev := &kiln.Event{Type: kiln.Track, Name: name.val, Timestamp: at}
	for _, kw := range []string{"from", "at"} {
		if v, ok := strings.CutPrefix(rest, kw+" "); ok {
			id, tail, _ := strings.Cut(v, " ")
			if kw == "from" {
				ev.SourceID = id
			} else {
				ev.Store = id
			}
			rest = strings.TrimSpace(tail)
		}
	}
	if rest != "" {
		if err := json.Unmarshal([]byte(rest), &ev.Properties); err != nil {
			s.fail("event properties: %v", err)
		}
	}
	s.events = append(s.events, ev)
	s.step(s.p.Apply(s.st, s.prof, ev, s.now))
}

type quoted struct{ raw, val string }

func stringsUnquotePrefix(s string) (quoted, error) {
	if !strings.HasPrefix(s, `"`) {
		return quoted{}, fmt.Errorf("want a quoted event name in %q", s)
	}
	end := strings.Index(s[1:], `"`)
	if end < 0 {
		return quoted{}, fmt.Errorf("unterminated name in %q", s)
	}
	return quoted{raw: s[:end+2], val: s[1 : end+1]}, nil
}

// step records a result and checks the state against the naive
// evaluator at the current instant.
func (s *script) step(res Result) {
	s.t.Helper()
	s.res = res
	want := s.p.Naive(s.events, s.prof, s.now)
	if got := s.p.TraitValues(s.st); !reflect.DeepEqual(got, want.Traits) {
		s.fail("incremental traits %v, naive %v", got, want.Traits)
	}
	for name, in := range want.Segments {
		if got, _ := s.p.Member(s.st, name); got != in {
			s.fail("segment %s: incremental %v, naive %v", name, got, in)
		}
	}
}

func (s *script) expect(rest string) {
	s.t.Helper()
	f := strings.Fields(rest)
	switch {
	case len(f) == 2 && f[0] == "member":
		if in, err := s.p.Member(s.st, f[1]); err != nil || !in {
			s.fail("want member of %s (%v); in %v", f[1], err, s.p.Memberships(s.st))
		}
	case len(f) == 3 && f[0] == "not" && f[1] == "member":
		if in, err := s.p.Member(s.st, f[2]); err != nil || in {
			s.fail("want not member of %s (%v)", f[2], err)
		}
	case len(f) == 2 && (f[0] == "entered" || f[0] == "exited"):
		for _, c := range s.res.Changed {
			if c.Segment == f[1] && c.Entered == (f[0] == "entered") {
				return
			}
		}
		s.fail("want %s %s; changes %+v", f[0], f[1], s.res.Changed)
	case rest == "no changes":
		if len(s.res.Changed) != 0 {
			s.fail("want no changes; got %+v", s.res.Changed)
		}
	case len(f) >= 3 && f[0] == "trait":
		want := strings.Join(f[2:], " ")
		got, err := json.Marshal(s.p.TraitValues(s.st)[f[1]])
		if err != nil || string(got) != want {
			s.fail("trait %s = %s, want %s (%v)", f[1], got, want, err)
		}
	case len(f) >= 3 && f[0] == "shown":
		want := strings.Join(f[2:], " ")
		got := "null"
		if n, ok := s.p.TraitValues(s.st)[f[1]].(Number); ok {
			got = n.Display()
		}
		if got != want {
			s.fail("trait %s shows %s, want %s", f[1], got, want)
		}
	case len(f) == 2 && f[0] == "due":
		if f[1] == "none" {
			if !s.res.NextDue.IsZero() {
				s.fail("want nothing due, NextDue %s", s.res.NextDue.UTC().Format(time.RFC3339Nano))
			}
			return
		}
		if want := s.parseTime(f[1]); !s.res.NextDue.Equal(want) {
			s.fail("NextDue %s, want %s", s.res.NextDue.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
		}
	default:
		s.fail("bad expect %q", rest)
	}
}
