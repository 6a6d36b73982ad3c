package engine

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/rule/library"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// BenchmarkRecompute measures a full recompute of the shipped library's
// segments from the demo shop's events stored in SQLite: reading the log,
// decoding, attributing each event to its profile and evaluating.
func BenchmarkRecompute(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var batch []kiln.Event
	n := 0
	_, err = demo.Generate(demo.Config{Seed: 1, Customers: 2000, Guests: 800, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}, func(e kiln.Event) error {
		batch = append(batch, e)
		if len(batch) == 5000 {
			_, err := st.Append(ctx, store.Batch{Events: batch})
			n += len(batch)
			batch = nil
			return err
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		_, err = st.Append(ctx, store.Batch{Events: batch})
		n += len(batch)
	}
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go e.Run(runCtx, ready)
	if err := <-ready; err != nil {
		b.Fatal(err)
	}
	last, _ := st.LastSeq(ctx)
	if err := e.WaitFor(ctx, last); err != nil {
		b.Fatal(err)
	}
	if _, err := e.ApplyDefinitions(ctx, library.All(), false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.mu.Lock()
		_, err := e.replay(ctx, e.segs.prog, e.segs.static, last, time.Now(), nil)
		e.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
