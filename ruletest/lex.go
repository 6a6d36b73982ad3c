package ruletest

import (
	"encoding/json"
	"fmt"
	"strings"
)

// stmt is one statement of a test file: a line with its comment removed,
// joined with the following lines while a { or [ is open (a JSON object
// or a define block may span lines). text keeps the first line's leading
// space and the newlines, so positions inside it map back to the file.
type stmt struct {
	line int
	text string
}

// split cuts a test file into statements. # and // start a comment
// outside double-quoted strings.
func split(src string) ([]stmt, []*Error) {
	src = strings.TrimPrefix(src, "\ufeff")
	var (
		out    []stmt
		errs   []*Error
		cur    strings.Builder
		start  = 1
		line   = 1
		depth  int
		inStr  bool
		escape bool
	)
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			out = append(out, stmt{line: start, text: cur.String()})
		}
		cur.Reset()
		depth = 0
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inStr {
			switch {
			case escape:
				escape = false
			case c == '\\':
				escape = true
			case c == '"':
				inStr = false
			case c == '\n':
				errs = append(errs, &Error{Line: line, Msg: "unterminated string: a quoted string ends on its line"})
				inStr = false
				i-- // handle the newline below
				continue
			}
			cur.WriteByte(c)
			continue
		}
		switch {
		case c == '"':
			inStr = true
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth > 0 {
				depth--
			}
		case c == '\r':
			continue
		case c == '\n':
			line++
			if depth == 0 {
				flush()
				start = line
				continue
			}
		}
		if cur.Len() == 0 && c != '\n' {
			start = line
		}
		cur.WriteByte(c)
	}
	if inStr {
		errs = append(errs, &Error{Line: line, Msg: "unterminated string"})
	}
	if depth > 0 {
		errs = append(errs, &Error{Line: start, Msg: "a { or [ opened here is never closed"})
		cur.Reset()
	}
	flush()
	return out, errs
}

// Token kinds.
const (
	tWord   = iota // user, 42, 2026-01-05, high_value, 300, >=
	tString        // "Order Completed" (val is the unquoted text)
	tJSON          // {...} (val is the raw object)
	tPunct         // [ ] ,
)

type token struct {
	kind int
	val  string
}

func (t token) String() string {
	if t.kind == tString {
		return fmt.Sprintf("%q", t.val)
	}
	return t.val
}

const opChars = "=<>!"

// tokens cuts a statement into words, quoted strings, JSON objects and
// the punctuation of lists. Comparison operators are words of their own,
// so spend_365d>=500 reads as spend_365d >= 500.
func tokens(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string")
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, fmt.Errorf("bad string %s: %v", s[i:j+1], err)
			}
			out = append(out, token{tString, v})
			i = j + 1
		case c == '{':
			j, err := closeJSON(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, token{tJSON, s[i:j]})
			i = j
		case c == '[' || c == ']' || c == ',':
			out = append(out, token{tPunct, string(c)})
			i++
		case c == '}':
			return nil, fmt.Errorf("unexpected }")
		case strings.IndexByte(opChars, c) >= 0:
			j := i
			for j < len(s) && strings.IndexByte(opChars, s[j]) >= 0 {
				j++
			}
			out = append(out, token{tWord, s[i:j]})
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\"{}[],"+opChars, rune(s[j])) {
				j++
			}
			out = append(out, token{tWord, s[i:j]})
			i = j
		}
	}
	return out, nil
}

// closeJSON returns the end of the JSON object starting at s[i].
func closeJSON(s string, i int) (int, error) {
	depth, inStr := 0, false
	for j := i; j < len(s); j++ {
		c := s[j]
		if inStr {
			if c == '\\' {
				j++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed {")
}
