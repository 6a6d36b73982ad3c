package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/ingest"
)

const benchUsage = `Usage: kiln bench ingest [flags]   (also: kiln bench engine, latency, pipeline, restart)

Measures durable ingest through POST /v1/batch on loopback: a real server
on a fresh SQLite file (or -postgres), a write key, and concurrent clients
posting batches of realistic demo events. Every batch counts only once the
server acknowledged it, which it does only after the events are durable.
The baseline is the same HTTP path into a sink that keeps nothing, measured
in the same run, so the table shows what durability costs.`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "latency" {
		return runBenchLatency(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "engine" {
		return runBenchEngine(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "models" {
		return runBenchModels(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "pipeline" {
		return runBenchPipeline(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "restart" {
		return runBenchRestart(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprintln(stderr, benchUsage)
		return fmt.Errorf("bench: say what to measure: ingest, engine, latency, models, pipeline or restart")
	}
	var cfg Config
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.storeFlags(fs)
	events := fs.Int("events", 200000, "events per run")
	batch := fs.Int("batch", 500, "events per /v1/batch request")
	clients := fs.Int("clients", 8, "concurrent clients")
	runs := fs.Int("runs", 3, "runs per row; the table shows the median")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the durable runs to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kiln-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stderr, "preparing %d events in batches of %d...\n", *events, *batch)
	bodies, err := benchBodies(*events, *batch)
	if err != nil {
		return err
	}

	type row struct {
		name  string
		rates []float64
	}
	var rows []row

	// Baseline: parse and acknowledge, keep nothing.
	base := row{name: "HTTP + parse, nothing stored (baseline)"}
	for i := 0; i < *runs; i++ {
		r, err := benchBaseline(ctx, bodies, *clients)
		if err != nil {
			return err
		}
		base.rates = append(base.rates, r)
	}
	rows = append(rows, base)

	name := "durable, SQLite (WAL, synchronous=FULL)"
	if cfg.Postgres != "" {
		name = "durable, PostgreSQL"
	}
	dur := row{name: name}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for i := 0; i < *runs; i++ {
		c := cfg
		c.DB = filepath.Join(dir, fmt.Sprintf("bench-%d.db", i))
		r, err := benchDurable(ctx, c, bodies, *clients, i)
		if err != nil {
			return err
		}
		dur.rates = append(dur.rates, r)
	}
	rows = append(rows, dur)
	rows = append(rows, row{name: "durable and processed (identities, profiles, index)", rates: benchProcessed})

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "ingest path\tevents/s (median of %d)\tmin\tmax\tvs baseline\t\n", *runs)
	bm := median(base.rates)
	for _, r := range rows {
		m := median(r.rates)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.2f\t\n", r.name, m, slices.Min(r.rates), slices.Max(r.rates), m/bm)
	}
	fmt.Fprintf(tw, "(%d events per run, %d per request, %d clients, GOMAXPROCS=%d)\t\t\t\t\t\n", *events, *batch, *clients, runtimeProcs())
	return tw.Flush()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchBodies encodes the demo shop's events as Segment batch bodies. The
// message ids get a per-run prefix at send time so runs never dedupe.
func benchBodies(n, per int) ([][]kiln.Event, error) {
	var all []kiln.Event
	_, err := demo.Generate(demo.Config{Seed: 7, Shop: true, Customers: max(100, n/20)}, func(e kiln.Event) error {
		if len(all) < n {
			all = append(all, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out [][]kiln.Event
	for len(all) > 0 {
		k := min(per, len(all))
		out = append(out, all[:k])
		all = all[k:]
	}
	return out, nil
}

type wireMsg struct {
	Type        kiln.EventType `json:"type"`
	Event       string         `json:"event,omitempty"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	MessageID   string         `json:"messageId"`
	Timestamp   time.Time      `json:"timestamp"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
}

func encodeBatches(batches [][]kiln.Event, run string) ([][]byte, int, error) {
	out := make([][]byte, len(batches))
	n := 0
	for i, b := range batches {
		msgs := make([]wireMsg, len(b))
		for j, e := range b {
			msgs[j] = wireMsg{Type: e.Type, Event: e.Name, UserID: e.UserID, AnonymousID: e.AnonymousID,
				MessageID: run + e.MessageID, Timestamp: e.Timestamp, Properties: e.Properties, Traits: e.Traits, Context: e.Context}
		}
		body, err := json.Marshal(map[string]any{"batch": msgs, "sentAt": time.Now().UTC()})
		if err != nil {
			return nil, 0, err
		}
		out[i] = body
		n += len(b)
	}
	return out, n, nil
}

// post sends every body with c concurrent clients and returns events/s.
func post(ctx context.Context, url, key string, bodies [][]byte, events, c int) (float64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, DisableCompression: true}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	defer tr.CloseIdleConnections()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/batch", bytes.NewReader(bodies[i]))
				req.SetBasicAuth(key, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("batch %d: server answered %s", i, resp.Status)
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(events) / time.Since(start).Seconds(), nil
}

type discardSink struct{}

func (discardSink) Write(_ context.Context, evs []kiln.Event, _ []kiln.Reject) (int, error) {
	return len(evs), nil
}

type benchAuth struct{ key kiln.Key }

func (a benchAuth) KeyByHash(_ context.Context, h string) (*kiln.Key, error) {
	if h == a.key.Hash {
		return &a.key, nil
	}
	return nil, kiln.Errorf(kiln.ENotFound, "no key")
}

func (a benchAuth) GetSource(_ context.Context, id string) (*kiln.Source, error) {
	return &kiln.Source{ID: id, Name: id}, nil
}

func benchBaseline(ctx context.Context, batches [][]kiln.Event, c int) (float64, error) {
	tok := kiln.NewToken(kiln.WriteKey)
	h := ingest.NewSegmentHandler(ingest.SegmentConfig{Sink: discardSink{}, Auth: benchAuth{kiln.Key{ID: "k", Kind: kiln.WriteKey, SourceID: "bench", Hash: kiln.HashToken(tok)}}, KeyCacheTTL: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	bodies, n, err := encodeBatches(batches, kiln.NewID("b"))
	if err != nil {
		return 0, err
	}
	return post(ctx, "http://"+ln.Addr().String(), tok, bodies, n, c)
}

func benchDurable(ctx context.Context, cfg Config, batches [][]kiln.Event, c, run int) (float64, error) {
	m := NewMain(io.Discard)
	m.Config = cfg
	m.Config.Addr = "127.0.0.1:0"
	m.Config.LogFormat, m.Config.LogLevel, m.Config.Timezone, m.Config.Shutdown = "text", "error", "UTC", time.Minute
	if err := m.Open(ctx); err != nil {
		return 0, err
	}
	defer m.Close()
	src := fmt.Sprintf("bench-%d-%d", run, time.Now().UnixNano())
	if _, err := api.CreateSource(ctx, m.Store, src, "segment", "", "", time.Now()); err != nil {
		return 0, err
	}
	_, tok, err := api.CreateKey(ctx, m.Store, kiln.WriteKey, "bench", src, time.Now())
	if err != nil {
		return 0, err
	}
	bodies, n, err := encodeBatches(batches, kiln.NewID("r"))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	rate, err := post(ctx, m.URL(), tok, bodies, n, c)
	if err != nil {
		return 0, err
	}
	// Processing (identity resolution, profiles, the anchor index) runs
	// behind the acknowledgements; report when it caught up.
	last, err := m.Store.LastSeq(ctx)
	if err == nil {
		err = m.Engine.WaitFor(ctx, last)
	}
	if err != nil {
		return 0, err
	}
	benchProcessed = append(benchProcessed, float64(n)/time.Since(start).Seconds())
	if os.Getenv("KILN_BENCH_DEBUG") != "" {
		fmt.Fprintln(os.Stderr, benchCommitStats(m))
	}
	return rate, nil
}

// benchProcessed collects, per durable run, events/s from the first
// request until the engine had processed every event.
var benchProcessed []float64

// benchCommitStats summarises the journal's commits from the metrics.
func benchCommitStats(m *Main) string {
	mfs, err := m.Metrics.Registry.Gather()
	if err != nil {
		return err.Error()
	}
	out := ""
	for _, mf := range mfs {
		switch mf.GetName() {
		case "kiln_ingest_commit_seconds", "kiln_ingest_commit_events":
			h := mf.GetMetric()[0].GetHistogram()
			out += fmt.Sprintf("%s: %d commits, mean %.4g\n", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(max(1, h.GetSampleCount())))
		}
	}
	return out
}
