package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/journal"
	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

const restartUsage = `Usage: kiln bench restart [-customers 100000] [-baseline PATH] [-runs 5] [-watch 60s] [-data DIR]

Measures how long a server takes to come back after a restart, and its
memory through it, with real binaries on loopback.

The store is built once per size and kept in -data: the demo's shop
customers and restaurant guests are written through the journal (the
durable path live events take) while a server processes them, then the
shipped definition library is applied and the customer models fitted
through the API, as kiln demo does, and the server is stopped gracefully.

Each binary (the one under test, and -baseline if given) then gets its
own copy of that store and is started once to warm up; then, -runs
times, each scenario stops the running server and starts it again:

  graceful     SIGTERM, wait for the exit, start
  crash-idle   SIGKILL while idle, start
  crash-burst  post -burst events, SIGKILL at once after the last
               acknowledgement, start

and times, from exec, when the port accepts connections and when
/readyz answers 200 ("ready"; a baseline whose /readyz is 200 as soon as
the port opens is timed the same way), and when the engine has
processed every event stored before the stop ("caught up"). RSS (VmRSS,
VmHWM) is sampled every second from exec to ready and then for -watch
with no events arriving; CPU-seconds are utime+stime from exec to ready.
The table gives the median of the runs (min and max of ready) and the
load average while they ran.`

// restartScenarios are the ways a server is stopped before a timed start.
var restartScenarios = []string{"graceful", "crash-idle", "crash-burst"}

type restartOpts struct {
	customers, guests int
	years             float64
	runs              int
	watch             time.Duration
	burst             int
	scenarios         []string
	data              string
	bin, baseline     string
	timeout           time.Duration
	rssLimit          int64 // bytes; 0: none
	profile           string
	series            time.Duration
	serverArgs        []string
	stdout, stderr    io.Writer
}

func runBenchRestart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := restartOpts{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("bench restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, restartUsage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.customers, "customers", 100000, "demo shop customers in the store")
	fs.IntVar(&o.guests, "guests", -1, "demo restaurant guests (default: 40% of -customers)")
	fs.Float64Var(&o.years, "years", 2, "years of demo history, ending now")
	fs.IntVar(&o.runs, "runs", 5, "runs of each scenario per binary; the table shows medians (0: only build the store)")
	fs.DurationVar(&o.watch, "watch", time.Minute, "how long RSS is watched after each start, with no events arriving")
	fs.IntVar(&o.burst, "burst", 50000, "events posted just before the SIGKILL of crash-burst")
	scen := fs.String("scenarios", strings.Join(restartScenarios, ","), "which scenarios to run, comma separated")
	fs.StringVar(&o.data, "data", filepath.Join(os.TempDir(), "kiln-bench-restart"), "directory where built stores are kept (keyed by size) and reused by later runs")
	fs.StringVar(&o.bin, "binary", "", "the kiln binary under test (default: this one)")
	fs.StringVar(&o.baseline, "baseline", "", "a kiln binary built from an older commit, measured the same way on a copy of the same store")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "give up on a start that is not ready after this long")
	rssLimit := fs.Int64("rss-limit-mib", 0, "kill a server whose RSS passes this many MiB and report it (0: no limit)")
	fs.StringVar(&o.profile, "profile", "", "write CPU profiles (exec to ready) and heap profiles (at ready) of the binary under test to this directory (KILN_CPUPROFILE, KILN_HEAPPROFILE)")
	fs.DurationVar(&o.series, "series", 0, "interval of the RSS-over-time table printed for the first run of each scenario (default: a tenth of -watch)")
	serverArgs := fs.String("server-args", "", "extra flags for every kiln serve, e.g. \"-shutdown-timeout 10m\" (both binaries and the build)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.serverArgs = strings.Fields(*serverArgs)
	if o.guests < 0 {
		o.guests = o.customers * 2 / 5
	}
	o.rssLimit = *rssLimit << 20
	if o.series <= 0 {
		o.series = max(time.Second, o.watch/10)
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(restartScenarios, s) {
			return fmt.Errorf("-scenarios: %q is not one of %s", s, strings.Join(restartScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.runs < 0 {
		return fmt.Errorf("-runs %d: want 0 (build the store only) or more", o.runs)
	}
	if o.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.bin = exe
	}
	bins := []restartBinary{{name: "new", path: o.bin}}
	if o.baseline != "" {
		bins = append(bins, restartBinary{name: "baseline", path: o.baseline})
	}
	for _, b := range bins {
		if _, err := os.Stat(b.path); err != nil {
			return fmt.Errorf("%s binary: %w", b.name, err)
		}
	}

	fmt.Fprintf(stdout, "load average before: %s", loadavg())
	built, err := buildRestartStore(ctx, &o)
	if err != nil || o.runs == 0 {
		return err
	}
	var results []restartResult
	for _, b := range bins {
		res, err := measureRestarts(ctx, &o, b, built)
		results = append(results, res...)
		if err != nil {
			printRestartTable(&o, built, results)
			return fmt.Errorf("%s: %w", b.name, err)
		}
	}
	printRestartTable(&o, built, results)
	fmt.Fprintf(stdout, "load average after: %s", loadavg())
	return nil
}

type restartBinary struct{ name, path string }

// restartStore describes a built store (built.json beside it).
type restartStore struct {
	Dir       string            `json:"-"`
	Customers int               `json:"customers"`
	Guests    int               `json:"guests"`
	Years     float64           `json:"years"`
	Events    int64             `json:"events"`
	LastSeq   int64             `json:"lastSeq"`
	Profiles  int64             `json:"profiles"`
	Bytes     int64             `json:"bytes"`
	WriteKeys map[string]string `json:"writeKeys"` // source id -> token
	AdminKey  string            `json:"adminKey"`
	SecretKey string            `json:"secretKey"`
	BuiltWith string            `json:"builtWith"`
	Built     time.Time         `json:"built"`
	Took      string            `json:"took"`
}

func (b *restartStore) db() string { return filepath.Join(b.Dir, "kiln.db") }

// buildRestartStore returns the store for o's size, building it the first
// time.
func buildRestartStore(ctx context.Context, o *restartOpts) (*restartStore, error) {
	dir := filepath.Join(o.data, fmt.Sprintf("c%d-g%d-y%g", o.customers, o.guests, o.years))
	marker := filepath.Join(dir, "built.json")
	if raw, err := os.ReadFile(marker); err == nil {
		b := &restartStore{Dir: dir}
		if err := json.Unmarshal(raw, b); err != nil {
			return nil, fmt.Errorf("%s: %w (delete the directory to build again)", marker, err)
		}
		fmt.Fprintf(o.stderr, "using the store built %s in %s: %d events, %d profiles\n", b.Built.Format(time.RFC3339), dir, b.Events, b.Profiles)
		return b, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	began := time.Now()
	raw := make([]byte, 32)
	rand.Read(raw)
	b := &restartStore{Dir: dir, Customers: o.customers, Guests: o.guests, Years: o.years, WriteKeys: map[string]string{},
		SecretKey: base64.StdEncoding.EncodeToString(raw), BuiltWith: o.bin}
	gen := demo.Config{Seed: 1, Customers: o.customers, Guests: o.guests, Years: o.years, End: time.Now().UTC()}
	if gen.Customers == 0 {
		gen.Shop, gen.Restaurant = false, true
	}
	if gen.Guests == 0 {
		gen.Shop, gen.Restaurant = true, false
	}

	// Sources and keys, as kiln demo and kiln keys create them.
	st, err := (&Config{DB: b.db()}).openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for _, s := range demo.Sources(gen) {
		s.CreatedAt = time.Now().UTC()
		if err := st.CreateSource(ctx, s); err != nil {
			return nil, fmt.Errorf("creating demo source %s: %w", s.ID, err)
		}
		_, tok, err := api.CreateKey(ctx, st, kiln.WriteKey, "bench "+s.ID, s.ID, time.Now())
		if err != nil {
			return nil, err
		}
		b.WriteKeys[s.ID] = tok
	}
	if _, b.AdminKey, err = api.CreateKey(ctx, st, kiln.AdminKey, "bench", "", time.Now()); err != nil {
		return nil, err
	}

	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.stderr, "building the store in %s: %d customers, %d guests, %g years, with %s\n", dir, o.customers, o.guests, o.years, o.bin)
	srv, err := startRestartServer(o, o.bin, b, b.db(), addr, filepath.Join(dir, "logs", "build.log"), nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	go srv.guard(o.rssLimit, o.stderr)
	if err := srv.waitReady(ctx, o.timeout); err != nil {
		return nil, err
	}

	// The demo's events go through the journal, the durable path live
	// events take (kiln demo's loader does the same), while the server
	// processes them. The backlog is kept short: the engine rebuilds a
	// merged profile from its events, and finding them scans the part of
	// the log it has not indexed yet, so a long backlog makes each merge
	// slow.
	reader, err := sqlite.Connect(b.db(), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	const backlog = 5000
	j := journal.New(st, journal.Options{})
	batch := make([]kiln.Event, 0, 2500)
	var last, processed int64
	lastShown := time.Now()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for last-processed > backlog {
			if err := srv.alive(); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			if processed, err = reader.GetCheckpoint(ctx, engine.Checkpoint); err != nil {
				return err
			}
		}
		if _, err := j.Write(ctx, batch, nil); err != nil {
			return err
		}
		for _, e := range batch {
			last = max(last, e.Seq)
		}
		batch = make([]kiln.Event, 0, 2500)
		if time.Since(lastShown) >= 10*time.Second {
			lastShown = time.Now()
			fmt.Fprintf(o.stderr, "  %d events stored, %d processed, %.0f/s, RSS %d MiB, load %s\n", last, processed,
				float64(processed)/time.Since(began).Seconds(), procStatus(srv.pid())["VmRSS"]>>20, strings.Fields(loadavg())[0])
		}
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
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("loading demo data: %w", err)
	}
	fmt.Fprintf(o.stderr, "stored %s; waiting for processing...\n", sum)
	if err := srv.waitProcessed(ctx, reader, last, o.timeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.stderr, "processed %d events in %s\n", last, time.Since(began).Round(time.Second))

	// The shipped library and the models, as kiln demo applies them.
	t := time.Now()
	if err := srv.admin(ctx, b.AdminKey, "/api/v1/definitions", "text/plain", library.All()); err != nil {
		return nil, fmt.Errorf("applying the shipped definition library: %w", err)
	}
	fmt.Fprintf(o.stderr, "applied the definition library in %s\n", time.Since(t).Round(time.Millisecond))
	t = time.Now()
	if err := srv.admin(ctx, b.AdminKey, "/api/v1/models/refit", "", ""); err != nil {
		return nil, fmt.Errorf("fitting the customer models: %w", err)
	}
	fmt.Fprintf(o.stderr, "fitted the customer models in %s\n", time.Since(t).Round(time.Millisecond))
	if _, err := srv.stop(syscall.SIGTERM, o.timeout); err != nil {
		return nil, err
	}

	// A start to check that everything is processed and stopped cleanly.
	srv, err = startRestartServer(o, o.bin, b, b.db(), addr, filepath.Join(dir, "logs", "build.log"), nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	go srv.guard(o.rssLimit, o.stderr)
	if err := srv.waitReady(ctx, o.timeout); err != nil {
		return nil, err
	}
	if b.LastSeq, err = reader.LastSeq(ctx); err != nil {
		return nil, err
	}
	if err := srv.waitProcessed(ctx, reader, b.LastSeq, o.timeout); err != nil {
		return nil, err
	}
	if lag, err := srv.readyLag(ctx); err != nil || lag != 0 {
		return nil, fmt.Errorf("after the build /readyz reports processorLag %d (%v)", lag, err)
	}
	if _, err := srv.stop(syscall.SIGTERM, o.timeout); err != nil {
		return nil, err
	}
	if b.Events, err = reader.CountEvents(ctx); err != nil {
		return nil, err
	}
	if b.Profiles, err = reader.CountProfiles(ctx); err != nil {
		return nil, err
	}
	reader.Close()
	b.Bytes = fileSizes(b.db())
	b.Built, b.Took = time.Now().UTC(), time.Since(began).Round(time.Second).String()
	out, _ := json.MarshalIndent(b, "", "  ")
	if err := os.WriteFile(marker, out, 0o600); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.stderr, "built in %s: %d events, %d profiles, %d MiB\n", b.Took, b.Events, b.Profiles, b.Bytes>>20)
	return b, nil
}

// restartResult is one timed start.
type restartResult struct {
	binary, scenario string
	run              int
	stop             time.Duration // SIGTERM to exit (graceful)
	portOpen, ready  time.Duration // from exec
	caughtUp         time.Duration // every event stored before the stop processed; 0: not measured
	cpuReady         float64       // CPU-seconds, exec to ready
	cpuWatch         float64       // CPU-seconds during the watch
	rssReady         int64
	hwmReady         int64 // peak RSS from exec to ready
	rssMax, rssEnd   int64 // during the watch
	load             float64
	series           []rssSample
	failed           string
}

type rssSample struct {
	at       time.Duration // from exec
	rss, hwm int64
}

// measureRestarts runs every scenario o.runs times with one binary on its
// own copy of the built store.
func measureRestarts(ctx context.Context, o *restartOpts, bin restartBinary, b *restartStore) ([]restartResult, error) {
	work := filepath.Join(o.data, "work-"+bin.name)
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(work, "logs"), 0o755); err != nil {
		return nil, err
	}
	db := filepath.Join(work, "kiln.db")
	defer removeStore(db)
	fmt.Fprintf(o.stderr, "%s: copying the store (%d MiB) to %s\n", bin.name, b.Bytes>>20, work)
	if err := copyStore(b.db(), db); err != nil {
		return nil, err
	}
	reader, err := sqlite.Connect(db, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	bursts, err := restartBurst(o.burst)
	if err != nil {
		return nil, err
	}
	logf := func(name string) string { return filepath.Join(work, "logs", name+".log") }
	env := func(name string) []string {
		if o.profile == "" || bin.name != "new" {
			return nil
		}
		os.MkdirAll(o.profile, 0o755)
		return []string{"KILN_CPUPROFILE=" + filepath.Join(o.profile, name+".cpu.prof"), "KILN_HEAPPROFILE=" + filepath.Join(o.profile, name+".heap.prof")}
	}

	// The first start after the copy warms up (page cache, expiries due
	// since the build) and is not counted.
	fmt.Fprintf(o.stderr, "%s: first start (not counted)\n", bin.name)
	srv, err := startRestartServer(o, bin.path, b, db, addr, logf("warmup"), nil)
	if err != nil {
		return nil, err
	}
	defer func() { srv.kill() }()
	first := srv.observe(ctx, o, reader, 0, 0)
	if first.failed != "" {
		return nil, errors.New(first.failed)
	}
	fmt.Fprintf(o.stderr, "%s: first start ready in %.2fs\n", bin.name, first.ready.Seconds())

	var out []restartResult
	for run := 1; run <= o.runs; run++ {
		for _, sc := range o.scenarios {
			name := fmt.Sprintf("%s-%d", sc, run)
			var stopped time.Duration
			switch sc {
			case "graceful":
				if stopped, err = srv.stop(syscall.SIGTERM, o.timeout); err != nil {
					return out, err
				}
			case "crash-idle":
				srv.kill()
			case "crash-burst":
				if err := postBurst(ctx, srv.url(), b.WriteKeys, bursts, fmt.Sprintf("burst%d-", run)); err != nil {
					return out, fmt.Errorf("posting the burst: %w", err)
				}
				srv.kill()
			}
			target, err := reader.LastSeq(ctx)
			if err != nil {
				return out, err
			}
			if srv, err = startRestartServer(o, bin.path, b, db, addr, logf(name), env(name)); err != nil {
				return out, err
			}
			r := srv.observe(ctx, o, reader, target, o.watch)
			r.binary, r.scenario, r.run, r.stop = bin.name, sc, run, stopped
			out = append(out, r)
			printRestartRun(o.stderr, &r, logf(name))
			if r.failed != "" {
				return out, errors.New(r.failed)
			}
		}
	}
	if _, err := srv.stop(syscall.SIGTERM, o.timeout); err != nil {
		return out, err
	}
	return out, nil
}

func printRestartRun(w io.Writer, r *restartResult, logPath string) {
	fmt.Fprintf(w, "%s %s run %d: stop %.2fs; port open %.2fs; ready %.2fs; caught up %.2fs; CPU %.1fs; RSS at ready %d MiB (peak %d); watch max %d, end %d MiB; load %.1f\n",
		r.binary, r.scenario, r.run, r.stop.Seconds(), r.portOpen.Seconds(), r.ready.Seconds(), r.caughtUp.Seconds(), r.cpuReady,
		r.rssReady>>20, r.hwmReady>>20, r.rssMax>>20, r.rssEnd>>20, r.load)
	if r.failed != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", r.failed)
	}
	// What the server said about its start: the engine's phases.
	f, err := os.Open(logPath)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, key := range []string{"identity index loaded", "segment state rebuilt", "snapshot", "customer models refitted", "kiln started", "kiln listening", "level=WARN", "level=ERROR"} {
			if strings.Contains(line, key) {
				fmt.Fprintf(w, "  %s\n", line)
				break
			}
		}
	}
}

// printRestartTable prints the medians per binary and scenario.
func printRestartTable(o *restartOpts, b *restartStore, rs []restartResult) {
	w := o.stdout
	fmt.Fprintf(w, "\nrestart of a server on SQLite: %d customers + %d guests, %g years: %d events, %d profiles, %d MiB; median of %d runs; watch %s with no events\n",
		b.Customers, b.Guests, b.Years, b.Events, b.Profiles, b.Bytes>>20, o.runs, o.watch)
	if len(o.serverArgs) > 0 {
		fmt.Fprintf(w, "kiln serve %s\n", strings.Join(o.serverArgs, " "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "binary\tscenario\truns\tstop s\tport open s\tready s\tready min-max\tcaught up s\tCPU-s to ready\tRSS at ready\tpeak to ready\tRSS max in watch\tRSS end of watch\tload 1m\t")
	var loads []float64
	type key struct{ bin, sc string }
	var keys []key
	for _, r := range rs {
		k := key{r.binary, r.scenario}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		loads = append(loads, r.load)
	}
	for _, k := range keys {
		var sel []restartResult
		for _, r := range rs {
			if r.binary == k.bin && r.scenario == k.sc && r.failed == "" {
				sel = append(sel, r)
			}
		}
		if len(sel) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0\t\t\t\t\t\t\t\t\t\t\t\t\n", k.bin, k.sc)
			continue
		}
		f := func(get func(r restartResult) float64) []float64 {
			var xs []float64
			for _, r := range sel {
				xs = append(xs, get(r))
			}
			return xs
		}
		secs := func(get func(r restartResult) time.Duration) []float64 {
			return f(func(r restartResult) float64 { return get(r).Seconds() })
		}
		mib := func(get func(r restartResult) int64) string {
			return fmt.Sprintf("%.0f MiB", median(f(func(r restartResult) float64 { return float64(get(r)) / (1 << 20) })))
		}
		ready := secs(func(r restartResult) time.Duration { return r.ready })
		stop := "-"
		if k.sc == "graceful" {
			stop = fmt.Sprintf("%.2f", median(secs(func(r restartResult) time.Duration { return r.stop })))
		}
		caught := "-"
		if k.sc == "crash-burst" {
			caught = fmt.Sprintf("%.2f", median(secs(func(r restartResult) time.Duration { return r.caughtUp })))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2f\t%.2f\t%.2f-%.2f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%.1f\t\n", k.bin, k.sc, len(sel), stop,
			median(secs(func(r restartResult) time.Duration { return r.portOpen })), median(ready), slices.Min(ready), slices.Max(ready), caught,
			median(f(func(r restartResult) float64 { return r.cpuReady })),
			mib(func(r restartResult) int64 { return r.rssReady }), mib(func(r restartResult) int64 { return r.hwmReady }),
			mib(func(r restartResult) int64 { return r.rssMax }), mib(func(r restartResult) int64 { return r.rssEnd }),
			median(f(func(r restartResult) float64 { return r.load })))
	}
	tw.Flush()
	if len(loads) > 0 {
		fmt.Fprintf(w, "load average (1 min) at the starts: min %.1f, median %.1f, max %.1f; %d CPUs\n", slices.Min(loads), median(loads), slices.Max(loads), runtimeProcs())
	}
	for _, r := range rs {
		if r.failed != "" {
			fmt.Fprintf(w, "%s %s run %d failed: %s\n", r.binary, r.scenario, r.run, r.failed)
		}
	}

	// RSS over time after the first run of each scenario.
	for _, k := range keys {
		for _, r := range rs {
			if r.binary != k.bin || r.scenario != k.sc || len(r.series) == 0 {
				continue
			}
			fmt.Fprintf(w, "RSS after the start, %s %s run %d (s from exec: MiB):", r.binary, r.scenario, r.run)
			next := time.Duration(0)
			for i, s := range r.series {
				if s.at >= next || i == len(r.series)-1 {
					fmt.Fprintf(w, " %.0f:%d", s.at.Seconds(), s.rss>>20)
					next = s.at.Truncate(o.series) + o.series
				}
			}
			fmt.Fprintln(w)
			break
		}
	}
}

// restartServer is one kiln serve process.
type restartServer struct {
	cmd  *exec.Cmd
	addr string
	t0   time.Time
	done chan struct{}
	err  error
	logf *os.File
}

func startRestartServer(o *restartOpts, bin string, b *restartStore, db, addr, logPath string, env []string) (*restartServer, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "-db", db, "-addr", addr, "-log-level", "info", "-log-format", "text"}, o.serverArgs...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KILN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KILN_SECRET_KEY="+b.SecretKey)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	s := &restartServer{cmd: cmd, addr: addr, done: make(chan struct{}), logf: lf}
	s.t0 = time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go func() {
		s.err = cmd.Wait()
		lf.Close()
		close(s.done)
	}()
	return s, nil
}

// guard kills the server if its RSS passes limit (0: no limit).
func (s *restartServer) guard(limit int64, w io.Writer) {
	if limit <= 0 {
		return
	}
	for {
		if st := procStatus(s.pid()); st != nil && st["VmRSS"] > limit {
			fmt.Fprintf(w, "RSS %d MiB passed -rss-limit-mib %d: killing the server\n", st["VmRSS"]>>20, limit>>20)
			s.cmd.Process.Kill()
			return
		}
		select {
		case <-s.done:
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *restartServer) pid() int    { return s.cmd.Process.Pid }
func (s *restartServer) url() string { return "http://" + s.addr }

// alive reports an error if the process has exited.
func (s *restartServer) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("the server exited (%v); see its log", s.err)
	default:
		return nil
	}
}

// stop signals the process and waits for it to exit.
func (s *restartServer) stop(sig syscall.Signal, timeout time.Duration) (time.Duration, error) {
	t := time.Now()
	if s.alive() != nil {
		return 0, nil
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.kill()
		return 0, fmt.Errorf("the server did not stop within %s of %s", timeout, sig)
	}
	took := time.Since(t)
	var ee *exec.ExitError
	if sig == syscall.SIGTERM && s.err != nil && !errors.As(s.err, &ee) {
		return took, s.err
	}
	return took, nil
}

func (s *restartServer) kill() {
	if s == nil || s.alive() != nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

var restartClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// readyz asks /readyz: 200 or not, with its body.
func (s *restartServer) readyz(ctx context.Context) (int, map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+"/readyz", nil)
	resp, err := restartClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, nil
}

func (s *restartServer) readyLag(ctx context.Context) (int64, error) {
	code, body, err := s.readyz(ctx)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/readyz answered %d", code)
	}
	lag, _ := body["processorLag"].(float64)
	return int64(lag), nil
}

func (s *restartServer) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := s.alive(); err != nil {
			return err
		}
		if code, _, err := s.readyz(ctx); err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s", timeout)
}

// checkpointReader reads the engine's checkpoint: a reader beside the
// server (SQLite) or the store itself.
type checkpointReader interface {
	GetCheckpoint(ctx context.Context, name string) (int64, error)
}

// waitProcessed waits until the engine's checkpoint reaches seq.
func (s *restartServer) waitProcessed(ctx context.Context, reader checkpointReader, seq int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := s.alive(); err != nil {
			return err
		}
		cp, err := reader.GetCheckpoint(ctx, engine.Checkpoint)
		if err != nil {
			return err
		}
		if cp >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("events up to %d not processed after %s", seq, timeout)
}

func (s *restartServer) admin(ctx context.Context, key, path, ctype, body string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", path, resp.Status, bytes.TrimSpace(out))
	}
	return nil
}

// observe times a start that began at s.t0: port open, ready, caught up
// with the log up to target, CPU and RSS; then watches RSS for watch.
func (s *restartServer) observe(ctx context.Context, o *restartOpts, reader *sqlite.DB, target int64, watch time.Duration) restartResult {
	var r restartResult
	r.load, _ = strconv.ParseFloat(strings.Fields(loadavg() + " 0")[0], 64)
	pid := s.pid()

	// RSS every second, from exec.
	var mu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	overLimit := ""
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			st := procStatus(pid)
			if st != nil {
				mu.Lock()
				r.series = append(r.series, rssSample{at: time.Since(s.t0), rss: st["VmRSS"], hwm: st["VmHWM"]})
				if o.rssLimit > 0 && st["VmRSS"] > o.rssLimit && overLimit == "" {
					overLimit = fmt.Sprintf("RSS %d MiB passed -rss-limit-mib %d after %s; killed", st["VmRSS"]>>20, o.rssLimit>>20, time.Since(s.t0).Round(time.Second))
					s.cmd.Process.Kill()
				}
				mu.Unlock()
			}
			select {
			case <-tick.C:
			case <-stopSampling:
				return
			case <-s.done:
				return
			}
		}
	}()
	finish := func() restartResult {
		close(stopSampling)
		<-sampled
		mu.Lock()
		defer mu.Unlock()
		if overLimit != "" {
			r.failed = overLimit
		}
		return r
	}
	fail := func(format string, args ...any) restartResult {
		r.failed = fmt.Sprintf(format, args...)
		return finish()
	}

	deadline := s.t0.Add(o.timeout)
	for {
		if err := s.alive(); err != nil {
			return fail("before the port opened: %v", err)
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			r.portOpen = time.Since(s.t0)
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fail("port not open after %s", o.timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		if err := s.alive(); err != nil {
			return fail("before ready: %v", err)
		}
		if code, _, err := s.readyz(ctx); err == nil && code == http.StatusOK {
			r.ready = time.Since(s.t0)
			r.cpuReady = procCPU(pid)
			st := procStatus(pid)
			r.rssReady, r.hwmReady = st["VmRSS"], st["VmHWM"]
			break
		}
		if time.Now().After(deadline) {
			return fail("not ready after %s", o.timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if target > 0 {
		for {
			cp, err := reader.GetCheckpoint(ctx, engine.Checkpoint)
			if err != nil {
				return fail("reading the checkpoint: %v", err)
			}
			if cp >= target {
				r.caughtUp = max(r.ready, time.Since(s.t0))
				break
			}
			if err := s.alive(); err != nil {
				return fail("before catching up: %v", err)
			}
			if time.Now().After(deadline) {
				return fail("events up to %d not processed after %s", target, o.timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	} else {
		r.caughtUp = r.ready
	}
	watchEnd := s.t0.Add(r.ready).Add(watch)
	select {
	case <-time.After(time.Until(watchEnd)):
	case <-s.done:
	case <-ctx.Done():
	}
	if err := s.alive(); err != nil {
		return fail("during the watch: %v", err)
	}
	r.cpuWatch = procCPU(pid) - r.cpuReady
	r = finish()
	for _, smp := range r.series {
		if smp.at >= r.ready {
			r.rssMax = max(r.rssMax, smp.rss)
			r.rssEnd = smp.rss
		}
	}
	if st := procStatus(pid); st != nil {
		r.rssEnd = st["VmRSS"]
		r.rssMax = max(r.rssMax, r.rssEnd)
		r.series = append(r.series, rssSample{at: time.Since(s.t0), rss: st["VmRSS"], hwm: st["VmHWM"]})
	}
	return r
}

// restartBurst generates the events posted before a crash: the demo's
// most recent ones for a small population, so they fall in the windows.
func restartBurst(n int) ([]kiln.Event, error) {
	if n <= 0 {
		return nil, nil
	}
	ring := make([]kiln.Event, 0, n)
	next := 0
	_, err := demo.Generate(demo.Config{Seed: 99, Customers: max(100, n/20), Guests: max(50, n/50), End: time.Now().UTC()}, func(e kiln.Event) error {
		if len(ring) < n {
			ring = append(ring, e)
		} else {
			ring[next] = e
			next = (next + 1) % n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(ring[next:], ring[:next]...), nil
}

type restartWire struct {
	Type        kiln.EventType `json:"type"`
	Event       string         `json:"event,omitempty"`
	Name        string         `json:"name,omitempty"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	PreviousID  string         `json:"previousId,omitempty"`
	GroupID     string         `json:"groupId,omitempty"`
	MessageID   string         `json:"messageId"`
	Timestamp   time.Time      `json:"timestamp"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
}

// postBurst posts evs to /v1/batch with each source's write key, in
// batches of 500 from 8 clients, message ids prefixed so that no run
// dedupes another's.
func postBurst(ctx context.Context, url string, keys map[string]string, evs []kiln.Event, prefix string) error {
	type req struct {
		key  string
		body []byte
	}
	var reqs []req
	type pending struct {
		msgs  []json.RawMessage
		bytes int
	}
	bySource := map[string]*pending{}
	flush := func(src string) error {
		p := bySource[src]
		if p == nil || len(p.msgs) == 0 {
			return nil
		}
		body, err := json.Marshal(map[string]any{"batch": p.msgs})
		if err != nil {
			return err
		}
		key, ok := keys[src]
		if !ok {
			return fmt.Errorf("no write key for source %s", src)
		}
		reqs = append(reqs, req{key, body})
		bySource[src] = nil
		return nil
	}
	for _, e := range evs {
		w := restartWire{Type: e.Type, UserID: e.UserID, AnonymousID: e.AnonymousID, PreviousID: e.PreviousID, GroupID: e.GroupID,
			MessageID: prefix + e.MessageID, Timestamp: e.Timestamp, Properties: e.Properties, Traits: e.Traits, Context: e.Context}
		if e.Type == kiln.Track {
			w.Event = e.Name
		} else {
			w.Name = e.Name
		}
		msg, err := json.Marshal(w)
		if err != nil {
			return err
		}
		// Within Segment's limits: 500 KB and 2,500 messages a request.
		if p := bySource[e.SourceID]; p != nil && (len(p.msgs) == 500 || p.bytes+len(msg) > 400<<10) {
			if err := flush(e.SourceID); err != nil {
				return err
			}
		}
		p := bySource[e.SourceID]
		if p == nil {
			p = &pending{}
			bySource[e.SourceID] = p
		}
		p.msgs = append(p.msgs, msg)
		p.bytes += len(msg) + 1
	}
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		if err := flush(src); err != nil {
			return err
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := 0
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= len(reqs) || stop {
					return
				}
				r, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/batch", bytes.NewReader(reqs[i].body))
				r.SetBasicAuth(reqs[i].key, "")
				r.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(r)
				if err == nil {
					out, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("batch %d: %s: %s", i, resp.Status, bytes.TrimSpace(out))
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// procStatus reads the memory fields of /proc/PID/status, in bytes.
func procStatus(pid int) map[string]int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "Vm") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// procCPU is the process's user and system CPU time in seconds, from
// /proc/PID/stat (in clock ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown\n"
	}
	return string(raw)
}

func loopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// storeFiles lists the files of the SQLite store at path: the database,
// the event log's file and their write-ahead logs (not the shared-memory
// indexes, which SQLite rebuilds), and the directory of engine snapshot
// parts beside them.
func storeFiles(path string) (files []string, snapshots string) {
	matches, _ := filepath.Glob(path + "*")
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(m, "-shm") {
			files = append(files, m)
		}
	}
	return files, path + ".snapshots"
}

// copyStore copies the store at from to to, snapshots included: without
// them the first start would replay the whole log.
func copyStore(from, to string) error {
	removeStore(to)
	files, snaps := storeFiles(from)
	for _, f := range files {
		if err := copyFile(f, to+strings.TrimPrefix(f, from)); err != nil {
			return err
		}
	}
	if err := os.CopyFS(to+".snapshots", os.DirFS(snaps)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func removeStore(path string) {
	files, snaps := storeFiles(path)
	for _, f := range files {
		os.Remove(f)
	}
	os.Remove(path + "-shm")
	os.RemoveAll(snaps)
}

func fileSizes(path string) int64 {
	var n int64
	files, _ := storeFiles(path)
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}
