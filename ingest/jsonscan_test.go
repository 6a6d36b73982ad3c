package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanValue decodes a whole document with the scanner; deep reports a
// value nested deeper than maxDepth (stepped over, not decoded).
func scanValue(data []byte) (v any, deep bool, err error) {
	s := &scanner{data: data, intern: map[string]string{}}
	v, err = s.value()
	if err == nil {
		err = s.end()
	}
	return v, s.deepAt != 0, err
}

var scannerSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-12.5e3`, `1E+2`, `123456789012345678901234567890`,
	`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"lone \ud800 surrogate"`, `"\udc00\ud800"`,
	`{"a":{"b":[1,2,{"c":null}]},"d":"x","d":"dup"}`, ` [ 1 , "two" , [ ] , { } ] `,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `"\x"`, `"\u12"`, "\"tab\there\"",
	`tru`, `nul`, `[1 2]`, `{"a":1}}`, `"unterminated`, `{"a":[`, ``, `   `, `+1`, `NaN`, `1.5e999`,
}

// deepSeeds nest past maxDepth: well-formed ones are stepped over, and
// malformed ones must still fail, at any depth.
var deepSeeds = []string{
	strings.Repeat("[", 300) + strings.Repeat("]", 300),
	strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300),
	`{"x":[` + strings.Repeat(`{"k":[1,"]}",{},[],`, 250) + "null" + strings.Repeat("]}", 250) + `],"y":2}`,
	strings.Repeat("[", 300) + "1," + strings.Repeat("]", 300),
	strings.Repeat("[", 300) + strings.Repeat("]", 299),
	strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("]", 300),
	strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 299) + ",}",
	strings.Repeat("[", 300) + `"\x"` + strings.Repeat("]", 300),
}

// The scanner must agree with encoding/json on which documents are
// malformed, and on every value both decode. (It decodes numbers beyond
// float64 as ±Inf, for CheckStorable to reject with their path, where
// encoding/json fails; and it steps over values nested too deeply.)
func TestScannerMatchesEncodingJSON(t *testing.T) {
	for _, doc := range append(scannerSeeds, deepSeeds...) {
		checkScanner(t, []byte(doc))
	}
}

func FuzzScanner(f *testing.F) {
	for _, doc := range append(scannerSeeds, deepSeeds...) {
		f.Add([]byte(doc))
	}
	f.Add(typicalBatch(2))
	f.Fuzz(func(t *testing.T, data []byte) { checkScanner(t, data) })
}

func checkScanner(t *testing.T, data []byte) {
	t.Helper()
	if !utf8.Valid(data) {
		return // the handler rejects invalid UTF-8 before decoding
	}
	got, deep, gotErr := scanValue(data)
	if json.Valid(data) != (gotErr == nil) {
		t.Fatalf("%q: json.Valid %v, scanner error %v", data, json.Valid(data), gotErr)
	}
	var want any
	if err := json.Unmarshal(data, &want); err == nil && !deep && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: scanner %#v, encoding/json %#v", data, got, want)
	}
}

func TestDecodeMessageTypeErrors(t *testing.T) {
	raw := []byte(`{"type":"track","userId":12345,"event":["x"],"properties":{"a":1},"context":"oops","extra":{"deep":[1,{"x":"y"}]}}`)
	s := &scanner{data: raw}
	m, fieldErr, err := s.message()
	if err != nil {
		t.Fatal(err)
	}
	if m.UserID != "12345" || m.Properties["a"] != float64(1) {
		t.Errorf("decoded %+v", m)
	}
	te, ok := fieldErr.(*typeError)
	if !ok || te.field != "event" || te.got != "array" {
		t.Errorf("first type error %v, want event/array", fieldErr)
	}
}

// A value nested too deeply or a number beyond float64 is well-formed
// JSON: it makes a field error for its message, and the scan goes on.
func TestDecodeMessageValueProblems(t *testing.T) {
	raw := []byte(`{"type":"track","userId":"u","properties":{"revenue":1e400,"big":-1e999},"context":{"a":` +
		strings.Repeat("[", 250) + strings.Repeat("]", 250) + `},"event":"X"}`)
	// The message and context objects are two levels: the 199th array is
	// the 201st.
	deepAt := strings.IndexByte(string(raw), '[') + 198
	s := &scanner{data: raw}
	m, fieldErr, err := s.message()
	if err != nil {
		t.Fatal(err)
	}
	if m.Event != "X" || !math.IsInf(m.Properties["revenue"].(float64), 1) || !math.IsInf(m.Properties["big"].(float64), -1) {
		t.Errorf("decoded %+v", m)
	}
	ve, ok := fieldErr.(*valueError)
	if !ok || ve.field != "context" || !strings.Contains(ve.reason, fmt.Sprintf("context is nested more than 200 levels deep (byte %d of the message)", deepAt)) {
		t.Errorf("field error %#v, want context nested too deeply", fieldErr)
	}
	if s.deepAt != 0 {
		t.Error("the message's deep value is still noted after it")
	}
}
