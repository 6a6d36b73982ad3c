package ui

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// --- overview -------------------------------------------------------------------

type segRow struct {
	Name, Title, Description string
	Size                     int64
	Spark                    template.HTML
	Entered, Exited          int64
	Freshness                string
	Static                   bool
}

type overviewData struct {
	Segments     []segRow
	Traits       int
	TraitList    []engine.SegmentInfo
	Entered      int64
	Exited       int64
	Partial      bool
	History      bool // some segment has recorded sizes to draw
	Profiles     int64
	Events       int64
	Rate         float64
	RateOK       bool
	Lag          int64 // events received but not processed yet
	LagKnown     bool
	Destinations *destSummary // nil: the server runs no automations
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	d := overviewData{}
	entered, exited, partial, err := s.today(ctx)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	d.Partial = partial
	for _, info := range s.eng.Definitions() {
		if info.Kind != rule.KindSegment {
			d.Traits++
			d.TraitList = append(d.TraitList, info)
			continue
		}
		pts, err := s.sizeSeries(ctx, info.Name, 30*24*time.Hour, 6*time.Hour)
		if err != nil {
			s.errorPage(w, r, sess, err)
			return
		}
		pts = append(pts, point{At: s.now(), Size: info.Size})
		d.Segments = append(d.Segments, segRow{
			Name: info.Name, Title: info.Title, Description: info.Description, Size: info.Size,
			Spark: sparkline(pts, 120, 28), Entered: entered[info.Name], Exited: exited[info.Name],
			Freshness: freshnessText(info.Freshness), Static: info.Static,
		})
		d.Entered += entered[info.Name]
		d.Exited += exited[info.Name]
		if len(pts) > 2 {
			d.History = true
		}
	}
	sort.SliceStable(d.Segments, func(i, j int) bool {
		return strings.ToLower(titleOr(d.Segments[i].Title, d.Segments[i].Name)) < strings.ToLower(titleOr(d.Segments[j].Title, d.Segments[j].Name))
	})
	if d.Profiles, err = s.st.CountProfiles(ctx); err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	if d.Rate, d.Events, d.RateOK, err = s.ingestRate(ctx); err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	if d.Destinations, err = s.destSummary(ctx); err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	if l, ok := s.eng.(interface{ Lag() int64 }); ok {
		d.Lag, d.LagKnown = l.Lag(), true
	}
	s.render(w, r, sess, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// statsJSON feeds the overview's live counters.
func (s *Server) statsJSON(w http.ResponseWriter, r *http.Request, _ *session) {
	rate, head, ok, err := s.ingestRate(r.Context())
	if err != nil {
		jsonError(w, err)
		return
	}
	profiles, err := s.st.CountProfiles(r.Context())
	if err != nil {
		jsonError(w, err)
		return
	}
	out := map[string]any{"events": formatInt(head), "profiles": formatInt(profiles), "rate": nil}
	if ok {
		out["rate"] = rateText(rate)
	}
	writeJSON(w, http.StatusOK, out)
}

func rateText(r float64) string {
	if r >= 10 {
		return formatInt(int64(r+0.5)) + " / s"
	}
	return strconv.FormatFloat(r, 'f', 1, 64) + " / s"
}

func freshnessText(f *rule.Freshness) string {
	if f == nil {
		return "real time"
	}
	switch f.Mode {
	case rule.FreshRealtime:
		return "real time"
	case rule.FreshManual:
		return "manual"
	case rule.FreshEvery:
		if f.Every != nil {
			return "every " + plural(f.Every.N, strings.TrimSuffix(f.Every.Unit, "s"))
		}
	case rule.FreshCron:
		t := "schedule " + f.Cron
		if f.TZ != "" {
			t += " (" + f.TZ + ")"
		}
		return t
	}
	return f.Mode
}

// --- segment page ---------------------------------------------------------------

type memberRow struct {
	ProfileID string
	Name      string
	Ident     string
	Since     time.Time
}

type transitionRow struct {
	kiln.Transition
	Label string
}

type segmentData struct {
	Info     engine.SegmentInfo
	Chart    template.HTML
	Recent   []transitionRow
	Members  []memberRow
	Query    string
	Next     string
	Scanned  int
	Searched bool
	More     bool
	Job      *engine.Job
	Fresh    freshForm
	Versions []kiln.Definition // newest first, at most 10
	// Automations on this segment; ActionsOn says the server runs them.
	Automations []autoRow
	ActionsOn   bool
}

// freshForm is the freshness setting as form fields.
type freshForm struct {
	Mode  string
	N     int
	Unit  string
	Cron  string
	TZ    string
	Valid bool
}

func (s *Server) findSegment(name string) (engine.SegmentInfo, bool) {
	for _, d := range s.eng.Definitions() {
		if d.Name == name && d.Kind == rule.KindSegment {
			return d, true
		}
	}
	return engine.SegmentInfo{}, false
}

func (s *Server) segmentPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	name := r.PathValue("name")
	info, ok := s.findSegment(name)
	if !ok {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no segment %q; it may have been deleted or renamed", name))
		return
	}
	d := segmentData{Info: info, Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	d.Fresh = freshFormOf(info.Freshness)
	pts, err := s.sizeSeries(ctx, name, 30*24*time.Hour, time.Hour)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	pts = append(pts, point{At: s.now(), Size: info.Size})
	d.Chart = sizeChart(pts, s.loc)

	recent, err := recentTransitions(ctx, s.st, store.TransitionQuery{Segment: name}, 15)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	labels := map[string]string{}
	for _, t := range recent {
		d.Recent = append(d.Recent, transitionRow{Transition: t, Label: s.label(ctx, t.ProfileID, labels)})
	}

	after := r.URL.Query().Get("after")
	if d.Query == "" {
		ms, err := s.st.Members(ctx, name, after, 50)
		if err != nil {
			s.errorPage(w, r, sess, err)
			return
		}
		for _, m := range ms {
			d.Members = append(d.Members, s.memberRow(ctx, m))
		}
		if len(ms) == 50 {
			d.Next = ms[len(ms)-1].ProfileID
		}
	} else {
		d.Searched = true
		if err := s.searchMembers(ctx, name, d.Query, after, &d); err != nil {
			s.errorPage(w, r, sess, err)
			return
		}
	}
	vs, err := s.st.DefinitionVersions(ctx, name)
	if err != nil && !store.IsNotFound(err) {
		s.errorPage(w, r, sess, err)
		return
	}
	d.Versions = vs[:min(len(vs), 10)]
	if s.acts != nil {
		d.ActionsOn = true
		if d.Automations, _, err = s.automationRows(ctx, name); err != nil {
			s.errorPage(w, r, sess, err)
			return
		}
	}
	if id := r.URL.Query().Get("job"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			if j, ok := s.eng.Job(n); ok {
				d.Job = &j
			}
		}
	}
	s.render(w, r, sess, http.StatusOK, "segment", page{Title: titleOr(info.Title, info.Name), Nav: "overview", Data: d})
}

// searchScan bounds how many matching profiles one search page checks
// for membership.
const searchScan = 2000

// searchMembers pages through profiles whose identifiers match q and
// keeps those in the segment. The store has no member search, so a
// search that matches many profiles outside the segment stops after
// searchScan candidates and offers to go on.
func (s *Server) searchMembers(ctx context.Context, segment, q, after string, d *segmentData) error {
	cursor := after
	for d.Scanned < searchScan && len(d.Members) < 50 {
		ps, next, err := s.st.ListProfiles(ctx, store.ProfileQuery{Search: q, After: cursor, Limit: 200})
		if err != nil {
			return err
		}
		for i := range ps {
			p := &ps[i]
			d.Scanned++
			cursor = p.ID
			ms, err := s.st.MembershipsOf(ctx, p.ID)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Segment == segment {
					name, ident := profileLabel(p)
					d.Members = append(d.Members, memberRow{ProfileID: p.ID, Name: name, Ident: ident, Since: m.Since})
				}
			}
			if len(d.Members) == 50 {
				break
			}
		}
		if next == "" {
			return nil
		}
	}
	d.Next, d.More = cursor, true
	return nil
}

func (s *Server) memberRow(ctx context.Context, m kiln.Membership) memberRow {
	row := memberRow{ProfileID: m.ProfileID, Since: m.Since}
	if p, err := s.st.GetProfile(ctx, m.ProfileID); err == nil {
		row.Name, row.Ident = profileLabel(p)
	}
	return row
}

// label names a profile for lists, caching within one page.
func (s *Server) label(ctx context.Context, pid string, cache map[string]string) string {
	if l, ok := cache[pid]; ok {
		return l
	}
	l := pid
	if p, err := s.st.GetProfile(ctx, pid); err == nil {
		name, ident := profileLabel(p)
		switch {
		case name != "" && ident != "":
			l = name + " · " + ident
		case name != "":
			l = name
		case ident != "":
			l = ident
		}
	}
	cache[pid] = l
	return l
}

// profileLabel gives a person's name from their traits and their most
// telling identifier (email first: marketers know people by it).
func profileLabel(p *kiln.Profile) (name, ident string) {
	str := func(k string) string { v, _ := p.Traits[k].(string); return strings.TrimSpace(v) }
	name = str("name")
	if name == "" {
		name = strings.TrimSpace(str("first_name") + " " + str("last_name"))
	}
	if name == "" {
		name = strings.TrimSpace(str("firstName") + " " + str("lastName"))
	}
	for _, kind := range []kiln.IdentifierKind{kiln.Email, kiln.UserID, kiln.Phone, kiln.Loyalty, kiln.AnonymousID} {
		for _, id := range p.Identities {
			if id.Kind == kind {
				if kind == kiln.Email {
					return name, id.Value
				}
				return name, string(kind) + ":" + id.Value
			}
		}
	}
	return name, ""
}

// membersCSV streams every member with their identifiers. Members and
// profiles are both listed by profile id, so one pass over each (a merge
// join) labels every row without a query per member.
func (s *Server) membersCSV(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	name := r.PathValue("name")
	if _, ok := s.findSegment(name); !ok {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no segment %q", name))
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-members-%s.csv"`, name, s.now().In(s.loc).Format("2006-01-02")))
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"profile_id", "member_since", "name", "email", "user_id", "phone"})
	var profs []kiln.Profile
	profAfter, profDone := "", false
	pi := 0
	for after := ""; ; {
		ms, err := s.st.Members(ctx, name, after, 5000)
		if err != nil {
			s.log.Error("ui: CSV export stopped", "segment", name, "err", err)
			return
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			// Advance the profile listing up to this member.
			var p *kiln.Profile
			for {
				for pi < len(profs) && profs[pi].ID < m.ProfileID {
					pi++
				}
				if pi < len(profs) || profDone {
					break
				}
				var next string
				profs, next, err = s.st.ListProfiles(ctx, store.ProfileQuery{After: profAfter, Limit: 1000})
				if err != nil {
					s.log.Error("ui: CSV export stopped", "segment", name, "err", err)
					return
				}
				pi = 0
				if len(profs) > 0 {
					profAfter = profs[len(profs)-1].ID
				}
				profDone = next == ""
			}
			if pi < len(profs) && profs[pi].ID == m.ProfileID {
				p = &profs[pi]
			}
			rec := []string{m.ProfileID, m.Since.UTC().Format(time.RFC3339), "", "", "", ""}
			if p != nil {
				rec[2], _ = profileLabel(p)
				rec[3], rec[4], rec[5] = identOf(p, kiln.Email), identOf(p, kiln.UserID), identOf(p, kiln.Phone)
			}
			for i := range rec {
				rec[i] = csvSafe(rec[i])
			}
			_ = cw.Write(rec)
		}
		after = ms[len(ms)-1].ProfileID
		cw.Flush()
		if cw.Error() != nil {
			return // the client went away
		}
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from running a cell as a formula: customer
// data (a name typed into a sign-up form) can start with "=". Phone
// numbers keep their "+".
func csvSafe(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '-', '@', '\t', '\r':
		return "'" + v
	case '+':
		if strings.Trim(v[1:], "0123456789 ") != "" {
			return "'" + v
		}
	}
	return v
}

func identOf(p *kiln.Profile, kind kiln.IdentifierKind) string {
	var vals []string
	for _, id := range p.Identities {
		if id.Kind == kind {
			vals = append(vals, id.Value)
		}
	}
	return strings.Join(vals, " ")
}

func freshFormOf(f *rule.Freshness) freshForm {
	ff := freshForm{Mode: rule.FreshRealtime, N: 1, Unit: "hours", Valid: true}
	if f == nil {
		return ff
	}
	ff.Mode, ff.Cron, ff.TZ = f.Mode, f.Cron, f.TZ
	if f.Every != nil {
		ff.N, ff.Unit = f.Every.N, f.Every.Unit
	}
	return ff
}

// setFreshness re-applies the segment's definition with a new freshness
// setting (a new version, like any edit).
func (s *Server) setFreshness(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("name")
	info, ok := s.findSegment(name)
	if !ok {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no segment %q", name))
		return
	}
	set, err := rule.Parse(info.Text)
	if err != nil || len(set.Defs) != 1 {
		s.errorPage(w, r, sess, fmt.Errorf("segment %s: stored text does not parse: %v", name, err))
		return
	}
	def := set.Defs[0]
	f := &rule.Freshness{Mode: r.PostFormValue("mode")}
	switch f.Mode {
	case rule.FreshRealtime, rule.FreshManual:
	case rule.FreshEvery:
		n, err := strconv.Atoi(r.PostFormValue("n"))
		if err != nil || n <= 0 {
			s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(name), "Freshness not changed: give a whole number of minutes, hours or days.")
			return
		}
		f.Every = &rule.Span{N: n, Unit: r.PostFormValue("unit")}
	case rule.FreshCron:
		f.Cron, f.TZ = strings.TrimSpace(r.PostFormValue("cron")), strings.TrimSpace(r.PostFormValue("tz"))
	default:
		s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(name), "Freshness not changed: choose one of the options.")
		return
	}
	def.Freshness = f
	if _, err := s.eng.ApplyDefinitions(r.Context(), rule.FormatDef(def), false); err != nil {
		msg := kiln.ErrorMessage(err)
		if kiln.ErrorCode(err) == kiln.EInternal {
			s.log.Error("ui: setting freshness", "segment", name, "err", err)
		}
		s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(name), "Freshness not changed: "+msg)
		return
	}
	s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(name), "Freshness set to "+freshnessText(f)+".")
}

func (s *Server) redirectFlash(w http.ResponseWriter, r *http.Request, to, msg string) {
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	http.Redirect(w, r, to+sep+"flash="+url.QueryEscape(msg), http.StatusSeeOther)
}

// editStatic adds and removes people on an uploaded-list segment. Each
// line names a profile id, an identifier (email:..., user_id:...) or a
// bare email address.
func (s *Server) editStatic(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	name := r.PathValue("name")
	back := "/ui/segments/" + url.PathEscape(name)
	resolve := func(field string) ([]string, []string, error) {
		var ids, unknown []string
		for _, line := range strings.FieldsFunc(r.PostFormValue(field), func(c rune) bool { return c == '\n' || c == ',' || c == '\r' }) {
			v := strings.TrimSpace(line)
			if v == "" {
				continue
			}
			if !strings.HasPrefix(v, "p_") && !strings.Contains(v, ":") && strings.Contains(v, "@") {
				v = "email:" + v
			}
			pid, err := s.resolveProfile(ctx, v)
			if c := kiln.ErrorCode(err); c == kiln.ENotFound || c == kiln.EInvalid {
				unknown = append(unknown, line)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			ids = append(ids, pid)
		}
		return ids, unknown, nil
	}
	add, unknownA, err := resolve("add")
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	remove, unknownR, err := resolve("remove")
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	if unknown := append(unknownA, unknownR...); len(unknown) > 0 {
		s.redirectFlash(w, r, back, "Nothing changed: no profile found for "+strings.Join(unknown, ", ")+".")
		return
	}
	n, err := s.eng.SetStatic(ctx, name, add, remove)
	if err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EInvalid || c == kiln.ENotFound {
			s.redirectFlash(w, r, back, "Nothing changed: "+kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	who := "1 person"
	if n != 1 {
		who = fmt.Sprintf("%d people", n)
	}
	s.redirectFlash(w, r, back, "List updated: "+who+" joined or left.")
}

// deleteSegment removes a definition (segment or trait); its members
// exit. Definitions that use it must go or change first: the engine
// refuses, and the message names them.
func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("name")
	res, err := s.eng.DeleteDefinitions(r.Context(), []string{name})
	if err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EInvalid || c == kiln.ENotFound || c == kiln.EConflict {
			s.redirectFlash(w, r, "/ui/segments/"+url.PathEscape(name), "Not deleted: "+kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	s.redirectFlash(w, r, "/ui/", fmt.Sprintf("Deleted %s; %s left it.", name, plural(res.Exited[name], "member")))
}

func (s *Server) recompute(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("name")
	j, err := s.eng.Recompute(r.Context(), name)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/segments/%s?job=%d", url.PathEscape(name), j.ID), http.StatusSeeOther)
}

func (s *Server) jobJSON(w http.ResponseWriter, r *http.Request, _ *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		jsonError(w, kiln.Errorf(kiln.EInvalid, "job id %q is not a number", r.PathValue("id")))
		return
	}
	j, ok := s.eng.Job(id)
	if !ok {
		jsonError(w, kiln.Errorf(kiln.ENotFound, "no job %d", id))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// --- profiles -------------------------------------------------------------------

type profileRow struct {
	ID, Name, Ident string
	LastSeen        time.Time
	Events          int64
}

type profilesData struct {
	Query    string
	Profiles []profileRow
	Next     string
	Total    int64
}

func (s *Server) profilesPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	d := profilesData{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	q := d.Query
	if k, v, ok := strings.Cut(q, ":"); ok && slices.Contains(kiln.IdentifierKinds, kiln.IdentifierKind(k)) {
		q = v // "email:ann@..." searches by the value
	}
	ps, next, err := s.st.ListProfiles(ctx, store.ProfileQuery{Search: q, After: r.URL.Query().Get("after"), Limit: 50})
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	for i := range ps {
		name, ident := profileLabel(&ps[i])
		d.Profiles = append(d.Profiles, profileRow{ID: ps[i].ID, Name: name, Ident: ident, LastSeen: ps[i].LastSeen, Events: ps[i].EventCount})
	}
	d.Next = next
	if d.Total, err = s.st.CountProfiles(ctx); err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	s.render(w, r, sess, http.StatusOK, "profiles", page{Title: "Profiles", Nav: "profiles", Data: d})
}

type traitRow struct {
	Name, Title string
	Value       any
}

type explainRow struct {
	Segment, Title string
	In             bool
	Tree           *eval.Node
	Err            string
}

type timelineRow struct {
	At     time.Time
	Kind   string // "event" or "transition"
	Title  string
	Detail string
	Source string
	Enter  bool
}

type mergeRow struct {
	kiln.Merge
	Other string
	Into  bool // this profile absorbed the other
}

type profileData struct {
	P        *kiln.Profile
	Name     string
	Ident    string
	Traits   []traitRow
	Computed []traitRow
	Empty    []traitRow // computed traits that are zero or have no value
	Stored   []traitRow // Computed on the stored profile: predictions and scores
	Explains []explainRow
	Timeline []timelineRow
	Merges   []mergeRow
	Members  int
}

// resolveProfile accepts a profile id or an identifier in kind:value form.
func (s *Server) resolveProfile(ctx context.Context, id string) (string, error) {
	if strings.HasPrefix(id, "p_") || !strings.Contains(id, ":") {
		return id, nil
	}
	ident := kiln.ParseIdentifier(id)
	if s.cfg.Normalize != nil {
		n, ok := s.cfg.Normalize(ident)
		if !ok {
			return "", kiln.Errorf(kiln.EInvalid, "%s is not a usable %s (it does not normalise, or is on the blocklist)", id, ident.Kind)
		}
		ident = n
	}
	pid, err := s.st.ProfileFor(ctx, ident)
	if store.IsNotFound(err) {
		return "", kiln.Errorf(kiln.ENotFound, "no profile has identifier %s", id)
	}
	return pid, err
}

func (s *Server) profilePage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	id, err := s.resolveProfile(ctx, r.PathValue("id"))
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	p, err := s.st.GetProfile(ctx, id)
	if store.IsNotFound(err) {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no profile %s; it may have been merged into another or deleted", id))
		return
	}
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	d := profileData{P: p}
	d.Name, d.Ident = profileLabel(p)
	for _, k := range sortedKeys(p.Traits) {
		d.Traits = append(d.Traits, traitRow{Name: k, Value: p.Traits[k]})
	}
	for _, k := range sortedKeys(p.Computed) {
		d.Stored = append(d.Stored, traitRow{Name: k, Value: p.Computed[k]})
	}
	model := s.eng.ProfileModelTraits(id)
	for _, k := range sortedKeys(model) {
		d.Stored = append(d.Stored, traitRow{Name: k, Value: model[k]})
	}
	defs := s.eng.Definitions()
	titles := map[string]string{}
	for _, def := range defs {
		titles[def.Name] = def.Title
	}
	computed, _ := s.eng.ProfileSegments(id)
	for _, k := range sortedKeys(computed) {
		row := traitRow{Name: k, Title: titles[k], Value: computed[k]}
		if v := computed[k]; v == nil || v == "" || isZeroNumber(v) {
			d.Empty = append(d.Empty, row)
		} else {
			d.Computed = append(d.Computed, row)
		}
	}
	byTitle := func(rows []traitRow) {
		sort.Slice(rows, func(i, j int) bool {
			return strings.ToLower(titleOr(rows[i].Title, rows[i].Name)) < strings.ToLower(titleOr(rows[j].Title, rows[j].Name))
		})
	}
	byTitle(d.Computed)
	byTitle(d.Empty)
	slices.SortStableFunc(p.Identities, func(a, b kiln.Identity) int {
		return slices.Index(kiln.IdentifierKinds, a.Kind) - slices.Index(kiln.IdentifierKinds, b.Kind)
	})
	for _, def := range defs {
		if def.Kind != rule.KindSegment {
			continue
		}
		row := explainRow{Segment: def.Name, Title: def.Title}
		n, in, err := s.eng.Explain(ctx, def.Name, id)
		if err != nil {
			row.Err = kiln.ErrorMessage(err)
		}
		row.Tree, row.In = n, in
		if in {
			d.Members++
		}
		d.Explains = append(d.Explains, row)
	}
	sort.SliceStable(d.Explains, func(i, j int) bool {
		a, b := d.Explains[i], d.Explains[j]
		if a.In != b.In {
			return a.In
		}
		return strings.ToLower(titleOr(a.Title, a.Segment)) < strings.ToLower(titleOr(b.Title, b.Segment))
	})

	anchors := make([]string, len(p.Identities))
	for i, ident := range p.Identities {
		anchors[i] = ident.Identifier.String()
	}
	evs, err := s.st.EventsByAnchor(ctx, anchors, 50)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	for _, e := range evs {
		d.Timeline = append(d.Timeline, timelineRow{At: e.Timestamp, Kind: "event", Title: eventTitle(e), Detail: eventDetail(e), Source: e.SourceID})
	}
	ts, err := recentTransitions(ctx, s.st, store.TransitionQuery{ProfileID: id}, 50)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	for _, t := range ts {
		verb := "Left"
		if t.Entered {
			verb = "Entered"
		}
		d.Timeline = append(d.Timeline, timelineRow{At: t.At, Kind: "transition", Title: verb + " " + titleOr(titles[t.Segment], t.Segment), Detail: reasonText(t.Reason), Enter: t.Entered})
	}
	sort.SliceStable(d.Timeline, func(i, j int) bool { return d.Timeline[i].At.After(d.Timeline[j].At) })
	if len(d.Timeline) > 60 {
		d.Timeline = d.Timeline[:60]
	}
	ms, err := s.st.Merges(ctx, id)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	for _, m := range ms {
		row := mergeRow{Merge: m, Into: m.Into == id, Other: m.From}
		if !row.Into {
			row.Other = m.Into
		}
		d.Merges = append(d.Merges, row)
	}
	title := d.Name
	if title == "" {
		title = d.Ident
	}
	if title == "" {
		title = p.ID
	}
	s.render(w, r, sess, http.StatusOK, "profile", page{Title: title, Nav: "profiles", Data: d})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func eventTitle(e kiln.Event) string {
	switch e.Type {
	case kiln.Track:
		return e.Name
	case kiln.Page, kiln.Screen:
		if e.Name != "" {
			return "Viewed " + e.Name
		}
		return "Viewed a page"
	case kiln.Identify:
		return "Identified"
	case kiln.Alias:
		return "Linked identities"
	case kiln.Group:
		return "Joined group " + e.GroupID
	}
	return string(e.Type)
}

// eventDetail picks the properties a marketer cares about.
func eventDetail(e kiln.Event) string {
	var parts []string
	for _, k := range []string{"revenue", "total", "currency", "order_id", "category", "name", "store", "location", "rating", "party_size"} {
		if v, ok := e.Properties[k]; ok {
			parts = append(parts, k+" "+formatValue(v))
		}
	}
	if ps, ok := e.Properties["products"].([]any); ok {
		parts = append(parts, plural(len(ps), "item"))
	}
	if e.Type == kiln.Identify {
		for _, k := range sortedKeys(e.Traits) {
			parts = append(parts, k+" "+formatValue(e.Traits[k]))
			if len(parts) == 4 {
				break
			}
		}
	}
	return strings.Join(parts, ", ")
}

func (s *Server) unmerge(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	mid, err := strconv.ParseInt(r.PostFormValue("merge"), 10, 64)
	if err != nil {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.EInvalid, "merge %q is not a number", r.PostFormValue("merge")))
		return
	}
	m, err := s.eng.Unmerge(r.Context(), mid)
	if err != nil {
		if kiln.ErrorCode(err) == kiln.EConflict || kiln.ErrorCode(err) == kiln.ENotFound {
			s.redirectFlash(w, r, "/ui/profiles/"+url.PathEscape(id), "Not undone: "+kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	s.redirectFlash(w, r, "/ui/profiles/"+url.PathEscape(id), fmt.Sprintf("Merge undone: %s is a separate profile again.", m.From))
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	suppress := r.PostFormValue("suppress") == "on"
	ids, err := s.eng.DeleteProfile(r.Context(), id, suppress)
	if err != nil {
		if store.IsNotFound(err) || errors.Is(err, store.ErrNotFound) {
			err = kiln.Errorf(kiln.ENotFound, "there is no profile %s", id)
		}
		s.errorPage(w, r, sess, err)
		return
	}
	msg := fmt.Sprintf("Profile %s deleted with its %s and events.", id, plural(len(ids), "identifier"))
	if suppress {
		msg += " Its identifiers are suppressed: new events with them are not stored."
	}
	s.redirectFlash(w, r, "/ui/profiles", msg)
}

// isZeroNumber reports a computed number that is zero (0, 0.00).
func isZeroNumber(v any) bool {
	n, ok := v.(eval.Number)
	return ok && strings.Trim(n.Text, "-0.") == ""
}
