package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Sink makes events durable. Write returns only once events and rejects
// are durable; it returns how many events were new (not retries).
type Sink interface {
	Write(ctx context.Context, events []kiln.Event, rejects []kiln.Reject) (int, error)
}

// Auth looks up who is calling.
type Auth interface {
	// KeyByHash returns the key with that token hash, revoked or not, or an
	// error with kiln code ENotFound if unknown.
	KeyByHash(ctx context.Context, hash string) (*kiln.Key, error)
	// GetSource returns a source by ID or name, or an error with kiln code
	// ENotFound.
	GetSource(ctx context.Context, idOrName string) (*kiln.Source, error)
}

// DefaultSource is the source admin keys ingest into when the request does
// not name one with ?source=.
const DefaultSource = "default"

// maxRejectPayload caps the raw payload kept with a reject.
const maxRejectPayload = 64 << 10

// newReject fills the common fields of a reject.
func newReject(sourceID string, at time.Time, origin string, index int, field, reason string, payload []byte) kiln.Reject {
	if len(payload) > maxRejectPayload {
		payload = payload[:maxRejectPayload]
	}
	return kiln.Reject{
		SourceID:   sourceID,
		ReceivedAt: at,
		Origin:     origin,
		Index:      index,
		Field:      field,
		Reason:     reason,
		Payload:    append([]byte(nil), payload...),
	}
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var successBody = []byte(`{"success":true}` + "\n")

func writeSuccess(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(successBody)
}

// errorBody is the shape of every error answer: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// statusOf maps kiln error codes to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case kiln.EInvalid:
		return http.StatusBadRequest
	case kiln.ENotFound:
		return http.StatusNotFound
	case kiln.EConflict:
		return http.StatusConflict
	case kiln.EUnauthorized:
		return http.StatusUnauthorized
	case kiln.EForbidden:
		return http.StatusForbidden
	case kiln.ETooLarge:
		// Segment answers 400 for over-size requests, and the official
		// clients never send one, so it is a plain client error here too.
		return http.StatusBadRequest
	case kiln.ERateLimited:
		return http.StatusTooManyRequests
	case kiln.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with err's code and message; details of internal
// errors go to the log, not to the caller.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	code := kiln.ErrorCode(err)
	if code == kiln.EInternal {
		log.Error("ingest: request failed", "path", r.URL.Path, "err", err)
	}
	var body errorBody
	body.Error.Code = code
	body.Error.Message = kiln.ErrorMessage(err)
	writeJSON(w, statusOf(code), body)
}

// errSinkFailed wraps a sink failure so clients retry: the events were not
// stored, so 503 (with the cause logged) rather than a 4xx.
func sinkError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kiln.Errorf(kiln.EUnavailable, "events were not stored in time; retry")
	}
	var ke *kiln.Error
	if errors.As(err, &ke) {
		return err
	}
	return errors.Join(kiln.Errorf(kiln.EInternal, "storing events"), err)
}

// authCache remembers key and source look-ups for a short time, so a busy
// client does not cost a store query per request. Revocation takes effect
// after at most the TTL.
type authCache struct {
	auth Auth
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	keys    map[string]cachedKey
	sources map[string]cachedSource
}

type cachedKey struct {
	key *kiln.Key
	at  time.Time
}

type cachedSource struct {
	src *kiln.Source
	at  time.Time
}

func newAuthCache(a Auth, ttl time.Duration, now func() time.Time) *authCache {
	return &authCache{auth: a, ttl: ttl, now: now, keys: map[string]cachedKey{}, sources: map[string]cachedSource{}}
}

func (c *authCache) key(ctx context.Context, hash string) (*kiln.Key, error) {
	if c.ttl > 0 {
		c.mu.Lock()
		ck, ok := c.keys[hash]
		c.mu.Unlock()
		if ok && c.now().Sub(ck.at) < c.ttl {
			return ck.key, nil
		}
	}
	k, err := c.auth.KeyByHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		if len(c.keys) > 10000 { // bound memory against key-guessing floods
			clear(c.keys)
		}
		c.keys[hash] = cachedKey{k, c.now()}
		c.mu.Unlock()
	}
	return k, nil
}

func (c *authCache) source(ctx context.Context, idOrName string) (*kiln.Source, error) {
	if c.ttl > 0 {
		c.mu.Lock()
		cs, ok := c.sources[idOrName]
		c.mu.Unlock()
		if ok && c.now().Sub(cs.at) < c.ttl {
			return cs.src, nil
		}
	}
	s, err := c.auth.GetSource(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		if len(c.sources) > 10000 {
			clear(c.sources)
		}
		c.sources[idOrName] = cachedSource{s, c.now()}
		c.mu.Unlock()
	}
	return s, nil
}

// resolveKey checks a write or admin key token and returns the source it
// ingests into. For admin keys the source is sourceParam, or DefaultSource.
func (c *authCache) resolveKey(ctx context.Context, token, sourceParam string) (*kiln.Source, error) {
	if token == "" {
		return nil, kiln.Errorf(kiln.EUnauthorized, "no write key: send it as the HTTP basic auth user name (empty password), as a Bearer token, or as \"writeKey\" in the body")
	}
	k, err := c.key(ctx, kiln.HashToken(token))
	if err != nil {
		if kiln.ErrorCode(err) == kiln.ENotFound {
			return nil, kiln.Errorf(kiln.EUnauthorized, "unknown write key %q", keyPrefix(token))
		}
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, kiln.Errorf(kiln.EUnauthorized, "write key %q was revoked", keyPrefix(token))
	}
	var srcName string
	switch k.Kind {
	case kiln.WriteKey:
		if sourceParam != "" && sourceParam != k.SourceID {
			// A write key is bound to its source; naming another is a
			// mistake the caller should hear about rather than have ignored.
			src, err := c.source(ctx, sourceParam)
			if err != nil || src.ID != k.SourceID {
				return nil, kiln.Errorf(kiln.EForbidden, "write key %q may only ingest into its own source, not %q", keyPrefix(token), sourceParam)
			}
		}
		srcName = k.SourceID
	case kiln.AdminKey:
		srcName = sourceParam
		if srcName == "" {
			srcName = DefaultSource
		}
	default:
		return nil, kiln.Errorf(kiln.EForbidden, "key %q of kind %q may not ingest", keyPrefix(token), k.Kind)
	}
	src, err := c.source(ctx, srcName)
	if err != nil {
		if kiln.ErrorCode(err) == kiln.ENotFound {
			return nil, kiln.Errorf(kiln.EInvalid, "source %q does not exist", srcName)
		}
		return nil, err
	}
	return src, nil
}

// keyPrefix shows enough of a token to tell keys apart in an error message
// without echoing the secret.
func keyPrefix(token string) string {
	if len(token) > 10 {
		return token[:10] + "…"
	}
	return token
}

// tokenFromRequest reads the key from basic auth (user name) or a Bearer
// Authorization header.
func tokenFromRequest(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// hashID derives a message id from content, so retries of the same content
// get the same id. The prefix keeps derived ids apart from clients' ids.
func hashID(prefix string, parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:16])
}
