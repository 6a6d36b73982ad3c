package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/egress"
)

// Error is a failed change or request. Code is one of the kiln error codes:
// kiln.ERateLimited and kiln.EUnavailable are retryable, kiln.EInvalid,
// kiln.EUnauthorized, kiln.EForbidden, kiln.ENotFound, kiln.EConflict and
// kiln.ETooLarge are not.
type Error struct {
	Vendor     string        // connector id
	Request    string        // "POST /api/lists/{id}/relationships/profiles", "" if none was sent
	Status     int           // HTTP status, 0 when there was no response
	Code       string        // kiln error code
	Retryable  bool          // retrying the same change later can succeed
	RetryAfter time.Duration // how long the vendor asked us to wait, 0 if it did not say
	Message    string        // what went wrong, from the vendor's error body when it has one
	Err        error         // the cause: a transport error or ctx.Err()
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Vendor)
	if e.Request != "" {
		b.WriteString(": " + e.Request)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	b.WriteString(": " + e.Message)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap exposes the cause and a *kiln.Error with the same code, so
// errors.Is(err, context.Canceled) and kiln.ErrorCode work.
func (e *Error) Unwrap() []error {
	errs := []error{&kiln.Error{Code: e.Code, Message: e.Message}}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Retryable reports whether err (a Result's Err) may succeed if retried.
// Errors that are not *Error are treated as retryable: an unexpected failure
// should not drop a change.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable
	}
	return true
}

// RetryAfter returns how long the vendor asked to wait before retrying,
// 0 when it did not say.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// StatusOf returns the HTTP status of err, 0 if it has none.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Invalid makes the permanent error for a change the connector refuses
// before sending (no usable identifier, unmapped segment).
func Invalid(vendor, format string, args ...any) *Error {
	return &Error{Vendor: vendor, Code: kiln.EInvalid, Message: fmt.Sprintf(format, args...)}
}

// HTTPError classifies a vendor's non-success response: 429 is rate
// limited and 408, 425 and 5xx are unavailable (both retryable, honouring
// retryAfter); 401 and 403 are auth failures, 404 not found, 409 conflict,
// 413 too large and any other status invalid (all permanent).
func HTTPError(vendor, request string, status int, retryAfter time.Duration, msg string) *Error {
	e := &Error{Vendor: vendor, Request: request, Status: status, Message: msg, RetryAfter: retryAfter}
	switch {
	case status == http.StatusTooManyRequests:
		e.Code, e.Retryable = kiln.ERateLimited, true
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		e.Code, e.Retryable = kiln.EUnavailable, true
	case status == http.StatusUnauthorized:
		e.Code = kiln.EUnauthorized
	case status == http.StatusForbidden:
		e.Code = kiln.EForbidden
	case status == http.StatusNotFound:
		e.Code = kiln.ENotFound
	case status == http.StatusConflict:
		e.Code = kiln.EConflict
	case status == http.StatusRequestEntityTooLarge:
		e.Code = kiln.ETooLarge
	default:
		e.Code = kiln.EInvalid
	}
	if !e.Retryable {
		e.RetryAfter = 0
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// TransportError classifies a failure to get a response: cancellation of
// ctx and network errors are both retryable (the change was not, or may not
// have been, delivered; every supported operation is idempotent). A
// connection refused by the egress guard is forbidden and permanent: the
// address will not become public by retrying.
func TransportError(ctx context.Context, vendor, request string, err error) *Error {
	if egress.Blocked(err) {
		return &Error{Vendor: vendor, Request: request, Code: kiln.EForbidden, Message: err.Error(), Err: err}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &Error{Vendor: vendor, Request: request, Code: kiln.EUnavailable, Retryable: true,
			Message: "not delivered: " + ctxErr.Error(), Err: ctxErr}
	}
	return &Error{Vendor: vendor, Request: request, Code: kiln.EUnavailable, Retryable: true,
		Message: err.Error(), Err: err}
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date (relative to now). It returns 0 when absent or unparsable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// UnixResetAfter reads a header holding a Unix time in seconds at which a
// rate-limit window resets (Intercom's, SendGrid's and Braze's
// X-RateLimit-Reset) and returns the wait from now, 0 when absent.
func UnixResetAfter(h http.Header, name string, now time.Time) time.Duration {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	if err != nil || v <= 0 {
		return 0
	}
	d := time.Unix(v, 0).Sub(now)
	if d < 0 {
		return 0
	}
	return d.Round(time.Second)
}

// SecondsAfter reads a header holding a number of seconds to wait (Brevo's
// x-sib-ratelimit-reset), 0 when absent.
func SecondsAfter(h http.Header, name string) time.Duration {
	s, err := strconv.ParseFloat(strings.TrimSpace(h.Get(name)), 64)
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// BadResponse is a 2xx answer the connector cannot use (no id where one
// must be). Retrying is safe, since every operation is idempotent.
func BadResponse(vendor, request, msg string) *Error {
	return &Error{Vendor: vendor, Request: request, Code: kiln.EUnavailable, Retryable: true, Message: msg}
}
