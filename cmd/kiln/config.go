package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/export"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/postgres"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// Config is the server's configuration. Each field has a flag and an
// environment variable; the flag wins. docs/CONFIG.md lists them.
type Config struct {
	Addr      string  // KILN_ADDR
	DB        string  // KILN_DB: SQLite file
	Postgres  string  // KILN_POSTGRES: PostgreSQL DSN; when set, used instead of SQLite
	LogFormat string  // KILN_LOG_FORMAT: text or json
	LogLevel  string  // KILN_LOG_LEVEL: debug, info, warn, error
	RateLimit float64 // KILN_RATE_LIMIT: events/s per source, 0 for none
	Timezone  string  // KILN_TIMEZONE: the workspace's time zone for calendar windows
	// Currency is the workspace's currency (KILN_CURRENCY): of amounts in
	// events without properties.currency, and of amounts a definition
	// neither scopes nor converts.
	Currency string
	// Rates are fixed conversion rates for definitions that convert
	// amounts (KILN_RATES): "1 EUR = 0.86 GBP, 1 USD = 0.79 GBP".
	Rates    string
	Shutdown time.Duration // KILN_SHUTDOWN_TIMEOUT: how long a graceful shutdown may take
	// PhoneRegion is the country calling code assumed for phone numbers
	// written without one (KILN_PHONE_COUNTRY_CODE, e.g. 44 or 1).
	PhoneCountryCode string
	// IdentityBlocklist: identifier values never used to link profiles
	// (KILN_IDENTITY_BLOCKLIST, comma separated).
	IdentityBlocklist string
	// DedupWindow is how long SQLite remembers message ids to recognise
	// retries (KILN_DEDUP_WINDOW).
	DedupWindow time.Duration
	// RFMConfig is a JSON file naming RFM groups by score ranges
	// (KILN_RFM_CONFIG); "" for the usual groups.
	RFMConfig string
	// AllowPrivateDestinations lets webhooks, connectors and SMTP servers
	// be on private, loopback and link-local addresses
	// (KILN_ALLOW_PRIVATE_DESTINATIONS); off by default except in kiln demo.
	AllowPrivateDestinations bool
	// PublicURL is the server's base URL as email recipients reach it, for
	// one-click unsubscribe links (KILN_PUBLIC_URL).
	PublicURL string
	// ExportDir, if set, receives scheduled segment exports every
	// ExportEvery in ExportFormats, of ExportSegments ("" for all).
	ExportDir      string        // KILN_EXPORT_DIR
	ExportEvery    time.Duration // KILN_EXPORT_EVERY
	ExportFormats  string        // KILN_EXPORT_FORMATS, comma separated
	ExportSegments string        // KILN_EXPORT_SEGMENTS, comma separated
	// ReconcileEvery is how often every connector destination is
	// reconciled in full with its vendor (KILN_RECONCILE_EVERY; 0: only
	// on demand).
	ReconcileEvery time.Duration
	// DeliveryLease is how long a delivery worker holds an outbox item
	// (KILN_DELIVERY_LEASE): after a crash, how soon the next process
	// takes the items of the one that died. A call may take a third.
	DeliveryLease time.Duration
	// DeliveryMaxBackoff caps the wait between retries of one item
	// (KILN_DELIVERY_MAX_BACKOFF).
	DeliveryMaxBackoff time.Duration
}

// currency returns the workspace currency (USD when unset) and the
// parsed conversion rates.
func (c *Config) currency() (string, eval.Rates, error) {
	cur := c.Currency
	if cur == "" {
		cur = eval.DefaultCurrency
	}
	if len(cur) != 3 || strings.ToUpper(cur) != cur || strings.Trim(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return "", eval.Rates{}, fmt.Errorf("-currency %q: use a three-letter ISO 4217 code such as USD or GBP", c.Currency)
	}
	r, err := eval.ParseRates(c.Rates)
	if err != nil {
		return "", eval.Rates{}, fmt.Errorf("-rates: %w", err)
	}
	return cur, r, nil
}

// rfm reads the RFM group thresholds, if configured.
func (c *Config) rfm() (intel.RFMConfig, error) {
	if c.RFMConfig == "" {
		return intel.RFMConfig{}, nil
	}
	b, err := os.ReadFile(c.RFMConfig)
	if err != nil {
		return intel.RFMConfig{}, fmt.Errorf("-rfm-config: %w", err)
	}
	var rc intel.RFMConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return rc, fmt.Errorf("-rfm-config %s: %v (want {\"Segments\": [{\"Name\": \"Champions\", \"R\": [4,5], \"F\": [4,5], \"M\": [4,5]}, ...]})", c.RFMConfig, err)
	}
	if err := rc.Validate(); err != nil {
		return rc, fmt.Errorf("-rfm-config %s: %w", c.RFMConfig, err)
	}
	return rc, nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		fmt.Fprintf(os.Stderr, "kiln: ignoring %s=%q: not a number\n", name, v)
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		fmt.Fprintf(os.Stderr, "kiln: ignoring %s=%q: not true or false\n", name, v)
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "kiln: ignoring %s=%q: not a duration such as 30s\n", name, v)
	}
	return def
}

// storeFlags registers the flags that choose the database.
func (c *Config) storeFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DB, "db", envOr("KILN_DB", "kiln.db"), "SQLite database file (KILN_DB)")
	fs.StringVar(&c.Postgres, "postgres", envOr("KILN_POSTGRES", ""), "PostgreSQL DSN, e.g. postgres://user@host/db; overrides -db (KILN_POSTGRES)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", envDuration("KILN_DEDUP_WINDOW", sqlite.DefaultDedupWindow), "SQLite: how long message ids are remembered to recognise client retries (KILN_DEDUP_WINDOW; PostgreSQL dedupes for all time)")
}

// serverFlags registers the server's flags.
func (c *Config) serverFlags(fs *flag.FlagSet) {
	c.storeFlags(fs)
	fs.StringVar(&c.Addr, "addr", envOr("KILN_ADDR", "127.0.0.1:8080"), "HTTP listen address (KILN_ADDR)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("KILN_LOG_FORMAT", "text"), "log format: text or json (KILN_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("KILN_LOG_LEVEL", "info"), "log level: debug, info, warn or error (KILN_LOG_LEVEL)")
	fs.Float64Var(&c.RateLimit, "rate-limit", envFloat("KILN_RATE_LIMIT", 0), "ingest limit in events/s per source, answered with 429 beyond it; 0 for none (KILN_RATE_LIMIT)")
	fs.StringVar(&c.Timezone, "timezone", envOr("KILN_TIMEZONE", "UTC"), "workspace time zone for calendar windows and schedules (KILN_TIMEZONE)")
	fs.StringVar(&c.Currency, "currency", envOr("KILN_CURRENCY", eval.DefaultCurrency), "workspace currency: of amounts in events without properties.currency, and of sums that neither say in currency X nor convert (KILN_CURRENCY)")
	fs.StringVar(&c.Rates, "rates", envOr("KILN_RATES", ""), "fixed conversion rates for definitions that convert amounts, e.g. \"1 EUR = 0.86 GBP, 1 USD = 0.79 GBP\" (KILN_RATES)")
	fs.DurationVar(&c.Shutdown, "shutdown-timeout", envDuration("KILN_SHUTDOWN_TIMEOUT", 30*time.Second), "how long graceful shutdown may drain in-flight requests (KILN_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.PhoneCountryCode, "phone-country-code", envOr("KILN_PHONE_COUNTRY_CODE", "1"), "country calling code for phone numbers written without one (KILN_PHONE_COUNTRY_CODE)")
	fs.StringVar(&c.RFMConfig, "rfm-config", envOr("KILN_RFM_CONFIG", ""), "JSON file naming RFM groups by score ranges, first match wins; default: Champions, Loyal, Potential Loyalist, ... (KILN_RFM_CONFIG)")
	fs.BoolVar(&c.AllowPrivateDestinations, "allow-private-destinations", envBool("KILN_ALLOW_PRIVATE_DESTINATIONS", false), "let webhooks, connectors and SMTP servers be on private, loopback and link-local addresses; on by default in kiln demo (KILN_ALLOW_PRIVATE_DESTINATIONS)")
	fs.StringVar(&c.PublicURL, "public-url", envOr("KILN_PUBLIC_URL", ""), "the server's base URL as email recipients reach it, e.g. https://kiln.example.com; emails carry a one-click unsubscribe link under it (KILN_PUBLIC_URL)")
	fs.StringVar(&c.ExportDir, "export-dir", envOr("KILN_EXPORT_DIR", ""), "write scheduled segment exports (members and changes, traits as columns) to this directory; see docs/EXPORTS.md (KILN_EXPORT_DIR)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", envDuration("KILN_RECONCILE_EVERY", 24*time.Hour), "how often every connector destination is reconciled in full with its vendor: its membership listed and compared, or Kiln's state re-sent; 0: only on demand, with kiln destinations reconcile (KILN_RECONCILE_EVERY)")
	fs.DurationVar(&c.DeliveryLease, "delivery-lease", envDuration("KILN_DELIVERY_LEASE", time.Minute), "how long a delivery holds an outbox item, renewed while it runs: after a crash, how soon another process delivers the items of the one that died; one call may take a third of it, at most 10s (KILN_DELIVERY_LEASE)")
	fs.DurationVar(&c.DeliveryMaxBackoff, "delivery-max-backoff", envDuration("KILN_DELIVERY_MAX_BACKOFF", time.Hour), "the longest wait between two attempts at one item (full-jitter exponential backoff from 1s; a vendor's Retry-After may ask for more) (KILN_DELIVERY_MAX_BACKOFF)")
	fs.DurationVar(&c.ExportEvery, "export-every", envDuration("KILN_EXPORT_EVERY", time.Hour), "how often scheduled exports run (KILN_EXPORT_EVERY)")
	fs.StringVar(&c.ExportFormats, "export-formats", envOr("KILN_EXPORT_FORMATS", "parquet,csv"), "comma-separated formats of scheduled exports: parquet, csv, ndjson (KILN_EXPORT_FORMATS)")
	fs.StringVar(&c.ExportSegments, "export-segments", envOr("KILN_EXPORT_SEGMENTS", ""), "comma-separated segments to export on schedule; empty for all (KILN_EXPORT_SEGMENTS)")
	fs.StringVar(&c.IdentityBlocklist, "identity-blocklist", envOr("KILN_IDENTITY_BLOCKLIST", ""), "comma-separated identifier values never used to link profiles, e.g. a shared tablet's anonymous id (KILN_IDENTITY_BLOCKLIST)")
}

// validate names the field and the rule that is broken.
func (c *Config) validate() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format %q: use text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("-rate-limit %v: must be 0 (off) or positive", c.RateLimit)
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("-timezone %q: not a known IANA time zone such as Europe/London", c.Timezone)
	}
	if _, err := c.rfm(); err != nil {
		return err
	}
	if _, _, err := c.currency(); err != nil {
		return err
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("-public-url %q: want an absolute URL such as https://kiln.example.com", c.PublicURL)
		}
	}
	if c.DeliveryLease != 0 && c.DeliveryLease < 3*time.Second { // 0: the default
		return fmt.Errorf("-delivery-lease %s: want at least 3s (a call may take a third of it)", c.DeliveryLease)
	}
	if c.DeliveryMaxBackoff != 0 && c.DeliveryMaxBackoff < time.Second {
		return fmt.Errorf("-delivery-max-backoff %s: want at least 1s", c.DeliveryMaxBackoff)
	}
	if c.ReconcileEvery < 0 || c.ReconcileEvery > 0 && c.ReconcileEvery < time.Second {
		return fmt.Errorf("-reconcile-every %s: want 0 (only on demand) or at least 1s", c.ReconcileEvery)
	}
	if c.ExportDir != "" {
		if c.ExportEvery < time.Minute {
			return fmt.Errorf("-export-every %s: want at least 1m", c.ExportEvery)
		}
		for _, f := range splitList(c.ExportFormats) {
			if !slices.Contains(export.Formats, f) {
				return fmt.Errorf("-export-formats: %q: want parquet, csv or ndjson", f)
			}
		}
		if len(splitList(c.ExportFormats)) == 0 {
			return fmt.Errorf("-export-formats: name at least one of parquet, csv, ndjson")
		}
	}
	if c.Postgres == "" && c.DB == "" {
		return fmt.Errorf("-db: give a SQLite file path or -postgres")
	}
	return nil
}

func (c *Config) blocklist() []string { return splitList(c.IdentityBlocklist) }

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func (c *Config) logger(w io.Writer) *slog.Logger {
	l, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: l}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the configured backend, applying migrations, without
// the lock a server takes: the admin commands (keys, sources, rejects,
// import) read and write beside a running server, as SQLite's and
// PostgreSQL's own locking allow, and never run the engine or deliver
// actions.
func (c *Config) openStore(ctx context.Context) (store.Store, error) {
	db, err := c.connectStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, c.storeError(err)
	}
	return db, nil
}

// unmigrated is a store connected but not changed yet: a server locks it
// (store.Store.Lock) before Migrate.
type unmigrated interface {
	store.Store
	Migrate(ctx context.Context) error
}

// connectStore connects to the configured backend without changing it.
func (c *Config) connectStore(ctx context.Context) (unmigrated, error) {
	if c.Postgres != "" {
		db, err := postgres.Connect(ctx, c.Postgres)
		if err != nil {
			return nil, c.storeError(err)
		}
		return db, nil
	}
	db, err := sqlite.Connect(c.DB, sqlite.Options{DedupWindow: c.DedupWindow})
	if err != nil {
		return nil, c.storeError(err)
	}
	return db, nil
}

// storeError says which store an error is about, and what to do when
// another process holds it.
func (c *Config) storeError(err error) error {
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked) && c.Postgres != "":
		return fmt.Errorf("%w; stop it first or use another -postgres database or schema", err)
	case errors.As(err, &locked):
		return fmt.Errorf("%w; stop it first or use another -db", err)
	case c.Postgres != "":
		return fmt.Errorf("opening PostgreSQL: %w", err)
	}
	return fmt.Errorf("opening SQLite file %s: %w", c.DB, err)
}
