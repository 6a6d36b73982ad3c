package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
)

// Actions is the slice of the action runtime the UI uses
// (*action.Service satisfies it): the same operations the admin API
// offers, so the pages and the API cannot disagree about what is allowed.
type Actions interface {
	ListDestinations(ctx context.Context) ([]store.Destination, error)
	CreateDestination(ctx context.Context, spec action.DestinationSpec) (*store.Destination, error)
	Secret(ctx context.Context, idOrName string) (string, error)
	DeleteDestination(ctx context.Context, idOrName string) error
	ListAutomations(ctx context.Context) ([]store.Automation, error)
	CreateAutomation(ctx context.Context, spec action.AutomationSpec) (*store.Automation, error)
	SetEnabled(ctx context.Context, idOrName string, enabled bool) (*store.Automation, error)
	DeleteAutomation(ctx context.Context, idOrName string) error
	Replay(ctx context.Context, ids []int64) (int, error)
}

// recentWindow is how many of the newest outbox items the health figures
// are computed from: recent enough to say how a destination is doing now,
// small enough to read on every page view.
const recentWindow = 500

// health sums up recent outbox items of one destination or automation.
type health struct {
	Delivered, Failing, Dead, Pending, Skipped int
	LastError                                  string
	LastAt                                     string
}

// OK reports whether nothing recent failed.
func (h health) OK() bool { return h.Failing == 0 && h.Dead == 0 }

// Total is how many recent items there are.
func (h health) Total() int { return h.Delivered + h.Failing + h.Dead + h.Pending + h.Skipped }

func (h *health) add(it store.OutboxItem) {
	switch it.State {
	case store.OutboxDelivered:
		h.Delivered++
	case store.OutboxDead:
		h.Dead++
	case store.OutboxSkipped:
		h.Skipped++
	case store.OutboxPending:
		if it.Attempts > 0 {
			h.Failing++ // waiting for a retry
		} else {
			h.Pending++
		}
	}
	// Items come newest first: the first error seen is the latest.
	if h.LastError == "" && it.LastError != "" && it.State != store.OutboxDelivered {
		h.LastError = it.LastError
	}
}

// lastOutboxID finds the newest item's ID with O(log n) keyed reads: the
// store lists the outbox oldest first only, and reading it all to show
// the newest hundred would grow with the outbox.
func (s *Server) lastOutboxID(ctx context.Context) (int64, error) {
	exists := func(after int64) (bool, error) {
		its, err := s.st.ListOutbox(ctx, store.OutboxQuery{After: after, Limit: 1})
		return len(its) > 0, err
	}
	ok, err := exists(0)
	if err != nil || !ok {
		return 0, err
	}
	// Gallop to a bound with nothing after it, then bisect: lo has an
	// item after it, hi has none.
	lo, hi := int64(0), int64(1)
	for {
		ok, err := exists(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// recentOutbox returns up to n of the newest outbox items, newest first.
func (s *Server) recentOutbox(ctx context.Context, n int) ([]store.OutboxItem, error) {
	last, err := s.lastOutboxID(ctx)
	if err != nil || last == 0 {
		return nil, err
	}
	its, err := s.st.ListOutbox(ctx, store.OutboxQuery{After: max(0, last-int64(n)), Limit: n})
	if err != nil {
		return nil, err
	}
	slices.Reverse(its)
	return its, nil
}

// actionsOff is what the pages say when the server runs without the
// action runtime.
var errActionsOff = kiln.Errorf(kiln.EUnavailable, "this server does not run automations, so destinations and automations cannot be managed here")

// --- destinations ---------------------------------------------------------------

type destRow struct {
	store.Destination
	URL    string
	Live   *action.DestinationHealth // the dispatcher's view now: failing or behind, and why
	Health health
	Used   []string // automations using it
}

type destinationsData struct {
	Off          bool
	Destinations []destRow
	Created      string // name of a destination just created
	Secret       string // its signing secret, shown once
	Form         url.Values
	Err          string
}

func (s *Server) destinationsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.renderDestinations(w, r, sess, http.StatusOK, destinationsData{})
}

func (s *Server) renderDestinations(w http.ResponseWriter, r *http.Request, sess *session, status int, d destinationsData) {
	if s.acts == nil {
		d.Off = true
		s.render(w, r, sess, status, "destinations", page{Title: "Destinations", Nav: "destinations", Data: d})
		return
	}
	ctx := r.Context()
	ds, err := s.acts.ListDestinations(ctx)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	as, err := s.acts.ListAutomations(ctx)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	recent, err := s.recentOutbox(ctx, recentWindow)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	live := map[string]*action.DestinationHealth{}
	if hp, ok := s.acts.(interface {
		DeliveryHealth() []action.DestinationHealth
	}); ok {
		for _, h := range hp.DeliveryHealth() {
			live[h.ID] = &h
		}
	}
	by := map[string]*health{}
	for _, it := range recent {
		if by[it.Destination] == nil {
			by[it.Destination] = &health{}
		}
		by[it.Destination].add(it)
	}
	for _, x := range ds {
		if isHookDest(as, x.ID) {
			continue // REST Hooks subscriptions manage their own destinations
		}
		row := destRow{Destination: x, Live: live[x.ID]}
		if x.Kind == action.KindWebhook {
			var c action.WebhookConfig
			_ = json.Unmarshal(x.Config, &c)
			row.URL = c.URL
		}
		if h := by[x.ID]; h != nil {
			row.Health = *h
		}
		for _, a := range as {
			if a.Destination == x.ID {
				row.Used = append(row.Used, a.Name)
			}
		}
		d.Destinations = append(d.Destinations, row)
	}
	s.render(w, r, sess, status, "destinations", page{Title: "Destinations", Nav: "destinations", Data: d})
}

func isHookDest(as []store.Automation, id string) bool {
	for _, a := range as {
		if a.Hook && a.Destination == id {
			return true
		}
	}
	return false
}

// createDestination makes a webhook destination. The page is rendered
// in the answer, not after a redirect, so the signing secret is shown
// once and never lands in a URL or the browser history.
func (s *Server) createDestination(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.acts == nil {
		s.errorPage(w, r, sess, errActionsOff)
		return
	}
	ctx := r.Context()
	form := url.Values{"name": {r.PostFormValue("name")}, "url": {r.PostFormValue("url")}, "rate": {r.PostFormValue("rate")}}
	fail := func(msg string) {
		s.renderDestinations(w, r, sess, http.StatusBadRequest, destinationsData{Form: form, Err: msg})
	}
	var rate float64
	if v := strings.TrimSpace(form.Get("rate")); v != "" {
		var err error
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate < 0 {
			fail(fmt.Sprintf("Rate limit %q: give deliveries per second, such as 10, or leave it empty.", v))
			return
		}
	}
	cfg, _ := json.Marshal(action.WebhookConfig{URL: strings.TrimSpace(form.Get("url"))})
	dst, err := s.acts.CreateDestination(ctx, action.DestinationSpec{Name: form.Get("name"), Kind: action.KindWebhook, Config: cfg, RateLimit: rate})
	if err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EInvalid || c == kiln.EConflict {
			fail("Not created: " + kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	secret, err := s.acts.Secret(ctx, dst.ID)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	s.renderDestinations(w, r, sess, http.StatusOK, destinationsData{Created: dst.Name, Secret: secret})
}

func (s *Server) deleteDestination(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.acts == nil {
		s.errorPage(w, r, sess, errActionsOff)
		return
	}
	id := r.PathValue("id")
	name := id
	if ds, err := s.acts.ListDestinations(r.Context()); err == nil {
		for _, d := range ds {
			if d.ID == id {
				name = d.Name // the flash names what people recognise
			}
		}
	}
	if err := s.acts.DeleteDestination(r.Context(), id); err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EConflict || c == kiln.ENotFound {
			s.redirectFlash(w, r, "/ui/destinations", "Not deleted: "+kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	s.redirectFlash(w, r, "/ui/destinations", "Deleted destination "+name+".")
}

// --- automations ----------------------------------------------------------------

type autoRow struct {
	store.Automation
	DestName string
	Delay    string
	Health   health
}

type automationsData struct {
	Off          bool
	Automations  []autoRow
	Segments     []string
	Destinations []store.Destination
	Form         url.Values
	Err          string
}

func delayText(a store.Automation) string {
	if a.Delay == 0 {
		return "at once"
	}
	return "after " + a.Delay.String()
}

// automationRows lists the automations (those on segment only, when it is
// set) with their destinations' names and recent deliveries.
func (s *Server) automationRows(ctx context.Context, segment string) ([]autoRow, []store.Destination, error) {
	as, err := s.acts.ListAutomations(ctx)
	if err != nil {
		return nil, nil, err
	}
	ds, err := s.acts.ListDestinations(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	for _, d := range ds {
		names[d.ID] = d.Name
	}
	if !slices.ContainsFunc(as, func(a store.Automation) bool { return segment == "" || a.Segment == segment }) {
		return nil, ds, nil // nothing to read the outbox for
	}
	recent, err := s.recentOutbox(ctx, recentWindow)
	if err != nil {
		return nil, nil, err
	}
	live := map[string]*action.DestinationHealth{}
	if hp, ok := s.acts.(interface {
		DeliveryHealth() []action.DestinationHealth
	}); ok {
		for _, h := range hp.DeliveryHealth() {
			live[h.ID] = &h
		}
	}
	by := map[string]*health{}
	for _, it := range recent {
		if by[it.Automation] == nil {
			by[it.Automation] = &health{}
		}
		by[it.Automation].add(it)
	}
	var rows []autoRow
	for _, a := range as {
		if segment != "" && a.Segment != segment {
			continue
		}
		row := autoRow{Automation: a, DestName: names[a.Destination], Delay: delayText(a)}
		if row.DestName == "" {
			row.DestName = a.Destination
		}
		if h := by[a.ID]; h != nil {
			row.Health = *h
		}
		rows = append(rows, row)
	}
	return rows, ds, nil
}

func (s *Server) automationsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.renderAutomations(w, r, sess, http.StatusOK, automationsData{})
}

func (s *Server) renderAutomations(w http.ResponseWriter, r *http.Request, sess *session, status int, d automationsData) {
	if s.acts == nil {
		d.Off = true
		s.render(w, r, sess, status, "automations", page{Title: "Automations", Nav: "automations", Data: d})
		return
	}
	rows, ds, err := s.automationRows(r.Context(), "")
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	d.Automations = rows
	as, _ := s.acts.ListAutomations(r.Context())
	for _, x := range ds {
		if !isHookDest(as, x.ID) {
			d.Destinations = append(d.Destinations, x)
		}
	}
	for _, info := range s.eng.Definitions() {
		if info.Kind == "segment" {
			d.Segments = append(d.Segments, info.Name)
		}
	}
	slices.Sort(d.Segments)
	if d.Form == nil {
		d.Form = url.Values{"segment": {r.URL.Query().Get("segment")}}
	}
	s.render(w, r, sess, status, "automations", page{Title: "Automations", Nav: "automations", Data: d})
}

func (s *Server) createAutomation(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.acts == nil {
		s.errorPage(w, r, sess, errActionsOff)
		return
	}
	_ = r.ParseForm()
	form := r.PostForm
	spec := action.AutomationSpec{
		Name: strings.TrimSpace(form.Get("name")), Segment: form.Get("segment"), On: form.Get("on"),
		Delay: strings.TrimSpace(form.Get("delay")), Recheck: strings.TrimSpace(form.Get("recheck")),
		Destination: form.Get("destination"), Disabled: form.Get("disabled") != "",
	}
	if form.Get("traits") != "" {
		spec.Options = json.RawMessage(`{"traits":["*"]}`)
	}
	if spec.Name == "" {
		// A readable default, so the form asks only what matters.
		spec.Name = spec.Segment + "_" + spec.On + "_" + spec.Destination
	}
	a, err := s.acts.CreateAutomation(r.Context(), spec)
	if err != nil {
		if c := kiln.ErrorCode(err); c == kiln.EInvalid || c == kiln.EConflict || c == kiln.ENotFound {
			s.renderAutomations(w, r, sess, http.StatusBadRequest, automationsData{Form: form, Err: "Not created: " + kiln.ErrorMessage(err)})
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	s.redirectFlash(w, r, "/ui/automations", "Created automation "+a.Name+".")
}

func (s *Server) setAutomation(enabled bool) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		if s.acts == nil {
			s.errorPage(w, r, sess, errActionsOff)
			return
		}
		a, err := s.acts.SetEnabled(r.Context(), r.PathValue("id"), enabled)
		if err != nil {
			if kiln.ErrorCode(err) == kiln.ENotFound {
				s.redirectFlash(w, r, "/ui/automations", kiln.ErrorMessage(err))
				return
			}
			s.errorPage(w, r, sess, err)
			return
		}
		what := "Disabled"
		if enabled {
			what = "Enabled"
		}
		s.redirectFlash(w, r, "/ui/automations", what+" automation "+a.Name+".")
	}
}

func (s *Server) deleteAutomation(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.acts == nil {
		s.errorPage(w, r, sess, errActionsOff)
		return
	}
	id := r.PathValue("id")
	name := id
	if as, err := s.acts.ListAutomations(r.Context()); err == nil {
		for _, a := range as {
			if a.ID == id {
				name = a.Name // the flash names what people recognise
			}
		}
	}
	if err := s.acts.DeleteAutomation(r.Context(), id); err != nil {
		if kiln.ErrorCode(err) == kiln.ENotFound {
			s.redirectFlash(w, r, "/ui/automations", kiln.ErrorMessage(err))
			return
		}
		s.errorPage(w, r, sess, err)
		return
	}
	s.redirectFlash(w, r, "/ui/automations", "Deleted automation "+name+".")
}

// --- deliveries -----------------------------------------------------------------

type itemRow struct {
	store.OutboxItem
	AutoName, DestName string
	Who                string // the profile's name or identifier
}

type deliveriesData struct {
	Off        bool
	Recent     []itemRow
	Dead       []itemRow
	DeadMore   bool
	Automation string // filter
}

// deadShown bounds the dead letters listed on the page ("replay all"
// still replays every one) and recentShown the recent deliveries: each
// row reads its profile for a readable name.
const (
	deadShown   = 100
	recentShown = 50
)

func (s *Server) deliveriesPage(w http.ResponseWriter, r *http.Request, sess *session) {
	d := deliveriesData{}
	if s.acts == nil {
		d.Off = true
		s.render(w, r, sess, http.StatusOK, "deliveries", page{Title: "Deliveries", Nav: "automations", Data: d})
		return
	}
	ctx := r.Context()
	as, err := s.acts.ListAutomations(ctx)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	ds, err := s.acts.ListDestinations(ctx)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	autos, dests := map[string]string{}, map[string]string{}
	for _, a := range as {
		autos[a.ID] = a.Name
	}
	for _, x := range ds {
		dests[x.ID] = x.Name
	}
	labels := map[string]string{}
	row := func(it store.OutboxItem) itemRow {
		return itemRow{OutboxItem: it, AutoName: or(autos[it.Automation], it.Automation), DestName: or(dests[it.Destination], it.Destination),
			Who: s.label(ctx, it.ProfileID, labels)}
	}
	recent, err := s.recentOutbox(ctx, recentShown)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	for _, it := range recent {
		d.Recent = append(d.Recent, row(it))
	}
	dead, err := s.st.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxDead, Limit: deadShown + 1})
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	if len(dead) > deadShown {
		dead, d.DeadMore = dead[:deadShown], true
	}
	for _, it := range dead {
		d.Dead = append(d.Dead, row(it))
	}
	s.render(w, r, sess, http.StatusOK, "deliveries", page{Title: "Deliveries", Nav: "automations", Data: d})
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// replay makes dead letters pending again: the one named by id, or all
// of them when the form says all.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.acts == nil {
		s.errorPage(w, r, sess, errActionsOff)
		return
	}
	var ids []int64
	if r.PostFormValue("all") == "" {
		id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
		if err != nil || id <= 0 {
			s.redirectFlash(w, r, "/ui/deliveries", "Nothing replayed: pick a failed delivery to replay.")
			return
		}
		ids = []int64{id}
	}
	n, err := s.acts.Replay(r.Context(), ids)
	if err != nil {
		s.errorPage(w, r, sess, err)
		return
	}
	what := fmt.Sprintf("%d failed deliveries; they are", n)
	if n == 1 {
		what = "1 failed delivery; it is"
	}
	s.redirectFlash(w, r, "/ui/deliveries", "Replayed "+what+" sent again shortly.")
}

// --- overview and segment page ----------------------------------------------------

// destSummary is the overview's destination health.
type destSummary struct {
	Destinations int
	Delivered    int
	Failing      int
	Dead         int
	DeadMore     bool
}

func (s *Server) destSummary(ctx context.Context) (*destSummary, error) {
	if s.acts == nil {
		return nil, nil
	}
	ds, err := s.acts.ListDestinations(ctx)
	if err != nil {
		return nil, err
	}
	as, err := s.acts.ListAutomations(ctx)
	if err != nil {
		return nil, err
	}
	out := &destSummary{}
	for _, x := range ds {
		if !isHookDest(as, x.ID) {
			out.Destinations++
		}
	}
	recent, err := s.recentOutbox(ctx, recentWindow)
	if err != nil {
		return nil, err
	}
	var h health
	for _, it := range recent {
		h.add(it)
	}
	out.Delivered, out.Failing = h.Delivered, h.Failing
	dead, err := s.st.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxDead, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out.Dead, out.DeadMore = len(dead), len(dead) == 1000
	return out, nil
}
