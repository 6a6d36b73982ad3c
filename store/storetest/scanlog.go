package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// scanLogEvents is more than a chunk of either backend, so that scans
// cross chunk boundaries.
const scanLogEvents = 12_000

// testScanLog checks ScanLog against ReadEvents: the same full events, in
// Seq order, in chunks, over any range, stopping on fn's error or a
// cancelled context.
func testScanLog(t *testing.T, s store.Store) {
	var stored []kiln.Event
	for b := 0; b < scanLogEvents; b += 3000 {
		var evs []kiln.Event
		for i := b; i < b+3000; i++ {
			e := event("src", fmt.Sprintf("m%05d", i), fmt.Sprintf("user_id:%d", i%50), at(i))
			e.Traits = map[string]any{"tier": []any{"gold", float64(i)}, "nested": map[string]any{"empty": map[string]any{}}}
			if i%7 == 0 {
				e.Properties, e.Context = nil, nil // no payload at all
			}
			evs = append(evs, e)
		}
		if b > 0 {
			evs = append(evs, stored[b-1]) // a retry: on PostgreSQL it leaves a gap in Seq
		}
		for _, e := range mustAppend(t, s, evs...) {
			if e.Seq != 0 {
				stored = append(stored, e)
			}
		}
	}
	var want []kiln.Event
	for after := int64(0); ; {
		page, err := s.ReadEvents(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		want = append(want, page...)
		after = page[len(page)-1].Seq
	}
	if len(want) != scanLogEvents {
		t.Fatalf("ReadEvents read %d events, want %d", len(want), scanLogEvents)
	}
	last := want[len(want)-1].Seq

	// scan collects what ScanLog gives, checking each chunk on the way.
	scan := func(t *testing.T, after, upTo int64) ([]kiln.Event, int) {
		t.Helper()
		var got []kiln.Event
		chunks := 0
		err := s.ScanLog(ctx, after, upTo, func(evs []kiln.Event) error {
			chunks++
			if len(evs) == 0 {
				t.Errorf("chunk %d is empty", chunks)
			}
			got = append(got, evs...) // copies of the events: the slice is not kept
			// Scribble on the slice: the store must not read it back.
			for i := range evs {
				evs[i] = kiln.Event{Seq: -1}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ScanLog(%d, %d): %v", after, upTo, err)
		}
		return got, chunks
	}
	t.Run("Whole", func(t *testing.T) {
		got, chunks := scan(t, 0, last)
		if chunks < 2 {
			t.Errorf("%d events in %d chunk(s): a chunk should not hold the whole log", len(got), chunks)
		}
		if !slices.Equal(seqs(got), seqs(want)) {
			t.Fatalf("scanned %d events, seqs differ from ReadEvents' %d", len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("event %d differs from ReadEvents':\n got %#v\nwant %#v", got[i].Seq, got[i], want[i])
			}
			checkEvent(t, got[i], stored[i])
		}
	})
	t.Run("Ranges", func(t *testing.T) {
		for _, r := range []struct{ after, upTo int64 }{
			{want[99].Seq, want[9100].Seq},       // across chunks, from the middle
			{want[5].Seq - 1, want[5].Seq},       // one event
			{want[len(want)-2].Seq, last + 1000}, // past the end
			{want[3000].Seq - 1, want[3000].Seq}, // the event after a gap (PostgreSQL)
			{last, last + 10},                    // nothing after the last
			{want[10].Seq, want[10].Seq},         // empty range
			{want[10].Seq, want[5].Seq},          // upTo before after
		} {
			got, _ := scan(t, r.after, r.upTo)
			var exp []int64
			for _, e := range want {
				if e.Seq > r.after && e.Seq <= r.upTo {
					exp = append(exp, e.Seq)
				}
			}
			if !slices.Equal(seqs(got), exp) {
				t.Errorf("ScanLog(%d, %d): %d events %v, want %d", r.after, r.upTo, len(got), firstSeqs(got), len(exp))
			}
		}
	})
	t.Run("StopsOnError", func(t *testing.T) {
		stop := errors.New("enough")
		calls := 0
		err := s.ScanLog(ctx, 0, last, func([]kiln.Event) error {
			calls++
			if calls == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("error %v, want fn's", err)
		}
		if calls != 2 {
			t.Errorf("fn called %d times, want 2: the scan should stop at its error", calls)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		calls := 0
		err := s.ScanLog(cctx, 0, last, func([]kiln.Event) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		if calls != 1 {
			t.Errorf("fn called %d times after the context was cancelled, want 1", calls)
		}
		done, cancel2 := context.WithCancel(ctx)
		cancel2()
		if err := s.ScanLog(done, 0, last, func([]kiln.Event) error {
			t.Error("fn called with a cancelled context")
			return nil
		}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled before the scan: error %v, want context.Canceled", err)
		}
	})
	t.Run("AppendsDuringScan", func(t *testing.T) {
		// Events appended while a scan runs, past its upTo, are not part of
		// it; the store stays usable from inside fn.
		calls := 0
		got := 0
		err := s.ScanLog(ctx, 0, last, func(evs []kiln.Event) error {
			calls++
			if calls == 1 {
				mustAppend(t, s, event("src", "late", "user_id:1", at(-1)))
			}
			for _, e := range evs {
				if e.Seq > last {
					t.Errorf("event %d (%s) past upTo %d", e.Seq, e.MessageID, last)
				}
			}
			got += len(evs)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != len(want) {
			t.Errorf("scanned %d events, want %d", got, len(want))
		}
	})
}

func firstSeqs(evs []kiln.Event) []int64 {
	s := seqs(evs)
	if len(s) > 5 {
		s = s[:5]
	}
	return s
}
