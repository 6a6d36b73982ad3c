package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// scanValue decodes a whole document with the scanner.
func scanValue(data []byte) (any, error) {
	s := &scanner{data: data, intern: map[string]string{}}
	v, err := s.value()
	if err == nil {
		err = s.end()
	}
	return v, err
}

var scannerSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-12.5e3`, `1E+2`, `123456789012345678901234567890`,
	`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"lone \ud800 surrogate"`, `"\udc00\ud800"`,
	`{"a":{"b":[1,2,{"c":null}]},"d":"x","d":"dup"}`, ` [ 1 , "two" , [ ] , { } ] `,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `"\x"`, `"\u12"`, "\"tab\there\"",
	`tru`, `nul`, `[1 2]`, `{"a":1}}`, `"unterminated`, `{"a":[`, ``, `   `, `+1`, `NaN`, `1.5e999`,
}

// The scanner must agree with encoding/json on every value and on which
// documents are malformed.
func TestScannerMatchesEncodingJSON(t *testing.T) {
	for _, doc := range scannerSeeds {
		checkScanner(t, []byte(doc))
	}
}

func FuzzScanner(f *testing.F) {
	for _, doc := range scannerSeeds {
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
	var want any
	wantErr := json.Unmarshal(data, &want)
	got, gotErr := scanValue(data)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: encoding/json error %v, scanner error %v", data, wantErr, gotErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: scanner %#v, encoding/json %#v", data, got, want)
	}
}

func TestDecodeMessageTypeErrors(t *testing.T) {
	raw := []byte(`{"type":"track","userId":12345,"event":["x"],"properties":{"a":1},"context":"oops","extra":{"deep":[1,{"x":"y"}]}}`)
	s := &scanner{data: raw}
	m, typeErr, err := s.message()
	if err != nil {
		t.Fatal(err)
	}
	if m.UserID != "12345" || m.Properties["a"] != float64(1) {
		t.Errorf("decoded %+v", m)
	}
	te, ok := typeErr.(*typeError)
	if !ok || te.field != "event" || te.got != "array" {
		t.Errorf("first type error %v, want event/array", typeErr)
	}
}
