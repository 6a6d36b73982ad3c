package connector

import (
	"context"
	"sync"
)

// Memo caches what a connector learns or creates once per destination (a
// tag's id, a list's id), and makes sure that concurrent deliveries
// needing the same key wait for one lookup instead of each doing their
// own: two workers that both found no tag would both create it, and the
// vendor would then hold two tags of the same name, with the membership
// split between them. Failures are not cached: the next caller tries
// again. The zero Memo is ready to use.
type Memo[V any] struct {
	mu sync.Mutex
	m  map[string]*memoEntry[V]
}

type memoEntry[V any] struct {
	lock chan struct{} // held (full) while a lookup runs
	ok   bool
	v    V
}

// Get returns the cached value for key, or runs fetch to get it, one
// caller per key at a time; callers waiting give up when ctx ends.
func (m *Memo[V]) Get(ctx context.Context, key string, fetch func(ctx context.Context) (V, error)) (V, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*memoEntry[V]{}
	}
	e := m.m[key]
	if e == nil {
		e = &memoEntry[V]{lock: make(chan struct{}, 1)}
		m.m[key] = e
	}
	m.mu.Unlock()
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
	defer func() { <-e.lock }()
	if e.ok {
		return e.v, nil
	}
	v, err := fetch(ctx)
	if err != nil {
		return v, err
	}
	e.v, e.ok = v, true
	return v, nil
}
