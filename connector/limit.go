package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Limiter is a token bucket that paces a connector's own requests to the
// vendor's rate, because one Deliver may need several requests (a lookup,
// then the membership call) and the outbox only paces Deliver calls.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64 // below zero: slots already promised to waiters
	last   time.Time
	now    func() time.Time
}

// NewLimiter returns a limiter for r; a zero rate means unlimited.
func NewLimiter(r Rate) *Limiter {
	b := float64(r.Burst)
	if b < 1 {
		b = 1
	}
	return &Limiter{rate: r.PerSecond, burst: b, tokens: b, now: time.Now}
}

// ErrPastDeadline says a request was not sent because the limiter's next
// slot comes after the context's deadline. Waiting for it would only end
// in a timeout, and past the deadline the caller's lease on the work may
// have ended, so the request is given up at once, unsent.
var ErrPastDeadline = errors.New("the rate limit's next slot is past the deadline")

// SlotError is ErrPastDeadline with the wait the slot needed.
type SlotError struct {
	Wait time.Duration // until the next slot, from the call
}

func (e *SlotError) Error() string {
	return fmt.Sprintf("not sent: the rate limit's next slot is in %s, past the deadline", e.Wait.Round(time.Millisecond))
}

// Is matches ErrPastDeadline, and context.DeadlineExceeded too: to code
// that only knows contexts it is the deadline, reached early.
func (e *SlotError) Is(target error) bool {
	return target == ErrPastDeadline || target == context.DeadlineExceeded
}

// SlotWait returns the wait a *SlotError in err's chain needed, and
// whether there is one.
func SlotWait(err error) (time.Duration, bool) {
	var se *SlotError
	if errors.As(err, &se) {
		return se.Wait, true
	}
	return 0, false
}

// Wait blocks until a request may be sent or ctx ends. When ctx has a
// deadline that the next slot would miss, it returns a *SlotError at
// once without taking the slot.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil || l.rate <= 0 {
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	var wait time.Duration
	if l.tokens < 1 {
		wait = time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
	}
	if dl, ok := ctx.Deadline(); ok && wait > 0 && now.Add(wait).After(dl) {
		l.mu.Unlock()
		return &SlotError{Wait: wait}
	}
	// Reserve the slot: waiters queue in order instead of racing for each
	// token as it appears.
	l.tokens--
	l.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		l.tokens++ // the slot goes unused: give it back
		l.mu.Unlock()
		return ctx.Err()
	}
}
