package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/ingest"
	"github.com/kiln-cdp/kiln/rule/library"
)

const pipelineUsage = `Usage: kiln bench pipeline [-duration 60s] [-clients 16] [-batch 100] [-runs 3] [-baseline PATH]

Measures the whole pipeline of a real kiln serve on loopback: clients post
Segment batches of realistic "Order Completed" events (about 1 KB each,
with products and context) as fast as the server acknowledges them, while
the server resolves identities, updates profiles, evaluates segments,
records transitions and delivers signed webhooks to a local receiver.

Each run starts the binary on a fresh store, and measures for -duration:
events acknowledged per second (ingest), events processed per second
(the engine's checkpoint), acknowledgement latency per request, then how
long the backlog takes to drain after the clients stop; CPU-seconds
(utime+stime of the server) per 1,000 events processed and peak RSS
(VmHWM). Rows:

  accept only     no definitions: durable accept and identity/profile
                  processing (the baseline)
  library+hook    the shipped definition library and a webhook automation
                  on "First-time buyers"

With -baseline, each row is also measured with that binary, in the same
run, alternating with the binary under test.`

type pipelineOpts struct {
	duration, drain time.Duration
	clients, batch  int
	runs            int
	customers       int
	rows            []string
	postgres        string
	serverArgs      []string
	keep            bool
	profile         string
	library         string // definitions applied in the library row
	stdout, stderr  io.Writer
}

var pipelineRows = []string{"accept", "library"}

func runBenchPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := pipelineOpts{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("bench pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, pipelineUsage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long the clients post in each run")
	fs.DurationVar(&o.drain, "drain", 5*time.Minute, "how long to wait for the backlog to drain after the clients stop")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients")
	fs.IntVar(&o.batch, "batch", 100, "events per /v1/batch request")
	fs.IntVar(&o.runs, "runs", 3, "runs per row and binary; the table shows medians")
	fs.IntVar(&o.customers, "customers", 200000, "distinct customers the events are spread over")
	rows := fs.String("rows", strings.Join(pipelineRows, ","), "which rows to measure: accept, library")
	bin := fs.String("binary", "", "the kiln binary under test (default: this one)")
	baseline := fs.String("baseline", "", "a kiln binary built from an older commit, measured the same way")
	fs.StringVar(&o.postgres, "postgres", "", "measure on PostgreSQL: a DSN whose database the bench may empty (each run drops and recreates the schema public)")
	serverArgs := fs.String("server-args", "", "extra flags for every kiln serve")
	libFile := fs.String("library", "", "definitions for the library row (default: the shipped library); a baseline built from an older commit may need the library of that commit, e.g. from git show COMMIT:rule/library/shop.kiln")
	fs.BoolVar(&o.keep, "keep", false, "keep the stores and server logs (their directory is printed)")
	fs.StringVar(&o.profile, "profile", "", "write a CPU profile of each server, taken over the middle half of the window, to this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.serverArgs = strings.Fields(*serverArgs)
	o.library = library.All()
	if *libFile != "" {
		raw, err := os.ReadFile(*libFile)
		if err != nil {
			return err
		}
		o.library = string(raw)
	}
	for _, r := range strings.Split(*rows, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(pipelineRows, r) {
			return fmt.Errorf("-rows: %q is not one of %s", r, strings.Join(pipelineRows, ", "))
		}
		o.rows = append(o.rows, r)
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = exe
	}
	bins := []restartBinary{{name: "new", path: *bin}}
	if *baseline != "" {
		bins = append(bins, restartBinary{name: "baseline", path: *baseline})
	}
	dir, err := os.MkdirTemp("", "kiln-bench-pipeline-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(stderr, "stores and logs are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintf(stdout, "load average before: %s", loadavg())
	var results []pipelineResult
	for _, row := range o.rows {
		for run := range o.runs {
			for _, b := range bins {
				runDir := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", row, b.name, run))
				r, err := pipelineRun(ctx, &o, b, row, run, runDir)
				if err != nil {
					printPipelineTable(&o, results)
					return fmt.Errorf("%s, %s, run %d: %w", row, b.name, run+1, err)
				}
				results = append(results, r)
				fmt.Fprintf(stderr, "%s %s run %d: ingest %.0f/s, processed %.0f/s, drain %s, %.1f CPU-ms/1000, peak RSS %d MiB, webhooks %d, load %.1f\n",
					row, b.name, run+1, r.ingest, r.processed, r.drain.Round(100*time.Millisecond), r.cpuPer1000*1000, r.hwm>>20, r.webhooks, r.load)
			}
		}
	}
	printPipelineTable(&o, results)
	fmt.Fprintf(stdout, "load average after: %s", loadavg())
	return nil
}

type pipelineResult struct {
	binary, row       string
	ingest, processed float64 // events/s during the window
	drain             time.Duration
	ackP50, ackP99    time.Duration
	cpuPer1000        float64 // CPU-seconds per 1,000 events, window and drain
	hwm               int64
	webhooks          int64
	load              float64
}

// pipelineRun is one server on a fresh store.
func pipelineRun(ctx context.Context, o *pipelineOpts, bin restartBinary, row string, run int, dir string) (pipelineResult, error) {
	res := pipelineResult{binary: bin.name, row: row}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	cfg := &Config{DB: filepath.Join(dir, "kiln.db"), Postgres: o.postgres}
	if o.postgres != "" {
		if err := resetPostgres(ctx, o.postgres); err != nil {
			return res, err
		}
	}
	st, err := cfg.openStore(ctx)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := ensureDefaultSource(ctx, st); err != nil {
		return res, err
	}
	_, write, err := api.CreateKey(ctx, st, kiln.WriteKey, "bench", ingest.DefaultSource, time.Now())
	if err != nil {
		return res, err
	}
	_, admin, err := api.CreateKey(ctx, st, kiln.AdminKey, "bench", "", time.Now())
	if err != nil {
		return res, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	addr, err := loopbackAddr()
	if err != nil {
		return res, err
	}
	args := o.serverArgs
	if o.postgres != "" {
		args = append(slices.Clone(args), "-postgres", o.postgres)
	}
	// The webhook receiver is on loopback. An environment variable, not
	// the flag, so that binaries from before it start too.
	env := []string{"KILN_ALLOW_PRIVATE_DESTINATIONS=true"}
	debugAddr := ""
	if o.profile != "" {
		if debugAddr, err = loopbackAddr(); err != nil {
			return res, err
		}
		env = append(env, "KILN_DEBUG_ADDR="+debugAddr)
	}
	srv, err := startRestartServer(&restartOpts{serverArgs: args}, bin.path, &restartStore{SecretKey: base64.StdEncoding.EncodeToString(raw)},
		cfg.DB, addr, filepath.Join(dir, "serve.log"), env)
	if err != nil {
		return res, err
	}
	defer srv.kill()
	if err := srv.waitReady(ctx, 5*time.Minute); err != nil {
		return res, err
	}

	// The receiver counts signed webhooks.
	var hooks atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get(action.HeaderSignature) != "" {
			hooks.Add(1)
		}
	})}
	go recv.Serve(ln)
	defer recv.Close()
	if row == "library" {
		if err := srv.admin(ctx, admin, "/api/v1/definitions", "text/plain", o.library); err != nil {
			return res, fmt.Errorf("applying the library: %w", err)
		}
		dest, _ := json.Marshal(map[string]any{"name": "receiver", "kind": "webhook", "config": map[string]any{"url": "http://" + ln.Addr().String() + "/hook"}})
		if err := srv.admin(ctx, admin, "/api/v1/destinations", "application/json", string(dest)); err != nil {
			return res, fmt.Errorf("creating the webhook destination: %w", err)
		}
		auto, _ := json.Marshal(map[string]any{"name": "welcome", "segment": "first_time_buyers", "on": "enter", "destination": "receiver"})
		if err := srv.admin(ctx, admin, "/api/v1/automations", "application/json", string(auto)); err != nil {
			return res, fmt.Errorf("creating the automation: %w", err)
		}
	}

	gen := newOrderGen(uint64(run+1), o.customers, fmt.Sprintf("%s-%s-%d-", row, bin.name, run))
	res.load, _ = strconv.ParseFloat(strings.Fields(loadavg() + " 0")[0], 64)
	cp0, err := st.GetCheckpoint(ctx, engine.Checkpoint)
	if err != nil {
		return res, err
	}
	cpu0 := procCPU(srv.pid())
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	var acked atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var postErr error
	stop := time.Now().Add(o.duration)
	began := time.Now()
	var wg sync.WaitGroup
	if debugAddr != "" {
		wg.Go(func() {
			time.Sleep(o.duration / 4)
			path := filepath.Join(o.profile, fmt.Sprintf("%s-%s-%d.cpu.prof", row, bin.name, run))
			if err := fetchProfile(ctx, "http://"+debugAddr, o.duration/2, path); err != nil {
				fmt.Fprintf(o.stderr, "CPU profile: %v\n", err)
			}
		})
	}
	for c := range o.clients {
		wg.Go(func() {
			g := gen.fork(uint64(c))
			var mine []time.Duration
			for time.Now().Before(stop) && ctx.Err() == nil {
				body := g.batch(o.batch)
				t := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.url()+"/v1/batch", bytes.NewReader(body))
				req.SetBasicAuth(write, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					out, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("server answered %s: %s", resp.Status, bytes.TrimSpace(out))
					}
				}
				if err != nil {
					mu.Lock()
					postErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t))
				acked.Add(int64(o.batch))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	window := time.Since(began)
	if postErr != nil {
		return res, postErr
	}
	cp1, err := st.GetCheckpoint(ctx, engine.Checkpoint)
	if err != nil {
		return res, err
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		return res, err
	}
	res.ingest = float64(acked.Load()) / window.Seconds()
	res.processed = float64(cp1-cp0) / window.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		res.ackP50, res.ackP99 = lat[len(lat)/2], lat[(len(lat)-1)*99/100]
	}
	t := time.Now()
	if err := srv.waitProcessed(ctx, st, last, o.drain); err != nil {
		return res, fmt.Errorf("draining the backlog: %w", err)
	}
	res.drain = time.Since(t)
	cp2, _ := st.GetCheckpoint(ctx, engine.Checkpoint)
	if n := cp2 - cp0; n > 0 {
		res.cpuPer1000 = (procCPU(srv.pid()) - cpu0) / float64(n) * 1000
	}
	res.hwm = procStatus(srv.pid())["VmHWM"]
	// Webhooks still in flight are given a moment; the count is what
	// arrived, not a measure of delivery speed.
	time.Sleep(time.Second)
	res.webhooks = hooks.Load()
	if _, err := srv.stop(syscall.SIGTERM, 2*time.Minute); err != nil {
		return res, err
	}
	return res, nil
}

func printPipelineTable(o *pipelineOpts, rs []pipelineResult) {
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "row\tbinary\truns\tingest ev/s\tprocessed ev/s\tdrain\tack p50\tack p99\tCPU-ms/1000 ev\tpeak RSS MiB\twebhooks\tload\t\n")
	type key struct{ row, bin string }
	var keys []key
	groups := map[key][]pipelineResult{}
	for _, r := range rs {
		k := key{r.row, r.binary}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range keys {
		g := groups[k]
		f := func(get func(pipelineResult) float64) float64 {
			xs := make([]float64, len(g))
			for i, r := range g {
				xs[i] = get(r)
			}
			return median(xs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%.1f\t%.0f\t%.0f\t%.1f\t\n", k.row, k.bin, len(g),
			f(func(r pipelineResult) float64 { return r.ingest }),
			f(func(r pipelineResult) float64 { return r.processed }),
			time.Duration(f(func(r pipelineResult) float64 { return float64(r.drain) })).Round(100*time.Millisecond),
			time.Duration(f(func(r pipelineResult) float64 { return float64(r.ackP50) })).Round(100*time.Microsecond),
			time.Duration(f(func(r pipelineResult) float64 { return float64(r.ackP99) })).Round(100*time.Microsecond),
			f(func(r pipelineResult) float64 { return r.cpuPer1000 * 1000 }),
			f(func(r pipelineResult) float64 { return float64(r.hwm >> 20) }),
			f(func(r pipelineResult) float64 { return float64(r.webhooks) }),
			f(func(r pipelineResult) float64 { return r.load }))
	}
	fmt.Fprintf(tw, "(%s per run, %d clients, batches of %d, %d customers; medians)\t\t\t\t\t\t\t\t\t\t\t\t\n", o.duration, o.clients, o.batch, o.customers)
	tw.Flush()
}

// orderGen makes Segment "Order Completed" messages of about 1 KB: three
// to five products from the demo catalog, context as analytics.js sends it.
type orderGen struct {
	rnd       *mrand.Rand
	customers int
	prefix    string
	n         int
	products  []demo.Product
}

func newOrderGen(seed uint64, customers int, prefix string) *orderGen {
	return &orderGen{rnd: mrand.New(mrand.NewPCG(seed, 0)), customers: customers, prefix: prefix, products: demo.Catalog()}
}

func (g *orderGen) fork(i uint64) *orderGen {
	return &orderGen{rnd: mrand.New(mrand.NewPCG(g.rnd.Uint64(), i)), customers: g.customers, prefix: g.prefix + strconv.FormatUint(i, 10) + "-", products: g.products}
}

func (g *orderGen) batch(n int) []byte {
	msgs := make([]map[string]any, n)
	now := time.Now().UTC()
	for i := range msgs {
		g.n++
		user := g.rnd.IntN(g.customers)
		k := 3 + g.rnd.IntN(3)
		products := make([]map[string]any, k)
		total := 0.0
		for j := range products {
			p := g.products[g.rnd.IntN(len(g.products))]
			q := 1 + g.rnd.IntN(4)
			total += p.Price * float64(q)
			products[j] = map[string]any{"product_id": p.ID, "sku": p.SKU, "name": p.Name, "category": p.Category, "price": p.Price, "quantity": q}
		}
		msgs[i] = map[string]any{
			"type": "track", "event": kiln.OrderCompleted, "userId": "c" + strconv.Itoa(user),
			"messageId": g.prefix + strconv.Itoa(g.n), "timestamp": now,
			"properties": map[string]any{"order_id": g.prefix + "o" + strconv.Itoa(g.n), "revenue": float64(int(total*100)) / 100, "currency": "GBP", "products": products},
			"context": map[string]any{"ip": "203.0.113." + strconv.Itoa(user%250), "library": map[string]any{"name": "analytics.js", "version": "5.2.0"},
				"userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
				"page":      map[string]any{"path": "/checkout/thank-you", "url": "https://shop.example/checkout/thank-you"}},
		}
	}
	body, _ := json.Marshal(map[string]any{"batch": msgs})
	return body
}

// resetPostgres empties the database: the schema public is dropped and
// created again.
func resetPostgres(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
	return err
}

// fetchProfile saves a CPU profile of d from a server's KILN_DEBUG_ADDR.
func fetchProfile(ctx context.Context, base string, d time.Duration, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(d.Seconds())))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
