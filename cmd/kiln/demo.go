package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/rule/library"
)

// runDemo runs the server on a local SQLite file, loads generated demo data
// on first run, prints where everything is and serves until interrupted.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stderr)
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.Config.serverFlags(fs)
	var gen demo.Config
	var end string
	demoFlags(fs, &gen, &end)
	reset := fs.Bool("reset", false, "delete the demo database first and load fresh data")
	exit := fs.Bool("exit", false, "load the data, print the summary and stop instead of serving")
	fs.Lookup("db").DefValue = "kiln-demo.db"
	if os.Getenv("KILN_DB") == "" {
		m.Config.DB = "kiln-demo.db"
	}
	// The demo's receivers are on this machine.
	fs.Lookup("allow-private-destinations").DefValue = "true"
	if os.Getenv("KILN_ALLOW_PRIVATE_DESTINATIONS") == "" {
		m.Config.AllowPrivateDestinations = true
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	// The live demo ends today, so "last 90 days" means something now.
	if gen.End, err = parseEnd(end, time.Now().UTC()); err != nil {
		return err
	}
	// Nothing is deleted or written before the store is ours: a second
	// demo on the same file fails here.
	if err := m.Lock(ctx); err != nil {
		return err
	}
	if err := prepareDemo(m.Config, *reset, stderr); err != nil {
		m.closeStore()
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close()

	n, err := m.Store.CountEvents(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		if err := loadDemo(ctx, m, gen, stderr); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stderr, "using the %d events already in %s (-reset to start over)\n", n, m.storeName())
	}
	loaded := n == 0
	if len(m.Engine.Definitions()) == 0 {
		res, err := m.Engine.ApplyDefinitions(ctx, library.All(), false)
		if err != nil {
			return fmt.Errorf("applying the shipped definition library: %w", err)
		}
		fmt.Fprintf(stderr, "applied the definition library: %d definitions in %s\n", len(res.Created), res.Took)
	}
	if loaded {
		// The models fit on start and daily; fit them now on the new data.
		rep, err := m.Engine.RefitModels(ctx, engine.ModelOptions{})
		if err != nil {
			return fmt.Errorf("fitting the customer models: %w", err)
		}
		fmt.Fprintf(stderr, "fitted the customer models on %d customers (%s) in %s\n", rep.Scored, rep.Fit.Verdict, rep.Took)
	}
	admin, tok, err := api.CreateKey(ctx, m.Store, kiln.AdminKey, "demo", "", time.Now())
	if err != nil {
		return err
	}
	_, wtok, err := api.CreateKey(ctx, m.Store, kiln.WriteKey, "demo webstore", demo.SourceWebstore, time.Now())
	if err != nil {
		return err
	}
	evs, _ := m.Store.CountEvents(ctx)
	profs, _ := m.Store.CountProfiles(ctx)
	u := m.URL()
	printSegments(stdout, m.Engine.Definitions())
	fmt.Fprintf(stdout, `
Kiln demo is running on %s (%s)
  %d events, %d profiles

  Web UI     %s/ui/  (sign in with the admin key)
  API        %s/api/v1/profiles
  Tracking   %s/v1/batch  (Segment-compatible)
  Metrics    %s/metrics

  Admin key  %s   (%s)
  Write key  %s   (source %s)

Try:
  export KILN_URL=%s KILN_ADMIN_KEY=%s
  go run ./cmd/kiln profiles list -limit 5
  go run ./cmd/kiln segments members high_value -limit 5
  go run ./cmd/kiln explain high_value PROFILE_ID
  curl -s -u %s: %s/v1/track -d '{"userId":"demo-1","event":"Order Completed","properties":{"revenue":42}}'

Ctrl-C stops it.
`, u, m.storeName(), evs, profs, u, u, u, u, tok, admin.ID, wtok, demo.SourceWebstore, u, tok, wtok, u)
	if *exit {
		return nil
	}
	<-ctx.Done()
	return nil
}

// prepareDemo deletes the demo database for -reset and makes sure there is
// a secret key; the caller holds the store's lock.
func prepareDemo(cfg Config, reset bool, stderr io.Writer) error {
	if reset && cfg.Postgres == "" {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(cfg.DB + suffix); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		if err := os.RemoveAll(cfg.DB + ".snapshots"); err != nil {
			return err
		}
	}
	return demoSecretKey(cfg, stderr)
}

// loadDemo creates the demo sources and writes the generated events
// through the journal, then waits until the engine has processed them.
func loadDemo(ctx context.Context, m *Main, gen demo.Config, stderr io.Writer) error {
	for _, s := range demo.Sources(gen) {
		s.CreatedAt = time.Now().UTC()
		if err := m.Store.CreateSource(ctx, s); err != nil && kiln.ErrorCode(err) != kiln.EConflict {
			return fmt.Errorf("creating demo source %s: %w", s.ID, err)
		}
	}
	start := time.Now()
	batch := make([]kiln.Event, 0, 5000)
	var last int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := m.Journal.Write(ctx, batch, nil); err != nil {
			return err
		}
		for _, e := range batch {
			last = max(last, e.Seq)
		}
		batch = make([]kiln.Event, 0, 5000)
		return nil
	}
	sum, err := demo.Generate(gen, func(e kiln.Event) error {
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			return flush()
		}
		return ctx.Err()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("loading demo data: %w", err)
	}
	fmt.Fprintf(stderr, "stored %s in %s; processing...\n", sum, time.Since(start).Round(time.Millisecond))
	if err := m.Engine.WaitFor(ctx, last); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "processed in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// printSegments prints the live segments with their sizes.
func printSegments(w io.Writer, defs []engine.SegmentInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSEGMENT\tMEMBERS\tTITLE")
	for _, d := range defs {
		if d.Kind == "segment" {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", d.Name, d.Size, d.Title)
		}
	}
	tw.Flush()
}

// demoSecretKey gives the demo a key for sealing destination credentials
// when KILN_SECRET_KEY is not set: random, kept beside the demo database
// (readable only by its owner) so a restart can still open what it sealed.
// A real deployment sets KILN_SECRET_KEY itself.
func demoSecretKey(cfg Config, stderr io.Writer) error {
	if os.Getenv("KILN_SECRET_KEY") != "" {
		return nil
	}
	path := cfg.DB + ".key"
	if cfg.Postgres != "" {
		path = "kiln-demo.key"
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		b = []byte(base64.StdEncoding.EncodeToString(raw))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("writing the demo's secret key: %w", err)
		}
		fmt.Fprintf(stderr, "demo: generated a secret key for destination credentials in %s\n", path)
	} else if err != nil {
		return err
	}
	return os.Setenv("KILN_SECRET_KEY", strings.TrimSpace(string(b)))
}
