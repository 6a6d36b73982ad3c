package ruletest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/rule/library"
)

// Error is a problem in a test file or in the definitions it loads, at a
// line (and, for definitions, a column) of a file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in a test file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Test is a parsed test file with its compiled definitions, ready to run.
type Test struct {
	// File is the test file's name in the file system it was read from.
	File string

	loc   *time.Location
	opts  eval.Options // the workspace's currency and rates
	prog  *eval.Program
	steps []*step
}

type stepKind int

const (
	stepAt     stepKind = iota // move the clock
	stepEvent                  // an event (track or identify) of a profile
	stepStatic                 // add to or remove from a static segment
	stepExpect
)

type step struct {
	line   int
	kind   stepKind
	at     time.Time   // stepAt
	who    string      // stepEvent, stepStatic
	ev     *kiln.Event // stepEvent; a zero Timestamp means "now"
	seg    string      // stepStatic
	add    bool        // stepStatic
	expect *expectation
}

type expKind int

const (
	expIn           expKind = iota // expect user 42 [not] in SEG
	expTrait                       // expect user 42 TRAIT OP VALUE
	expMembers                     // expect SEG = [user 42, ...]
	expExplain                     // expect user 42 explain SEG contains "TEXT"
	expTransition                  // expect transition user 42 SEG enter|exit [at TIME]
	expNoTransition                // expect no transition user 42 SEG
)

type expectation struct {
	kind    expKind
	known   bool // expect-fail: known to fail today
	who     string
	seg     string
	not     bool // not in
	trait   string
	op      string
	want    literal
	members []string
	text    string
	entered bool
	at      time.Time // expTransition; zero: since the previous at
}

// literal is a value written in a test file.
type literal struct {
	text string   // as written (strings quoted)
	num  *big.Rat // for numbers
	cur  string   // money: the currency written after the number (500.00 GBP)
	val  any      // string, bool or nil for the others
}

// Parse reads the test file name from fsys, loads the definitions it
// names (paths relative to the file, inside fsys) and compiles them as
// the engine does (eval.Compile without a trait schema). Problems in the
// file or in the definitions come back as an ErrorList, every one found.
func Parse(fsys fs.FS, name string) (*Test, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, ErrorList{{File: name, Msg: err.Error()}}
	}
	p := &parser{fsys: fsys, t: &Test{File: name, loc: time.UTC}}
	stmts, serrs := split(string(b))
	for _, e := range serrs {
		p.errorf(e.Line, "%s", e.Msg)
	}
	for _, s := range stmts {
		p.stmt(s)
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
	if len(p.src) == 0 && len(p.errs) == 0 {
		p.errorf(0, `no definitions: add a line load "FILE.kiln", library "shop.kiln" or define { ... }`)
	}
	if len(p.errs) == 0 {
		p.compile()
	}
	if len(p.errs) == 0 {
		p.checkNames()
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return p.t, nil
}

// source is one piece of the definitions: a file, or a define block
// (its text padded so lines and columns match the test file).
type source struct {
	file  string
	line0 int // line in file of the text's first line, minus one
	text  string
}

type parser struct {
	fsys     fs.FS
	t        *Test
	errs     ErrorList
	src      []source
	clockSet bool
	last     time.Time
	line     int // the statement being parsed
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.t.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// fail aborts the statement being parsed (see stmt).
type fail struct{ msg string }

func (p *parser) failf(format string, args ...any) {
	panic(fail{fmt.Sprintf(format, args...)})
}

func (p *parser) stmt(s stmt) {
	p.line = s.line
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fail)
			if !ok {
				panic(r)
			}
			p.errorf(s.line, "%s", f.msg)
		}
	}()
	word := strings.Fields(s.text)[0]
	if word == "define" || strings.HasPrefix(word, "define{") {
		p.define(s)
		return
	}
	toks, err := tokens(s.text)
	if err != nil {
		p.failf("%v", err)
	}
	c := &cursor{p: p, toks: toks}
	switch w := c.word(); w {
	case "tz":
		if p.clockSet {
			p.failf("tz must come before the first at")
		}
		name := c.word()
		loc, err := time.LoadLocation(name)
		if err != nil {
			p.failf("unknown time zone %q", name)
		}
		p.t.loc = loc
	case "currency":
		if p.clockSet {
			p.failf("currency must come before the first at")
		}
		p.t.opts.Currency = c.word()
	case "rates":
		if p.clockSet {
			p.failf("rates must come before the first at")
		}
		r, err := eval.ParseRates(c.str(`the rates in quotes, such as "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP"`))
		if err != nil {
			p.failf("%v", err)
		}
		p.t.opts.Rates = r
	case "load":
		p.load(c.str("a file name in quotes"))
	case "library":
		name := c.str(`a shipped file in quotes, such as "shop.kiln"`)
		text := library.Source(name)
		if text == "" {
			p.failf("no shipped file %q (there are %s)", name, strings.Join(library.Names(), ", "))
		}
		p.src = append(p.src, source{file: "library " + name, text: text})
	case "at":
		t := c.time()
		back := p.clockSet && t.Before(p.last)
		last := p.last
		p.clockSet, p.last = true, t // one error for one step back
		if back {
			p.failf("the clock goes back: %s is before the previous at, %s (a test runs on one clock: write the stories of several profiles interleaved, in time order)", p.format(t), p.format(last))
		}
		p.t.steps = append(p.t.steps, &step{line: s.line, kind: stepAt, at: t})
	case "user", "email":
		c.i--
		p.profileStep(c, s.line)
	case "expect", "expect-fail":
		e := p.expectation(c)
		e.known = w == "expect-fail"
		if !p.clockSet {
			p.failf("an expectation needs a clock: put an at line before it")
		}
		p.t.steps = append(p.t.steps, &step{line: s.line, kind: stepExpect, expect: e})
	default:
		p.failf("unknown statement %q: want tz, currency, rates, load, library, define, at, user, email, expect or expect-fail", w)
	}
	c.end()
}

// define takes the block of definitions between define's braces.
func (p *parser) define(s stmt) {
	text := s.text
	open := strings.Index(text, "{")
	closeAt := strings.LastIndex(text, "}")
	if open < 0 || closeAt < open || strings.TrimSpace(text[closeAt+1:]) != "" ||
		strings.TrimSpace(strings.Replace(text[:open], "define", "", 1)) != "" {
		p.failf("want define { definitions }")
	}
	// Blank out everything but the definitions, keeping newlines, so
	// positions in the block are positions in the test file.
	blank := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\n' {
				return r
			}
			return ' '
		}, s)
	}
	body := blank(text[:open+1]) + text[open+1:closeAt]
	p.src = append(p.src, source{file: p.t.File, line0: s.line - 1, text: body})
}

func (p *parser) load(name string) {
	full := path.Join(path.Dir(p.t.File), name)
	if !fs.ValidPath(full) {
		p.failf("cannot load %q: it must be in the test file's directory or below it", name)
	}
	b, err := fs.ReadFile(p.fsys, full)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		p.failf("cannot load %q: %v", name, err)
	}
	p.src = append(p.src, source{file: full, text: string(b)})
}

// compile parses the definitions as one set, as the engine holds them,
// and maps positions back to the files they came from.
func (p *parser) compile() {
	var all strings.Builder
	type span struct {
		from int // first line in all
		src  source
	}
	var spans []span
	lineNo := 1
	for _, s := range p.src {
		spans = append(spans, span{lineNo, s})
		text := strings.TrimPrefix(s.text, "\ufeff")
		all.WriteString(text)
		all.WriteString("\n")
		lineNo += strings.Count(text, "\n") + 1
	}
	where := func(line, col int) *Error {
		for i := len(spans) - 1; i >= 0; i-- {
			if line >= spans[i].from {
				s := spans[i].src
				return &Error{File: s.file, Line: line - spans[i].from + 1 + s.line0, Col: col}
			}
		}
		return &Error{File: p.t.File}
	}
	report := func(err error) {
		var list rule.ErrorList
		if !errors.As(err, &list) {
			p.errorf(0, "definitions: %v", err)
			return
		}
		for _, e := range list {
			out := where(e.Line, e.Col)
			// "already defined ... at 4:1" points into the joined text.
			out.Msg = atPos.ReplaceAllStringFunc(e.Msg, func(m string) string {
				var l, c int
				fmt.Sscanf(m, " at %d:%d", &l, &c)
				w := where(l, c)
				return fmt.Sprintf(" at %s:%d:%d", w.File, w.Line, w.Col)
			})
			p.errs = append(p.errs, out)
		}
	}
	set, err := rule.Parse(all.String())
	if err != nil {
		report(err)
		return
	}
	if _, err := rule.Check(set, nil); err != nil {
		report(err)
		return
	}
	opts := p.t.opts
	opts.Location = p.t.loc
	prog, err := eval.Compile(set, opts)
	if err != nil {
		report(err)
		return
	}
	p.t.prog = prog
}

// checkNames reports expectations and static edits that name a segment
// or trait the definitions do not have.
func (p *parser) checkNames() {
	segs, traits := map[string]bool{}, map[string]bool{}
	static := map[string]bool{}
	for _, d := range p.t.prog.Definitions().Defs {
		if d.Kind == rule.KindSegment {
			segs[d.Name] = true
			static[d.Name] = d.Static
		} else {
			traits[d.Name] = true
		}
	}
	seg := func(line int, name string) {
		if !segs[name] {
			p.errorf(line, "unknown segment %q%s", name, suggest(name, segs))
		}
	}
	for _, s := range p.t.steps {
		switch {
		case s.kind == stepStatic:
			seg(s.line, s.seg)
			if segs[s.seg] && !static[s.seg] {
				p.errorf(s.line, "segment %s is not static: its members follow from its condition", s.seg)
			}
		case s.kind == stepExpect && s.expect.kind == expTrait:
			if !traits[s.expect.trait] {
				msg := suggest(s.expect.trait, traits)
				if segs[s.expect.trait] {
					msg = fmt.Sprintf(" (%s is a segment: expect %s in %s)", s.expect.trait, s.expect.who, s.expect.trait)
				}
				p.errorf(s.line, "unknown computed trait %q%s", s.expect.trait, msg)
			}
		case s.kind == stepExpect:
			seg(s.line, s.expect.seg)
		}
	}
}

// suggest names a known name close to a misspelt one.
func suggest(name string, known map[string]bool) string {
	best, bestD := "", 3
	for k := range known {
		if d := distance(name, k); d < bestD || (d == bestD && best != "" && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// profileStep parses what happens to a profile at the current instant:
//
//	user 42 [at TIME] "Event Name" [{properties}] [context {context}]
//	user 42 [at TIME] identify {traits}
//	user 42 added to SEGMENT | user 42 removed from SEGMENT
func (p *parser) profileStep(c *cursor, line int) {
	who, ev := c.profile()
	if !p.clockSet {
		p.failf("%s: an event needs a clock: put an at line before it", who)
	}
	if c.peekWord("added") || c.peekWord("removed") {
		add := c.word() == "added"
		if add {
			c.want("to")
		} else {
			c.want("from")
		}
		p.t.steps = append(p.t.steps, &step{line: line, kind: stepStatic, who: who, seg: c.name("a static segment"), add: add})
		return
	}
	if c.peekWord("at") {
		c.i++
		ev.Timestamp = c.time()
	}
	switch {
	case c.peekWord("identify"):
		c.i++
		ev.Type = kiln.Identify
		ev.Traits = c.object("the traits, as a JSON object")
	case c.peek(tString):
		ev.Type = kiln.Track
		ev.Name = c.next().val
		for done := false; !done; {
			switch {
			case c.peekWord("from"):
				c.i++
				ev.SourceID = c.str(`a source id in quotes, such as "webstore"`)
			case c.peekWord("store"):
				c.i++
				ev.Store = c.str(`a store or location in quotes, such as "york"`)
			case c.peek(tJSON) && ev.Properties == nil:
				ev.Properties = c.object("")
			default:
				done = true
			}
		}
	default:
		p.failf(`%s: want an event name in quotes ("Order Completed"), identify {traits}, added to SEGMENT or removed from SEGMENT`, who)
	}
	if c.peekWord("context") {
		c.i++
		ev.Context = c.object("the context, as a JSON object")
	}
	p.t.steps = append(p.t.steps, &step{line: line, kind: stepEvent, who: who, ev: ev})
}

// expectation parses what follows expect.
func (p *parser) expectation(c *cursor) *expectation {
	e := &expectation{}
	switch {
	case c.peekWord("transition"):
		c.i++
		e.kind = expTransition
		e.who, _ = c.profile()
		e.seg = c.name("a segment")
		switch w := c.word(); w {
		case "enter", "entered", "enters":
			e.entered = true
		case "exit", "exited", "exits":
		default:
			p.failf("want enter or exit after the segment, found %q", w)
		}
		if c.peekWord("at") {
			c.i++
			e.at = c.time()
		}
	case c.peekWord("no"):
		c.i++
		c.want("transition")
		e.kind = expNoTransition
		e.who, _ = c.profile()
		e.seg = c.name("a segment")
	case c.peekWord("user") || c.peekWord("email"):
		e.who, _ = c.profile()
		switch {
		case c.peekWord("in"):
			c.i++
			e.kind, e.seg = expIn, c.name("a segment")
		case c.peekWord("not"):
			c.i++
			c.want("in")
			e.kind, e.seg, e.not = expIn, c.name("a segment"), true
		case c.peekWord("explain"):
			c.i++
			e.kind, e.seg = expExplain, c.name("a segment")
			c.want("contains")
			e.text = c.str("the text in quotes")
		default:
			e.kind = expTrait
			e.trait = c.name(`in SEGMENT, not in SEGMENT, explain SEGMENT contains "..." or a computed trait`)
			e.op = c.word()
			switch e.op {
			case "=", "!=", "<", "<=", ">", ">=":
			default:
				p.failf("want a comparison (= != < <= > >=) after %s, found %q", e.trait, e.op)
			}
			e.want = c.literal()
			if e.want.num != nil && c.peek(tWord) && currencyRE.MatchString(c.toks[c.i].val) {
				e.want.cur = c.next().val
				e.want.text += " " + e.want.cur
			}
			if e.want.num == nil && e.op != "=" && e.op != "!=" {
				p.failf("%s compares numbers; use = or != with %s", e.op, e.want.text)
			}
		}
	default:
		e.kind = expMembers
		e.seg = c.name("user, email, transition, no transition or a segment")
		c.want("=")
		c.punct("[")
		for !c.peekPunct("]") {
			if len(e.members) > 0 {
				c.punct(",")
			}
			who, _ := c.profile()
			if slices.Contains(e.members, who) {
				p.failf("%s is listed twice", who)
			}
			e.members = append(e.members, who)
		}
		c.punct("]")
	}
	return e
}

// cursor reads a statement's tokens; its methods abort the statement
// (failf) on anything unexpected.
type cursor struct {
	p    *parser
	toks []token
	i    int
}

func (c *cursor) next() token {
	if c.i >= len(c.toks) {
		c.p.failf("the line ends too early")
	}
	c.i++
	return c.toks[c.i-1]
}

func (c *cursor) peek(kind int) bool { return c.i < len(c.toks) && c.toks[c.i].kind == kind }

func (c *cursor) peekWord(w string) bool { return c.peek(tWord) && c.toks[c.i].val == w }

func (c *cursor) peekPunct(w string) bool { return c.peek(tPunct) && c.toks[c.i].val == w }

func (c *cursor) end() {
	if c.i < len(c.toks) {
		c.p.failf("unexpected %s at the end of the line", c.toks[c.i])
	}
}

func (c *cursor) word() string {
	if !c.peek(tWord) {
		if c.i >= len(c.toks) {
			c.p.failf("the line ends too early")
		}
		c.p.failf("unexpected %s", c.toks[c.i])
	}
	return c.next().val
}

func (c *cursor) want(w string) {
	if !c.peekWord(w) {
		if c.i >= len(c.toks) {
			c.p.failf("want %s, but the line ends", w)
		}
		c.p.failf("want %s, found %s", w, c.toks[c.i])
	}
	c.i++
}

func (c *cursor) punct(w string) {
	if !c.peekPunct(w) {
		if c.i >= len(c.toks) {
			c.p.failf("want %s, but the line ends", w)
		}
		c.p.failf("want %s, found %s", w, c.toks[c.i])
	}
	c.i++
}

var atPos = regexp.MustCompile(` at \d+:\d+$`)

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// name reads a segment, trait or time zone name.
func (c *cursor) name(what string) string {
	if c.i >= len(c.toks) {
		c.p.failf("want %s, but the line ends", what)
	}
	t := c.toks[c.i]
	if t.kind != tWord || !nameRE.MatchString(t.val) {
		c.p.failf("want %s, found %s", what, t)
	}
	c.i++
	return t.val
}

func (c *cursor) str(what string) string {
	if !c.peek(tString) {
		if c.i >= len(c.toks) {
			c.p.failf("want %s, but the line ends", what)
		}
		c.p.failf("want %s, found %s", what, c.toks[c.i])
	}
	return c.next().val
}

func (c *cursor) object(what string) map[string]any {
	if !c.peek(tJSON) {
		if c.i >= len(c.toks) {
			c.p.failf("want %s, but the line ends", what)
		}
		c.p.failf("want %s, found %s", what, c.toks[c.i])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(c.next().val), &m); err != nil {
		c.p.failf("bad JSON: %v", err)
	}
	return m
}

// profile reads "user ID" or "email ADDRESS" and returns the profile's
// key (how messages name it) and an event carrying its identifier.
func (c *cursor) profile() (string, *kiln.Event) {
	kind := c.word()
	if kind != "user" && kind != "email" {
		c.p.failf("want a profile (user ID or email ADDRESS), found %q", kind)
	}
	if c.i >= len(c.toks) || (c.toks[c.i].kind != tWord && c.toks[c.i].kind != tString) {
		c.p.failf("want the %s after %s", map[string]string{"user": "user id", "email": "email address"}[kind], kind)
	}
	t := c.next()
	id := t.val
	if kind == "email" {
		id = strings.ToLower(id)
	}
	if id == "" {
		c.p.failf("empty %s", kind)
	}
	key := kind + " " + id
	if t.kind == tString || strings.ContainsAny(id, " \t\"") {
		key = kind + " " + strconv.Quote(id)
	}
	ev := &kiln.Event{}
	if kind == "user" {
		ev.UserID, ev.Anchor = id, "user_id:"+id
	} else {
		ev.Anchor = "email:" + strings.ToLower(id)
	}
	return key, ev
}

var (
	numRE  = regexp.MustCompile(`^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
	dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	hmsRE  = regexp.MustCompile(`^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$`)
)

func (c *cursor) literal() literal {
	t := c.next()
	switch {
	case t.kind == tString:
		return literal{text: strconv.Quote(t.val), val: t.val}
	case t.kind != tWord:
	case t.val == "true" || t.val == "false":
		return literal{text: t.val, val: t.val == "true"}
	case t.val == "null":
		return literal{text: t.val}
	case numRE.MatchString(t.val):
		r, ok := new(big.Rat).SetString(t.val)
		if ok {
			return literal{text: t.val, num: r}
		}
	}
	c.p.failf("want a value (a number, \"text\", true, false or null), found %s", t)
	return literal{}
}

// time reads an instant: DATE [HH:MM[:SS[.mmm]]] in the file's time
// zone, or RFC 3339 (2026-01-05T10:00:00Z).
func (c *cursor) time() time.Time {
	if c.i >= len(c.toks) || !c.peek(tWord) {
		c.p.failf("want a time such as 2026-01-05 10:00")
	}
	w := c.next().val
	var t time.Time
	var err error
	switch {
	case dateRE.MatchString(w):
		text, layout := w, "2006-01-02"
		if c.peek(tWord) && hmsRE.MatchString(c.toks[c.i].val) {
			hms := c.next().val
			if len(hms) < 5 || hms[1] == ':' {
				hms = "0" + hms
			}
			text += " " + hms
			layout += " 15:04"
			if len(hms) > 5 {
				layout += ":05"
			}
		}
		t, err = time.ParseInLocation(layout, text, c.p.t.loc)
	default:
		t, err = time.Parse(time.RFC3339Nano, w)
	}
	if err != nil {
		c.p.failf("bad time %q: want 2026-01-05, 2026-01-05 10:00, 2026-01-05 10:00:00.250 or 2026-01-05T10:00:00Z", w)
	}
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		c.p.failf("bad time %q: Kiln keeps times to the millisecond", w)
	}
	return t
}

// format prints an instant the way test files write them, in the file's
// time zone.
func (p *parser) format(t time.Time) string { return formatTime(t, p.t.loc) }

func formatTime(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	s := t.Format("2006-01-02 15:04:05")
	if ms := t.Nanosecond() / int(time.Millisecond); ms != 0 {
		s += fmt.Sprintf(".%03d", ms)
	}
	return s
}
