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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/ingest"
	"github.com/kiln-cdp/kiln/store"
)

const latencyUsage = `Usage: kiln bench latency [-rates 1000,10000] [-duration 5s]

Measures the action path end to end on loopback: a real server on a fresh
SQLite file, a local webhook receiver, and an automation on a segment that
every event enters (each event is a new customer's first order). Events are
posted to /v1/batch at a steady rate, in a request every 5 ms (after a
warm-up at the same rate that is not counted); for each
event it reports, from the moment its request was sent, when the server
acknowledged it (durable), when its transition was recorded with its
outbox item, and when the signed webhook reached the receiver: p50, p99
and the maximum, per rate. Webhooks still missing 30 s after the last
event are left out (the webhooks column says how many arrived).`

func runBenchLatency(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench latency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rates := fs.String("rates", "1000,10000", "event rates to measure, events per second, comma separated")
	duration := fs.Duration("duration", 5*time.Second, "how long to send at each rate")
	actions := fs.Bool("actions", true, "create the automation (false: a baseline without the outbox)")
	warmup := fs.Duration("warmup", time.Second, "send at the rate this long first, left out of the figures (connections, caches)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(stderr, latencyUsage)
		return err
	}
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
	if os.Getenv(connector.KeyEnv) == "" {
		raw := make([]byte, 32)
		rand.Read(raw)
		os.Setenv(connector.KeyEnv, base64.StdEncoding.EncodeToString(raw))
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Other work on the machine moves these figures: say how busy it was.
		fmt.Fprintf(stdout, "load average before: %s", la)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate/s\tevents\twebhooks\tack p50\tack p99\ttransition p50\ttransition p99\twebhook p50\twebhook p99\twebhook max\t")
	for _, r := range strings.Split(*rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 {
			return fmt.Errorf("-rates: %q is not a positive whole number", r)
		}
		fmt.Fprintf(stderr, "measuring %d events/s for %s...\n", rate, *duration)
		res, err := latencyRun(ctx, rate, *duration, *warmup, *actions)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rate, res.events, len(res.webhook),
			pct(res.ack, 50), pct(res.ack, 99), pct(res.transition, 50), pct(res.transition, 99), pct(res.webhook, 50), pct(res.webhook, 99), pct(res.webhook, 100))
	}
	return tw.Flush()
}

type latencyResult struct {
	events                   int
	ack, transition, webhook []time.Duration
}

func pct(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i].Round(100 * time.Microsecond).String()
}

// latencyRun runs one server at one rate.
func latencyRun(ctx context.Context, rate int, duration, warmup time.Duration, actions bool) (*latencyResult, error) {
	dir, err := os.MkdirTemp("", "kiln-latency-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// The receiver notes when each profile's webhook arrived.
	var mu sync.Mutex
	got := map[string]time.Time{}
	closed := false // after the wait: later webhooks are not counted
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		at := time.Now()
		var m action.Message
		if json.Unmarshal(body, &m) == nil {
			mu.Lock()
			if _, seen := got[m.Data.ProfileID]; !seen && !closed {
				got[m.Data.ProfileID] = at
			}
			mu.Unlock()
		}
	})}
	go recv.Serve(ln)
	defer recv.Close()

	m := NewMain(io.Discard)
	m.Config = Config{Addr: "127.0.0.1:0", DB: filepath.Join(dir, "kiln.db"), LogFormat: "text", LogLevel: "error", Timezone: "UTC", Shutdown: 30 * time.Second,
		AllowPrivateDestinations: true} // the receiver is on loopback
	if err := m.Open(ctx); err != nil {
		return nil, err
	}
	defer m.Close()
	_, write, err := api.CreateKey(ctx, m.Store, kiln.WriteKey, "bench", ingest.DefaultSource, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := m.Engine.ApplyDefinitions(ctx, `trait bench_orders = count of "Order Completed" all time
segment bench_buyers "Bench buyers" {
  bench_orders >= 1
}
`, false); err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(action.WebhookConfig{URL: "http://" + ln.Addr().String() + "/hook"})
	if _, err := m.Actions.CreateDestination(ctx, action.DestinationSpec{Name: "receiver", Kind: action.KindWebhook, Config: cfg}); err != nil {
		return nil, err
	}
	if actions {
		if _, err := m.Actions.CreateAutomation(ctx, action.AutomationSpec{Name: "bench", Segment: "bench_buyers", On: action.OnEnter, Destination: "receiver"}); err != nil {
			return nil, err
		}
	}

	const tick = 5 * time.Millisecond
	per := max(1, rate*int(tick)/int(time.Second))
	skip := int(warmup/tick) * per // events of the warm-up, not counted
	ticks := int((warmup + duration) / tick)
	sent := make([]time.Time, ticks*per)
	acked := make([]time.Time, ticks*per)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}
	var wg sync.WaitGroup
	var sendErr error
	var errMu sync.Mutex
	start := time.Now()
	for k := range ticks {
		if d := time.Until(start.Add(time.Duration(k) * tick)); d > 0 {
			time.Sleep(d)
		}
		evs := make([]map[string]any, per)
		for j := range per {
			i := k*per + j
			evs[j] = map[string]any{"type": "track", "userId": "u" + strconv.Itoa(i), "event": kiln.OrderCompleted, "messageId": "m" + strconv.Itoa(i),
				"properties": map[string]any{"revenue": 10}}
		}
		body, _ := json.Marshal(map[string]any{"batch": evs})
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+"/v1/batch", bytes.NewReader(body))
			req.SetBasicAuth(write, "")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("server answered %s", resp.Status)
				}
			}
			t1 := time.Now()
			if err != nil {
				errMu.Lock()
				sendErr = err
				errMu.Unlock()
				return
			}
			for j := range per {
				sent[k*per+j], acked[k*per+j] = t0, t1
			}
		}()
	}
	wg.Wait()
	if sendErr != nil {
		return nil, fmt.Errorf("posting events: %w", sendErr)
	}
	n := ticks * per
	deadline := time.Now().Add(30 * time.Second)
	for actions && time.Now().Before(deadline) {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	mu.Lock()
	closed = true
	mu.Unlock()

	// Map each profile back to its event, and read when its item was planned.
	planned := map[string]time.Time{}
	for after := int64(0); ; {
		items, err := m.Store.ListOutbox(ctx, store.OutboxQuery{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			planned[it.ProfileID] = it.CreatedAt
		}
		if len(items) < 1000 {
			break
		}
		after = items[len(items)-1].ID
	}
	res := &latencyResult{events: n - skip}
	mu.Lock()
	defer mu.Unlock()
	for i := skip; i < n; i++ {
		pid, err := m.Store.ProfileFor(ctx, kiln.Identifier{Kind: kiln.UserID, Value: "u" + strconv.Itoa(i)})
		if err != nil {
			continue
		}
		res.ack = append(res.ack, acked[i].Sub(sent[i]))
		if at, ok := planned[pid]; ok {
			res.transition = append(res.transition, at.Sub(sent[i]))
		}
		if at, ok := got[pid]; ok {
			res.webhook = append(res.webhook, at.Sub(sent[i]))
		}
	}
	return res, nil
}
