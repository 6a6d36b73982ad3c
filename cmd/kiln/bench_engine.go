package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// runBenchEngine measures the segment engine against the floors
// and prints a table.
func runBenchEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customers := fs.Int("customers", 10000, "demo shop customers for the throughput and recompute runs (guests: 40% of it)")
	profiles := fs.Int("profiles", 1000000, "resident profiles for the expiry-lag run")
	expiring := fs.Int("expiring", 20000, "of those, how many expire during the run")
	spread := fs.Duration("spread", 20*time.Second, "over how long the expiries are spread")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kiln-bench-engine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stderr, "generating demo events for %d customers and %d guests...\n", *customers, *customers*2/5)
	var events []kiln.Event
	_, err = demo.Generate(demo.Config{Seed: 3, Customers: *customers, Guests: *customers * 2 / 5, End: time.Now().UTC()}, func(e kiln.Event) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		return err
	}
	set, _, err := rule.Load(library.All(), nil)
	if err != nil {
		return err
	}
	prog, err := eval.Compile(set, eval.Options{})
	if err != nil {
		return err
	}
	baseSet, _, err := rule.Load(`trait orders = count of "Order Completed" all time`, nil)
	if err != nil {
		return err
	}
	base, err := eval.Compile(baseSet, eval.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "evaluating %d events...\n", len(events))
	ap := engine.ApplyBench(prog, base, events, func(e *kiln.Event) string { return e.Anchor })

	fmt.Fprintf(stderr, "recompute: storing %d events in SQLite and applying the library...\n", len(events))
	rc, err := benchRecompute(ctx, filepath.Join(dir, "recompute.db"), events)
	if err != nil {
		return fmt.Errorf("recompute run: %w", err)
	}
	events = nil
	runtime.GC()

	fmt.Fprintf(stderr, "expiry: %d resident profiles, %d expiring over %s...\n", *profiles, *expiring, *spread)
	st, err := sqlite.Open(filepath.Join(dir, "expiry.db"))
	if err != nil {
		return err
	}
	ex, err := engine.ExpiryBench(ctx, st, *profiles, *expiring, *spread)
	st.Close()
	if err != nil {
		return fmt.Errorf("expiry run: %w", err)
	}
	pct := func(p float64) time.Duration { return ex.Lags[min(len(ex.Lags)-1, int(p*float64(len(ex.Lags))))] }

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tresult\tfloor\tnotes")
	fmt.Fprintf(tw, "events/s through the evaluator, in process\t%.0f (%.0f per CPU-second)\t200,000 per core\t%d segments, %d traits (%d windowed), %d events, %d profiles; baseline one-trait program %.0f/s (%.2fx)\n",
		ap.EventsPerSec, ap.PerCore, ap.Segments, ap.Traits, ap.Windowed, ap.Events, ap.Profiles, ap.BaselinePerSec, ap.EventsPerSec/ap.BaselinePerSec)
	fmt.Fprintf(tw, "state per profile\t%.0f bytes\t2 KiB\tevaluation state of the same run\n", ap.BytesPerProfile)
	fmt.Fprintf(tw, "expiry lag p50 / p99 / max\t%s / %s / %s\tp99 1 s\t%d resident profiles, %d exits at %.0f/s, recorded durably in SQLite\n",
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), ex.Lags[len(ex.Lags)-1].Round(time.Microsecond), ex.Profiles, ex.Expired, ex.Rate)
	fmt.Fprintf(tw, "recompute after an edit\t%s for %d events (%.0f events/s)\t60 s at 10M events\tprojected at this rate: %.0f s for 10M events; %d transitions written\n",
		rc.took.Round(time.Millisecond), rc.events, rc.rate, 10e6/rc.rate, rc.transitions)
	fmt.Fprintf(tw, "(GOMAXPROCS=%d)\t\t\t\n", runtime.GOMAXPROCS(0))
	return tw.Flush()
}

type recomputeResult struct {
	events, transitions int
	took                time.Duration
	rate                float64
}

// benchRecompute stores events, lets the engine resolve them, then applies
// the library: the time of that apply is a full recompute from the log.
func benchRecompute(ctx context.Context, path string, events []kiln.Event) (*recomputeResult, error) {
	st, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for i := 0; i < len(events); i += 5000 {
		if _, err := st.Append(ctx, store.Batch{Events: events[i:min(i+5000, len(events))]}); err != nil {
			return nil, err
		}
	}
	e, err := engine.New(engine.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go e.Run(runCtx, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.WaitFor(ctx, last); err != nil {
		return nil, err
	}
	// The library first, then an edit of one segment: applying the edit
	// recomputes every segment from the log, which is what is timed.
	if _, err := e.ApplyDefinitions(ctx, library.All(), false); err != nil {
		return nil, err
	}
	edited := strings.Replace(library.All(), "spend_365d >= 500", "spend_365d >= 400", 1)
	if edited == library.All() {
		return nil, fmt.Errorf("the library no longer has the high_value threshold this benchmark edits")
	}
	start := time.Now()
	res, err := e.ApplyDefinitions(ctx, edited, false)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	n := 0
	for _, c := range res.Entered {
		n += c
	}
	for _, c := range res.Exited {
		n += c
	}
	return &recomputeResult{events: int(last), transitions: n, took: took, rate: float64(last) / took.Seconds()}, nil
}
