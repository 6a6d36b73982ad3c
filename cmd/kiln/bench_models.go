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
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

const benchModelsUsage = `Usage: kiln bench models [flags]

Measures the memory of a customer-model refit: the demo shop and
restaurants are stored in a fresh SQLite file, a running engine resolves
them and applies the shipped library, and then the models are refitted
while the heap and the resident set are sampled. The table compares the
peak during the refit with the steady state before and after it.`

// runBenchModels measures a refit's peak memory against the steady state.
func runBenchModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench models", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, benchModelsUsage); fs.PrintDefaults() }
	customers := fs.Int("customers", 100000, "demo shop customers")
	guests := fs.Int("guests", -1, "demo restaurant guests (default 40% of -customers)")
	dir := fs.String("dir", "", "keep the SQLite file here and reuse it on the next run (default: a temporary one)")
	memprofile := fs.String("memprofile", "", "write a heap profile taken at the refit's peak live heap to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *guests < 0 {
		*guests = *customers * 2 / 5
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "kiln-bench-models-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	path := filepath.Join(*dir, fmt.Sprintf("models-%d-%d.db", *customers, *guests))
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	st, err := sqlite.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.LastSeq(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stderr, "storing the demo for %d customers and %d guests...\n", *customers, *guests)
		if n, err = storeDemo(ctx, st, demo.Config{Seed: 5, Customers: *customers, Guests: *guests, End: end}); err != nil {
			return err
		}
	}
	e, err := engine.New(engine.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Refit: -1,
		Now: func() time.Time { return end }})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go e.Run(runCtx, ready)
	if err := <-ready; err != nil {
		return err
	}
	fmt.Fprintf(stderr, "resolving %d events and applying the library...\n", n)
	if err := e.WaitFor(ctx, n); err != nil {
		return err
	}
	if _, err := e.ApplyDefinitions(ctx, library.All(), false); err != nil {
		return err
	}
	before := settledHeap()
	fmt.Fprintln(stderr, "refitting the models...")
	peak := startPeakSampler(*memprofile)
	start := time.Now()
	rep, err := e.RefitModels(ctx, engine.ModelOptions{})
	took := time.Since(start)
	livePeak, heapPeak, rssPeak := peak()
	if err != nil {
		return err
	}
	after := settledHeap()
	mb := func(b uint64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tresult\tnotes")
	fmt.Fprintf(tw, "log\t%d events\t%d shop customers, %d restaurant guests; %d customers scored, %d purchases\n", n, *customers, *guests, rep.Scored, rep.Purchases)
	fmt.Fprintf(tw, "live heap before the refit\t%s\tafter GC: identity index, segment states, no models\n", mb(before))
	fmt.Fprintf(tw, "peak live heap during the refit\t%s\t%.1fx the heap before; the largest heap a collection found live\n", mb(livePeak), float64(livePeak)/float64(before))
	fmt.Fprintf(tw, "peak heap during the refit\t%s\t%.1fx the heap before; sampled every 5 ms, garbage not yet collected included\n", mb(heapPeak), float64(heapPeak)/float64(before))
	fmt.Fprintf(tw, "peak RSS during the refit\t%s\t%s\n", mb(rssPeak), rssNote)
	fmt.Fprintf(tw, "live heap after the refit\t%s\tafter GC: models and traits in place (+%s)\n", mb(after), mb(after-min(after, before)))
	fmt.Fprintf(tw, "refit took\t%s\t(GOMAXPROCS=%d)\n", took.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	return tw.Flush()
}

// storeDemo appends the demo's events in batches, keeping none in memory.
func storeDemo(ctx context.Context, st store.Store, cfg demo.Config) (int64, error) {
	var batch []kiln.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := st.Append(ctx, store.Batch{Events: batch})
		batch = batch[:0]
		return err
	}
	if _, err := demo.Generate(cfg, func(e kiln.Event) error {
		batch = append(batch, e)
		if len(batch) == 5000 {
			return flush()
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return st.LastSeq(ctx)
}

// settledHeap is the live heap after a full collection.
func settledHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

var rssNote = "the process's high-water mark (VmHWM), reset before the refit"

// startPeakSampler samples the heap every 5 ms and resets the kernel's
// resident-set high-water mark; the returned func stops it and reports
// the peaks. With a profile path, each new peak of the live heap (by 5%)
// rewrites a heap profile there.
func startPeakSampler(profile string) func() (live, heap, rss uint64) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		rssNote = "sampled every 5 ms (the high-water mark could not be reset: " + err.Error() + ")"
	}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var mu sync.Mutex
	var heap, rss, live, profiled uint64
	stop, done := make(chan struct{}), make(chan struct{})
	measure := func() {
		metrics.Read(sample)
		mu.Lock()
		heap = max(heap, sample[0].Value.Uint64())
		live = max(live, sample[1].Value.Uint64())
		rss = max(rss, uint64(procStatus(os.Getpid())["VmRSS"]))
		write := profile != "" && live > profiled+profiled/20
		if write {
			profiled = live
		}
		mu.Unlock()
		if write {
			writeHeapProfile(profile)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				measure()
			}
		}
	}()
	return func() (uint64, uint64, uint64) {
		close(stop)
		<-done
		measure()
		return live, heap, max(rss, uint64(procStatus(os.Getpid())["VmHWM"]))
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.WriteHeapProfile(f)
}
