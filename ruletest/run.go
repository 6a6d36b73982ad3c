package ruletest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
)

// Result is what running a test found.
type Result struct {
	File string
	// Expectations counts the expect and expect-fail lines checked.
	Expectations int
	// Failures are the expectations that did not hold (and expect-fail
	// ones that hold now) and the evaluator disagreements, in file order.
	Failures []Failure
	// Known are the expect-fail expectations that failed, as known.
	Known []Failure
	// Segments lists the definitions' segments; Tested those that some
	// expectation names.
	Segments, Tested []string
}

// Failed is the number of failed expectations.
func (r *Result) Failed() int {
	n := 0
	for _, f := range r.Failures {
		if !f.Disagreement {
			n++
		}
	}
	return n
}

// Disagreements is the number of times the incremental evaluator and the
// naive one disagreed.
func (r *Result) Disagreements() int { return len(r.Failures) - r.Failed() }

// OK reports whether everything held.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

// Summary is one line: "shop_test.kilntest: 42 expectations, 0 failed".
func (r *Result) Summary() string {
	s := fmt.Sprintf("%s: %d %s, %d failed", r.File, r.Expectations, plural(r.Expectations, "expectation"), r.Failed())
	if len(r.Known) > 0 {
		s += fmt.Sprintf(", %d known to fail", len(r.Known))
	}
	if d := r.Disagreements(); d > 0 {
		s += fmt.Sprintf(", %d evaluator %s (a bug in Kiln: please report it)", d, plural(d, "disagreement"))
	}
	return s + fmt.Sprintf("; %d of %d segments tested", len(r.Tested), len(r.Segments))
}

// Failure is one failed expectation or evaluator disagreement.
type Failure struct {
	File string
	Line int
	// Msg says what was expected and what was found, on one line.
	Msg string
	// Detail is more, on lines of their own: the explanation tree of a
	// membership, a trait's definition, a profile's transitions.
	Detail string
	// Disagreement marks a difference between the incremental evaluator
	// (what the server runs) and the naive one (which recomputes from all
	// events): a bug in Kiln, not in the definitions or the test.
	Disagreement bool
}

// String is "FILE:LINE: message" with the detail indented below it.
func (f Failure) String() string {
	s := fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Msg)
	if f.Detail != "" {
		s += "\n    " + strings.ReplaceAll(strings.TrimRight(f.Detail, "\n"), "\n", "\n    ")
	}
	return s
}

// profile is one profile of a test: what the engine keeps for it.
type profile struct {
	key    string
	st     *eval.State
	prof   eval.Profile
	events []*kiln.Event // in arrival order
	due    time.Time     // the next Advance, zero if none
	trans  []transition
}

type transition struct {
	seg     string
	entered bool
	at      time.Time
	reason  string
	line    int
	seq     int // recording order, across profiles
}

type runner struct {
	t        *Test
	p        *eval.Program
	res      *Result
	now      time.Time
	since    time.Time // the clock before the last at
	seq      int       // transitions recorded so far
	stepSeq  int       // seq at the last at: later ones are "this step"
	profiles map[string]*profile
	order    []*profile
	line     int
	// pop ranks the profiles for population-relative conditions (nil
	// when the definitions have none), as the engine's does.
	pop *eval.Population
	// disagree holds what disagreed and was reported, so one bug is
	// reported once, not at every later step.
	disagree map[string]bool
}

// Run runs the test: the steps in file order, each profile evaluated as
// the engine evaluates it (see the package documentation), every step
// cross-checked against the naive evaluator.
func (t *Test) Run() *Result {
	r := &runner{t: t, p: t.prog, res: &Result{File: t.File}, profiles: map[string]*profile{}, disagree: map[string]bool{}, pop: t.prog.NewPopulation()}
	tested := map[string]bool{}
	for _, s := range t.steps {
		r.line = s.line
		switch s.kind {
		case stepAt:
			r.since, r.stepSeq = r.now, r.seq
			r.advance(s.at)
			r.now = s.at
		case stepEvent:
			r.advance(r.now)
			r.event(s)
		case stepStatic:
			r.advance(r.now)
			r.static(s)
		case stepExpect:
			r.advance(r.now)
			if s.expect.kind != expTrait {
				tested[s.expect.seg] = true
			}
			r.expect(s.expect)
		}
	}
	r.res.Segments = slices.Clone(r.p.Segments())
	slices.Sort(r.res.Segments)
	for _, s := range r.res.Segments {
		if tested[s] {
			r.res.Tested = append(r.res.Tested, s)
		}
	}
	return r.res
}

func (r *runner) profile(key string) *profile {
	pr := r.profiles[key]
	if pr == nil {
		pr = &profile{key: key, st: r.p.NewState()}
		pr.prof.Rank = r.pop.View(key)
		r.profiles[key] = pr
		r.order = append(r.order, pr)
	}
	return pr
}

// advance does what time alone does up to until, as the engine's timer
// does: each profile is advanced at its due instants, in time order, so
// an expiry is recorded at the instant it happens.
func (r *runner) advance(until time.Time) {
	for {
		var next *profile
		for _, pr := range r.order {
			if !pr.due.IsZero() && !pr.due.After(until) && (next == nil || pr.due.Before(next.due)) {
				next = pr
			}
		}
		if next == nil {
			return
		}
		at := next.due
		if r.pop != nil {
			r.advanceRanked(at)
			continue
		}
		res := r.p.Advance(next.st, &next.prof, at)
		r.record(next, res, at, kiln.ReasonExpiry)
		next.due = time.Time{}
		if res.NextDue.After(at) {
			next.due = res.NextDue
		}
		r.crossCheck(next, at)
	}
}

// advanceRanked advances every profile due at at together, as the
// engine does when definitions rank profiles: each is advanced and its
// values go into the populations (the profiles named are reranked), and
// then each profile's transitions of the instant are netted (reason
// expiry when its own values or rank-free memberships moved, rank
// otherwise).
func (r *runner) advanceRanked(at time.Time) {
	mark := r.seq
	own := map[*profile]bool{}
	var due []*profile
	for _, pr := range r.order {
		if pr.due.Equal(at) {
			due = append(due, pr)
		}
	}
	for _, pr := range due {
		res := r.p.Advance(pr.st, &pr.prof, at)
		r.record(pr, res, at, kiln.ReasonExpiry)
		pr.due = time.Time{}
		if res.NextDue.After(at) {
			pr.due = res.NextDue
		}
		moved := len(res.Traits) > 0
		for _, c := range res.Changed {
			moved = moved || !r.p.RankDependent(c.Segment)
		}
		own[pr] = moved
		r.rerank(pr, at)
	}
	for _, pr := range r.order {
		var kept []transition
		last := map[string]int{}
		first := map[string]int{}
		for i, tr := range pr.trans {
			if tr.seq < mark {
				kept = append(kept, tr)
				continue
			}
			if _, ok := first[tr.seg]; !ok {
				first[tr.seg] = i
			}
			last[tr.seg] = i
		}
		for i, tr := range pr.trans {
			if tr.seq < mark || last[tr.seg] != i || pr.trans[first[tr.seg]].entered != tr.entered {
				continue
			}
			tr.reason = kiln.ReasonRank
			if own[pr] {
				tr.reason = kiln.ReasonExpiry
			}
			kept = append(kept, tr)
		}
		pr.trans = kept
	}
	for _, pr := range r.order {
		r.crossCheck(pr, at)
	}
}

// event applies one event to its profile at the current instant, as the
// engine does: the profile traits it carries first (context.traits, then
// an identify's traits; a null removes a trait), then the event.
func (r *runner) event(s *step) {
	pr := r.profile(s.who)
	ev := *s.ev
	ev.ReceivedAt = r.now
	if ev.Timestamp.IsZero() {
		ev.Timestamp = r.now
	}
	// Traits a track event carries in its context move the profile as an
	// identify does (the engine re-reads them the same way).
	traitsMoved := pr.prof.Absorb(&ev) && ev.Type != kiln.Identify
	pr.events = append(pr.events, &ev)
	res := r.p.Apply(pr.st, &pr.prof, &ev, r.now)
	r.record(pr, res, r.now, kiln.ReasonEvent)
	if traitsMoved {
		res = r.p.ApplyProfile(pr.st, &pr.prof, r.now)
		r.record(pr, res, r.now, kiln.ReasonEvent)
	}
	pr.due = res.NextDue
	r.rerank(pr, r.now)
	r.crossCheck(pr, r.now)
}

// static lists a profile in a static segment or takes it off, as the
// engine's static-list edit does.
func (r *runner) static(s *step) {
	pr := r.profile(s.who)
	list := slices.DeleteFunc(slices.Clone(pr.prof.Static), func(x string) bool { return x == s.seg })
	if s.add {
		list = append(list, s.seg)
	}
	pr.prof.Static = list
	res := r.p.ApplyProfile(pr.st, &pr.prof, r.now)
	r.record(pr, res, r.now, kiln.ReasonManual)
	pr.due = res.NextDue
	r.rerank(pr, r.now)
	r.crossCheck(pr, r.now)
}

func (r *runner) record(pr *profile, res eval.Result, at time.Time, reason string) {
	for _, c := range res.Changed {
		pr.trans = append(pr.trans, transition{seg: c.Segment, entered: c.Entered, at: at, reason: reason, line: r.line, seq: r.seq})
		r.seq++
	}
}

// rerank records pr's values in the populations and re-evaluates, at the
// same instant, the profiles whose rank may have crossed a threshold, as
// the engine does (reason rank).
func (r *runner) rerank(pr *profile, at time.Time) {
	work := []*profile{pr}
	for len(work) > 0 {
		q := work[0]
		work = work[1:]
		for _, key := range r.pop.Update(q.key, q.st) {
			o := r.profiles[key]
			// At its own instant, as the engine does: anything due at
			// at is done by its own Advance.
			res := r.p.Rerank(o.st, &o.prof, time.Time{})
			r.record(o, res, at, kiln.ReasonRank)
			o.due = res.NextDue
			r.crossCheck(o, at)
			work = append(work, o)
		}
	}
}

// naive is the profile's traits and memberships at at, recomputed from
// all of its events (and, for population-relative conditions, from all
// the other profiles' events).
func (r *runner) naive(pr *profile, at time.Time) eval.Snapshot {
	if r.pop == nil {
		return r.p.Naive(pr.events, &pr.prof, at)
	}
	in := make([]eval.NaiveProfile, len(r.order))
	for i, o := range r.order {
		in[i] = eval.NaiveProfile{ID: o.key, Events: o.events, Profile: &o.prof}
	}
	return r.p.NaivePopulation(in, at)[pr.key]
}

// crossCheck compares the profile's incremental state with the naive
// evaluator at at, and reports what newly disagrees.
func (r *runner) crossCheck(pr *profile, at time.Time) {
	nv := r.naive(pr, at)
	got := r.p.TraitValues(pr.st)
	for _, name := range r.p.Traits() {
		r.disagreeIf(pr, at, "trait "+name, !sameValue(got[name], nv.Traits[name]),
			func() string {
				return fmt.Sprintf("%s is %s incrementally but %s naively", name, show(got[name]), show(nv.Traits[name]))
			})
	}
	for _, seg := range r.p.Segments() {
		in, _ := r.p.Member(pr.st, seg)
		r.disagreeIf(pr, at, "segment "+seg, in != nv.Segments[seg], func() string {
			return fmt.Sprintf("%s is %s %s incrementally but %s naively", pr.key, inOut(in), seg, inOut(nv.Segments[seg]))
		})
	}
}

func (r *runner) disagreeIf(pr *profile, at time.Time, what string, differ bool, msg func() string) {
	key := pr.key + "\x00" + what
	if !differ {
		delete(r.disagree, key)
		return
	}
	if r.disagree[key] {
		return
	}
	r.disagree[key] = true
	r.res.Failures = append(r.res.Failures, Failure{File: r.t.File, Line: r.line, Disagreement: true,
		Msg: fmt.Sprintf("the evaluators disagree at %s: %s", r.format(at), msg()),
		Detail: "The incremental evaluator (what the server runs) and the naive one (which recomputes from all events)\n" +
			"must agree; this is a bug in Kiln, not in the definitions or the test. Please report it with this file."})
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func inOut(in bool) string {
	if in {
		return "IN"
	}
	return "OUT of"
}

func (r *runner) format(t time.Time) string { return formatTime(t, r.t.loc) }

// expect checks one expectation at the current instant.
func (r *runner) expect(e *expectation) {
	r.res.Expectations++
	ok, msg, detail := r.check(e)
	f := Failure{File: r.t.File, Line: r.line, Msg: msg, Detail: detail}
	switch {
	case e.known && ok:
		f.Msg = "expect-fail holds now: " + msg + "; make it a plain expect"
		f.Detail = ""
		r.res.Failures = append(r.res.Failures, f)
	case e.known:
		r.res.Known = append(r.res.Known, f)
	case !ok:
		r.res.Failures = append(r.res.Failures, f)
	}
}

// check evaluates an expectation: whether it holds, what was expected
// and found, and the detail that helps see why.
func (r *runner) check(e *expectation) (bool, string, string) {
	at := r.format(r.now)
	var pr *profile
	if e.who != "" {
		pr = r.profiles[e.who]
		if pr == nil {
			return false, fmt.Sprintf("%s has no events yet at %s (a profile exists once an event, identify or static list names it)", e.who, at), ""
		}
	}
	switch e.kind {
	case expIn:
		in := r.member(pr, e.seg)
		want, msg := !e.not, "in"
		if e.not {
			msg = "not in"
		}
		msg = fmt.Sprintf("expected %s %s %s at %s", e.who, msg, e.seg, at)
		switch {
		case in != want && in:
			msg += ", but it is in"
		case in != want:
			msg += ", but it is not"
		}
		return in == want, msg, r.explain(pr, e.seg)
	case expTrait:
		got := r.p.TraitValues(pr.st)[e.trait]
		r.checkTrait(pr, e.trait, got)
		ok := compare(got, e.op, e.want)
		msg := fmt.Sprintf("expected %s %s %s %s at %s, found %s", e.who, e.trait, e.op, e.want.text, at, show(got))
		return ok, msg, r.definition(e.trait)
	case expMembers:
		var in []string
		for _, pr := range r.order {
			if r.member(pr, e.seg) {
				in = append(in, pr.key)
			}
		}
		want := slices.Clone(e.members)
		slices.Sort(want)
		got := slices.Clone(in)
		slices.Sort(got)
		msg := fmt.Sprintf("expected %s = [%s] at %s, found [%s]", e.seg, strings.Join(e.members, ", "), at, strings.Join(in, ", "))
		var detail strings.Builder
		for _, pr := range r.order {
			if slices.Contains(e.members, pr.key) != slices.Contains(in, pr.key) {
				detail.WriteString(r.explain(pr, e.seg))
			}
		}
		for _, w := range e.members {
			if r.profiles[w] == nil {
				fmt.Fprintf(&detail, "%s has no events yet\n", w)
			}
		}
		return slices.Equal(want, got), msg, detail.String()
	case expExplain:
		text := r.explain(pr, e.seg)
		ok := strings.Contains(text, e.text)
		msg := fmt.Sprintf("expected the explanation of %s for %s at %s to contain %q", e.seg, e.who, at, e.text)
		if !ok {
			msg += "; it does not"
		}
		return ok, msg, text
	case expTransition:
		dir := "exit"
		if e.entered {
			dir = "enter"
		}
		when := fmt.Sprintf("at %s", r.format(e.at))
		if e.at.IsZero() {
			when = r.step()
		}
		for _, t := range pr.trans {
			if t.seg == e.seg && t.entered == e.entered && r.matches(t, e.at) {
				return true, fmt.Sprintf("expected %s to %s %s %s, and it did", e.who, dir, e.seg, when), ""
			}
		}
		return false, fmt.Sprintf("expected %s to %s %s %s, but it did not", e.who, dir, e.seg, when), r.transitions(pr, e.seg)
	case expNoTransition:
		for _, t := range pr.trans {
			if t.seg == e.seg && r.matches(t, time.Time{}) {
				return false, fmt.Sprintf("expected no transition of %s in %s %s, but it %s at %s", e.who, e.seg, r.step(), enterExit(t.entered), r.format(t.at)), r.transitions(pr, e.seg)
			}
		}
		return true, fmt.Sprintf("expected no transition of %s in %s %s", e.who, e.seg, r.step()), ""
	}
	panic("unreachable")
}

// step names the interval "since the previous at".
func (r *runner) step() string {
	if r.since.IsZero() {
		return fmt.Sprintf("up to %s", r.format(r.now))
	}
	return fmt.Sprintf("after %s up to %s", r.format(r.since), r.format(r.now))
}

// matches reports whether t is at the instant at, or (at zero) in this
// step: recorded since the last at line (when the clock moved to it, or
// after).
func (r *runner) matches(t transition, at time.Time) bool {
	if !at.IsZero() {
		return t.at.Equal(at)
	}
	return t.seq >= r.stepSeq
}

func enterExit(entered bool) string {
	if entered {
		return "entered"
	}
	return "exited"
}

// member is the profile's membership as the engine holds it now,
// checked against the naive evaluator at this instant.
func (r *runner) member(pr *profile, seg string) bool {
	in, _ := r.p.Member(pr.st, seg)
	nv := r.naive(pr, r.now).Segments[seg]
	r.disagreeIf(pr, r.now, "segment "+seg, in != nv, func() string {
		return fmt.Sprintf("%s is %s %s incrementally but %s naively", pr.key, inOut(in), seg, inOut(nv))
	})
	return in
}

func (r *runner) checkTrait(pr *profile, name string, got any) {
	nv := r.naive(pr, r.now).Traits[name]
	r.disagreeIf(pr, r.now, "trait "+name, !sameValue(got, nv), func() string {
		return fmt.Sprintf("%s is %s incrementally but %s naively", name, show(got), show(nv))
	})
}

// explain renders a segment's explanation for the profile now, as kiln
// explain prints it.
func (r *runner) explain(pr *profile, seg string) string {
	n, err := r.p.Explain(pr.st, &pr.prof, seg, r.now)
	if err != nil {
		return err.Error() + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is %s %s\n", pr.key, inOut(n.Holds), seg)
	eval.WriteTree(&b, n, "  ")
	return b.String()
}

// definition prints a computed trait's definition.
func (r *runner) definition(name string) string {
	for _, d := range r.p.Definitions().Defs {
		if d.Name == name {
			return strings.TrimSpace(rule.FormatDef(d))
		}
	}
	return ""
}

// transitions lists a profile's recorded transitions in a segment.
func (r *runner) transitions(pr *profile, seg string) string {
	var b strings.Builder
	for _, t := range pr.trans {
		if t.seg != seg {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s at %s (%s", pr.key, enterExit(t.entered), seg, r.format(t.at), t.reason)
		if t.reason != kiln.ReasonExpiry {
			fmt.Fprintf(&b, ", line %d", t.line)
		}
		b.WriteString(")\n")
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "%s has no transitions in %s\n", pr.key, seg)
	}
	return b.String()
}

// show prints a trait value as JSON (null for none).
func show(v any) string {
	if n, ok := v.(eval.Number); ok && n.Currency != "" {
		return n.Display() // 500.00 GBP
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// number reads a trait value as an exact number, whatever type the
// evaluator uses for numbers: its JSON form.
func number(v any) (*big.Rat, bool) {
	if v == nil {
		return nil, false
	}
	switch v.(type) {
	case string, bool:
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return new(big.Rat).SetString(string(b))
}

// sameValue compares two trait values exactly.
func sameValue(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x.Cmp(y) == 0
	}
	return show(a) == show(b)
}

// compare applies a test's comparison as the definition language does:
// a missing value (null) satisfies only != and = null.
func compare(got any, op string, want literal) bool {
	if want.cur != "" {
		// 500.00 GBP is not 500.00 USD: a written currency must match.
		if n, ok := got.(eval.Number); !ok || n.Currency != want.cur {
			return op == "!="
		}
	}
	if want.num != nil {
		x, ok := number(got)
		if !ok {
			return op == "!="
		}
		c := x.Cmp(want.num)
		switch op {
		case "=":
			return c == 0
		case "!=":
			return c != 0
		case "<":
			return c < 0
		case "<=":
			return c <= 0
		case ">":
			return c > 0
		}
		return c >= 0
	}
	eq := show(got) == show(want.val)
	if op == "!=" {
		return !eq
	}
	return eq
}
