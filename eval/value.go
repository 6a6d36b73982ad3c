package eval

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Value kinds.
const (
	kNull uint8 = iota
	kNum
	kStr
	kBool
)

// value is an evaluation-time scalar. It avoids interface boxing on the
// hot path (comparisons run for every re-evaluated condition).
type value struct {
	kind uint8
	num  float64 // kNum; kBool: 0 or 1
	str  string  // kStr
}

var null = value{}

func numV(f float64) value { return value{kind: kNum, num: f} }
func boolV(b bool) value {
	if b {
		return value{kind: kBool, num: 1}
	}
	return value{kind: kBool}
}

// toValue converts a JSON-ish Go value. Arrays and objects are not
// scalars and read as null (they can still be tested with contains).
func toValue(x any) value {
	switch v := x.(type) {
	case nil:
		return null
	case float64:
		if math.IsNaN(v) {
			return null
		}
		return numV(v)
	case string:
		return value{kind: kStr, str: v}
	case bool:
		return boolV(v)
	case int:
		return numV(float64(v))
	case int64:
		return numV(float64(v))
	case int32:
		return numV(float64(v))
	case uint64:
		return numV(float64(v))
	case float32:
		return numV(float64(v))
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return null
		}
		return numV(f)
	}
	return null
}

// any converts back for results.
func (v value) any() any {
	switch v.kind {
	case kNum:
		return v.num
	case kStr:
		return v.str
	case kBool:
		return v.num != 0
	}
	return nil
}

func (v value) String() string {
	switch v.kind {
	case kNum:
		return strconv.FormatFloat(v.num, 'f', -1, 64)
	case kStr:
		return strconv.Quote(v.str)
	case kBool:
		return strconv.FormatBool(v.num != 0)
	}
	return "null"
}

func (v value) equal(w value) bool {
	return v.kind == w.kind && v.num == w.num && v.str == w.str
}

// Boxed values: one uint64 per value in per-profile state. Numbers are
// their float64 bits; null, booleans and strings live in NaN space,
// which real numbers never use (NaN is read as null). A string's payload
// is an index into the state's string pool.
const (
	boxNull  uint64 = 0xFFF9_0000_0000_0000
	boxFalse uint64 = 0xFFFA_0000_0000_0000
	boxTrue  uint64 = 0xFFFA_0000_0000_0001
	boxStr   uint64 = 0xFFFB_0000_0000_0000
	boxMask  uint64 = 0xFFFF_0000_0000_0000
)

func isBoxedStr(b uint64) bool { return b&boxMask == boxStr }

// hashValue is the 64-bit identity used by distinct counts. Numbers and
// strings hash differently, so 1 and "1" are two values.
func hashValue(v value) uint64 {
	// A fixed, seedless hash (FNV-1a) so serialised state stays valid
	// across processes.
	h := uint64(14695981039346656037)
	mix := func(b byte) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	mix(v.kind)
	switch v.kind {
	case kStr:
		for i := 0; i < len(v.str); i++ {
			mix(v.str[i])
		}
	case kNum, kBool:
		bits := math.Float64bits(v.num)
		if v.num == 0 {
			bits = 0 // -0 == 0
		}
		for i := 0; i < 8; i++ {
			mix(byte(bits >> (8 * i)))
		}
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
	if l.kind != r.kind || l.kind == kNull || l.kind == kBool {
		return false
	}
	var c int
	if l.kind == kNum {
		switch {
		case l.num < r.num:
			c = -1
		case l.num > r.num:
			c = 1
		}
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
	if v.kind == kStr {
		return v.str
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

// Float returns the number, if the value is one.
func (v Value) Float() (float64, bool) { return v.v.num, v.v.kind == kNum }

// Str returns the string, if the value is one.
func (v Value) Str() (string, bool) { return v.v.str, v.v.kind == kStr }

// Bool returns the boolean, if the value is one.
func (v Value) Bool() (bool, bool) { return v.v.num != 0, v.v.kind == kBool }

// Any returns float64, string, bool or nil.
func (v Value) Any() any { return v.v.any() }

// String formats the value as the text form writes literals.
func (v Value) String() string { return v.v.String() }

// MarshalJSON writes the value as its JSON scalar.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.v.any()) }
