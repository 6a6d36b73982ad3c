package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Client is the HTTP plumbing the built-in connectors share: pacing,
// auth, JSON bodies and classification of failures into *Error.
type Client struct {
	Vendor  string
	HTTP    *http.Client
	Base    string // vendor API root, no trailing slash
	Limiter *Limiter
	// Prepare sets auth and fixed headers on every request.
	Prepare func(*http.Request)
	// Message extracts the vendor's error message from an error body;
	// nil uses MessageOf.
	Message func(body []byte) string
	// Wait reads how long the vendor asked us to wait from a 429 or 503
	// response; nil reads Retry-After.
	Wait func(h http.Header, now time.Time) time.Duration
	Now  func() time.Time // nil: time.Now
}

// Request is one vendor call.
type Request struct {
	Method string
	Path   string // appended to Base, already escaped
	Query  url.Values
	// Body is sent as JSON unless it is []byte; nil sends no body.
	Body        any
	ContentType string // default application/json when Body is set
	// Route names the call in errors, e.g. "POST /api/lists/{id}/relationships/profiles";
	// default is Method and Path.
	Route string
}

// maxBody bounds how much of a response we read: membership calls answer
// with small documents, and a runaway body must not exhaust memory.
const maxBody = 8 << 20

// Do sends req after waiting on the limiter. With out a *[]byte, a 2xx
// answer's body is returned as it is (an error when it is too large to
// read whole). On a 2xx answer it decodes the
// body into out (when out is non-nil and the body is not empty) and returns
// the response, whose body is already consumed. Any failure is an *Error.
func (c *Client) Do(ctx context.Context, req Request, out any) (*http.Response, error) {
	route := req.Route
	if route == "" {
		route = req.Method + " " + req.Path
	}
	if err := c.Limiter.Wait(ctx); err != nil {
		return nil, TransportError(ctx, c.Vendor, route, err)
	}
	var body io.Reader
	if req.Body != nil {
		b, ok := req.Body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(req.Body); err != nil {
				return nil, Invalid(c.Vendor, "%s: encoding the request body: %v", route, err)
			}
		}
		body = bytes.NewReader(b)
	}
	u := c.Base + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return nil, Invalid(c.Vendor, "%s: %v", route, err)
	}
	hr.Header.Set("Accept", "application/json")
	if req.Body != nil {
		ct := req.ContentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	if c.Prepare != nil {
		c.Prepare(hr)
	}
	resp, err := c.HTTP.Do(hr)
	if err != nil {
		return nil, TransportError(ctx, c.Vendor, route, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, TransportError(ctx, c.Vendor, route, fmt.Errorf("reading the response: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		var wait time.Duration
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if c.Wait != nil {
				wait = c.Wait(resp.Header, now())
			} else {
				wait = ParseRetryAfter(resp.Header, now())
			}
		}
		msgOf := MessageOf
		if c.Message != nil {
			msgOf = c.Message
		}
		return resp, HTTPError(c.Vendor, route, resp.StatusCode, wait, msgOf(data))
	}
	if raw, ok := out.(*[]byte); ok {
		if len(data) >= maxBody {
			return resp, &Error{Vendor: c.Vendor, Request: route, Status: resp.StatusCode, Code: kiln.EInvalid,
				Message: fmt.Sprintf("the response is larger than the %d MB Kiln reads", maxBody>>20)}
		}
		*raw = data
		return resp, nil
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			// A 2xx we cannot read: the vendor probably acted, so retrying is
			// safe (idempotent) but we must not report success blindly.
			return resp, &Error{Vendor: c.Vendor, Request: route, Status: resp.StatusCode, Code: kiln.EUnavailable,
				Retryable: true, Message: fmt.Sprintf("unreadable response: %v", err), Err: err}
		}
	}
	return resp, nil
}

// MessageOf extracts an error message from the common JSON error shapes
// ({"message"}, {"detail"}, {"error"}, {"errors":[{"message"|"detail"|"title"}]},
// RFC 7807 problem details), falling back to the start of the body.
func MessageOf(body []byte) string {
	var v struct {
		Message any             `json:"message"`
		Detail  string          `json:"detail"`
		Title   string          `json:"title"`
		Error   any             `json:"error"`
		Errors  json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &v) == nil {
		var items []struct {
			Message, Detail, Title, Code string
			Field                        any
		}
		var text string
		if json.Unmarshal(v.Errors, &text) == nil && text != "" {
			return clip(text) // Shopify: {"errors": "[API] Invalid API key …"}
		}
		if json.Unmarshal(v.Errors, &items) == nil && len(items) > 0 {
			var parts []string
			for _, it := range items {
				m := firstNonEmpty(it.Detail, it.Message, it.Title, it.Code)
				if f, ok := it.Field.(string); ok && f != "" {
					m = f + ": " + m
				}
				parts = append(parts, m)
			}
			return clip(strings.Join(parts, "; "))
		}
		if s, ok := v.Message.(string); ok && s != "" {
			return clip(s)
		}
		if v.Detail != "" {
			return clip(firstNonEmpty(v.Title+": "+v.Detail, v.Detail))
		}
		if s, ok := v.Error.(string); ok && s != "" {
			return clip(s)
		}
	}
	return clip(strings.TrimSpace(string(body)))
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if strings.TrimSpace(x) != "" && x != ": " {
			return x
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
