package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/export"
	"github.com/kiln-cdp/kiln/store"
)

// actionRoutes are destinations, automations, REST Hooks subscriptions,
// the outbox with its dead letters, and segment exports.
func (s *Server) actionRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/destinations", s.needActions(s.listDestinations))
	m.HandleFunc("POST /api/v1/destinations", s.needActions(s.createDestination))
	m.HandleFunc("DELETE /api/v1/destinations/{id}", s.needActions(s.deleteDestination))
	m.HandleFunc("POST /api/v1/destinations/{id}/reconcile", s.needActions(s.reconcileDestination))
	m.HandleFunc("GET /api/v1/automations", s.needActions(s.listAutomations))
	m.HandleFunc("POST /api/v1/automations", s.needActions(s.createAutomation))
	m.HandleFunc("POST /api/v1/automations/{id}/enable", s.needActions(s.enableAutomation(true)))
	m.HandleFunc("POST /api/v1/automations/{id}/disable", s.needActions(s.enableAutomation(false)))
	m.HandleFunc("DELETE /api/v1/automations/{id}", s.needActions(s.deleteAutomation))
	m.HandleFunc("POST /api/v1/hooks", s.needActions(s.subscribe))
	m.HandleFunc("DELETE /api/v1/hooks/{id}", s.needActions(s.unsubscribe))
	m.HandleFunc("GET /api/v1/outbox", s.listOutbox)
	m.HandleFunc("GET /api/v1/deadletters", s.listDeadLetters)
	m.HandleFunc("POST /api/v1/deadletters/replay", s.needActions(s.replayDeadLetters))
	m.HandleFunc("GET /api/v1/segments/{name}/export", s.exportSegment)
}

// needActions answers 503 when the server runs without the action runtime.
func (s *Server) needActions(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Actions == nil {
			s.fail(w, r, kiln.Errorf(kiln.EUnavailable, "this server does not run automations"))
			return
		}
		h(w, r)
	}
}

// destinationOut is a destination as the API shows it: never the sealed
// secrets; a new webhook's signing secret once, when it is created.
type destinationOut struct {
	store.Destination
	Secret string `json:"secret,omitempty"`
}

func (s *Server) listDestinations(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Actions.ListDestinations(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"destinations": nonNil(ds)})
}

func (s *Server) createDestination(w http.ResponseWriter, r *http.Request) {
	var spec action.DestinationSpec
	if err := decode(r, &spec); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.Actions.CreateDestination(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := destinationOut{Destination: *d}
	if d.Kind == action.KindWebhook {
		if out.Secret, err = s.Actions.Secret(r.Context(), d.ID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) deleteDestination(w http.ResponseWriter, r *http.Request) {
	if err := s.Actions.DeleteDestination(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reconcileDestination runs a full reconciliation of a connector
// destination now and answers its report: 200 even when some segments
// failed (their error is in the report), an error when none could start.
func (s *Server) reconcileDestination(w http.ResponseWriter, r *http.Request) {
	rep, err := s.Actions.Reconcile(r.Context(), r.PathValue("id"))
	if rep == nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

func (s *Server) listAutomations(w http.ResponseWriter, r *http.Request) {
	as, err := s.Actions.ListAutomations(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"automations": nonNil(as)})
}

func (s *Server) createAutomation(w http.ResponseWriter, r *http.Request) {
	var spec action.AutomationSpec
	if err := decode(r, &spec); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.Actions.CreateAutomation(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, a)
}

func (s *Server) enableAutomation(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.Actions.SetEnabled(r.Context(), r.PathValue("id"), on)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, a)
	}
}

func (s *Server) deleteAutomation(w http.ResponseWriter, r *http.Request) {
	if err := s.Actions.DeleteAutomation(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// subscribe is REST Hooks' subscribe: {target_url, event, segment} ->
// 201 with the subscription's id. Unknown fields are ignored, as
// automation platforms send their own.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TargetURL string `json:"target_url"`
		Event     string `json:"event"`
		Segment   string `json:"segment"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "request body: %v", err))
		return
	}
	h, err := s.Actions.Subscribe(r.Context(), in.TargetURL, in.Event, in.Segment)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, h)
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	if err := s.Actions.Unsubscribe(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) outboxPage(w http.ResponseWriter, r *http.Request, state string) {
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after, err := intParam(r, "after", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, err := s.Store.ListOutbox(r.Context(), store.OutboxQuery{State: state, After: int64(after), Limit: min(limit, 1000)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	next := ""
	if len(items) > 0 {
		next = strconv.FormatInt(items[len(items)-1].ID, 10)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"items": nonNil(items), "next": next})
}

func (s *Server) listOutbox(w http.ResponseWriter, r *http.Request) {
	s.outboxPage(w, r, r.URL.Query().Get("state"))
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	s.outboxPage(w, r, store.OutboxDead)
}

// replayDeadLetters takes {"ids": [...]}; no ids replays every dead letter.
func (s *Server) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	var in struct {
		IDs []int64 `json:"ids"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	n, err := s.Actions.Replay(r.Context(), in.IDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

// exportSegment streams a segment's members, or with ?after=CURSOR its
// entries and exits after that transition, as CSV, NDJSON or Parquet
// (?format=csv|ndjson|parquet, default csv), traits as columns
// (docs/EXPORTS.md). An incremental export ends with the trailer
// Kiln-Cursor, the after of the next one.
func (s *Server) exportSegment(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	o := export.Options{Segment: name, Format: q.Get("format")}
	if o.Format == "" {
		o.Format = export.CSV
	}
	ctype := map[string]string{export.CSV: "text/csv; charset=utf-8", export.NDJSON: "application/x-ndjson", export.Parquet: "application/vnd.apache.parquet"}[o.Format]
	if ctype == "" {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "format %q: want csv, ndjson or parquet", o.Format))
		return
	}
	if q.Has("after") {
		after, err := strconv.ParseInt(q.Get("after"), 10, 64)
		if err != nil || after < 0 {
			s.fail(w, r, kiln.Errorf(kiln.EInvalid, "after %q: want a transition id (the Kiln-Cursor of the previous export; 0 for every change)", q.Get("after")))
			return
		}
		o.Incremental, o.After = true, after
	}
	if s.Segments != nil && !s.segmentExists(name) {
		s.fail(w, r, kiln.Errorf(kiln.ENotFound, "no segment %q", name))
		return
	}
	src := export.Source{Store: s.Store}
	if s.Segments != nil {
		src.Traits = func(pid string) map[string]any {
			vals, _ := s.Segments.ProfileSegments(pid)
			out := make(map[string]any, len(vals))
			for k, v := range vals {
				out[k] = v
			}
			for k, v := range s.Segments.ProfileModelTraits(pid) {
				out[k] = v
			}
			return out
		}
	}
	kind := "members"
	if o.Incremental {
		kind = "changes"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`-`+kind+`.`+o.Format+`"`)
	if o.Incremental {
		// The cursor is known once the last row is written: a trailer.
		w.Header().Set("Trailer", "Kiln-Cursor")
	}
	res, err := export.Write(r.Context(), src, o, w)
	if err != nil {
		// The status is sent already; the cut-short body tells the client.
		s.Logger.Error("segment export failed", "segment", name, "err", err)
		return
	}
	if o.Incremental {
		w.Header().Set("Kiln-Cursor", strconv.FormatInt(res.Cursor, 10))
	}
}

// nonNil makes a nil slice empty, so lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
