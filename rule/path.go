package rule

import (
	"strconv"
	"strings"
)

// Paths name a value inside an event's properties or a profile's traits:
// segments joined by dots, properties.shipping_address.name. A segment
// that is not a plain name (letters, digits and _, not starting with a
// digit) is written quoted: traits."VAT id", properties.meta."utm-source".
// The text form and the JSON form spell paths the same way, so a path is
// one string in the syntax tree; SplitPath reads it.

// SplitPath splits a path into its segments, unquoting quoted ones. ok
// is false for an empty segment, a bad quote or a plain segment that is
// not a name.
func SplitPath(p string) (segs []string, ok bool) {
	for len(p) > 0 {
		var seg string
		if p[0] == '"' {
			q, err := strconv.QuotedPrefix(p)
			if err != nil {
				return nil, false
			}
			seg, _ = strconv.Unquote(q)
			if seg == "" {
				return nil, false
			}
			p = p[len(q):]
		} else {
			i := strings.IndexByte(p, '.')
			if i < 0 {
				i = len(p)
			}
			seg = p[:i]
			if !nameRE.MatchString(seg) {
				return nil, false
			}
			p = p[i:]
		}
		segs = append(segs, seg)
		if p == "" {
			return segs, true
		}
		if p[0] != '.' || len(p) == 1 {
			return nil, false
		}
		p = p[1:]
	}
	return nil, false
}

// JoinPath writes segments as a path, quoting those that are not plain
// names: the inverse of SplitPath.
func JoinPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		if nameRE.MatchString(s) {
			b.WriteString(s)
		} else {
			b.WriteString(strconv.Quote(s))
		}
	}
	return b.String()
}

// splitPath is SplitPath for checked paths (nil if it does not split).
func splitPath(p string) []string {
	segs, _ := SplitPath(p)
	return segs
}
