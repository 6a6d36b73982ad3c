package connector

import (
	"context"
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
	tokens float64
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

// Wait blocks until a request may be sent or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil || l.rate <= 0 {
		return ctx.Err()
	}
	for {
		l.mu.Lock()
		now := l.now()
		if !l.last.IsZero() {
			l.tokens += now.Sub(l.last).Seconds() * l.rate
			if l.tokens > l.burst {
				l.tokens = l.burst
			}
		}
		l.last = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return ctx.Err()
		}
		wait := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
