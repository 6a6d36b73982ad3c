// Package api is Kiln's admin REST API under /api/v1. Every endpoint needs
// an admin key. Errors are JSON {"error": {"code", "message"}} with the
// HTTP status mapped from the kiln error code.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/auth"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// Ops are the operations that must go through the running engine because
// they change its in-memory state (the identity index, segment state).
type Ops interface {
	// DeleteProfile deletes a profile and everything derived from it.
	DeleteProfile(ctx context.Context, id string, suppress bool) ([]kiln.Identity, error)
	// Unmerge undoes a merge and recomputes both profiles.
	Unmerge(ctx context.Context, mergeID int64) (*kiln.Merge, error)
}

// Server serves the admin API.
type Server struct {
	Store    store.Store
	Ops      Ops
	Segments Segments
	Models   Models
	Keys     auth.KeyStore // usually an auth.Cache over Store
	Logger   *slog.Logger
	Now      func() time.Time
	// Normalize normalises identifiers typed by people (the resolver's
	// rules), so "email:Ann@Example.com" finds the profile; nil: as typed.
	Normalize func(kiln.Identifier) (kiln.Identifier, bool)
	// Actions runs automations and destinations; nil: those routes answer 503.
	Actions *action.Service
}

// Handler returns the API's routes; mount it at the server root.
func (s *Server) Handler() http.Handler {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Keys == nil {
		s.Keys = s.Store
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/profiles", s.listProfiles)
	m.HandleFunc("GET /api/v1/profiles/{id}", s.getProfile)
	m.HandleFunc("DELETE /api/v1/profiles/{id}", s.deleteProfile)
	m.HandleFunc("PUT /api/v1/profiles/{id}/consent/{channel}", s.setConsent)
	m.HandleFunc("GET /api/v1/profiles/{id}/events", s.profileEvents)
	m.HandleFunc("GET /api/v1/profiles/{id}/merges", s.profileMerges)
	m.HandleFunc("POST /api/v1/merges/{id}/undo", s.undoMerge)
	m.HandleFunc("GET /api/v1/rejects", s.listRejects)
	m.HandleFunc("GET /api/v1/sources", s.listSources)
	m.HandleFunc("POST /api/v1/sources", s.createSource)
	m.HandleFunc("GET /api/v1/keys", s.listKeys)
	m.HandleFunc("POST /api/v1/keys", s.createKey)
	m.HandleFunc("DELETE /api/v1/keys/{id}", s.revokeKey)
	m.HandleFunc("GET /api/v1/suppressions", s.listSuppressions)
	m.HandleFunc("GET /api/v1/stats", s.stats)
	s.segmentRoutes(m)
	s.actionRoutes(m)
	s.modelRoutes(m)
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, kiln.Errorf(kiln.ENotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	return s.requireAdmin(m)
}

func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := auth.Authenticate(r.Context(), s.Keys, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if k.Kind != kiln.AdminKey {
			s.fail(w, r, kiln.Errorf(kiln.EForbidden, "key %s is a write key: it can only send events; the admin API needs an admin key", k.Prefix))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Status maps a kiln error code to its HTTP status.
func Status(code string) int {
	switch code {
	case kiln.EInvalid:
		return http.StatusBadRequest
	case kiln.ENotFound:
		return http.StatusNotFound
	case kiln.EConflict:
		return http.StatusConflict
	case kiln.EUnauthorized:
		return http.StatusUnauthorized
	case kiln.EForbidden:
		return http.StatusForbidden
	case kiln.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case kiln.ERateLimited:
		return http.StatusTooManyRequests
	case kiln.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteError writes err as the JSON error envelope. Internal errors are
// logged with their detail and shown as a generic message.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := kiln.ErrorCode(err)
	if code == kiln.EInternal || code == kiln.EUnavailable {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == kiln.EUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln"`)
	}
	WriteJSON(w, Status(code), map[string]any{"error": map[string]string{"code": code, "message": kiln.ErrorMessage(err)}})
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	WriteError(w, r, s.Logger, err)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return kiln.Errorf(kiln.EInvalid, "request body: %v", err)
	}
	return nil
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, kiln.Errorf(kiln.EInvalid, "query parameter %s: %q is not a non-negative whole number", name, v)
	}
	return n, nil
}

// profileID resolves the {id} path value: a profile id ("p_...") or an
// identifier in kind:value form ("email:ann@example.com").
func (s *Server) profileID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if strings.HasPrefix(id, "p_") {
		return id, nil
	}
	if !strings.Contains(id, ":") {
		return "", kiln.Errorf(kiln.EInvalid, "profile %q: give a profile id (p_...) or an identifier such as email:ann@example.com", id)
	}
	ident := kiln.ParseIdentifier(id)
	if s.Normalize != nil {
		n, ok := s.Normalize(ident)
		if !ok {
			return "", kiln.Errorf(kiln.EInvalid, "%s is not a usable %s (it does not normalise, or is on the blocklist)", id, ident.Kind)
		}
		ident = n
	}
	pid, err := s.Store.ProfileFor(r.Context(), ident)
	if err != nil {
		if store.IsNotFound(err) {
			return "", kiln.Errorf(kiln.ENotFound, "no profile has identifier %s", id)
		}
		return "", err
	}
	return pid, nil
}

func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 50)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ps, next, err := s.Store.ListProfiles(r.Context(), store.ProfileQuery{Search: r.URL.Query().Get("search"), After: r.URL.Query().Get("after"), Limit: min(limit, 1000)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ps = nonNil(ps)
	WriteJSON(w, http.StatusOK, map[string]any{"profiles": ps, "next": next})
}

// ProfileView is a profile with its most recent events.
type ProfileView struct {
	*kiln.Profile
	RecentEvents []kiln.Event `json:"recentEvents"`
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.Store.GetProfile(r.Context(), id)
	if err != nil {
		s.fail(w, r, notFound(err, "profile %s", id))
		return
	}
	evs, err := s.Store.EventsByAnchor(r.Context(), anchors(p.Identities), 20)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	evs = nonNil(evs)
	WriteJSON(w, http.StatusOK, ProfileView{Profile: p, RecentEvents: evs})
}

func (s *Server) profileEvents(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.Store.GetProfile(r.Context(), id)
	if err != nil {
		s.fail(w, r, notFound(err, "profile %s", id))
		return
	}
	evs, err := s.Store.EventsByAnchor(r.Context(), anchors(p.Identities), min(limit, 10000))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	evs = nonNil(evs)
	WriteJSON(w, http.StatusOK, map[string]any{"events": evs})
}

func anchors(ids []kiln.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Identifier.String()
	}
	return out
}

func notFound(err error, format string, args ...any) error {
	if store.IsNotFound(err) {
		return kiln.Errorf(kiln.ENotFound, "no "+format, args...)
	}
	return err
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	suppress := r.URL.Query().Get("suppress") == "true"
	ids, err := s.Ops.DeleteProfile(r.Context(), id, suppress)
	if err != nil {
		s.fail(w, r, notFound(err, "profile %s", id))
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"deleted": id, "identities": ids, "suppressed": suppress})
}

func (s *Server) setConsent(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body struct {
		Granted *bool  `json:"granted"`
		Source  string `json:"source"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.Granted == nil {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "request body: \"granted\" (true or false) is required"))
		return
	}
	if body.Source == "" {
		body.Source = "api"
	}
	c := store.ConsentChange{ProfileID: id, Consent: kiln.Consent{Channel: kiln.Channel(r.PathValue("channel")), Granted: *body.Granted, Source: body.Source, At: s.Now().UTC()}}
	if err := s.Store.SetConsent(r.Context(), c); err != nil {
		s.fail(w, r, notFound(err, "profile %s", id))
		return
	}
	WriteJSON(w, http.StatusOK, c.Consent)
}

func (s *Server) profileMerges(w http.ResponseWriter, r *http.Request) {
	id, err := s.profileID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms, err := s.Store.Merges(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms = nonNil(ms)
	WriteJSON(w, http.StatusOK, map[string]any{"merges": ms})
}

func (s *Server) undoMerge(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "merge id %q is not a number", r.PathValue("id")))
		return
	}
	m, err := s.Ops.Unmerge(r.Context(), id)
	if err != nil {
		s.fail(w, r, notFound(err, "merge %d", id))
		return
	}
	WriteJSON(w, http.StatusOK, m)
}

func (s *Server) listRejects(w http.ResponseWriter, r *http.Request) {
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
	src := r.URL.Query().Get("source")
	if src != "" {
		if so, err := s.Store.GetSource(r.Context(), src); err == nil {
			src = so.ID
		}
	}
	rs, err := s.Store.ListRejects(r.Context(), store.RejectFilter{SourceID: src, After: int64(after), Limit: min(limit, 1000)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rs = nonNil(rs)
	next := int64(0)
	if len(rs) > 0 {
		next = rs[len(rs)-1].ID
	}
	WriteJSON(w, http.StatusOK, map[string]any{"rejects": rs, "next": next})
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	ss, err := s.Store.ListSources(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ss = nonNil(ss)
	WriteJSON(w, http.StatusOK, map[string]any{"sources": ss})
}

func (s *Server) createSource(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Store  string `json:"store"`
		Secret string `json:"secret"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	src, err := CreateSource(r.Context(), s.Store, body.Name, body.Kind, body.Store, body.Secret, s.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, src)
}

// CreateSource validates and stores a new source. The CLI uses it too. A
// webhook secret is sealed with KILN_SECRET_KEY, read from the environment
// as everywhere (the server's and the admin's), and is refused without it.
func CreateSource(ctx context.Context, ks store.Keys, name, kind, storeName, secret string, now time.Time) (*kiln.Source, error) {
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, " /:") {
		return nil, kiln.Errorf(kiln.EInvalid, "source name %q: use letters, digits, '-' or '_' (it appears in webhook URLs)", name)
	}
	src := kiln.Source{ID: kiln.NewID("src_"), Name: name, Kind: kind, Store: storeName, Secret: secret, CreatedAt: now.UTC()}
	if secret != "" {
		var key *connector.Key
		if os.Getenv(connector.KeyEnv) != "" {
			var err error
			if key, err = connector.KeyFromEnv(); err != nil {
				return nil, err
			}
		}
		if err := connector.SealSource(key, &src); err != nil {
			return nil, err
		}
	}
	if err := ks.CreateSource(ctx, src); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, kiln.Errorf(kiln.EConflict, "a source named %q exists already", name)
		}
		return nil, err
	}
	return &src, nil
}

// CreateKey makes a key and returns it with its token, which is shown only
// this once. Write keys need a source (id or name).
func CreateKey(ctx context.Context, ks store.Keys, kind kiln.KeyKind, name, source string, now time.Time) (*kiln.Key, string, error) {
	if kind != kiln.WriteKey && kind != kiln.AdminKey {
		return nil, "", kiln.Errorf(kiln.EInvalid, "key kind %q: use write or admin", kind)
	}
	k := kiln.Key{ID: kiln.NewID("key_"), Kind: kind, Name: name, CreatedAt: now.UTC()}
	if kind == kiln.WriteKey {
		if source == "" {
			return nil, "", kiln.Errorf(kiln.EInvalid, "a write key needs a source: name the source its events come from")
		}
		src, err := ks.GetSource(ctx, source)
		if err != nil {
			if store.IsNotFound(err) {
				return nil, "", kiln.Errorf(kiln.ENotFound, "no source %q: create it first", source)
			}
			return nil, "", err
		}
		k.SourceID = src.ID
	}
	tok := kiln.NewToken(kind)
	k.Hash = kiln.HashToken(tok)
	k.Prefix = tok[:12]
	if err := ks.CreateKey(ctx, k); err != nil {
		return nil, "", err
	}
	return &k, tok, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.Store.ListKeys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ks = nonNil(ks)
	WriteJSON(w, http.StatusOK, map[string]any{"keys": ks})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Kind   kiln.KeyKind `json:"kind"`
		Name   string       `json:"name"`
		Source string       `json:"source"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	k, tok, err := CreateKey(r.Context(), s.Store, body.Kind, body.Name, body.Source, s.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, map[string]any{"key": k, "token": tok})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Store.RevokeKey(r.Context(), id, s.Now().UTC()); err != nil {
		s.fail(w, r, notFound(err, "key %s", id))
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"revoked": id})
}

func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	ss, err := s.Store.ListSuppressions(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ss = nonNil(ss)
	WriteJSON(w, http.StatusOK, map[string]any{"suppressions": ss})
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	ev, err := s.Store.CountEvents(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ps, err := s.Store.CountProfiles(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"events": ev, "profiles": ps})
}
