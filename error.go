package kiln

import (
	"errors"
	"fmt"
)

// Error codes. The API maps each to an HTTP status.
const (
	EInvalid      = "invalid"      // the input is wrong; the message says what and where
	ENotFound     = "not_found"    // no such thing
	EConflict     = "conflict"     // it exists already, or the state forbids it
	EUnauthorized = "unauthorized" // no valid key
	EForbidden    = "forbidden"    // the key may not do this
	ETooLarge     = "too_large"    // over a size limit
	EInternal     = "internal"     // our fault; details are logged, not shown
	EUnavailable  = "unavailable"  // try again later
	ERateLimited  = "rate_limited" // throttled
)

// Error is a domain error with a code and a message for the user.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user message of the first *Error in err's chain,
// or a generic message for other errors (their details are for the log).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
