package connector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
)

// A slot past the caller's deadline is refused at once, unsent, with the
// wait it needed, and does not take a slot from the callers after it.
func TestLimiterRefusesSlotsPastTheDeadline(t *testing.T) {
	l := connector.NewLimiter(connector.Rate{PerSecond: 5, Burst: 1})
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(ctx)
	if !errors.Is(err, connector.ErrPastDeadline) {
		t.Fatalf("wait past the deadline: %v, want ErrPastDeadline", err)
	}
	if el := time.Since(start); el >= 50*time.Millisecond && ctx.Err() != nil {
		t.Errorf("refused after %v, at the deadline; want at once", el)
	}
	if w, ok := connector.SlotWait(err); !ok || w <= 0 || w > 200*time.Millisecond {
		t.Errorf("slot wait %v (%v), want about 200ms", w, ok)
	}
	// The refused caller took nothing: the next slot is still ~200ms out.
	start = time.Now()
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("next wait %v, want about one interval (200ms)", el)
	}
	// Waiters without a deadline queue: three more take ~600ms at 5/s.
	start = time.Now()
	for range 3 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("3 waits at 5/s took %v, want about 600ms", el)
	}
}
