package ingest

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per source, counted in messages: each source
// may send Rate messages per second on average and Burst at once. A request
// is let through whenever the bucket is not empty and may drive it into
// debt, so one batch larger than Burst is not refused forever; the debt
// then delays the next request.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	b := float64(burst)
	if b <= 0 {
		b = math.Max(rate, 1)
	}
	return &limiter{rate: rate, burst: b, buckets: map[string]*bucket{}}
}

// take spends n tokens for source at now. When the bucket is empty it
// reports false and how long until it holds a token again.
func (l *limiter) take(source string, n int, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[source]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[source] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
	if b.tokens <= 0 {
		wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
		return false, wait
	}
	b.tokens -= float64(n)
	return true, 0
}
