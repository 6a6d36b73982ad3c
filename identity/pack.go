package identity

import "encoding/hex"

// Key packing. Many identifier values are hex: analytics.js anonymous ids
// are lower-case UUIDs (36 characters for 16 bytes), profile ids are "p_"
// and 20 hex digits, MongoDB ids are 24 hex digits. The index stores those
// as bytes, which saves about a fifth of its memory; the packed form has a
// tag bit of its own, so it never equals an unpacked key, and a value packs
// one way only, so look-ups find it.
const (
	tagUUID = 0x80 // 16 bytes: a canonical lower-case UUID
	tagHex  = 0x40 // prefix length, prefix, then a lower-case hex tail as bytes

	maxPacked  = 48
	minHexTail = 16 // shorter tails are not worth the work
)

// uuidGroups are the hex runs of a UUID's text form.
var uuidGroups = [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}}

// pack returns the stored form of (tag, s) if it packs.
func pack(buf *[maxPacked]byte, tag byte, s string) (byte, []byte, bool) {
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		j := 0
		for _, g := range uuidGroups {
			if !decodeHex(buf[j:], s[g[0]:g[1]]) {
				return 0, nil, false
			}
			j += (g[1] - g[0]) / 2
		}
		return tag | tagUUID, buf[:16], true
	}
	n := 0 // length of the lower-case hex tail
	for n < len(s) {
		if _, ok := lowerHex(s[len(s)-1-n]); !ok {
			break
		}
		n++
	}
	n &^= 1
	p := len(s) - n
	if n < minHexTail || 1+p+n/2 > maxPacked {
		return 0, nil, false
	}
	b := buf[:1+p+n/2]
	b[0] = byte(p)
	copy(b[1:], s[:p])
	decodeHex(b[1+p:], s[p:]) // cannot fail: checked above
	return tag | tagHex, b, true
}

// decodeHex decodes lower-case hex s into dst, reporting false for any
// other character.
func decodeHex(dst []byte, s string) bool {
	for i := 0; i+1 < len(s); i += 2 {
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i/2] = hi<<4 | lo
	}
	return true
}

// unpack turns a stored key back into its tag and string.
func unpack(tag byte, b []byte) (byte, string) {
	switch {
	case tag&tagUUID != 0:
		var s [36]byte
		hex.Encode(s[0:8], b[0:4])
		s[8] = '-'
		hex.Encode(s[9:13], b[4:6])
		s[13] = '-'
		hex.Encode(s[14:18], b[6:8])
		s[18] = '-'
		hex.Encode(s[19:23], b[8:10])
		s[23] = '-'
		hex.Encode(s[24:36], b[10:16])
		return tag &^ tagUUID, string(s[:])
	case tag&tagHex != 0:
		p := int(b[0])
		out := make([]byte, p+2*(len(b)-1-p))
		copy(out, b[1:1+p])
		hex.Encode(out[p:], b[1+p:])
		return tag &^ tagHex, string(out)
	}
	return tag, string(b)
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
