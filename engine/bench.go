package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// This file holds the measurements behind `kiln bench engine`: they drive
// the real engine and evaluator, so they live beside them.

// ExpiryBenchResult is what ExpiryBench measured.
type ExpiryBenchResult struct {
	Profiles int             // resident profiles with live state and a scheduled expiry
	Expired  int             // exits recorded during the run
	Lags     []time.Duration // exact expiry instant -> exit durable, sorted
	Rate     float64         // expiries per second during the run
}

// ExpiryBench loads n profiles into a running engine on st, each with one
// order that leaves a one-minute window: the first `expiring` of them at
// instants spread evenly over `spread` from now, the rest much later (they
// stay resident and in the timer heap). It waits for the expiring ones'
// exits and returns how late each was recorded durably after its exact
// instant.
func ExpiryBench(ctx context.Context, st store.Store, n, expiring int, spread time.Duration) (*ExpiryBenchResult, error) {
	var mu sync.Mutex
	var lags []time.Duration
	done := make(chan struct{})
	e, err := New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnTransitions: func(ts []kiln.Transition) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, t := range ts {
			if !t.Entered && t.Reason == kiln.ReasonExpiry {
				lags = append(lags, now.Sub(t.At))
			}
		}
		if len(lags) >= expiring {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	}})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	stopped := make(chan error, 1)
	go func() { stopped <- e.Run(runCtx, ready) }()
	if err := <-ready; err != nil {
		return nil, err
	}
	if _, err := e.ApplyDefinitions(ctx, `segment ordered_last_minute { count of "Order Completed" in last 1 minutes >= 1 }`, false); err != nil {
		return nil, err
	}
	start := time.Now().Add(2 * time.Second).Truncate(time.Millisecond) // time to load
	e.mu.Lock()
	s := e.segs
	for i := 0; i < n; i++ {
		pid := fmt.Sprintf("p_%010d", i)
		exit := start.Add(time.Duration(int64(spread) * int64(i) / int64(max(expiring, 1))))
		if i >= expiring {
			exit = start.Add(spread + time.Hour + time.Duration(i)*time.Millisecond)
		}
		ev := kiln.Event{Type: kiln.Track, Name: kiln.OrderCompleted, Timestamp: exit.Add(-time.Minute)}
		ps := s.state(pid)
		r := s.prog.Apply(ps.st, &ps.prof, &ev, time.Now())
		s.schedule(pid, ps, r.NextDue)
	}
	e.mu.Unlock()
	e.Wake()
	select {
	case <-done:
	case <-time.After(spread + 2*time.Minute):
		return nil, fmt.Errorf("only %d of %d expiries recorded in time", len(lags), expiring)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	return &ExpiryBenchResult{Profiles: n, Expired: len(lags), Lags: lags, Rate: float64(expiring) / spread.Seconds()}, nil
}

// ApplyBenchResult is what ApplyBench measured.
type ApplyBenchResult struct {
	Events, Profiles int
	Segments, Traits int     // in the program
	Windowed         int     // traits over a rolling or calendar window
	EventsPerSec     float64 // through Apply, in this process, all CPUs, wall clock
	PerCore          float64 // events per CPU-second the process used (so other load on the machine does not count)
	BaselinePerSec   float64 // the same loop with a one-trait program
	BytesPerProfile  float64 // heap held by the states, per profile
}

// ApplyBench feeds events (in order) through prog for their profiles as
// the engine's replay does (sharded across CPUs), and through a one-trait
// baseline program, and measures the states' heap.
func ApplyBench(prog, baseline *eval.Program, events []kiln.Event, profileOf func(*kiln.Event) string) *ApplyBenchResult {
	run := func(p *eval.Program) (float64, map[string]*pstate) {
		nshard := runtime.GOMAXPROCS(0)
		shards := make([][]*kiln.Event, nshard)
		pids := make([][]string, nshard)
		for i := range events {
			pid := profileOf(&events[i])
			k := shardOf(pid, nshard)
			shards[k] = append(shards[k], &events[i])
			pids[k] = append(pids[k], pid)
		}
		states := make([]map[string]*pstate, nshard)
		now := time.Now()
		runtime.GC()
		cpu0 := cpuTime()
		start := time.Now()
		var wg sync.WaitGroup
		for k := range nshard {
			wg.Go(func() {
				st := map[string]*pstate{}
				for i, ev := range shards[k] {
					ps := st[pids[k][i]]
					if ps == nil {
						ps = &pstate{st: p.NewState()}
						st[pids[k][i]] = ps
					}
					applyTraits(ps, ev)
					p.Apply(ps.st, &ps.prof, ev, now)
				}
				states[k] = st
			})
		}
		wg.Wait()
		rate := float64(len(events)) / time.Since(start).Seconds()
		lastCPURate = float64(len(events)) / (cpuTime() - cpu0).Seconds()
		all := map[string]*pstate{}
		for _, st := range states {
			for k, v := range st {
				all[k] = v
			}
		}
		return rate, all
	}
	rate, states := run(prog)
	res := &ApplyBenchResult{Events: len(events), Profiles: len(states), EventsPerSec: rate, PerCore: lastCPURate}
	// The states alone, without the traits maps the engine also keeps.
	var stateBytes int
	for _, ps := range states {
		stateBytes += ps.st.Size()
	}
	res.BytesPerProfile = float64(stateBytes) / float64(max(len(states), 1))
	res.BaselinePerSec, _ = run(baseline)
	res.Segments = len(prog.Segments())
	for _, d := range prog.Definitions().Defs {
		if d.Kind == rule.KindTrait {
			res.Traits++
			if d.Value != nil && d.Value.Op == rule.ExprAgg && d.Value.Agg.Window != nil && d.Value.Agg.Window.Kind != rule.WinAll {
				res.Windowed++
			}
		}
	}
	return res
}

var lastCPURate float64

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
