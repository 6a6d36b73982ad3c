package rule

import (
	"fmt"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// Error is one problem in a definition set, at a line and column of the
// text form (0:0 for definitions that came from JSON; the message then
// names the definition).
type Error struct {
	Pos
	Msg string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found, in source order. It unwraps to a
// kiln.Error with code EInvalid so the API answers 400 with the list.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets kiln.ErrorCode and kiln.ErrorMessage see an EInvalid error.
func (l ErrorList) Unwrap() error { return kiln.Errorf(kiln.EInvalid, "%s", l.Error()) }
