package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/auth"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/ingest"
	"github.com/kiln-cdp/kiln/journal"
	"github.com/kiln-cdp/kiln/metrics"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/ui"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stderr)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.Config.serverFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	profileReady() // KILN_CPUPROFILE, KILN_HEAPPROFILE: start-up is over
	fmt.Fprintf(stdout, "kiln serving on %s (API %s/api/v1, tracking API %s/v1, metrics %s/metrics)\n", m.URL(), m.URL(), m.URL(), m.URL())
	<-ctx.Done()
	return m.Close()
}

// Main is the running server: the same code runs under `kiln serve`,
// `kiln demo` and the end-to-end tests.
type Main struct {
	Config  Config
	Logger  *slog.Logger
	Store   store.Store
	Journal *journal.Journal
	Engine  *engine.Engine
	Metrics *metrics.Metrics
	Actions *action.Service // automations, destinations and the outbox

	key      *connector.Key // KILN_SECRET_KEY, nil if unset
	logOut   io.Writer
	migrate  func(context.Context) error // the store's, once locked
	unlock   func()                      // releases the store's lock
	ln       net.Listener
	http     *http.Server
	served   chan error
	stopEng  context.CancelFunc
	engDone  chan error
	isClosed bool
	stopAct  func()
	loading  func() // tests: called while the engine loads its state
}

// NewMain returns a Main with default configuration, logging to logOut.
func NewMain(logOut io.Writer) *Main {
	return &Main{logOut: logOut}
}

// Lock validates the configuration, connects to the store and takes it
// for this process alone (store.Store.Lock) before anything is written:
// a second server on the same store fails here, at once and naming the
// holder, before it migrates, rebuilds state, delivers actions or
// listens. Open calls it; kiln demo calls it first, so that -reset
// deletes a database only once it holds the lock.
func (m *Main) Lock(ctx context.Context) error {
	if m.unlock != nil {
		return nil
	}
	if err := m.Config.validate(); err != nil {
		return err
	}
	m.Logger = m.Config.logger(m.logOut)
	st, err := m.Config.connectStore(ctx)
	if err != nil {
		return err
	}
	unlock, err := st.Lock(ctx)
	if err != nil {
		st.Close()
		return m.Config.storeError(err)
	}
	m.Store, m.migrate, m.unlock = st, st.Migrate, unlock
	return nil
}

// Open locks the store (Lock) and brings its schema up to date, starts the
// engine, the action dispatcher and the HTTP server, and returns once it
// listens.
func (m *Main) Open(ctx context.Context) error {
	if err := m.Lock(ctx); err != nil {
		return err
	}
	if err := m.migrate(ctx); err != nil {
		m.closeStore()
		return m.Config.storeError(err)
	}
	m.Metrics = metrics.New()
	st := m.Store
	if err := ensureDefaultSource(ctx, st); err != nil {
		m.closeStore()
		return err
	}

	if err := m.openActions(ctx); err != nil {
		m.closeStore()
		return err
	}
	rfm, _ := m.Config.rfm() // validate checked it
	cur, rates, _ := m.Config.currency()
	var err error
	m.Engine, err = engine.New(engine.Config{
		Store:            st,
		Logger:           m.Logger,
		Metrics:          m.Metrics,
		Blocklist:        m.Config.blocklist(),
		Location:         m.location(),
		Currency:         cur,
		Rates:            rates,
		PhoneCountryCode: m.Config.PhoneCountryCode,
		Planner:          m.Actions.Planner,
		OnTransitions:    m.Actions.OnTransitions,
		RFM:              rfm,
		Loading:          m.loading,
		// Acknowledging events comes first; processing gives way briefly.
		Yield: func() bool { return m.Journal != nil && m.Journal.Busy() },
	})
	if err != nil {
		m.closeStore()
		return err
	}
	m.Journal = journal.New(st, journal.Options{OnCommit: m.Engine.Offer, Observe: func(n int, d time.Duration) {
		m.Metrics.IngestBatchSize.Observe(float64(n))
		m.Metrics.CommitDuration.Observe(d.Seconds())
	}})

	// The port opens while the engine loads its state, so ingest is up
	// (events are durable and acknowledged) from the first second; /readyz
	// says what is still loading. Open returns once the engine is ready.
	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		m.Journal.Close()
		m.closeStore()
		return fmt.Errorf("-addr %s: %w", m.Config.Addr, err)
	}
	engCtx, cancel := context.WithCancel(context.Background())
	m.stopEng = cancel
	m.engDone = make(chan error, 1)
	ready := make(chan error, 1)
	go func() { m.engDone <- m.Engine.Run(engCtx, ready) }()
	m.ln = ln
	m.http = &http.Server{
		Handler:           m.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.http.Serve(ln) }()
	m.Logger.Info("kiln listening; loading engine state", "addr", ln.Addr().String(), "store", m.storeName())
	if err := <-ready; err != nil {
		m.http.Close()
		<-m.served
		m.isClosed = true
		m.closeEngine()
		return fmt.Errorf("starting the engine: %w", err)
	}
	m.startActions()
	m.Logger.Info("kiln started", "addr", ln.Addr().String(), "store", m.storeName())
	return nil
}

func (m *Main) location() *time.Location {
	loc, err := time.LoadLocation(m.Config.Timezone)
	if err != nil {
		return time.UTC // validate refused it already
	}
	return loc
}

func (m *Main) storeName() string {
	if m.Config.Postgres != "" {
		return "postgres"
	}
	return "sqlite:" + m.Config.DB
}

// URL is the server's base URL.
func (m *Main) URL() string { return "http://" + m.ln.Addr().String() }

// sink counts what the journal stored for the metrics.
type sink struct {
	j *journal.Journal
	m *metrics.Metrics
}

func (s sink) Write(ctx context.Context, events []kiln.Event, rejects []kiln.Reject) (int, error) {
	n, err := s.j.Write(ctx, events, rejects)
	if err == nil {
		s.m.IngestEvents.WithLabelValues("stored").Add(float64(n))
		s.m.IngestEvents.WithLabelValues("duplicate").Add(float64(len(events) - n))
		s.m.IngestEvents.WithLabelValues("rejected").Add(float64(len(rejects)))
	}
	return n, err
}

func (m *Main) routes() http.Handler {
	mux := http.NewServeMux()
	seg := ingest.NewSegmentHandler(ingest.SegmentConfig{
		Sink:        sink{m.Journal, m.Metrics},
		Auth:        m.Store,
		Logger:      m.Logger,
		KeyCacheTTL: 5 * time.Second,
		RateLimit:   m.Config.RateLimit,
		Identity:    m.Engine.Extractor(),
	})
	mux.Handle("/v1/", m.Metrics.Instrument("tracking", seg))
	for _, kind := range ingest.WebhookKinds {
		h, err := ingest.NewWebhookHandler(kind, ingest.WebhookConfig{Sink: sink{m.Journal, m.Metrics}, Auth: openingSources{m.Store, m.key}, Logger: m.Logger, Identity: m.Engine.Extractor()})
		if err != nil {
			panic(err) // WebhookKinds and NewWebhookHandler disagree: a programming error
		}
		mux.Handle("/webhooks/"+kind+"/{source}", m.Metrics.Instrument("webhook_"+kind, h))
	}
	admin := &api.Server{Store: m.Store, Ops: m.Engine, Segments: m.Engine, Models: m.Engine, Keys: auth.NewCache(m.Store), Logger: m.Logger, Normalize: m.Engine.Extractor().Normalize, Actions: m.Actions}
	mux.Handle("/api/", m.Metrics.Instrument("api", m.whenReady(admin.Handler())))
	mux.Handle(action.UnsubscribePath, m.Metrics.Instrument("unsubscribe", m.Actions.UnsubscribeHandler()))
	mux.Handle("GET /metrics", m.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if p, ok := m.Store.(interface{ Ping(context.Context) error }); ok {
			if err := p.Ping(ctx); err != nil {
				api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable", "error": err.Error()})
				return
			}
		}
		if st := m.Engine.Status(); st.Phase != engine.PhaseReady {
			api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting", "loading": st})
			return
		}
		body := map[string]any{"status": "ready", "processorLag": m.Engine.Lag()}
		if ws := m.Engine.Warnings(); len(ws) > 0 {
			body["warnings"] = ws
		}
		if bad := m.deliveryTrouble(); len(bad) > 0 {
			// Still 200: this node ingests and evaluates as well as any
			// other, and a vendor that is down is down for every node, so
			// a load balancer pulling nodes over it would take ingestion
			// down and deliver nothing more. The body says what is wrong.
			body["status"] = "degraded"
			body["destinations"] = bad
		}
		api.WriteJSON(w, http.StatusOK, body)
	})
	web := ui.New(ui.Config{Store: m.Store, Engine: m.Engine, Keys: auth.NewCache(m.Store), Secret: []byte(os.Getenv("KILN_UI_SECRET")), Logger: m.Logger, Location: m.location(), Normalize: m.Engine.Extractor().Normalize, Actions: m.Actions})
	mux.Handle("/ui/", m.Metrics.Instrument("ui", m.whenReady(web.Handler())))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	return mux
}

// deliveryTrouble lists the destinations that are failing or falling
// behind, with why, for /readyz.
func (m *Main) deliveryTrouble() []map[string]any {
	if m.Actions == nil {
		return nil
	}
	var out []map[string]any
	for _, h := range m.Actions.DeliveryHealth() {
		if h.State == action.HealthOK {
			continue
		}
		d := map[string]any{"name": h.Name, "kind": h.Kind, "state": h.State, "reason": h.Reason, "pending": h.Pending, "due": h.Due}
		if !h.LastOK.IsZero() {
			d["lastSuccess"] = h.LastOK
		}
		out = append(out, d)
	}
	return out
}

// whenReady answers 503 with Retry-After and what is loading while the
// engine starts; ingest stays open meanwhile, the admin API and the UI
// wait.
func (m *Main) whenReady(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := m.Engine.Status(); st.Phase != engine.PhaseReady {
			w.Header().Set("Retry-After", "1")
			api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
				"code": "unavailable", "message": "Kiln is starting: " + st.Phase + "; try again in a moment", "loading": st}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Close shuts down gracefully: stop accepting connections and wait for
// in-flight requests (so every event already received is committed and
// acknowledged), then commit what the journal holds, stop the engine and
// close the store.
func (m *Main) Close() error {
	if m.isClosed || m.http == nil {
		return nil
	}
	m.isClosed = true
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.Shutdown)
	defer cancel()
	err := m.http.Shutdown(ctx)
	if serr := <-m.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, m.closeEngine())
}

func (m *Main) closeEngine() error {
	jerr := m.Journal.Close()
	// A snapshot now means the next start replays nothing.
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.Shutdown)
	if err := m.Engine.Snapshot(ctx); err != nil {
		m.Logger.Warn("writing the engine snapshot on shutdown; the next start replays the log", "err", err)
	}
	cancel()
	m.stopEng()
	eerr := <-m.engDone
	if errors.Is(eerr, context.Canceled) {
		eerr = nil
	}
	if m.stopAct != nil {
		m.stopAct()
	}
	return errors.Join(jerr, eerr, m.closeStore())
}

// closeStore closes the store and then releases its lock, so that the next
// server starts only once this one has written everything.
func (m *Main) closeStore() error {
	err := m.Store.Close()
	if m.unlock != nil {
		m.unlock()
		m.unlock = nil
	}
	return err
}

// ensureDefaultSource creates the "default" source admin keys ingest into.
func ensureDefaultSource(ctx context.Context, st store.Store) error {
	if _, err := st.GetSource(ctx, ingest.DefaultSource); err == nil {
		return nil
	} else if !store.IsNotFound(err) {
		return err
	}
	_, err := api.CreateSource(ctx, st, ingest.DefaultSource, "segment", "", "", time.Now())
	if kiln.ErrorCode(err) == kiln.EConflict {
		return nil // another node created it at the same moment
	}
	return err
}
