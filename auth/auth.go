// Package auth checks API keys. Tokens arrive as a Bearer token, as the
// HTTP basic-auth user (the Segment convention for write keys) or the
// basic-auth password; only their SHA-256 hashes are stored.
package auth

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
)

// KeyStore is the slice of the store auth needs.
type KeyStore interface {
	KeyByHash(ctx context.Context, hash string) (*kiln.Key, error)
}

// Token returns the API token a request carries, or "".
func Token(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if u, p, ok := r.BasicAuth(); ok {
		if u != "" {
			return u
		}
		return p
	}
	return ""
}

// Cache remembers key lookups for a short time so that a stream of small
// ingest requests does not cost a database read each. A revoked key stops
// working within TTL.
type Cache struct {
	Keys KeyStore
	TTL  time.Duration // default 5s
	Now  func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	key     *kiln.Key
	err     error
	expires time.Time
}

// NewCache wraps ks.
func NewCache(ks KeyStore) *Cache {
	return &Cache{Keys: ks, TTL: 5 * time.Second, Now: time.Now, entries: map[string]cacheEntry{}}
}

// KeyByHash looks a key up through the cache. Unknown keys are cached too,
// so a client hammering with a wrong key costs nothing.
func (c *Cache) KeyByHash(ctx context.Context, hash string) (*kiln.Key, error) {
	now := c.Now()
	c.mu.Lock()
	e, ok := c.entries[hash]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.key, e.err
	}
	k, err := c.Keys.KeyByHash(ctx, hash)
	if err != nil && kiln.ErrorCode(err) != kiln.ENotFound {
		return nil, err // a database hiccup is not cached
	}
	c.mu.Lock()
	if len(c.entries) > 10000 {
		c.entries = map[string]cacheEntry{} // bounded: a flood of random keys must not grow memory
	}
	c.entries[hash] = cacheEntry{key: k, err: err, expires: now.Add(c.TTL)}
	c.mu.Unlock()
	return k, err
}

// Authenticate returns the live key for a request's token. Errors carry
// kiln codes: EUnauthorized without a token or with an unknown or revoked
// one.
func Authenticate(ctx context.Context, ks KeyStore, r *http.Request) (*kiln.Key, error) {
	t := Token(r)
	if t == "" {
		return nil, kiln.Errorf(kiln.EUnauthorized, "no API key: send it as a Bearer token or as the basic-auth user")
	}
	k, err := ks.KeyByHash(ctx, kiln.HashToken(t))
	if kiln.ErrorCode(err) == kiln.ENotFound {
		return nil, kiln.Errorf(kiln.EUnauthorized, "unknown API key")
	}
	if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, kiln.Errorf(kiln.EUnauthorized, "API key %s was revoked", k.Prefix)
	}
	return k, nil
}
