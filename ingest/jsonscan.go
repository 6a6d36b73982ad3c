package ingest

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small JSON decoder for the tracking API's hot path. It
// decodes straight into map[string]any / []any / string / float64 / bool /
// nil (the same values encoding/json produces), without reflection and
// with a single pass over the bytes, which makes a /v1/batch several times
// faster to parse than encoding/json. It is strict JSON (RFC 8259); callers
// check UTF-8 validity of the whole input first.

// syntaxError is malformed JSON at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

// typeError is well-formed JSON of the wrong type for a field.
type typeError struct {
	field string // dotted path, e.g. "properties"
	want  string // "a string", "an object", ...
	got   string // "number", "array", ...
}

func (e *typeError) Error() string {
	return fmt.Sprintf("%s must be %s, not %s", e.field, e.want, e.got)
}

// valueError is well-formed JSON that Kiln will not take, such as a value
// nested too deeply.
type valueError struct {
	field  string
	reason string
}

func (e *valueError) Error() string { return e.reason }

type scanner struct {
	data []byte
	pos  int
	// depth guards against stack exhaustion from deeply nested input.
	depth int
	// deepAt is the offset of the first value found nested deeper than
	// maxDepth since the caller last cleared it (0: none). Such a value is
	// stepped over, not decoded, and does not stop the scan: the caller
	// decides whether it fails one message or the whole request.
	deepAt int
	// odd is set when a decoded value may be one no store can hold: a
	// \u0000 escape (the only way a NUL gets in: raw control characters
	// are malformed) or a number beyond float64. Callers clear it; it
	// spares walking every payload for what valid input never holds.
	odd bool
	// intern shares the strings of repeated short values and keys (every
	// event in a batch repeats "properties", "Product Added", "EUR", ...),
	// saving an allocation each. Nil disables it.
	intern map[string]string
}

const (
	maxInternLen   = 32
	maxInternCount = 8192
)

// newString makes a string of b, shared through the intern table.
func (s *scanner) newString(b []byte) string {
	if s.intern == nil || len(b) > maxInternLen {
		return string(b)
	}
	if v, ok := s.intern[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(s.intern) < maxInternCount {
		s.intern[v] = v
	}
	return v
}

// maxDepth is how deeply values may nest.
const maxDepth = 200

func (s *scanner) errf(format string, args ...any) error {
	return &syntaxError{off: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// kindAt names the JSON kind of the value starting with c, for errors.
func kindAt(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func (s *scanner) unexpected(what string) error {
	if s.pos >= len(s.data) {
		return s.errf("unexpected end of JSON input")
	}
	return s.errf("invalid character %q %s", s.data[s.pos], what)
}

func (s *scanner) expect(c byte, what string) error {
	if s.peek() != c {
		return s.unexpected(what)
	}
	s.pos++
	return nil
}

// object reads an object, calling fn for each key with the scanner at the
// value; fn must consume the value.
func (s *scanner) object(fn func(key string) error) error {
	if done, err := s.enter('{', '}', "object"); done {
		return err
	}
	defer func() { s.depth-- }()
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.unexpected("after object key:value pair")
		}
	}
}

// array reads an array, calling fn with the scanner at each element.
func (s *scanner) array(fn func(i int) error) error {
	if done, err := s.enter('[', ']', "array"); done {
		return err
	}
	defer func() { s.depth-- }()
	for i := 0; ; i++ {
		s.ws()
		if err := fn(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.unexpected("after array element")
		}
	}
}

// enter steps into the object or array that opens with open, one level
// deeper. It reports done when there is nothing more to read in it: it is
// empty (and stepped over), nested too deeply (and stepped over, see
// tooDeep), or not there (err).
func (s *scanner) enter(open, close byte, what string) (done bool, err error) {
	if s.peek() != open {
		return true, s.unexpected("looking for beginning of " + what)
	}
	if s.depth >= maxDepth {
		return true, s.tooDeep()
	}
	s.pos++
	if s.peek() == close {
		s.pos++
		return true, nil
	}
	s.depth++
	return false, nil
}

// key reads an object key and the colon after it.
func (s *scanner) key() (string, error) {
	if s.peek() != '"' {
		return "", s.unexpected("looking for beginning of object key string")
	}
	k, err := s.str()
	if err != nil {
		return "", err
	}
	return k, s.expect(':', "after object key")
}

// tooDeep notes a value nested deeper than maxDepth and steps over it. A
// deep value is well-formed JSON that Kiln will not store, like a wrong
// type: one message holding it is rejected alone (see message), where an
// error here would fail its whole batch.
func (s *scanner) tooDeep() error {
	if s.deepAt == 0 {
		s.deepAt = s.pos
	}
	return s.skipFlat()
}

// skipFlat validates and steps over one value as skip does, but keeps the
// open containers in a slice instead of on the call stack, so that input
// nested arbitrarily deep costs no recursion.
func (s *scanner) skipFlat() error {
	var open []byte // the closing bracket of each open container
	for {
		// A value starts here: open a container, or step over a scalar.
		switch s.peek() {
		case '{':
			s.pos++
			if s.peek() != '}' {
				open = append(open, '}')
				if _, err := s.key(); err != nil {
					return err
				}
				continue
			}
			s.pos++
		case '[':
			s.pos++
			if s.peek() != ']' {
				open = append(open, ']')
				continue
			}
			s.pos++
		default:
			if err := s.skip(); err != nil { // a scalar: skip does not recurse
				return err
			}
		}
		// After a value: close the containers that end here, then move on
		// to the next element of the innermost open one.
		for {
			if len(open) == 0 {
				return nil
			}
			closer := open[len(open)-1]
			c := s.peek()
			if c == closer {
				s.pos++
				open = open[:len(open)-1]
				continue
			}
			if c != ',' {
				if closer == '}' {
					return s.unexpected("after object key:value pair")
				}
				return s.unexpected("after array element")
			}
			s.pos++
			if closer == '}' {
				if _, err := s.key(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// value decodes any JSON value.
func (s *scanner) value() (any, error) {
	switch c := s.peek(); c {
	case '{':
		return s.objectMap()
	case '[':
		var out []any
		err := s.array(func(int) error {
			v, err := s.value()
			out = append(out, v)
			return err
		})
		if out == nil && err == nil {
			out = []any{}
		}
		return out, err
	case '"':
		return s.str()
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
		return nil, s.unexpected("looking for beginning of value")
	}
}

func (s *scanner) objectMap() (map[string]any, error) {
	m := make(map[string]any, 8)
	err := s.object(func(k string) error {
		v, err := s.value()
		m[k] = v
		return err
	})
	return m, err
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return nil
	}
	return s.errf("invalid literal at byte %d, expected %s", s.pos, lit)
}

// numberSpan scans a JSON number and returns its text.
func (s *scanner) numberSpan() ([]byte, error) {
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.unexpected("in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], nil
}

func (s *scanner) number() (float64, error) {
	b, err := s.numberSpan()
	if err != nil {
		return 0, err
	}
	// Fast path: short integers are exact in a float64.
	if len(b) <= 15 {
		neg := b[0] == '-'
		digits := b
		if neg {
			digits = b[1:]
		}
		var n int64
		ok := true
		for _, c := range digits {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if ok {
			if neg {
				return -float64(n), nil
			}
			return float64(n), nil
		}
	}
	// numberSpan checked the syntax, so the only possible error is a
	// range error: a number beyond float64 (1e400) becomes ±Inf. That is
	// well-formed JSON that no store can hold, so it rejects only the
	// message holding it, naming the field (CheckStorable), instead of
	// failing the batch as malformed.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		s.odd = true
	}
	return f, nil
}

// str decodes a string; the scanner is at its opening quote.
func (s *scanner) str() (string, error) {
	s.pos++ // opening quote
	d := s.data
	start := s.pos
	i := start
	for i < len(d) {
		c := d[i]
		if c == '"' {
			s.pos = i + 1
			return s.newString(d[start:i]), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			s.pos = i
			return "", s.errf("invalid character %q in string literal", c)
		}
		i++
	}
	if i >= len(d) {
		s.pos = i
		return "", s.errf("unexpected end of JSON input")
	}
	// Slow path: escapes.
	buf := make([]byte, 0, i-start+16)
	buf = append(buf, d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.newString(buf), nil
		case c < 0x20:
			s.pos = i
			return "", s.errf("invalid character %q in string literal", c)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		i++
		if i >= len(d) {
			break
		}
		switch d[i] {
		case '"', '\\', '/':
			buf = append(buf, d[i])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(d, i+1)
			if !ok {
				s.pos = i
				return "", s.errf("invalid \\u escape in string literal")
			}
			i += 4
			if r == 0 {
				s.odd = true
			}
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+2 < len(d) && d[i+1] == '\\' && d[i+2] == 'u' {
					r2, ok2 = hex4(d, i+3)
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			s.pos = i
			return "", s.errf("invalid character %q in string escape code", d[i])
		}
		i++
	}
	s.pos = len(d)
	return "", s.errf("unexpected end of JSON input")
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// skip validates and steps over one value.
func (s *scanner) skip() error {
	switch c := s.peek(); c {
	case '{':
		return s.object(func(string) error { return s.skip() })
	case '[':
		return s.array(func(int) error { return s.skip() })
	case '"':
		// Validate escapes without building the string.
		d := s.data
		i := s.pos + 1
		for i < len(d) {
			switch c := d[i]; {
			case c == '"':
				s.pos = i + 1
				return nil
			case c == '\\':
				_, err := s.str()
				return err
			case c < 0x20:
				s.pos = i
				return s.errf("invalid character %q in string literal", c)
			}
			i++
		}
		s.pos = len(d)
		return s.errf("unexpected end of JSON input")
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			_, err := s.numberSpan()
			return err
		}
		return s.unexpected("looking for beginning of value")
	}
}

// end checks that nothing but white space follows the top-level value.
func (s *scanner) end() error {
	if s.ws(); s.pos < len(s.data) {
		return s.unexpected("after top-level value")
	}
	return nil
}

// stringField reads a string or null for the named field.
func (s *scanner) stringField(field string) (string, error) {
	switch c := s.peek(); c {
	case '"':
		return s.str()
	case 'n':
		return "", s.literal("null")
	default:
		if err := s.skip(); err != nil {
			return "", err
		}
		return "", &typeError{field: field, want: "a string", got: kindAt(c)}
	}
}

// idField reads a string, a number (kept as its text) or null.
func (s *scanner) idField(field string) (string, error) {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == 'n':
		return "", s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		b, err := s.numberSpan()
		return s.newString(b), err
	default:
		if err := s.skip(); err != nil {
			return "", err
		}
		return "", &typeError{field: field, want: "a string", got: kindAt(c)}
	}
}

// mapField reads an object or null for the named field.
func (s *scanner) mapField(field string) (map[string]any, error) {
	switch c := s.peek(); c {
	case '{':
		return s.objectMap()
	case 'n':
		return nil, s.literal("null")
	default:
		if err := s.skip(); err != nil {
			return nil, err
		}
		return nil, &typeError{field: field, want: "an object", got: kindAt(c)}
	}
}

// batchRequest is a /v1/batch body, decoded in one pass. Each message
// keeps its raw bytes and its own type error, so one bad message rejects
// only itself; a syntax error anywhere fails the whole request.
type batchRequest struct {
	Batch    []rawMessage
	HasBatch bool
	SentAt   string
	Context  map[string]any
	WriteKey string
	// oddContext: the scanner's odd flag for Context.
	oddContext bool
}

// rawMessage is one decoded message with its bytes as sent.
type rawMessage struct {
	raw []byte
	m   wireMessage
	// fieldErr is the first field of the wrong type (*typeError) or with
	// a value Kiln will not take (*valueError).
	fieldErr error
	// odd: the scanner's odd flag for this message.
	odd bool
}

// decodeBatch reads a /v1/batch body.
func decodeBatch(data []byte) (batchRequest, error) {
	var req batchRequest
	s := &scanner{data: data, intern: make(map[string]string, 256)}
	if c := s.peek(); c != '{' && c != 0 {
		if err := s.skip(); err != nil {
			return req, err
		}
		return req, &typeError{field: "body", want: "an object", got: kindAt(c)}
	}
	err := s.object(func(key string) error {
		var err error
		switch key {
		case "batch":
			c := s.peek()
			if c == 'n' {
				return s.literal("null")
			}
			if c != '[' {
				if err := s.skip(); err != nil {
					return err
				}
				return &typeError{field: "batch", want: "an array", got: kindAt(c)}
			}
			req.HasBatch = true
			req.Batch = make([]rawMessage, 0, 64)
			return s.array(func(int) error {
				start := s.pos
				s.odd = false
				m, fieldErr, err := s.message()
				if err != nil {
					return err
				}
				req.Batch = append(req.Batch, rawMessage{raw: data[start:s.pos], m: m, fieldErr: fieldErr, odd: s.odd})
				return nil
			})
		case "sentAt":
			req.SentAt, err = s.stringField("sentAt")
		case "writeKey":
			req.WriteKey, err = s.stringField("writeKey")
		case "context":
			s.odd = false
			req.Context, err = s.mapField("context")
			req.oddContext = s.odd
		default:
			err = s.skip()
		}
		// Outside the messages, a value too deep fails the request: it
		// belongs to all of them.
		if err == nil && s.deepAt != 0 {
			return &valueError{field: key, reason: fmt.Sprintf("%s is nested more than %d levels deep (byte %d)", key, maxDepth, s.deepAt)}
		}
		return err
	})
	if err != nil {
		return req, err
	}
	return req, s.end()
}

// decodeSingle reads a single call's body: one message.
func decodeSingle(data []byte) (rawMessage, error) {
	s := &scanner{data: data}
	if c := s.peek(); c != '{' && c != 0 {
		if err := s.skip(); err != nil {
			return rawMessage{}, err
		}
		return rawMessage{}, &typeError{field: "body", want: "an object", got: kindAt(c)}
	}
	m, fieldErr, err := s.message()
	if err == nil {
		err = s.end()
	}
	return rawMessage{raw: data, m: m, fieldErr: fieldErr, odd: s.odd}, err
}

// wireMessage is one Segment message as sent. Ids accept numbers too (some
// clients type them numerically); everything else must have its spec type.
type wireMessage struct {
	Type              string
	MessageID         string
	UserID            string
	AnonymousID       string
	PreviousID        string
	GroupID           string
	Event             string
	Name              string
	Timestamp         string
	OriginalTimestamp string
	SentAt            string
	WriteKey          string
	Properties        map[string]any
	Traits            map[string]any
	Context           map[string]any
}

// message decodes one message. A wrong-typed field or a value nested too
// deeply does not stop it: the first such field is returned as fieldErr
// and the rest is still checked for syntax.
func (s *scanner) message() (m wireMessage, fieldErr, err error) {
	start := s.pos
	defer func() { s.deepAt = 0 }() // a deep value here is this message's alone
	if c := s.peek(); c != '{' {
		if err := s.skip(); err != nil {
			return m, nil, err
		}
		return m, &typeError{field: "", want: "a JSON object", got: kindAt(c)}, nil
	}
	err = s.object(func(key string) error {
		var err error
		switch key {
		case "type":
			m.Type, err = s.stringField(key)
		case "messageId":
			m.MessageID, err = s.idField(key)
		case "userId":
			m.UserID, err = s.idField(key)
		case "anonymousId":
			m.AnonymousID, err = s.idField(key)
		case "previousId":
			m.PreviousID, err = s.idField(key)
		case "groupId":
			m.GroupID, err = s.idField(key)
		case "event":
			m.Event, err = s.stringField(key)
		case "name":
			m.Name, err = s.stringField(key)
		case "timestamp":
			m.Timestamp, err = s.stringField(key)
		case "originalTimestamp":
			m.OriginalTimestamp, err = s.stringField(key)
		case "sentAt":
			m.SentAt, err = s.stringField(key)
		case "writeKey":
			m.WriteKey, err = s.stringField(key)
		case "properties":
			m.Properties, err = s.mapField(key)
		case "traits":
			m.Traits, err = s.mapField(key)
		case "context":
			m.Context, err = s.mapField(key)
		default:
			err = s.skip()
		}
		if err == nil && s.deepAt != 0 && fieldErr == nil {
			fieldErr = &valueError{field: key, reason: fmt.Sprintf("%s is nested more than %d levels deep (byte %d of the message)", key, maxDepth, s.deepAt-start)}
		}
		if _, ok := err.(*typeError); ok {
			if fieldErr == nil {
				fieldErr = err
			}
			return nil
		}
		return err
	})
	return m, fieldErr, err
}
