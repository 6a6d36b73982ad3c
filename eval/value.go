package eval

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Value kinds.
const (
	kNull uint8 = iota
	kNum
	kStr
	kBool
	// kOver is a number outside num's range: read from an event or a
	// trait (1e300), or the result of a sum or arithmetic that does not
	// fit. It is shown as "overflow"; comparisons with it are false
	// (except != and exists), and arithmetic with it gives it again.
	kOver
	// kObj is an object or a list in an event or a trait: it exists,
	// equals nothing, and has a length (d; b is true for a list). As a
	// value of count or distinct its content is hashed (c, see
	// objValue).
	kObj
)

// value is an evaluation-time scalar. It avoids interface boxing on the
// hot path (comparisons run for every re-evaluated condition).
type value struct {
	c    int64  // kNum: coefficient (see num)
	str  string // kStr; kNum: the currency of money, "" for other numbers
	d    int32  // kNum: divisor
	s    uint8  // kNum: scale
	kind uint8
	b    bool // kBool
}

var (
	null  = value{}
	overV = value{kind: kOver}
)

// numV makes a number value. Divisors beyond int32 (a quotient of
// quotients) are overflow; an average's divisor is its count.
func numV(n num) value {
	if n.d > math.MaxInt32 {
		return overV
	}
	return value{kind: kNum, c: n.c, d: int32(n.d), s: n.s}
}

// dec returns the number of a kNum value.
func (v value) dec() num { return num{c: v.c, d: int64(v.d), s: v.s} }
func boolV(b bool) value { return value{kind: kBool, b: b} }

// numOr returns n, or overflow when an operation on it failed.
func numOr(n num, ok bool) value {
	if !ok {
		return overV
	}
	return numV(n)
}

// toValue converts a JSON-ish Go value. Arrays and objects are kObj:
// they exist and have a length, but compare with nothing (a list can be
// tested with contains).
// Numbers convert exactly from the decimal a user wrote (see
// numFromFloat); a number outside num's range is overflow.
func toValue(x any) value {
	switch v := x.(type) {
	case nil:
		return null
	case float64:
		if v != v {
			return null // NaN
		}
		return numOr(numFromFloat(v))
	case string:
		return value{kind: kStr, str: v}
	case bool:
		return boolV(v)
	case int:
		return numV(intNum(int64(v)))
	case int64:
		return numV(intNum(v))
	case int32:
		return numV(intNum(int64(v)))
	case uint64:
		if v > math.MaxInt64 {
			return overV
		}
		return numV(intNum(int64(v)))
	case float32:
		var buf [32]byte
		return numOr(parseNum(strconv.AppendFloat(buf[:0], float64(v), 'e', -1, 32)))
	case json.Number:
		return numOr(parseNum([]byte(v)))
	case map[string]any:
		return value{kind: kObj, d: int32(min(len(v), math.MaxInt32))}
	case []any:
		return value{kind: kObj, d: int32(min(len(v), math.MaxInt32)), b: true}
	}
	return null
}

// objValue is toValue with an object's or list's content hashed into c,
// so that distinct can tell two objects apart.
func objValue(x any) value {
	v := toValue(x)
	if v.kind == kObj {
		v.c = int64(hashAny(14695981039346656037, x))
	}
	return v
}

// hashAny hashes a JSON-ish value by content (FNV-1a, object keys
// sorted), for objValue.
func hashAny(h uint64, x any) uint64 {
	mix := func(b byte) { h = (h ^ uint64(b)) * 1099511628211 }
	switch v := x.(type) {
	case map[string]any:
		mix('{')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			h = hashAny(h, k)
			h = hashAny(h, v[k])
		}
		mix('}')
	case []any:
		mix('[')
		for _, e := range v {
			h = hashAny(h, e)
		}
		mix(']')
	default:
		w := hashValue(toValue(x))
		for i := 0; i < 8; i++ {
			mix(byte(w >> (8 * i)))
		}
	}
	return h
}

// lengthOf is length(x): the elements of a list, the keys of an object,
// the characters of a string, else null.
func lengthOf(x any) value {
	switch v := x.(type) {
	case []any:
		return numV(intNum(int64(len(v))))
	case map[string]any:
		return numV(intNum(int64(len(v))))
	case string:
		return numV(intNum(int64(utf8.RuneCountInString(v))))
	}
	return null
}

// any converts back for results: a Number, string, bool or nil.
func (v value) any() any {
	switch v.kind {
	case kNum:
		return Number{Text: string(v.appendNum(nil)), Currency: v.str}
	case kStr:
		return v.str
	case kBool:
		return v.b
	}
	return nil
}

// appendNum writes a number as it is shown: money with its currency's
// decimals (two for most), other numbers exactly (see num.appendText).
func (v value) appendNum(b []byte) []byte {
	if v.str != "" {
		return v.dec().appendText(b, minorUnits(v.str), true)
	}
	return v.dec().appendText(b, 0, false)
}

func (v value) String() string {
	switch v.kind {
	case kNum:
		b := v.appendNum(make([]byte, 0, 24))
		if v.str != "" {
			b = append(append(b, ' '), v.str...)
		}
		return string(b)
	case kStr:
		return strconv.Quote(v.str)
	case kBool:
		return strconv.FormatBool(v.b)
	case kOver:
		return "overflow"
	case kObj:
		if v.b {
			return "a list of " + strconv.Itoa(int(v.d))
		}
		return "an object of " + strconv.Itoa(int(v.d)) + " keys"
	}
	return "null"
}

// equal is the = of conditions: numbers compare by value (money and
// plain numbers alike: a literal is in the money's currency).
func (v value) equal(w value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case kNum:
		return cmpNum(v.dec(), w.dec()) == 0
	case kStr:
		return v.str == w.str
	case kBool:
		return v.b == w.b
	case kNull:
		return true
	}
	return false // overflow, objects and lists equal nothing
}

// Boxed values: one uint64 per value in per-profile state. The low five
// bits are a number's scale (0..18) or a tag; a number's coefficient is
// the upper 59 bits (two's complement, ±2.9e17). Numbers that do not
// fit (a larger coefficient, a quotient that does not end) are kept in
// the state's pool like strings, encoded by numKey.
const (
	tagMask uint64 = 31
	tagNull uint64 = 24
	tagFals uint64 = 25
	tagTrue uint64 = 26
	tagStr  uint64 = 27 // payload: index into State.strs
	tagNum  uint64 = 28 // payload: index into State.strs (numKey)
	tagOver uint64 = 29

	boxNull  = tagNull
	boxFalse = tagFals
	boxTrue  = tagTrue
	boxOver  = tagOver

	wordMax = 1<<58 - 1
	wordMin = -(1 << 58)
)

func isBoxedStr(b uint64) bool { return b&tagMask == tagStr }

// inPool reports whether a boxed value refers to the state's pool.
func inPool(b uint64) bool { t := b & tagMask; return t == tagStr || t == tagNum }

// wordNum boxes a canonical decimal that fits a word.
func wordNum(n num) (uint64, bool) {
	if n.d != 1 || n.c > wordMax || n.c < wordMin {
		return 0, false
	}
	return uint64(n.c)<<5 | uint64(n.s), true
}

// numWord reads a word-sized number; ok is false for anything else.
func numWord(b uint64) (num, bool) {
	s := b & tagMask
	if s > maxScale {
		return num{}, false
	}
	return num{c: int64(b) >> 5, d: 1, s: uint8(s)}, true
}

// numKey encodes a number for the pool.
func numKey(n num) string {
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n.c))
	binary.LittleEndian.PutUint64(b[8:], uint64(n.d))
	b[16] = n.s
	return string(b[:])
}

func keyNum(s string) num {
	return num{c: int64(binary.LittleEndian.Uint64([]byte(s[:8]))), d: int64(binary.LittleEndian.Uint64([]byte(s[8:16]))), s: s[16]}
}

// hashValue is the 64-bit identity used by distinct counts. Numbers and
// strings hash differently, so 1 and "1" are two values; 1.0 and 1 are
// one.
func hashValue(v value) uint64 {
	// A fixed, seedless hash (FNV-1a) so serialised state stays valid
	// across processes.
	h := uint64(14695981039346656037)
	mix := func(b byte) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	mix64 := func(x uint64) {
		for i := 0; i < 8; i++ {
			mix(byte(x >> (8 * i)))
		}
	}
	mix(v.kind)
	switch v.kind {
	case kStr:
		for i := 0; i < len(v.str); i++ {
			mix(v.str[i])
		}
	case kNum:
		n := v.dec().norm()
		mix64(uint64(n.c))
		mix64(uint64(n.d))
		mix(n.s)
	case kBool:
		if v.b {
			mix(1)
		} else {
			mix(0)
		}
	case kObj:
		mix64(uint64(v.c))
	}
	return h
}

// compare applies a comparison operator. A null left side is false for
// every operator except != and not exists ("country != UK" holds for a
// profile without a country). Values of different kinds are unequal and
// unordered.
func compare(l value, cmp string, r value, list []value) bool {
	switch cmp {
	case "exists":
		return l.kind != kNull
	case "not exists":
		return l.kind == kNull
	case "!=":
		return !l.equal(r)
	case "=":
		return l.equal(r)
	case "in":
		for _, x := range list {
			if l.equal(x) {
				return true
			}
		}
		return false
	case "contains":
		if l.kind != kStr || r.kind == kNull {
			return false
		}
		return strings.Contains(l.str, r.String2())
	}
	if l.kind != r.kind || l.kind == kNull || l.kind == kBool || l.kind == kOver || l.kind == kObj {
		return false
	}
	var c int
	if l.kind == kNum {
		c = cmpNum(l.dec(), r.dec())
	} else {
		c = strings.Compare(l.str, r.str)
	}
	switch cmp {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// String2 is the text a contains test looks for.
func (v value) String2() string {
	switch v.kind {
	case kStr:
		return v.str
	case kNum:
		return string(v.dec().appendText(nil, 0, false))
	}
	return v.String()
}

// containsAny tests "x contains lit" where x may be an array (the
// property is a list of tags) or a string.
func containsAny(x any, r value) bool {
	if arr, ok := x.([]any); ok {
		for _, e := range arr {
			if toValue(e).equal(r) {
				return true
			}
		}
		return false
	}
	return compare(toValue(x), "contains", r, nil)
}

// Value is a computed trait value: a number, a string, a boolean or
// null. It is a plain struct so results carry values without allocating.
type Value struct{ v value }

// IsNull reports whether there is no value (avg of nothing, a missing
// property...).
func (v Value) IsNull() bool { return v.v.kind == kNull }

// IsOverflow reports a number outside the exact range (a sum beyond
// ±9.2e18 units of its finest decimal, an event value such as 1e300).
func (v Value) IsOverflow() bool { return v.v.kind == kOver }

// Float returns the number as the nearest float64, if the value is one.
func (v Value) Float() (float64, bool) { return v.v.dec().float(), v.v.kind == kNum }

// Number returns the number as it is shown, if the value is one.
func (v Value) Number() (Number, bool) {
	if v.v.kind != kNum {
		return Number{}, false
	}
	return v.v.any().(Number), true
}

// Str returns the string, if the value is one.
func (v Value) Str() (string, bool) { return v.v.str, v.v.kind == kStr }

// Bool returns the boolean, if the value is one.
func (v Value) Bool() (bool, bool) { return v.v.b, v.v.kind == kBool }

// Any returns a Number, string, bool or nil (overflow is nil; see
// IsOverflow).
func (v Value) Any() any { return v.v.any() }

// String formats the value for people: numbers as users write them,
// money with its currency ("386.90 GBP"), strings quoted, "overflow".
func (v Value) String() string { return v.v.String() }

// MarshalJSON writes the value as its JSON scalar: a number exactly as
// shown (money with its decimals: 386.90), null for overflow.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.v.kind == kNum {
		return v.v.appendNum(nil), nil
	}
	return json.Marshal(v.v.any())
}

// Number is a computed number as users write it: the exact decimal
// (386.93, never 386.93000000000006), money with its currency's decimals
// (500.00) and the currency, and a quotient that does not end (an
// average of 10, 20 and 20) rounded half-even to two more decimals than
// its exact numerator has (16.67; money: to its decimals). It prints as
// Text and marshals to JSON as that number, so APIs, webhooks and
// connectors see 386.93; Currency is "" for numbers that are not money.
type Number struct {
	Text     string
	Currency string
}

// String returns Text (without the currency: it is what a field that
// holds the number should hold).
func (n Number) String() string { return n.Text }

// MarshalJSON writes Text as a JSON number.
func (n Number) MarshalJSON() ([]byte, error) { return []byte(n.Text), nil }

// Float64 converts Text to the nearest float64.
func (n Number) Float64() (float64, error) { return strconv.ParseFloat(n.Text, 64) }

// Display is Text with the currency, for people: "386.90 GBP".
func (n Number) Display() string {
	if n.Currency == "" {
		return n.Text
	}
	return n.Text + " " + n.Currency
}
