package sqlite

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"

	"github.com/kiln-cdp/kiln"
)

// An event's Properties, Traits and Context are stored in one column, the
// payload. A full recompute decodes every payload in the log, and decoding
// JSON into map[string]any was most of its cost, so payloads are written
// in a compact tagged binary form (about 80% of the JSON's size) that
// decodes about twice as fast as goccy/go-json with a fifth of the
// allocations: only the maps, slices and strings not seen lately.
//
// Rows written before this form are JSON ({"properties":...}); a JSON text
// never starts with the byte 0x01, so the first byte tells them apart and
// both are read. Either way the decoded values are the ones decoding the
// JSON would give: map[string]any, []any, string, float64, bool and nil.
// The encoder turns other Go values (ints, json.Number, []string, structs)
// into those on the way in, exactly as storing them as JSON did.
//
// Layout (v1):
//
//	0x01  flags  [properties] [traits] [context]
//
// flags has bit 0 set when properties follow, bit 1 for traits, bit 2 for
// context; each is an object body (below, without its tag). A value is one
// tag byte and what the tag says follows:
//
//	0x00 null   0x01 false   0x02 true
//	0x03 float64, 8 bytes little endian
//	0x04 integer, zigzag uvarint (a whole float64 of magnitude below 2^53)
//	0x05 string, uvarint length, UTF-8 bytes
//	0x06 array, uvarint count, the values
//	0x07 object, uvarint count, then each entry: uvarint key length, key, value
//	0x40-0x7f string of length tag-0x40 (0-63 bytes), the bytes
//	0x80-0xff integer tag-0x80 (0-127)

const (
	payloadV1 byte = 0x01

	flagProperties = 1 << 0
	flagTraits     = 1 << 1
	flagContext    = 1 << 2

	tagNull     byte = 0x00
	tagFalse    byte = 0x01
	tagTrue     byte = 0x02
	tagFloat    byte = 0x03
	tagInt      byte = 0x04
	tagString   byte = 0x05
	tagArray    byte = 0x06
	tagObject   byte = 0x07
	tagShortStr byte = 0x40 // | length, 0-63
	tagSmallInt byte = 0x80 // | value, 0-127

	shortStrMax = 0x3f
	smallIntMax = 0x7f

	// maxIntFloat bounds the whole numbers stored as integers: every
	// integer up to 2^53 is exact in a float64.
	maxIntFloat = 1 << 53

	// maxPayloadDepth is how deeply values may nest: the limit encoding/json
	// and goccy/go-json put on decoding, so a value too deep for the JSON
	// form is refused on write here too rather than unreadable later.
	maxPayloadDepth = 10000
)

// errPayloadTooDeep is returned for values nested deeper than maxPayloadDepth.
var errPayloadTooDeep = fmt.Errorf("nested more than %d levels deep", maxPayloadDepth)

// appendBinaryPayload appends e's Properties, Traits and Context in the v1
// binary form, leaving out empty maps. It fails, naming the offending key,
// on a value the JSON form could not store either (NaN, infinities, an
// invalid json.Number, a channel, ...).
func appendBinaryPayload(b []byte, e *kiln.Event) ([]byte, error) {
	b = append(b, payloadV1, 0)
	flagAt := len(b) - 1
	var err error
	for _, f := range [...]struct {
		name string
		flag byte
		m    map[string]any
	}{{"properties", flagProperties, e.Properties}, {"traits", flagTraits, e.Traits}, {"context", flagContext, e.Context}} {
		if len(f.m) == 0 {
			continue
		}
		b[flagAt] |= f.flag
		if b, err = appendBinObjectBody(b, f.m, 1); err != nil {
			return b, fmt.Errorf("%s %w", f.name, err)
		}
	}
	return b, nil
}

func appendBinObjectBody(b []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > maxPayloadDepth {
		return b, errPayloadTooDeep
	}
	b = binary.AppendUvarint(b, uint64(len(m)))
	var err error
	for k, v := range m {
		k = jsonSafeString(k)
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		if b, err = appendBinValue(b, v, depth); err != nil {
			return b, fmt.Errorf("%q: %w", k, err)
		}
	}
	return b, nil
}

func appendBinValue(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, tagNull), nil
	case string:
		return appendBinString(b, x), nil
	case bool:
		if x {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case float64:
		return appendBinFloat(b, x)
	case float32:
		// The JSON form wrote the shortest decimal that reads back as
		// this float32, and reading that as a float64 gave this value.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return appendBinFloat(b, f)
	case int:
		return appendBinFloat(b, float64(x))
	case int64:
		return appendBinFloat(b, float64(x))
	case int32:
		return appendBinFloat(b, float64(x))
	case int16:
		return appendBinFloat(b, float64(x))
	case int8:
		return appendBinFloat(b, float64(x))
	case uint:
		return appendBinFloat(b, float64(x))
	case uint64:
		return appendBinFloat(b, float64(x))
	case uint32:
		return appendBinFloat(b, float64(x))
	case uint16:
		return appendBinFloat(b, float64(x))
	case uint8:
		return appendBinFloat(b, float64(x))
	case json.Number:
		if x == "" {
			return append(b, tagSmallInt), nil // the JSON form wrote 0
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil && json.Valid([]byte(x)) {
			return appendBinFloat(b, f)
		}
		if !json.Valid([]byte(x)) {
			return b, fmt.Errorf("invalid number %q", string(x))
		}
		// Valid JSON that is not a plain number: the JSON form stored it
		// as it is, whatever it decodes to.
		return appendBinJSON(b, []byte(x), depth)
	case map[string]any:
		b = append(b, tagObject)
		return appendBinObjectBody(b, x, depth+1)
	case []any:
		if x == nil {
			return append(b, tagNull), nil
		}
		if depth+1 > maxPayloadDepth {
			return b, errPayloadTooDeep
		}
		b = append(b, tagArray)
		b = binary.AppendUvarint(b, uint64(len(x)))
		var err error
		for i, e := range x {
			if b, err = appendBinValue(b, e, depth+1); err != nil {
				return b, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return b, nil
	case []string:
		if x == nil {
			return append(b, tagNull), nil
		}
		b = append(b, tagArray)
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, s := range x {
			b = appendBinString(b, s)
		}
		return b, nil
	}
	// Anything else (a struct, a typed map or slice, a time) is stored as
	// the JSON form stored it: its encoding/json text, decoded.
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return appendBinJSON(b, j, depth)
}

// appendBinJSON appends the value that the JSON text j decodes to, decoded
// by the same decoder that reads JSON payloads.
func appendBinJSON(b, j []byte, depth int) ([]byte, error) {
	var dv any
	if err := fastjson.Unmarshal(j, &dv); err != nil {
		return b, err
	}
	return appendBinValue(b, dv, depth)
}

func appendBinFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, fmt.Errorf("unsupported number %v", f)
	}
	// Whole numbers (counts, prices in cents, ids) are most numbers; -0 is
	// not one of them, to keep its sign.
	if f == math.Trunc(f) && math.Abs(f) < maxIntFloat && (f != 0 || !math.Signbit(f)) {
		i := int64(f)
		if i >= 0 && i <= smallIntMax {
			return append(b, tagSmallInt|byte(i)), nil
		}
		b = append(b, tagInt)
		return binary.AppendVarint(b, i), nil
	}
	b = append(b, tagFloat)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), nil
}

func appendBinString(b []byte, s string) []byte {
	s = jsonSafeString(s)
	if len(s) <= shortStrMax {
		b = append(b, tagShortStr|byte(len(s)))
	} else {
		b = append(b, tagString)
		b = binary.AppendUvarint(b, uint64(len(s)))
	}
	return append(b, s...)
}

// jsonSafeString returns s with each byte of invalid UTF-8 replaced by
// U+FFFD, as the JSON form (and encoding/json) wrote it.
func jsonSafeString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

// errPayloadCorrupt is wrapped by every error for a payload that is not
// valid v1 binary.
var errPayloadCorrupt = errors.New("corrupt binary payload")

// payloadDecoder decodes stored payloads. It keeps a small cache of the
// strings it has made, because the same keys and many of the same values
// ("GBP", a product name, a category) recur across events: a repeat costs
// a hash and a compare instead of an allocation, and a repeated string
// value also reuses its boxed interface. The cached strings are ordinary
// immutable Go strings; nothing aliases the input bytes. Not safe for
// concurrent use: give each goroutine its own.
type payloadDecoder struct {
	data  []byte
	pos   int
	depth int
	cache *[stringCacheSize]cachedString
}

// stringCacheSize is the number of slots of the direct-mapped cache; a
// slot holds the last string that went to it.
const (
	stringCacheBits = 12
	stringCacheSize = 1 << stringCacheBits
	// Longer strings are rarely repeated (descriptions, urls with ids).
	stringCacheMaxLen = 64
)

// cacheSlot picks b's slot from its length and its first and last eight
// bytes: a few instructions, where a hash of every byte cost a third of
// the decoding. Strings that differ only in the middle share a slot and
// take turns in it, which costs an allocation, never a wrong string (the
// slot's string is compared in full), so crafted collisions are harmless.
func cacheSlot(b []byte) int {
	n := len(b)
	var lo, hi uint64
	if n >= 8 {
		lo, hi = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	} else {
		for _, c := range b {
			lo = lo<<8 | uint64(c)
		}
	}
	h := (lo*0x9e3779b97f4a7c15 ^ hi*0xc2b2ae3d27d4eb4f ^ uint64(n)) * 0x165667b19e3779f9
	return int(h >> (64 - stringCacheBits))
}

type cachedString struct {
	s   string
	box any // s as an interface, made once
}

func newPayloadDecoder() *payloadDecoder {
	return &payloadDecoder{cache: new([stringCacheSize]cachedString)}
}

// smallInts are the boxed float64 values of the one-byte integers, so
// that decoding them allocates nothing.
var smallInts = func() (t [smallIntMax + 1]any) {
	for i := range t {
		t[i] = float64(i)
	}
	return t
}()

// decodeInto sets e's Properties, Traits and Context from a stored
// payload, binary or JSON. An empty payload leaves them nil.
func (d *payloadDecoder) decodeInto(raw []byte, e *kiln.Event) error {
	if len(raw) == 0 {
		return nil
	}
	if raw[0] != payloadV1 {
		var pl payload
		if err := fastjson.Unmarshal(raw, &pl); err != nil {
			return err
		}
		e.Properties, e.Traits, e.Context = pl.Properties, pl.Traits, pl.Context
		return nil
	}
	d.data, d.pos, d.depth = raw, 1, 0
	defer func() { d.data = nil }() // do not keep the row's bytes alive
	flags, err := d.readByte()
	if err != nil {
		return err
	}
	if flags&^(flagProperties|flagTraits|flagContext) != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errPayloadCorrupt, flags)
	}
	for _, f := range [...]struct {
		flag byte
		m    *map[string]any
	}{{flagProperties, &e.Properties}, {flagTraits, &e.Traits}, {flagContext, &e.Context}} {
		if flags&f.flag == 0 {
			*f.m = nil
			continue
		}
		if *f.m, err = d.object(); err != nil {
			return err
		}
	}
	if d.pos != len(d.data) {
		return fmt.Errorf("%w: %d bytes left over at offset %d", errPayloadCorrupt, len(d.data)-d.pos, d.pos)
	}
	return nil
}

func (d *payloadDecoder) corrupt(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errPayloadCorrupt, what, d.pos)
}

func (d *payloadDecoder) readByte() (byte, error) {
	if d.pos >= len(d.data) {
		return 0, d.corrupt("unexpected end")
	}
	c := d.data[d.pos]
	d.pos++
	return c, nil
}

func (d *payloadDecoder) uvarint() (uint64, error) {
	if d.pos < len(d.data) && d.data[d.pos] < 0x80 {
		v := uint64(d.data[d.pos])
		d.pos++
		return v, nil
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		return 0, d.corrupt("bad length")
	}
	d.pos += n
	return v, nil
}

// count reads a length of items each taking at least min bytes, refusing
// one the remaining input cannot hold (so garbage cannot make it allocate
// without bound).
func (d *payloadDecoder) count(min int) (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.data)-d.pos)/uint64(min) {
		return 0, d.corrupt(fmt.Sprintf("count %d larger than the payload", n))
	}
	return int(n), nil
}

// bytes returns the next n bytes, not copied.
func (d *payloadDecoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, d.corrupt(fmt.Sprintf("length %d past the end", n))
	}
	b := d.data[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

// str returns b as a string, from the cache when it is short and was seen
// recently.
func (d *payloadDecoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > stringCacheMaxLen {
		return string(b)
	}
	c := &d.cache[cacheSlot(b)]
	if c.s != string(b) { // compiles to a compare, without allocating
		c.s = string(b)
		c.box = nil
	}
	return c.s
}

// strValue is str boxed as an interface.
func (d *payloadDecoder) strValue(b []byte) any {
	if len(b) == 0 {
		return ""
	}
	if len(b) > stringCacheMaxLen {
		return string(b)
	}
	c := &d.cache[cacheSlot(b)]
	if c.s != string(b) {
		c.s = string(b)
		c.box = c.s
	} else if c.box == nil {
		c.box = c.s
	}
	return c.box
}

func (d *payloadDecoder) object() (map[string]any, error) {
	// An entry is at least a key length and a tag.
	n, err := d.count(2)
	if err != nil {
		return nil, err
	}
	if d.depth++; d.depth > maxPayloadDepth {
		return nil, d.corrupt("nesting too deep")
	}
	m := make(map[string]any, n)
	for range n {
		kl, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		kb, err := d.bytes(kl)
		if err != nil {
			return nil, err
		}
		k := d.str(kb)
		if m[k], err = d.value(); err != nil {
			return nil, err
		}
	}
	d.depth--
	return m, nil
}

func (d *payloadDecoder) value() (any, error) {
	tag, err := d.readByte()
	if err != nil {
		return nil, err
	}
	switch {
	case tag >= tagSmallInt:
		return smallInts[tag&^tagSmallInt], nil
	case tag >= tagShortStr:
		b, err := d.bytes(uint64(tag &^ tagShortStr))
		if err != nil {
			return nil, err
		}
		return d.strValue(b), nil
	}
	switch tag {
	case tagNull:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagFloat:
		b, err := d.bytes(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case tagInt:
		v, n := binary.Varint(d.data[d.pos:])
		if n <= 0 {
			return nil, d.corrupt("bad integer")
		}
		d.pos += n
		return float64(v), nil
	case tagString:
		n, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		b, err := d.bytes(n)
		if err != nil {
			return nil, err
		}
		return d.strValue(b), nil
	case tagArray:
		n, err := d.count(1)
		if err != nil {
			return nil, err
		}
		if d.depth++; d.depth > maxPayloadDepth {
			return nil, d.corrupt("nesting too deep")
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = d.value(); err != nil {
				return nil, err
			}
		}
		d.depth--
		return a, nil
	case tagObject:
		return d.object()
	}
	return nil, d.corrupt(fmt.Sprintf("unknown tag %#x", tag))
}
