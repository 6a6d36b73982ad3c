package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// The segment builder edits one definition at a time, as a form and as
// text. The form works on the rule package's JSON form: the browser sends
// the JSON and gets rule.FormatDef's text back (format), or sends text and
// gets the parsed JSON back (parse), so both views always say the same
// thing in the language's own terms. Preview is a dry-run apply.

// lineError is one problem at a line and column of the text.
type lineError struct {
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Msg  string `json:"msg"`
}

var lineColRE = regexp.MustCompile(`^(?:line )?(\d+):(\d+): (.*)$`)

// lineErrors splits an error from parsing, checking or applying into its
// positioned problems.
func lineErrors(err error) []lineError {
	var el rule.ErrorList
	if errors.As(err, &el) {
		out := make([]lineError, len(el))
		for i, e := range el {
			out[i] = lineError{Line: e.Line, Col: e.Col, Msg: e.Msg}
		}
		return out
	}
	var out []lineError
	for _, l := range strings.Split(kiln.ErrorMessage(err), "\n") {
		if m := lineColRE.FindStringSubmatch(l); m != nil {
			ln, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			out = append(out, lineError{Line: ln, Col: col, Msg: m[3]})
		} else if strings.TrimSpace(l) != "" {
			out = append(out, lineError{Msg: l})
		}
	}
	return out
}

type builderData struct {
	Text     string
	Name     string // the definition being edited, "" for a new one
	Errors   []lineError
	Segments []string
	Traits   []string
	Events   []string
}

// starter is the text a new segment starts from: small, valid, and
// showing the shape of the language.
const starter = `segment new_segment "New segment" {
  count of "Order Completed" in last 90 days >= 2
}
`

func (s *Server) builderData(name, text string) builderData {
	d := builderData{Text: text, Name: name}
	for _, def := range s.eng.Definitions() {
		if def.Kind == rule.KindSegment {
			d.Segments = append(d.Segments, def.Name)
		} else {
			d.Traits = append(d.Traits, def.Name)
		}
	}
	d.Events = []string{kiln.OrderCompleted, kiln.OrderRefunded, kiln.OrderCancelled, kiln.CheckoutStarted, kiln.ProductViewed,
		kiln.ProductAdded, kiln.EmailOpened, kiln.EmailLinkClicked, kiln.EmailBounced, kiln.Unsubscribed, kiln.SignedUp,
		kiln.VisitCompleted, kiln.EventRSVPed, kiln.FeedbackGiven, kiln.LoyaltyMilestone}
	sort.Strings(d.Events)
	return d
}

func (s *Server) builderPage(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("name")
	text := starter
	title := "New segment"
	if name != "" {
		found := false
		for _, def := range s.eng.Definitions() {
			if def.Name == name {
				text, found = def.Text, true
				title = "Edit " + titleOr(def.Title, def.Name)
			}
		}
		if !found {
			s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no definition %q to edit", name))
			return
		}
	}
	s.render(w, r, sess, http.StatusOK, "builder", page{Title: title, Nav: "builder", Data: s.builderData(name, text)})
}

// readJSON decodes a builder request. Its nesting is bounded first (the
// form view sends a definition's JSON form), so a deeply nested body gets
// the definitions' nesting error, not encoding/json's.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return kiln.Errorf(kiln.EInvalid, "request body: %v", err)
	}
	if err := rule.CheckJSONDepth(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return kiln.Errorf(kiln.EInvalid, "request body: %v", err)
	}
	return nil
}

// builderParse turns text into the JSON form for the form view.
func (s *Server) builderParse(w http.ResponseWriter, r *http.Request, _ *session) {
	var in struct {
		Text string `json:"text"`
	}
	if err := readJSON(r, &in); err != nil {
		jsonError(w, err)
		return
	}
	set, err := rule.Parse(in.Text)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": lineErrors(err)})
		return
	}
	if len(set.Defs) != 1 {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []lineError{{Line: 1, Col: 1, Msg: fmt.Sprintf("the builder edits one definition at a time; this text has %d (apply several at once with kiln apply)", len(set.Defs))}}})
		return
	}
	out := map[string]any{"definition": set.Defs[0]}
	if errs := s.check(in.Text); len(errs) > 0 {
		out["errors"] = errs
	}
	writeJSON(w, http.StatusOK, out)
}

// check checks text against the live definitions (unknown traits, type
// errors, cycles) without the cost of a dry run, so mistakes show while
// typing. The text goes first in the combined source, so positions within
// it are the user's; problems found only in other definitions are not
// this text's to fix and are left out.
func (s *Server) check(text string) []lineError {
	set, err := rule.Parse(text)
	if err != nil {
		return lineErrors(err)
	}
	mine := map[string]bool{}
	for _, d := range set.Defs {
		mine[d.Name] = true
	}
	var b strings.Builder
	b.WriteString(text)
	b.WriteString("\n")
	for _, d := range s.eng.Definitions() {
		if !mine[d.Name] {
			b.WriteString(d.Text)
			b.WriteString("\n")
		}
	}
	all, err := rule.Parse(b.String())
	if err != nil {
		return nil // a stored text that no longer parses is not the user's problem here
	}
	if _, err := rule.Check(all, nil); err != nil {
		lines := strings.Count(text, "\n") + 1
		var out []lineError
		for _, e := range lineErrors(err) {
			if e.Line <= lines {
				out = append(out, e)
			}
		}
		return out
	}
	return nil
}

// builderFormat turns the form's JSON into the canonical text.
func (s *Server) builderFormat(w http.ResponseWriter, r *http.Request, _ *session) {
	var in struct {
		Definition json.RawMessage `json:"definition"`
	}
	if err := readJSON(r, &in); err != nil {
		jsonError(w, err)
		return
	}
	set, err := rule.ParseJSON([]byte(`{"definitions":[` + string(in.Definition) + `]}`))
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []lineError{{Msg: kiln.ErrorMessage(err)}}})
		return
	}
	text, err := formatDef(set.Defs[0])
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []lineError{{Msg: err.Error()}}})
		return
	}
	out := map[string]any{"text": text}
	// A form that is not finished yet (an empty event name, say) gives
	// text that does not parse or check: say where, as for typed text.
	if errs := s.check(text); len(errs) > 0 {
		out["errors"] = errs
	}
	writeJSON(w, http.StatusOK, out)
}

// formatDef formats a definition built in a form, which may be missing
// parts the formatter expects.
func formatDef(d *rule.Def) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the form is not complete yet: fill in every condition")
		}
	}()
	if d.Name == "" {
		return "", fmt.Errorf("give the %s a name (letters, digits and _)", orDefault(d.Kind, "definition"))
	}
	return rule.FormatDef(d), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type preview struct {
	Name      string        `json:"name"`
	Title     string        `json:"title"`
	Kind      string        `json:"kind"`
	Unchanged bool          `json:"unchanged"`
	New       bool          `json:"new"`
	Size      int64         `json:"size"`
	Before    int64         `json:"before"`
	Entered   int           `json:"entered"`
	Exited    int           `json:"exited"`
	Others    []otherChange `json:"others,omitempty"`
	Errors    []lineError   `json:"errors,omitempty"`
	Took      string        `json:"took,omitempty"`
	// Sample is some of the profiles the segment would hold, found by
	// evaluating profiles from a random point (Scanned of them).
	Sample  []sampleRow `json:"sample,omitempty"`
	Scanned int         `json:"scanned,omitempty"`
}

type otherChange struct {
	Name    string `json:"name"`
	Entered int    `json:"entered"`
	Exited  int    `json:"exited"`
}

// builderPreview applies the text as a dry run: how many profiles the
// segment would hold, and what else would move.
func (s *Server) builderPreview(w http.ResponseWriter, r *http.Request, _ *session) {
	var in struct {
		Text string `json:"text"`
	}
	if err := readJSON(r, &in); err != nil {
		jsonError(w, err)
		return
	}
	set, err := rule.Parse(in.Text)
	if err != nil {
		writeJSON(w, http.StatusOK, preview{Errors: lineErrors(err)})
		return
	}
	if len(set.Defs) != 1 {
		writeJSON(w, http.StatusOK, preview{Errors: []lineError{{Line: 1, Col: 1, Msg: "the builder previews one definition at a time"}}})
		return
	}
	def := set.Defs[0]
	p := preview{Name: def.Name, Title: titleOr(def.Title, def.Name), Kind: def.Kind, New: true}
	for _, d := range s.eng.Definitions() {
		if d.Name == def.Name {
			p.New, p.Before = false, d.Size
		}
	}
	res, err := s.eng.ApplyDefinitions(r.Context(), in.Text, true)
	if err != nil {
		if c := kiln.ErrorCode(err); c != kiln.EInvalid && c != kiln.ENotFound && c != kiln.EConflict {
			jsonError(w, err)
			return
		}
		p.Errors = lineErrors(err)
		writeJSON(w, http.StatusOK, p)
		return
	}
	p.Unchanged = len(res.Unchanged) > 0
	p.Entered, p.Exited = res.Entered[def.Name], res.Exited[def.Name]
	p.Size = p.Before + int64(p.Entered) - int64(p.Exited)
	for _, n := range sortedKeys(res.Entered) {
		if n != def.Name {
			p.Others = append(p.Others, otherChange{Name: n, Entered: res.Entered[n], Exited: res.Exited[n]})
		}
	}
	for _, n := range sortedKeys(res.Exited) {
		if _, ok := res.Entered[n]; !ok && n != def.Name {
			p.Others = append(p.Others, otherChange{Name: n, Exited: res.Exited[n]})
		}
	}
	p.Took = res.Took
	if def.Kind == rule.KindSegment && p.Size > 0 {
		rows, scanned, err := s.sampleMembers(r.Context(), in.Text, def.Name, 5, 400*time.Millisecond)
		if err != nil {
			s.log.Warn("ui: sampling preview members", "segment", def.Name, "err", err)
		}
		p.Sample, p.Scanned = rows, scanned
	}
	writeJSON(w, http.StatusOK, p)
}

// saveSegment applies the builder's text for real.
func (s *Server) saveSegment(w http.ResponseWriter, r *http.Request, sess *session) {
	text := r.PostFormValue("text")
	editing := r.PostFormValue("editing")
	fail := func(errs []lineError) {
		title := "New segment"
		if editing != "" {
			title = "Edit " + editing
		}
		d := s.builderData(editing, text)
		d.Errors = errs
		s.render(w, r, sess, http.StatusBadRequest, "builder", page{Title: title, Nav: "builder", Error: "Not saved: fix the problems below.", Data: d})
	}
	set, err := rule.Parse(text)
	if err != nil {
		fail(lineErrors(err))
		return
	}
	if len(set.Defs) != 1 {
		fail([]lineError{{Line: 1, Col: 1, Msg: "the builder saves one definition at a time"}})
		return
	}
	def := set.Defs[0]
	res, err := s.eng.ApplyDefinitions(r.Context(), text, false)
	if err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EInternal || c == kiln.EUnavailable {
			s.errorPage(w, r, sess, err)
			return
		}
		fail(lineErrors(err))
		return
	}
	msg := "Saved. "
	switch {
	case len(res.Unchanged) > 0:
		msg = "Nothing changed: the definition is the same as the saved one."
	case def.Kind == rule.KindSegment:
		msg += fmt.Sprintf("%s entered and %s left the segment.", plural(res.Entered[def.Name], "profile"), formatInt(res.Exited[def.Name]))
	}
	if def.Kind != rule.KindSegment {
		s.redirectFlash(w, r, "/ui/", "Trait "+def.Name+" saved.")
		return
	}
	s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(def.Name), msg)
}
