package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// memSink keeps what was written and dedupes by (source, messageId) the way
// the store does, so tests can see both what arrived and what was new.
type memSink struct {
	mu      sync.Mutex
	events  []kiln.Event // every event written, retries included
	rejects []kiln.Reject
	seen    map[string]bool
	writes  int
	// failNext makes the next n writes fail, to force client retries.
	failNext int
}

func (s *memSink) Write(ctx context.Context, events []kiln.Event, rejects []kiln.Reject) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failNext > 0 {
		s.failNext--
		return 0, errors.New("disk on fire")
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	n := 0
	for _, e := range events {
		k := e.SourceID + "\x00" + e.MessageID
		if !s.seen[k] {
			s.seen[k] = true
			n++
		}
	}
	s.events = append(s.events, events...)
	s.rejects = append(s.rejects, rejects...)
	return n, nil
}

func (s *memSink) snapshot() ([]kiln.Event, []kiln.Reject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]kiln.Event(nil), s.events...), append([]kiln.Reject(nil), s.rejects...)
}

// unique returns the stored (deduped) events, first copy of each.
func (s *memSink) unique() []kiln.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []kiln.Event
	for _, e := range s.events {
		k := e.SourceID + "\x00" + e.MessageID
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// memAuth is an in-memory key and source registry.
type memAuth struct {
	mu      sync.Mutex
	keys    map[string]*kiln.Key
	sources map[string]*kiln.Source
}

func newMemAuth() *memAuth {
	return &memAuth{keys: map[string]*kiln.Key{}, sources: map[string]*kiln.Source{}}
}

func (a *memAuth) KeyByHash(ctx context.Context, hash string) (*kiln.Key, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.keys[hash]
	if !ok {
		return nil, kiln.Errorf(kiln.ENotFound, "no key with that hash")
	}
	c := *k
	return &c, nil
}

func (a *memAuth) GetSource(ctx context.Context, idOrName string) (*kiln.Source, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sources {
		if s.ID == idOrName || s.Name == idOrName {
			c := *s
			return &c, nil
		}
	}
	return nil, kiln.Errorf(kiln.ENotFound, "source %q not found", idOrName)
}

func (a *memAuth) addSource(s kiln.Source) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sources[s.ID] = &s
}

// addKey registers a new key and returns its token.
func (a *memAuth) addKey(kind kiln.KeyKind, sourceID string) string {
	tok := kiln.NewToken(kind)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[kiln.HashToken(tok)] = &kiln.Key{ID: kiln.NewID("k_"), Kind: kind, SourceID: sourceID, Hash: kiln.HashToken(tok), Prefix: tok[:10]}
	return tok
}

func (a *memAuth) revoke(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	a.keys[kiln.HashToken(tok)].RevokedAt = &now
}

// segmentBundle is a running tracking API with one write key.
type segmentBundle struct {
	sink  *memSink
	auth  *memAuth
	srv   *httptest.Server
	h     *SegmentHandler
	key   string // write key of source "web"
	admin string // admin key
	now   time.Time
}

func setupSegment(t *testing.T, mod func(*SegmentConfig)) *segmentBundle {
	t.Helper()
	b := &segmentBundle{sink: &memSink{}, auth: newMemAuth(), now: time.Now().UTC().Truncate(time.Millisecond)}
	b.auth.addSource(kiln.Source{ID: "src_web", Name: "web", Kind: "segment"})
	b.auth.addSource(kiln.Source{ID: "src_default", Name: DefaultSource, Kind: "segment"})
	b.auth.addSource(kiln.Source{ID: "src_pos1", Name: "pos-1", Kind: "segment", Store: "store-1"})
	b.key = b.auth.addKey(kiln.WriteKey, "src_web")
	b.admin = b.auth.addKey(kiln.AdminKey, "")
	cfg := SegmentConfig{Sink: b.sink, Auth: b.auth, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	b.h = NewSegmentHandler(cfg)
	mux := http.NewServeMux()
	mux.Handle("/v1/", b.h)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}
