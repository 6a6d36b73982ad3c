package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

// Segment's documented limits.
const (
	DefaultMaxMessageBytes  = 32 << 10  // per message
	DefaultMaxBatchBytes    = 500 << 10 // per request
	DefaultMaxBatchMessages = 2500      // per batch
	DefaultMaxFuture        = 24 * time.Hour
)

// DefaultOldest is the earliest timestamp accepted: older ones are almost
// always a zero or mis-scaled clock, not real history.
var DefaultOldest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// SegmentConfig configures the Segment tracking API handler. Sink and Auth
// are required; zero values elsewhere mean the defaults.
type SegmentConfig struct {
	Sink   Sink
	Auth   Auth
	Logger *slog.Logger
	Now    func() time.Time

	// Identity decides which values are identifiers when setting each
	// event's Anchor; it must be the resolver's (nil: the default rules).
	Identity *identity.Extractor

	// KeyCacheTTL keeps key and source look-ups this long (0: look up on
	// every request). A revoked key stops working after at most this long.
	KeyCacheTTL time.Duration

	MaxMessageBytes  int
	MaxBatchBytes    int
	MaxBatchMessages int
	// MaxFuture is how far past the receive time a corrected timestamp may
	// lie; Oldest is the earliest accepted timestamp.
	MaxFuture time.Duration
	Oldest    time.Time

	// RateLimit, when positive, limits each source to this many messages
	// per second on average (RateBurst at once, default one second's worth);
	// over it, requests get 429 with Retry-After.
	RateLimit float64
	RateBurst int
}

// SegmentHandler serves the Segment tracking API: POST /v1/track,
// /v1/identify, /v1/alias, /v1/group, /v1/page, /v1/screen, /v1/batch and
// /v1/import (an alias of batch). It works mounted at /v1/ with or without
// the prefix stripped: it routes on the last path segment.
type SegmentHandler struct {
	cfg     SegmentConfig
	log     *slog.Logger
	auth    *authCache
	limiter *limiter
}

// NewSegmentHandler returns the tracking API handler. It panics if Sink or
// Auth is nil: that is a wiring mistake, not a runtime condition.
func NewSegmentHandler(cfg SegmentConfig) *SegmentHandler {
	if cfg.Sink == nil || cfg.Auth == nil {
		panic("ingest: NewSegmentHandler needs a Sink and an Auth")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.MaxBatchMessages <= 0 {
		cfg.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	if cfg.Oldest.IsZero() {
		cfg.Oldest = DefaultOldest
	}
	return &SegmentHandler{
		cfg:     cfg,
		log:     cfg.Logger,
		auth:    newAuthCache(cfg.Auth, cfg.KeyCacheTTL, cfg.Now),
		limiter: newLimiter(cfg.RateLimit, cfg.RateBurst),
	}
}

// bufPool holds request body buffers; batches are up to 500 KB and a busy
// server would otherwise allocate one per request.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (h *SegmentHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Browsers (analytics.js) post cross-origin; the write key is public
	// there anyway, so any origin may send.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	call := strings.TrimSuffix(r.URL.Path, "/")
	call = call[strings.LastIndexByte(call, '/')+1:]
	var typ kiln.EventType
	switch call {
	case "batch", "import":
	case "track", "identify", "alias", "group", "page", "screen":
		typ = kiln.EventType(call)
	default:
		writeError(w, h.log, r, kiln.Errorf(kiln.ENotFound, "no such endpoint %s: use /v1/track, /v1/identify, /v1/alias, /v1/group, /v1/page, /v1/screen or /v1/batch", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, errBody(kiln.EInvalid, r.Method+" "+r.URL.Path+": only POST is allowed"))
		return
	}
	if err := h.serve(w, r, typ); err != nil {
		writeError(w, h.log, r, err)
	}
}

func errBody(code, msg string) errorBody {
	var b errorBody
	b.Error.Code = code
	b.Error.Message = msg
	return b
}

func (h *SegmentHandler) serve(w http.ResponseWriter, r *http.Request, typ kiln.EventType) error {
	limit := h.cfg.MaxBatchBytes
	if typ != "" {
		limit = h.cfg.MaxMessageBytes
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 4<<20 {
			bufPool.Put(buf)
		}
	}()
	if err := readBody(r, buf, limit); err != nil {
		return err
	}
	body := buf.Bytes()
	now := h.cfg.Now().UTC()

	var req batchRequest
	if typ == "" {
		var err error
		if req, err = decodeBatch(body); err != nil {
			return jsonError("body", body, err)
		}
		if !req.HasBatch {
			return kiln.Errorf(kiln.EInvalid, "body: no \"batch\" array of messages")
		}
		if len(req.Batch) > h.cfg.MaxBatchMessages {
			return kiln.Errorf(kiln.ETooLarge, "body: batch has %d messages, over the limit of %d per request", len(req.Batch), h.cfg.MaxBatchMessages)
		}
	} else {
		// A single call: the body is the message. An unparseable body fails
		// the request; a well-formed one with bad fields becomes a reject.
		msg, err := decodeSingle(body)
		if err != nil {
			return jsonError("body", body, err)
		}
		req.WriteKey = msg.m.WriteKey
		req.Batch = []rawMessage{msg}
	}

	token := tokenFromRequest(r)
	if token == "" {
		token = req.WriteKey
	}
	src, err := h.auth.resolveKey(r.Context(), token, r.URL.Query().Get("source"))
	if err != nil {
		return err
	}
	if ok, wait := h.limiter.take(src.ID, len(req.Batch), now); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return kiln.Errorf(kiln.ERateLimited, "source %q is over its rate limit of %g messages per second; retry after %d s", src.Name, h.cfg.RateLimit, max(secs, 1))
	}

	p := parser{
		identity:   h.cfg.Identity,
		sourceID:   src.ID,
		store:      src.Store,
		receivedAt: now,
		maxBytes:   h.cfg.MaxMessageBytes,
		maxFuture:  h.cfg.MaxFuture,
		oldest:     h.cfg.Oldest,
		batchCtx:   req.Context,
		oddCtx:     req.oddContext,
	}
	if req.SentAt != "" {
		t, err := parseTime(req.SentAt)
		if err != nil {
			return kiln.Errorf(kiln.EInvalid, "body: sentAt: %v", err)
		}
		p.batchSentAt = t
	}
	origin := "batch"
	if typ != "" {
		origin = string(typ)
	}
	events := make([]kiln.Event, 0, len(req.Batch))
	var rejects []kiln.Reject
	for i := range req.Batch {
		e, field, reason := p.parse(&req.Batch[i], typ)
		if reason != "" {
			rejects = append(rejects, newReject(src.ID, now, origin, i, field, reason, req.Batch[i].raw))
			continue
		}
		events = append(events, e)
	}
	if _, err := h.cfg.Sink.Write(r.Context(), events, rejects); err != nil {
		return sinkError(err)
	}
	writeSuccess(w)
	return nil
}

// readBody reads the (possibly gzipped) request body into buf, refusing
// more than limit bytes after decompression.
func readBody(r *http.Request, buf *bytes.Buffer, limit int) error {
	var rd io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return kiln.Errorf(kiln.EInvalid, "body: Content-Encoding is gzip but the body is not gzip data: %v", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return kiln.Errorf(kiln.EInvalid, "Content-Encoding %q is not supported: send gzip or no encoding", enc)
	}
	if r.ContentLength > 0 && r.ContentLength < int64(limit) {
		buf.Grow(int(r.ContentLength) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(rd, int64(limit)+1))
	if err != nil {
		return kiln.Errorf(kiln.EInvalid, "body: reading the request failed after %d bytes: %v", n, err)
	}
	if n > int64(limit) {
		return kiln.Errorf(kiln.ETooLarge, "body: request is over the %d KB limit", limit>>10)
	}
	if n == 0 {
		return kiln.Errorf(kiln.EInvalid, "body: empty request: send a JSON message")
	}
	return nil
}

// jsonError describes a JSON decoding failure with its position.
func jsonError(where string, body []byte, err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		if se.off >= len(body) {
			return kiln.Errorf(kiln.EInvalid, "%s: JSON ends early at byte %d (truncated body?)", where, se.off)
		}
		line, col := lineCol(body, int64(se.off))
		return kiln.Errorf(kiln.EInvalid, "%s: invalid JSON at line %d, column %d (byte %d): %s", where, line, col, se.off, se.msg)
	}
	return kiln.Errorf(kiln.EInvalid, "%s: %v", where, err)
}

func lineCol(b []byte, off int64) (int, int) {
	off = min(max(off, 0), int64(len(b)))
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// parser turns raw messages into events for one request.
type parser struct {
	// archive: messages were stored by a pipeline that already corrected
	// timestamp; take it as is.
	archive     bool
	identity    *identity.Extractor
	sourceID    string
	store       string
	receivedAt  time.Time
	batchSentAt time.Time
	batchCtx    map[string]any
	oddCtx      bool // batchCtx may hold what no store can (scanner.odd)
	maxBytes    int
	maxFuture   time.Duration
	oldest      time.Time
}

// parse decodes and validates one message. typ is the endpoint's call type
// ("" for batch, where each message names its own). On failure it returns
// the offending field and the reason.
func (p *parser) parse(rm *rawMessage, typ kiln.EventType) (e kiln.Event, field, reason string) {
	raw := rm.raw
	if len(raw) > p.maxBytes {
		return e, "", fmt.Sprintf("message is %d bytes, over the %d KB limit", len(raw), p.maxBytes>>10)
	}
	if !utf8.Valid(raw) {
		off := invalidUTF8At(raw)
		return e, "", fmt.Sprintf("message is not valid UTF-8 (byte %d)", off)
	}
	switch fe := rm.fieldErr.(type) {
	case *typeError:
		if fe.field == "" {
			return e, "", fmt.Sprintf("message must be a JSON object, not %s", fe.got)
		}
		return e, fe.field, fe.Error()
	case *valueError:
		return e, fe.field, fe.reason
	}
	m := &rm.m
	if typ == "" {
		typ = kiln.EventType(strings.ToLower(m.Type))
		if m.Type == "" {
			return e, "type", "type is missing: each batch message needs one of track, identify, alias, group, page, screen"
		}
		if !typ.Valid() {
			return e, "type", fmt.Sprintf("type %q is not one of track, identify, alias, group, page, screen", m.Type)
		}
	}
	e = kiln.Event{
		MessageID:   strings.TrimSpace(m.MessageID),
		SourceID:    p.sourceID,
		Type:        typ,
		UserID:      strings.TrimSpace(m.UserID),
		AnonymousID: strings.TrimSpace(m.AnonymousID),
		PreviousID:  strings.TrimSpace(m.PreviousID),
		GroupID:     strings.TrimSpace(m.GroupID),
		ReceivedAt:  p.receivedAt,
		Properties:  m.Properties,
		Traits:      m.Traits,
		Context:     mergeContext(p.batchCtx, m.Context),
	}
	switch typ {
	case kiln.Track:
		e.Name = strings.TrimSpace(m.Event)
		if e.Name == "" {
			return e, "event", "track message has no event name"
		}
	case kiln.Page, kiln.Screen:
		e.Name = strings.TrimSpace(m.Name)
	case kiln.Alias:
		if e.PreviousID == "" {
			return e, "previousId", "alias message has no previousId"
		}
	case kiln.Group:
		if e.GroupID == "" {
			return e, "groupId", "group message has no groupId"
		}
	}
	if e.UserID == "" && e.AnonymousID == "" {
		return e, "userId", "message has neither userId nor anonymousId"
	}

	ts, field, reason := p.timestamp(m)
	if reason != "" {
		return e, field, reason
	}
	e.Timestamp = ts
	e.Store = storeOf(&e)
	if e.Store == "" {
		e.Store = p.store
	}
	e.Anchor = AnchorWith(p.identity, &e)
	if e.MessageID == "" {
		e.MessageID = deriveMessageID(raw, typ)
	}
	if field, reason := checkStorable(&e, rm.odd || p.oddCtx); reason != "" {
		return e, field, reason
	}
	return e, "", ""
}

// timestamp applies Segment's clock-skew correction: when the client says
// when it sent the message (sentAt), the event happened
// receivedAt - (sentAt - originalTimestamp) by the server's clock. The
// message's "timestamp" stands in for originalTimestamp when that is absent
// (the server libraries send timestamp plus a batch-level sentAt).
func (p *parser) timestamp(m *wireMessage) (time.Time, string, string) {
	origField, origRaw := "originalTimestamp", m.OriginalTimestamp
	if origRaw == "" || p.archive && m.Timestamp != "" {
		origField, origRaw = "timestamp", m.Timestamp
	}
	if origRaw == "" {
		return p.receivedAt, "", ""
	}
	orig, err := parseTime(origRaw)
	if err != nil {
		return time.Time{}, origField, fmt.Sprintf("%s: %v", origField, err)
	}
	sentAt := p.batchSentAt
	if m.SentAt != "" {
		if sentAt, err = parseTime(m.SentAt); err != nil {
			return time.Time{}, "sentAt", fmt.Sprintf("sentAt: %v", err)
		}
	}
	ts := orig
	if !sentAt.IsZero() && !p.archive {
		ts = p.receivedAt.Add(-sentAt.Sub(orig))
	}
	ts = ts.UTC()
	if ts.After(p.receivedAt.Add(p.maxFuture)) {
		return time.Time{}, origField, fmt.Sprintf("%s %s is %s in the future (after clock-skew correction), more than the %s allowed", origField, origRaw, ts.Sub(p.receivedAt).Round(time.Second), p.maxFuture)
	}
	if !p.oldest.IsZero() && ts.Before(p.oldest) {
		return time.Time{}, origField, fmt.Sprintf("%s %s is before %s (after clock-skew correction)", origField, origRaw, p.oldest.Format(time.DateOnly))
	}
	return ts, "", ""
}

// parseTime reads an ISO-8601 timestamp: RFC 3339 with or without a zone
// (no zone means UTC), or a date alone.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range [...]string{"2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read %q as an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)", s)
}

// mergeContext lays a message's context over the batch-level one.
func mergeContext(batch, msg map[string]any) map[string]any {
	if len(batch) == 0 {
		return msg
	}
	out := make(map[string]any, len(batch)+len(msg))
	for k, v := range batch {
		out[k] = v
	}
	for k, v := range msg {
		out[k] = v
	}
	return out
}

// storeOf finds the store or location an event happened at:
// context.store, properties.store, then context.location (a string, or an
// object's id or name).
func storeOf(e *kiln.Event) string {
	if s := stringOf(e.Context["store"]); s != "" {
		return strings.TrimSpace(s)
	}
	if s := stringOf(e.Properties["store"]); s != "" {
		return strings.TrimSpace(s)
	}
	switch loc := e.Context["location"].(type) {
	case string:
		return strings.TrimSpace(loc)
	case map[string]any:
		if s := stringOf(loc["id"]); s != "" {
			return strings.TrimSpace(s)
		}
		return strings.TrimSpace(stringOf(loc["name"]))
	}
	return ""
}

// deriveMessageID hashes a message that came without a messageId. The hash
// is over the message re-encoded with sorted keys and without sentAt and
// writeKey, which clients may change between retries, so a retry of the
// same message gets the same id whatever its key order or white space.
// Two identical messages without timestamps are indistinguishable from a
// retry and collapse into one: clients that mean two events send ids.
func deriveMessageID(raw []byte, typ kiln.EventType) string {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return hashID("kiln-", []byte(typ), raw)
	}
	delete(m, "sentAt")
	delete(m, "writeKey")
	delete(m, "receivedAt")
	canon, err := json.Marshal(m)
	if err != nil {
		canon = raw
	}
	return hashID("kiln-", []byte(typ), canon)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// ArchiveOptions configures DecodeArchived.
type ArchiveOptions struct {
	SourceID   string
	ReceivedAt time.Time
	// Identity sets Anchor (nil: the default rules; must be the resolver's).
	Identity *identity.Extractor
	// MaxBytes caps a message (0: DefaultMaxMessageBytes).
	MaxBytes int
}

// DecodeArchived turns one stored Segment message (a line of a Segment or
// RudderStack export, an NDJSON archive) into an event with the tracking
// API's rules, except for time: an archived message's timestamp was
// already corrected for clock skew when it was first received, so it is
// taken as is (originalTimestamp only when there is no timestamp), and old
// timestamps are accepted. A message without a messageId gets the same
// derived id it would get from the tracking API, so replaying an archive
// of events that also arrived live stores each once. On failure it returns
// the offending field and the reason.
func DecodeArchived(raw []byte, opts ArchiveOptions) (e kiln.Event, field, reason string) {
	s := &scanner{data: raw}
	m, fieldErr, err := s.message()
	if err == nil {
		err = s.end()
	}
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return e, "", fmt.Sprintf("invalid JSON at byte %d: %s", se.off, se.msg)
		}
		return e, "", err.Error()
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxMessageBytes
	}
	p := parser{
		archive:    true,
		identity:   opts.Identity,
		sourceID:   opts.SourceID,
		receivedAt: opts.ReceivedAt.UTC(),
		maxBytes:   opts.MaxBytes,
		maxFuture:  DefaultMaxFuture,
	}
	return p.parse(&rawMessage{raw: raw, m: m, fieldErr: fieldErr, odd: s.odd}, "")
}
