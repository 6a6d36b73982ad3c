package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// Segments are the engine's segment operations.
type Segments interface {
	ApplyDefinitions(ctx context.Context, src string, dryRun bool) (*engine.ApplyResult, error)
	DeleteDefinitions(ctx context.Context, names []string) (*engine.ApplyResult, error)
	Definitions() []engine.SegmentInfo
	Explain(ctx context.Context, segment, profileID string) (*eval.Node, bool, error)
	ProfileSegments(profileID string) (map[string]any, []string)
	ProfileModelTraits(profileID string) map[string]any
	MembersAsOf(ctx context.Context, segment string, at time.Time) ([]string, error)
	Recompute(ctx context.Context, segment string) (engine.Job, error)
	Job(id int64) (engine.Job, bool)
	SetStatic(ctx context.Context, segment string, add, remove []string) (int, error)
}

func (s *Server) segmentRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /api/v1/definitions", s.applyDefinitions)
	m.HandleFunc("GET /api/v1/definitions", s.listDefinitions)
	m.HandleFunc("GET /api/v1/definitions/{name}/versions", s.definitionVersions)
	m.HandleFunc("DELETE /api/v1/definitions/{name}", s.deleteDefinition)
	m.HandleFunc("GET /api/v1/segments", s.listSegments)
	m.HandleFunc("GET /api/v1/segments/{name}/members", s.segmentMembers)
	m.HandleFunc("GET /api/v1/segments/{name}/sizes", s.segmentSizes)
	m.HandleFunc("GET /api/v1/segments/{name}/transitions", s.segmentTransitions)
	m.HandleFunc("GET /api/v1/segments/{name}/explain/{id}", s.explain)
	m.HandleFunc("POST /api/v1/segments/{name}/recompute", s.recompute)
	m.HandleFunc("POST /api/v1/recompute", s.recompute)
	m.HandleFunc("GET /api/v1/jobs/{job}", s.job)
	m.HandleFunc("PUT /api/v1/segments/{name}/static", s.setStatic)
	m.HandleFunc("GET /api/v1/transitions", s.listTransitions)
	m.HandleFunc("GET /api/v1/profiles/{id}/segments", s.profileSegments)
	m.HandleFunc("GET /api/v1/profiles/{id}/transitions", s.profileTransitions)
}

// applyDefinitions takes the text form, as the body (text/plain) or as
// {"text": "..."}; ?dry_run=true only reports what would change.
func (s *Server) applyDefinitions(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "request body: %v", err))
		return
	}
	src := string(body)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		// Bound nesting before decoding anything, so a deeply nested body
		// gets the definitions' nesting error, with its line and column.
		if err := rule.CheckJSONDepth(body); err != nil {
			s.fail(w, r, err)
			return
		}
		// Either {"text": "..."} or the JSON form {"definitions": [...]},
		// which is turned into the canonical text form.
		var probe struct {
			Text        *string         `json:"text"`
			Definitions json.RawMessage `json:"definitions"`
		}
		if err := json.Unmarshal(body, &probe); err != nil {
			s.fail(w, r, kiln.Errorf(kiln.EInvalid, "request body: %v (send {\"text\": \"...\"}, {\"definitions\": [...]}, or the text itself as text/plain)", err))
			return
		}
		switch {
		case probe.Text != nil:
			src = *probe.Text
		case probe.Definitions != nil:
			set, err := rule.ParseJSON(body)
			if err != nil {
				s.fail(w, r, err) // an ErrorList: 400, naming the JSON or the definition
				return
			}
			src = rule.Format(set)
		default:
			s.fail(w, r, kiln.Errorf(kiln.EInvalid, "request body: give \"text\" (the text form) or \"definitions\" (the JSON form)"))
			return
		}
	}
	res, err := s.Segments.ApplyDefinitions(r.Context(), src, r.URL.Query().Get("dry_run") == "true")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

func (s *Server) listDefinitions(w http.ResponseWriter, r *http.Request) {
	defs := s.Segments.Definitions()
	defs = nonNil(defs)
	WriteJSON(w, http.StatusOK, map[string]any{"definitions": defs})
}

func (s *Server) definitionVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Store.DefinitionVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, notFound(err, "definition %s", r.PathValue("name")))
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"versions": vs})
}

func (s *Server) deleteDefinition(w http.ResponseWriter, r *http.Request) {
	res, err := s.Segments.DeleteDefinitions(r.Context(), []string{r.PathValue("name")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) {
	out := []engine.SegmentInfo{}
	for _, d := range s.Segments.Definitions() {
		if d.Kind == "segment" {
			out = append(out, d)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"segments": out})
}

func (s *Server) segmentExists(name string) bool {
	for _, d := range s.Segments.Definitions() {
		if d.Name == name && d.Kind == "segment" {
			return true
		}
	}
	return false
}

// maxPage is the most members or transitions one page holds.
const maxPage = 10000

// segmentMembers pages through current members; ?as_of=RFC3339 answers
// who was in the segment at that instant, from the stored events.
func (s *Server) segmentMembers(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.segmentExists(name) {
		s.fail(w, r, kiln.Errorf(kiln.ENotFound, "no segment %q", name))
		return
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if limit > maxPage {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "limit %d: a page holds at most %d members; follow the next cursor for more", limit, maxPage))
		return
	}
	after := r.URL.Query().Get("after")
	if asOf := r.URL.Query().Get("as_of"); asOf != "" {
		at, err := time.Parse(time.RFC3339, asOf)
		if err != nil {
			s.fail(w, r, kiln.Errorf(kiln.EInvalid, "as_of %q: want an RFC 3339 time such as 2025-06-01T00:00:00Z", asOf))
			return
		}
		ids, err := s.Segments.MembersAsOf(r.Context(), name, at)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// ids are sorted: page them like the live members.
		size := len(ids)
		i, _ := slices.BinarySearch(ids, after)
		if i < len(ids) && ids[i] == after {
			i++
		}
		page := ids[i:min(i+limit, len(ids))]
		next := ""
		if i+limit < len(ids) {
			next = page[len(page)-1]
		}
		WriteJSON(w, http.StatusOK, map[string]any{"segment": name, "asOf": at, "size": size, "profileIds": nonNil(page), "next": next})
		return
	}
	ms, err := s.Store.Members(r.Context(), name, after, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.Store.CountMembers(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	next := ""
	if len(ms) > 0 && len(ms) == limit {
		next = ms[len(ms)-1].ProfileID
	}
	ms = nonNil(ms)
	WriteJSON(w, http.StatusOK, map[string]any{"segment": name, "size": n, "members": ms, "next": next})
}

func (s *Server) segmentSizes(w http.ResponseWriter, r *http.Request) {
	since := time.Now().Add(-30 * 24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.fail(w, r, kiln.Errorf(kiln.EInvalid, "since %q: want an RFC 3339 time", v))
			return
		}
		since = t
	}
	ss, err := s.Store.SegmentSizes(r.Context(), r.PathValue("name"), since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ss = nonNil(ss)
	WriteJSON(w, http.StatusOK, map[string]any{"sizes": ss})
}

func (s *Server) transitions(w http.ResponseWriter, r *http.Request, q store.TransitionQuery) {
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
	if limit > maxPage {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "limit %d: a page holds at most %d transitions; follow the next cursor for more", limit, maxPage))
		return
	}
	q.After, q.Limit = int64(after), limit
	ts, err := s.Store.Transitions(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	next := int64(after)
	if len(ts) > 0 {
		next = ts[len(ts)-1].ID
	}
	ts = nonNil(ts)
	WriteJSON(w, http.StatusOK, map[string]any{"transitions": ts, "next": next})
}

// listTransitions is the cursor API consumers follow: pass the returned
// "next" as ?after= to get what happened since.
func (s *Server) listTransitions(w http.ResponseWriter, r *http.Request) {
	q := store.TransitionQuery{Segment: r.URL.Query().Get("segment")}
	if p := r.URL.Query().Get("profile"); p != "" {
		q.ProfileID = p
	}
	s.transitions(w, r, q)
}

func (s *Server) segmentTransitions(w http.ResponseWriter, r *http.Request) {
	s.transitions(w, r, store.TransitionQuery{Segment: r.PathValue("name")})
}

func (s *Server) profileTransitions(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.transitions(w, r, store.TransitionQuery{ProfileID: id})
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.Store.GetProfile(r.Context(), id); err != nil {
		s.fail(w, r, notFound(err, "profile %s", id))
		return
	}
	n, in, err := s.Segments.Explain(r.Context(), r.PathValue("name"), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"segment": r.PathValue("name"), "profileId": id, "member": in, "tree": n})
}

func (s *Server) profileSegments(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms, err := s.Store.MembershipsOf(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	traits, _ := s.Segments.ProfileSegments(id)
	model := s.Segments.ProfileModelTraits(id)
	ms = nonNil(ms)
	out := map[string]any{"profileId": id, "memberships": ms, "computed": traits, "model": model}
	// Computed numbers are exact JSON numbers (money with its decimals:
	// 386.90); the currencies of those that are money are listed apart.
	currencies := map[string]string{}
	for k, v := range traits {
		if n, ok := v.(eval.Number); ok && n.Currency != "" {
			currencies[k] = n.Currency
		}
	}
	if len(currencies) > 0 {
		out["currencies"] = currencies
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) recompute(w http.ResponseWriter, r *http.Request) {
	j, err := s.Segments.Recompute(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, j)
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("job"), 10, 64)
	if err != nil {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "job id %q is not a number", r.PathValue("job")))
		return
	}
	j, ok := s.Segments.Job(id)
	if !ok {
		s.fail(w, r, kiln.Errorf(kiln.ENotFound, "no job %d", id))
		return
	}
	WriteJSON(w, http.StatusOK, j)
}

func (s *Server) setStatic(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Add    []string `json:"add"`
		Remove []string `json:"remove"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.Segments.SetStatic(r.Context(), r.PathValue("name"), body.Add, body.Remove)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"segment": r.PathValue("name"), "transitions": n})
}
