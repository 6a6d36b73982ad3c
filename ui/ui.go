// Package ui is Kiln's web interface for the people who use the segments:
// marketers, not engineers. It is served by the kiln binary itself under
// /ui/ as server-rendered HTML (html/template), with its stylesheet and a
// little vanilla JavaScript embedded, so there is nothing to install.
//
// Every page needs a signed-in session: the sign-in form takes an admin
// key and sets a signed, HttpOnly, SameSite=Strict cookie. Every
// state-changing request carries a synchronizer CSRF token derived from
// the session.
//
// The package talks to the store for what is stored (profiles, members,
// transitions, size samples) and to the engine, through the small Engine
// interface, for what lives in memory (definitions with sizes, explain
// trees, computed traits) or must go through it (applying definitions,
// recompute, unmerge, delete). Destinations, automations and deliveries
// go through the action runtime (the small Actions interface), the same
// operations the admin API uses.
//
// Tests run against a real server (SQLite, the engine, the tracking API)
// and, when Chromium is installed, in a real headless browser. Two extra
// commands:
//
//	go test ./ui -run TestScreenshots -screenshots "$PWD/screenshots"   # every page, laptop and phone
//	go test ./ui -run '^$' -bench Pages -benchtime 10x                  # page times at 100,000 profiles
package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/auth"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/store"
)

// Engine is the slice of the running engine the UI uses (*engine.Engine
// satisfies it).
type Engine interface {
	Definitions() []engine.SegmentInfo
	ApplyDefinitions(ctx context.Context, src string, dryRun bool) (*engine.ApplyResult, error)
	DeleteDefinitions(ctx context.Context, names []string) (*engine.ApplyResult, error)
	Explain(ctx context.Context, segment, profileID string) (*eval.Node, bool, error)
	ProfileSegments(profileID string) (map[string]any, []string)
	ProfileModelTraits(profileID string) map[string]any
	Recompute(ctx context.Context, segment string) (engine.Job, error)
	Job(id int64) (engine.Job, bool)
	SetStatic(ctx context.Context, segment string, add, remove []string) (int, error)
	DeleteProfile(ctx context.Context, id string, suppress bool) ([]kiln.Identity, error)
	Unmerge(ctx context.Context, mergeID int64) (*kiln.Merge, error)
	// ModelReport is the last customer-model refit's report (nil before
	// the first); RefitModels refits them.
	ModelReport() *engine.ModelReport
	RefitModels(ctx context.Context, o engine.ModelOptions) (*engine.ModelReport, error)
}

// Config wires a Server.
type Config struct {
	Store  store.Store
	Engine Engine
	// Keys checks admin keys at sign-in and on every request (a revoked
	// key ends its sessions); nil means Store. Pass an auth.Cache.
	Keys auth.KeyStore
	// Secret signs session cookies and CSRF tokens. Empty: a random
	// secret per process (sessions end when the server restarts).
	Secret []byte
	// SessionTTL is how long a sign-in lasts (default 12 hours).
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
	// Location is the workspace time zone: "today" on the overview and
	// the times shown (default UTC).
	Location *time.Location
	// Normalize normalises identifiers people type (the resolver's rules,
	// so "email:Ann@Example.com" finds the profile); nil: as typed.
	Normalize func(kiln.Identifier) (kiln.Identifier, bool)
	// Actions manages destinations, automations and deliveries (pass the
	// *action.Service); nil: those pages say the server does not run them.
	Actions Actions
}

// Server serves the UI. Make it with New.
type Server struct {
	cfg   Config
	st    store.Store
	eng   Engine
	acts  Actions
	keys  auth.KeyStore
	log   *slog.Logger
	now   func() time.Time
	loc   *time.Location
	pages map[string]*template.Template

	stats *stats
	intel *intelState
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New makes a Server. It panics only if the embedded templates do not
// parse, which tests catch.
func New(cfg Config) *Server {
	if cfg.Keys == nil {
		cfg.Keys = cfg.Store
	}
	if len(cfg.Secret) == 0 {
		cfg.Secret = make([]byte, 32)
		if _, err := rand.Read(cfg.Secret); err != nil {
			panic("ui: no randomness: " + err.Error())
		}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	s := &Server{cfg: cfg, st: cfg.Store, eng: cfg.Engine, acts: cfg.Actions, keys: cfg.Keys, log: cfg.Logger, now: cfg.Now, loc: cfg.Location}
	s.stats = newStats()
	s.intel = &intelState{}
	s.pages = parsePages(s.funcs())
	return s
}

// Handler returns the UI's routes; mount it at /ui/.
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/login", s.loginPage)
	m.HandleFunc("POST /ui/login", s.login)

	a := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) {
		m.Handle(pattern, s.authed(h))
	}
	a("POST /ui/logout", s.logout)
	a("GET /ui/{$}", s.overview)
	a("GET /ui/stats.json", s.statsJSON)
	a("GET /ui/segments/new", s.builderPage)
	a("GET /ui/segments/{name}/edit", s.builderPage)
	a("POST /ui/builder/parse", s.builderParse)
	a("POST /ui/builder/format", s.builderFormat)
	a("POST /ui/builder/preview", s.builderPreview)
	a("POST /ui/segments", s.saveSegment)
	a("GET /ui/segments/{name}", s.segmentPage)
	a("GET /ui/segments/{name}/members.csv", s.membersCSV)
	a("POST /ui/segments/{name}/freshness", s.setFreshness)
	a("POST /ui/segments/{name}/recompute", s.recompute)
	a("POST /ui/segments/{name}/static", s.editStatic)
	a("POST /ui/segments/{name}/delete", s.deleteSegment)
	a("GET /ui/jobs/{id}", s.jobJSON)
	a("GET /ui/profiles", s.profilesPage)
	a("GET /ui/profiles/{id}", s.profilePage)
	a("POST /ui/profiles/{id}/unmerge", s.unmerge)
	a("POST /ui/profiles/{id}/delete", s.deleteProfile)
	a("GET /ui/automations", s.automationsPage)
	a("GET /ui/destinations", s.destinationsPage)
	a("POST /ui/destinations", s.createDestination)
	a("POST /ui/destinations/{id}/delete", s.deleteDestination)
	a("POST /ui/automations", s.createAutomation)
	a("POST /ui/automations/{id}/enable", s.setAutomation(true))
	a("POST /ui/automations/{id}/disable", s.setAutomation(false))
	a("POST /ui/automations/{id}/delete", s.deleteAutomation)
	a("GET /ui/deliveries", s.deliveriesPage)
	a("POST /ui/deliveries/replay", s.replay)
	a("GET /ui/models", s.modelsPage)
	a("POST /ui/models", s.buildModels)
	a("/ui/", func(w http.ResponseWriter, r *http.Request, sess *session) {
		s.errorPage(w, r, sess, kiln.Errorf(kiln.ENotFound, "there is no page at %s", r.URL.Path))
	})
	return securityHeaders(m)
}

// securityHeaders keeps the pages from being framed or sniffed and limits
// scripts to our own file.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.ServeHTTP(w, r)
	})
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache") // revalidate: the binary may have changed
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // which nav entry is current
	CSRF    string
	Signed  bool
	Flash   string
	Error   string
	Data    any
	BaseURL string
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, sess *session, status int, name string, p page) {
	t := s.pages[name]
	if t == nil {
		panic("ui: no template " + name)
	}
	if sess != nil {
		p.CSRF = s.csrfToken(sess)
		p.Signed = true
	}
	if p.Flash == "" {
		p.Flash = r.URL.Query().Get("flash")
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", p); err != nil {
		s.log.Error("ui: rendering page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered; the server log has details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows an error in the page frame with a status from its code.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	code := kiln.ErrorCode(err)
	if code == kiln.EInternal || code == kiln.EUnavailable {
		s.log.Error("ui: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.render(w, r, sess, statusOf(code), "error", page{Title: "Something went wrong", Error: kiln.ErrorMessage(err)})
}

func statusOf(code string) int {
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
	case kiln.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(kiln.ErrorCode(err)), map[string]string{"error": kiln.ErrorMessage(err)})
}

// --- templates ---------------------------------------------------------------

func parsePages(funcs template.FuncMap) map[string]*template.Template {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html"))
	ents, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "base" {
			continue
		}
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+e.Name()))
		out[name] = t
	}
	return out
}

func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"num":      formatInt,
		"numf":     formatFloat,
		"value":    formatValue,
		"when":     s.formatTime,
		"ago":      s.ago,
		"date":     func(t time.Time) string { return t.In(s.loc).Format("2 Jan 2006") },
		"pct":      func(a, b int64) string { return percent(a, b) },
		"jsonText": func(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) },
		"reason":   reasonText,
		"add":      func(a, b int) int { return a + b },
		"title":    titleOr,
	}
}

// titleOr gives a definition's title, or its name made readable
// ("big_spenders" -> "Big spenders").
func titleOr(title, name string) string {
	if title != "" {
		return title
	}
	t := strings.ReplaceAll(name, "_", " ")
	if t == "" {
		return t
	}
	return strings.ToUpper(t[:1]) + t[1:]
}

func (s *Server) formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(s.loc).Format("2 Jan 2006 15:04")
}

func (s *Server) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := s.now().Sub(t)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return t.In(s.loc).Format("2 Jan 2006")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// formatInt writes 1234567 as 1,234,567.
func formatInt(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return formatInt(int64(f))
	}
	whole, frac, _ := strings.Cut(strconv.FormatFloat(math.Abs(f), 'f', 2, 64), ".")
	n, _ := strconv.ParseInt(whole, 10, 64)
	out := formatInt(n) + "." + frac
	if f < 0 {
		out = "-" + out
	}
	return out
}

// formatNumber shows a computed number as the evaluator writes it (exact;
// money with its decimals), with thousands separators and, for money,
// the currency: 1,234.50 GBP.
func formatNumber(n eval.Number) string {
	text := strings.TrimPrefix(n.Text, "-")
	whole, frac, hasFrac := strings.Cut(text, ".")
	var b strings.Builder
	if len(text) < len(n.Text) {
		b.WriteByte('-')
	}
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(whole[i])
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	if n.Currency != "" {
		b.WriteByte(' ')
		b.WriteString(n.Currency)
	}
	return b.String()
}

// formatValue shows a trait value readably.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case float64:
		return formatFloat(x)
	case eval.Number:
		return formatNumber(x)
	case int, int64:
		return formatInt(x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return x
	case time.Time:
		return x.Format("2 Jan 2006 15:04")
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+": "+formatValue(x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		parts := make([]string, len(x))
		for i, v := range x {
			parts[i] = formatValue(v)
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func percent(a, b int64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func reasonText(r string) string {
	switch r {
	case kiln.ReasonEvent:
		return "new event"
	case kiln.ReasonExpiry:
		return "time passed"
	case kiln.ReasonDefinitionChange:
		return "definition changed"
	case kiln.ReasonRecompute:
		return "recompute"
	case kiln.ReasonManual:
		return "edited by hand"
	case kiln.ReasonProfile:
		return "profile changed"
	case kiln.ReasonModelRefit:
		return "models refitted"
	case kiln.ReasonRank:
		return "others moved its rank"
	}
	return r
}
