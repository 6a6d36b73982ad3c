package engine

import (
	"encoding/binary"
	"errors"
	"math"

	gojson "github.com/goccy/go-json"
)

// A profile's traits in a snapshot: a count, then per trait its key and
// a typed value. Scalars (the common case: model traits are numbers and
// words) are written as they are, anything else as JSON. Keys are
// interned on reading, so a million profiles share one copy of each
// trait name. Reading is several times faster than JSON.

const (
	tvNull = iota
	tvFalse
	tvTrue
	tvNumber
	tvString
	tvJSON
)

var errShortTraits = errors.New("truncated traits in snapshot")

// appendTraits encodes traits.
func appendTraits(b []byte, traits map[string]any) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(traits)))
	for k, v := range traits {
		b = appendBytes(b, []byte(k))
		switch x := v.(type) {
		case nil:
			b = append(b, tvNull)
		case bool:
			if x {
				b = append(b, tvTrue)
			} else {
				b = append(b, tvFalse)
			}
		case float64:
			b = append(b, tvNumber)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		case string:
			b = append(b, tvString)
			b = appendBytes(b, []byte(x))
		default:
			raw, err := gojson.Marshal(x)
			if err != nil {
				return nil, err
			}
			b = append(b, tvJSON)
			b = appendBytes(b, raw)
		}
	}
	return b, nil
}

// readTraits decodes what appendTraits wrote; names interns the keys.
func readTraits(b []byte, names map[string]string) (map[string]any, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errShortTraits
	}
	b = b[k:]
	if n == 0 {
		return nil, nil
	}
	out := make(map[string]any, n)
	for range n {
		kb, rest, err := readBytes(b)
		if err != nil || len(rest) == 0 {
			return nil, errShortTraits
		}
		key, ok := names[string(kb)]
		if !ok {
			key = string(kb)
			names[key] = key
		}
		kind := rest[0]
		b = rest[1:]
		switch kind {
		case tvNull:
			out[key] = nil
		case tvFalse:
			out[key] = false
		case tvTrue:
			out[key] = true
		case tvNumber:
			if len(b) < 8 {
				return nil, errShortTraits
			}
			out[key] = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		case tvString, tvJSON:
			v, rest, err := readBytes(b)
			if err != nil {
				return nil, err
			}
			b = rest
			if kind == tvString {
				out[key] = string(v)
				continue
			}
			var x any
			if err := gojson.Unmarshal(v, &x); err != nil {
				return nil, err
			}
			out[key] = x
		default:
			return nil, errShortTraits
		}
	}
	if len(b) != 0 {
		return nil, errShortTraits
	}
	return out, nil
}
